"""A clip's transcript in storage: its rows and search index, and its transcript/SRT/VTT files."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clipper.domain import Segment, Transcript, Word
from clipper.search import reindex_clip
from clipper.storage.tables import Clip, SegmentRow, TranscriptRow
from clipper.subtitles import build_cues, write_srt, write_vtt


def _atomic_write(path: Path, writer: Any) -> None:
    # A name of its own: a team edit and a transcription writing at once never share a file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_transcript_files(transcript: Transcript, out_dir: Path) -> dict[str, str]:
    """transcript.json, clip.srt and clip.vtt next to the clip; returns the clip columns to set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cues = build_cues(transcript.words())
    paths = {"transcript_path": out_dir / "transcript.json", "srt_path": out_dir / "clip.srt",
             "vtt_path": out_dir / "clip.vtt"}
    _atomic_write(paths["transcript_path"],
                  lambda p: p.write_text(json.dumps(transcript_dict(transcript), indent=1)))
    _atomic_write(paths["srt_path"], lambda p: write_srt(cues, p))
    _atomic_write(paths["vtt_path"], lambda p: write_vtt(cues, p))
    return {k: str(v) for k, v in paths.items()}


def transcript_dict(t: Transcript) -> dict[str, Any]:
    """The status-JSON form of a transcript."""
    return {
        "text": t.text, "language": t.language, "engine": t.engine, "model": t.model,
        "segments": [{"start": s.start, "end": s.end, "text": s.text,
                      "words": [asdict(w) for w in s.words]} for s in t.segments],
    }


def store_transcript(session: Session, clip: Clip, t: Transcript, *, by: str) -> None:
    """Replace the clip's transcript rows and re-index it for search, in the caller's
    transaction."""
    session.execute(delete(SegmentRow).where(SegmentRow.clip_id == clip.id))
    row = session.get(TranscriptRow, clip.id)
    if row is None:
        row = TranscriptRow(clip_id=clip.id)
        session.add(row)
    row.clip_version, row.text, row.language = clip.version, t.text, t.language
    row.engine, row.model = t.engine, t.model
    row.edited_by = None if by == "system" else by
    for i, seg in enumerate(t.segments):
        session.add(SegmentRow(clip_id=clip.id, idx=i, start=seg.start, end=seg.end, text=seg.text,
                               words=[[w.start, w.end, w.word] for w in seg.words]))
    session.flush()
    reindex_clip(session, clip.id)




def load_transcript(session: Session, clip_id: int) -> Transcript | None:
    row = session.get(TranscriptRow, clip_id)
    if row is None:
        return None
    segs = session.scalars(select(SegmentRow).where(SegmentRow.clip_id == clip_id)
                           .order_by(SegmentRow.idx))
    segments = tuple(Segment(s.start, s.end, s.text, tuple(Word(*w) for w in s.words))
                     for s in segs)
    return Transcript(row.text, row.language, row.engine, row.model, segments)
