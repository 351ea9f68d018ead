"""What each stage does (the work between its begin and finish transactions) and where it leads.

Each stage function takes the Context and the `StageInput` read when it began, does its slow
work outside any transaction, and returns a `StageOutput` for the finishing transaction. Each
`after_*` function picks the clip's status once the stage's result is written.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.domain import MediaInfo, Transcript
from clipper.errors import PermanentError, StageDeferred, TransientError
from clipper.steps import in_context, step
from clipper.storage.tables import (
    Channel,
    Clip,
    LiveAsrState,
    LiveSegment,
    StageRun,
    TranscriptRow,
)

Progress = Callable[[float], None]


@dataclass
class StageInput:
    """What a stage needs to know about its clip, read when it began."""

    clip_id: int
    version: int
    stage: str
    run_id: int
    source_id: int
    source_kind: str
    location: str
    start: float
    end: float
    section_path: str | None
    section_offset: float | None
    section_start: float | None
    section_end: float | None
    media_path: str | None
    gaps: list[list[float]] | None = None
    """Parts of [start, end] the source lacks (a recorded channel's gaps), from the fetch."""
    scratch: Path | None = None
    """This run's own folder for temporary files (removed when the run ends)."""
    progress: Progress = field(default=lambda _fraction: None, repr=False)

    def workdir(self) -> Path:
        """Where this run writes before `publish` moves a finished file into place."""
        if self.scratch is None:
            raise RuntimeError("a stage ran without a scratch folder")
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch


@dataclass
class StageOutput:
    """Column updates for the clip, a hook run in the finishing transaction, and one run after
    it commits (when the clip moved on)."""

    updates: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[Session, Clip], None] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    after: Callable[[], None] | None = None


def clip_dir(ctx: Context, clip_id: int, version: int) -> Path:
    return ctx.settings.media_dir / "clips" / str(clip_id) / f"v{version}"


def edges_dir(ctx: Context, source_id: int) -> Path:
    """Where a source's re-encoded clip edges are kept for its later cuts (`media.cut`)."""
    return ctx.settings.media_dir / "sources" / str(source_id) / "edges"


def publish(made: Path, final: Path) -> Path:
    """Move a finished file from the run's scratch folder into place, atomically: a second run
    of the same stage replaces it whole, and readers never see half a file."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(made, final)
    return final


def has_current_transcript(session: Session, clip: Clip) -> bool:
    row = session.get(TranscriptRow, clip.id)
    return row is not None and row.clip_version == clip.version


# --- fetch -----------------------------------------------------------------------------------

def _covered(ctx: Context, inp: StageInput) -> bool:
    """Whether the section already on disk covers this flag (a merge that only narrowed)."""
    return bool(inp.section_path and Path(inp.section_path).exists()
                and inp.section_start is not None and inp.section_end is not None
                and inp.section_start <= max(0.0, inp.start - ctx.settings.pad_seconds) + 1e-6
                and inp.section_end >= inp.end)


def fetch(ctx: Context, inp: StageInput) -> StageOutput:
    """Bring the flagged section (plus padding) to local disk, by the source's kind."""
    from clipper.pipeline.sources import source_kind

    if _covered(ctx, inp):
        return StageOutput(detail={"skipped": True, "kind": inp.source_kind})
    dest = ctx.settings.media_dir / "sources" / str(inp.source_id)
    scratch = inp.workdir()
    with step("fetch section"):
        section = source_kind(inp.source_kind).section(inp.location, inp.start, inp.end,
                                                       ctx=ctx, dest_dir=scratch)
    path = section.media.path
    if path.resolve().is_relative_to(scratch.resolve()):  # fetched: keep it; a local file stays
        path = publish(path, dest / path.name)
    lo, hi = section.covers
    gaps = [[a, b] for a, b in section.gaps] or None
    info = section.media.info
    return StageOutput(
        updates={"section_path": str(path), "section_offset": section.media.offset,
                 "section_start": lo, "section_end": hi, "gaps": gaps},
        detail={"bytes": path.stat().st_size, "kind": inp.source_kind,
                **({"gaps": gaps} if gaps else {}),
                **({"media": {**asdict(info), "path": str(path)}} if info else {})})


