"""Team corrections of a clip's transcript: re-aligned to the old word timings, logged."""

from __future__ import annotations

from pathlib import Path

from clipper.context import Context
from clipper.domain import Transcript
from clipper.errors import Conflict, InvalidInput, NotFound
from clipper.permissions import Actor, requires
from clipper.pipeline.lifecycle import lock_clip, log_event
from clipper.pipeline.transcripts import load_transcript, store_transcript, write_transcript_files
from clipper.transcribe.correction import align_edit, regroup_segments


@requires("edit_transcript")
def edit_transcript(ctx: Context, actor: Actor, clip_id: int, new_text: str) -> Transcript:
    """The team's correction: words re-aligned to the old timings, subtitles rewritten, logged."""
    if not new_text.strip():
        raise InvalidInput("The corrected transcript is empty.", "Paste the full corrected text.")
    with ctx.db.session() as session:
        clip = lock_clip(session, clip_id)
        if clip is None:
            raise NotFound(f"No clip {clip_id}.")
        old = load_transcript(session, clip_id)
        if old is None:
            raise Conflict(f"Clip {clip_id} has no transcript yet (it is {clip.status}).",
                           "Wait until it is ready.")
        words = align_edit(old.words(), new_text)
        segments = tuple(regroup_segments(words, list(old.segments)))
        text = " ".join(s.text.strip() for s in segments).strip()
        new = Transcript(text, old.language, old.engine, old.model, segments)
        out_dir = (Path(clip.media_path).parent if clip.media_path
                   else ctx.settings.media_dir / "clips" / str(clip_id))
        for key, value in write_transcript_files(new, out_dir).items():
            setattr(clip, key, value)
        store_transcript(session, clip, new, by=actor.name)
        log_event(session, actor.name, "transcript.edited", clip_id,
                  {"before": old.text[:2000], "after": text[:2000]})
    return new
