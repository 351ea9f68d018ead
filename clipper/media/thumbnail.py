"""A JPG still from a clip (the middle frame by default), for lists and review pages."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import ffmpeg

from clipper.domain import MediaInfo
from clipper.errors import InvalidInput
from clipper.media import ffrun
from clipper.media.probe import probe_media

WIDTH = 640


def make_thumbnail(clip: Path, out: Path, at: float | None = None, *,
                   info: MediaInfo | None = None, keyframe: bool = False) -> Path:
    """Write a WIDTH-px-wide JPG of the frame at `at` seconds (default: mid-clip); returns `out`.

    `keyframe`: the intra picture at or before `at` instead — one frame decoded, not a GOP's
    worth (the cut's still of a long section, where a second either way shows the same scene);
    the exact frame when the decoder finds none marked intra there.
    `info` is `probe_media(clip)` when the caller has it already.
    """
    info = info or probe_media(Path(clip))
    if not info.has_video:
        raise InvalidInput(f"{Path(clip).name} has no picture to make a thumbnail from.")
    t = info.duration / 2 if at is None else min(max(0.0, at), max(0.0, info.duration - 0.05))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if keyframe and _write(clip, out, t, {"noaccurate_seek": None, "skip_frame": "nointra"}):
        return out
    if not _write(clip, out, t, {}):
        raise InvalidInput(f"No frame at {t:.2f} s in {Path(clip).name}.")
    return out


def _write(clip: Path, out: Path, t: float, seek: dict[str, Any]) -> bool:
    """One frame at `t` as out's JPG; False when ffmpeg found none there (a keyframe-only
    decode of a stream whose pictures are not marked intra)."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex}.jpg")
    # A JPEG carries no pixel aspect: square the pixels (anamorphic broadcasts) before scaling.
    stream = (ffmpeg.input(str(clip), ss=f"{t:.3f}", **seek).video
              .filter("scale", "trunc(iw*sar/2)*2", "ih").filter("setsar", 1)
              .filter("scale", WIDTH, -2))
    try:
        ffrun.run(ffmpeg.output(stream, str(tmp), **{"frames:v": 1, "q:v": 3}),
                  what="make a thumbnail", yield_cpu=True)
        if not tmp.exists() or tmp.stat().st_size == 0:
            return False
        os.replace(tmp, out)
        return True
    finally:
        tmp.unlink(missing_ok=True)