def after_fetch(session: Session, clip: Clip) -> str | None:
    return "cutting"


# --- cut -------------------------------------------------------------------------------------

def recorded_span(inp: StageInput, first: float, available: float) -> tuple[float, float]:
    """Pure: the part of [start, end] to cut. A clip with gaps (a channel that was not recording
    at its start or end) is cut from what the section holds; others exactly as flagged."""
    if not inp.gaps:
        return inp.start, inp.end
    return max(inp.start, first), min(inp.end, available)


def cut(ctx: Context, inp: StageInput) -> StageOutput:
    """Frame-accurate clip and its thumbnail, from the fetched section."""
    from clipper.media.cut import EdgeStore, cut_clip
    from clipper.media.probe import probe_media
    from clipper.media.thumbnail import make_thumbnail

    section = Path(inp.section_path or "")
    if not section.exists():
        raise PermanentError("The fetched section is missing from disk.",
                             "Retry the clip to fetch it again.")
    offset = inp.section_offset or 0.0
    with step("probe section"):
        info = fetched_info(ctx, inp.clip_id, section) or probe_media(section)
    available = offset + info.duration
    start, end = recorded_span(inp, offset, available)
    if start >= available - 0.04:
        raise PermanentError(f"The clip starts at {start:.2f} s, after the end of the media "
                             f"({available:.2f} s).", "Flag a time inside the recording.")
    if end > available + 0.5:
        raise PermanentError(f"The clip ends at {end:.2f} s, after the end of the media "
                             f"({available:.2f} s).",
                             f"Flag an end at or before {available:.2f} s.")
    end = min(end, available)
    out_dir, scratch = clip_dir(ctx, inp.clip_id, inp.version), inp.workdir()
    check_free_space(scratch, needed_bytes(section.stat().st_size, end - start, available - offset))
    # The thumbnail (the middle frame) comes from the section, beside the cut, not after it.
    def thumbnail() -> Path:
        with step("thumbnail (beside the cut)"):
            return make_thumbnail(section, scratch / "thumb.jpg", at=(start + end) / 2 - offset,
                                  info=info, keyframe=True)

    with ThreadPoolExecutor(1) as side:
        thumb_made = side.submit(in_context(thumbnail))
        result = cut_clip(section, start - offset, end - offset, scratch / "clip.mp4", info,
                          EdgeStore(edges_dir(ctx, inp.source_id), str(inp.source_id), offset),
                          ctx.settings.media_dir / "encoders")
        thumb = thumb_made.result()
    media = publish(result.path, out_dir / "clip.mp4")
    thumb = publish(thumb, out_dir / "thumb.jpg")
    return StageOutput(
        updates={"media_path": str(media), "thumbnail_path": str(thumb),
                 "duration": result.duration, "cut_method": result.method},
        detail={"method": result.method, "edges_lent": result.edges_lent},
    )


def fetched_info(ctx: Context, clip_id: int, section: Path) -> MediaInfo | None:
    """What the fetch's ffprobe said of the section (an ffprobe is ~0.1 CPU s, mostly its
    start-up, and a burst's cuts queue for CPU); None when no fetch of the clip recorded it."""
    with ctx.db.read() as session:
        details = session.scalars(
            select(StageRun.detail).where(StageRun.clip_id == clip_id, StageRun.stage == "fetch",
                                          StageRun.error.is_(None))
            .order_by(StageRun.id.desc()).limit(4)).all()
    for detail in details:
        media = (detail or {}).get("media") or {}
        if media.get("path") == str(section):
            try:
                return MediaInfo(**{**media, "path": section})
            except TypeError:  # recorded by another version of Clipper
                return None
    return None


def needed_bytes(section_bytes: int, clip_seconds: float, section_seconds: float) -> int:
    """Pure: disk a cut needs — the clip's share of the section, twice (the parts and the
    joined file), plus room for the thumbnail and ffmpeg's own files."""
    share = section_bytes * min(1.0, clip_seconds / max(section_seconds, 0.001))
    return int(2 * share) + 16 * 2**20


