"""What Whisper has heard of each source, kept beside its sections so a widened or overlapping
clip transcribes only what is new (planning in `clipper.transcribe.reuse`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path

from clipper.context import Context
from clipper.transcribe.reuse import Heard, Interval

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<key>[0-9a-f]{12})-(?P<start>-?[\d.]+)-(?P<end>-?[\d.]+)\.json$")


def engine_key(name: str, model: str, beam: int) -> str:
    """Transcriptions are reused only by the same engine, model and beam size."""
    return hashlib.sha1(f"{name}|{model}|{beam}".encode()).hexdigest()[:12]


def heard_dir(ctx: Context, source_id: int) -> Path:
    return ctx.settings.media_dir / "sources" / str(source_id) / "heard"


def load_heard(folder: Path, key: str, want: Interval) -> list[Heard]:
    """The stored transcriptions by this engine that overlap `want`; an unreadable one is
    skipped (it is only a shortcut)."""
    found = []
    for path in folder.glob(f"{key}-*.json") if folder.is_dir() else ():
        m = _NAME.match(path.name)
        if not m or float(m["end"]) <= want[0] or float(m["start"]) >= want[1]:
            continue
        try:
            data = json.loads(path.read_text())
            found.append(Heard(float(data["start"]), float(data["end"]), tuple(
                (s[0], s[1], s[2], tuple(tuple(w) for w in s[3])) for s in data["segments"]),
                str(data.get("language", ""))))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("skipping the stored transcription %s: %s", path.name, exc)
    return found


def save_heard(folder: Path, key: str, heard: Heard) -> None:
    """Store a transcription (atomically: a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{key}-{heard.start:.3f}-{heard.end:.3f}.json"
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps({"start": heard.start, "end": heard.end,
                                   "language": heard.language,
                                   "segments": [list(s) for s in heard.segments]}))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