def check_free_space(folder: Path, needed: int) -> None:
    """TransientError (retried later) rather than a cut that fills the disk half-way."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise TransientError(f"Not enough free disk space to cut the clip ({free / 2**20:.0f} MB "
                             f"free, {needed / 2**20:.0f} MB needed).",
                             "Free some space; the cut is tried again by itself.")


def after_cut(session: Session, clip: Clip) -> str | None:
    """The join of the side-by-side cut and transcription: ready when both are done."""
    return "ready" if has_current_transcript(session, clip) else "transcribing"


# --- asr -------------------------------------------------------------------------------------

CAPTION_WAIT = 20.0
"""Seconds after a clip's end during which its channel's captions may still be on their way
(the asr stage waits for them rather than run Whisper)."""

CAPTION_ENGINE, CAPTION_MODEL = "captions", "broadcast"
"""What a transcript taken from a channel's captions names as its engine and model."""


def transcribe(ctx: Context, inp: StageInput) -> StageOutput:
    """Word-timed transcript, subtitle files, and the search index — from the fetched section's
    audio, so it runs while the video is being cut; for a clip of a channel whose live
    transcript comes from its captions, from those captions at once (no Whisper)."""
    from clipper.pipeline.transcripts import store_transcript, write_transcript_files

    out_dir, scratch = clip_dir(ctx, inp.clip_id, inp.version), inp.workdir()
    offset = inp.section_offset or 0.0
    start, end = recorded_span(inp, offset, inp.section_end or inp.end)
    transcript = (caption_transcript(ctx, inp.location, start, end)
                  if inp.source_kind == "channel" else None)
    heard = 0.0
    if transcript is None:
        transcript, heard = _whisper(ctx, inp, start - offset, end - start)
    with step("subtitle files"):
        files = {key: str(publish(Path(made), out_dir / Path(made).name))
                 for key, made in write_transcript_files(transcript, scratch).items()}

    def apply(session: Session, clip: Clip) -> None:
        store_transcript(session, clip, transcript, by="system")

    return StageOutput(updates=files, apply=apply,
                       detail={"engine": transcript.engine, "words": len(transcript.words()),
                               "whisper_seconds": round(heard, 3)})


def _whisper(ctx: Context, inp: StageInput, at: float,
             seconds: float) -> tuple[Transcript, float]:
    """Whisper on `seconds` of the section's audio from `at` (section time) — only on the parts
    of it no earlier transcription of the source was sure of (a merge widened the clip, or
    other clips overlap it); what it hears is kept for the next one. Returns the transcript
    and the seconds of audio Whisper heard."""
    from clipper.pipeline.heard import engine_key, heard_dir, load_heard, save_heard
    from clipper.transcribe import get_engine
    from clipper.transcribe.reuse import Heard, combine, heard_from, on_clip, plan_reuse

    with step("load model"):
        engine = get_engine(ctx.settings)
    offset = inp.section_offset or 0.0
    want = (at + offset, at + offset + seconds)  # on the source's timeline
    folder = heard_dir(ctx, inp.source_id)
    key = engine_key(engine.name, engine.model_name, getattr(engine, "beam_size", 0))
    with step("reuse earlier transcriptions"):
        plan = plan_reuse(want, load_heard(folder, key, want))
    if plan is None:
        transcript = _hear(engine, inp, at, seconds, inp.progress)
        heard = Heard(*want, heard_from(transcript, want[0]), transcript.language)
        new_seconds = seconds
    else:
        parts = [heard_from(_hear(engine, inp, w.start - offset, w.end - w.start), w.start)
                 for w in plan.new]
        heard = combine(plan, parts)
        transcript = on_clip(heard, *want, language=heard.language, engine=engine.name,
                             model=engine.model_name)
        new_seconds = sum(w.end - w.start for w in plan.new)
        inp.progress(1.0)
    save_heard(folder, key, heard)
    return transcript, new_seconds


def _hear(engine: Any, inp: StageInput, at: float, seconds: float,
          progress: Progress | None = None) -> Transcript:
    """Whisper on `seconds` of the section's audio from `at` (section time), decoded in this
    process (no ffmpeg run and no WAV file between)."""
    return engine.transcribe(Path(inp.section_path or ""), span=(max(0.0, at), seconds),
                             progress=progress)


def caption_transcript(ctx: Context, channel_name: str, start: float,
                       end: float) -> Transcript | None:
    """The transcript of [start, end] (wall clock) of a channel from its stored captions, on
    the clip's timeline; None when the channel's transcript does not come from captions, or its
    captions do not cover the clip (they began after its start, or stopped before its end): then
    Whisper transcribes it. StageDeferred while captions still flowing have not reached the end.
    """
    with ctx.db.read() as session:
        channel = session.scalars(select(Channel).where(Channel.name == channel_name)).first()
        if channel is None or channel.transcript_source != "captions":
            return None
        state = session.get(LiveAsrState, channel.id)
        captions = (LiveSegment.channel_id == channel.id, LiveSegment.source == "captions")
        began = session.scalar(select(func.min(LiveSegment.wall_start)).where(*captions))
        if state is None or state.source != "captions" or state.done_until is None \
                or began is None or began > start:
            return None
        if state.done_until < end:
            now = time.time()
            flowing = state.updated_at is not None and \
                now - state.updated_at.timestamp() < CAPTION_WAIT
            if flowing and now - end < CAPTION_WAIT:
                raise StageDeferred(now + 1.0, f"waiting for {channel_name}'s captions")
            return None
        rows = session.execute(
            select(LiveSegment.words).where(*captions, LiveSegment.wall_start < end,
                                            LiveSegment.wall_end > start)
            .order_by(LiveSegment.wall_start, LiveSegment.id)).scalars().all()
    return transcript_from_captions(rows, start, end)


def transcript_from_captions(rows: Sequence[Sequence[Sequence[Any]]], start: float,
                             end: float) -> Transcript:
    """Pure: caption rows' words ([[wall start, wall end, word], ...] each) as a transcript of
    [start, end] on the clip's timeline: a segment per caption, each word whose middle lies in
    the clip, its times clamped to the clip."""
    from clipper.transcribe.reuse import Heard, on_clip

    said = [tuple((float(a), float(b), str(w)) for a, b, w in words) for words in rows]
    heard = Heard(start, end, tuple((0.0, 0.0, " ".join(w[2] for w in words), words)
                                    for words in said))
    return on_clip(heard, start, end, language="", engine=CAPTION_ENGINE, model=CAPTION_MODEL,
                   slack=0.0)


def after_transcribe(session: Session, clip: Clip) -> str | None:
    """Ready if the cut already finished (status transcribing); else the cut's finish decides."""
    return "ready" if clip.status == "transcribing" else None


# --- render ----------------------------------------------------------------------------------

def render(ctx: Context, inp: StageInput) -> StageOutput:
    """Social shapes with burned captions and normalised loudness; the package after, if asked."""
    from clipper.media.package import sha256_file
    from clipper.media.render import RenderRequest, render_package_shapes
    from clipper.pipeline.packaging import export_clip, render_words, store_renders

    with ctx.db.session() as session:
        clip = session.get(Clip, inp.clip_id)
        plan = dict(clip.render_options or {})
        words = render_words(session, clip) if plan.get("captions", "burn") == "burn" else []
    out_dir = ctx.settings.media_dir / "clips" / str(inp.clip_id) / "renders"
    scratch = inp.workdir()
    fit = plan.get("fit", "crop")
    requests = [RenderRequest(scratch / f"{shape}-{fit}.mp4", shape, fit)
                for shape in plan.get("formats", ["16x9", "1x1", "9x16"])]
    results = render_package_shapes(Path(inp.media_path or ""), requests, words=words,
                                    captions=bool(words), trim_in=plan.get("trim_in", 0.0),
                                    trim_out=plan.get("trim_out"),
                                    attribution=plan.get("attribution"),
                                    progress=lambda f, _shape: inp.progress(f),
                                    tmp_dir=scratch)
    # Hashed here, outside any transaction: a package's files are large.
    results = [replace(r, path=publish(r.path, out_dir / r.path.name)) for r in results]
    hashes = [sha256_file(r.path) for r in results]

    def apply(session: Session, clip: Clip) -> None:
        store_renders(session, clip, results, hashes)

    def after() -> None:
        if plan.get("export"):
            export_clip(ctx, inp.clip_id, by=plan.get("by") or "system")

    return StageOutput(apply=apply, after=after, detail={"formats": [r.format for r in results]})


def after_render(session: Session, clip: Clip) -> str | None:
    return "rendered"
