"""A JPG still from a clip (the middle frame by default; an audio clip's waveform), for lists
and review pages."""

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
    if not info.has_video and not info.has_audio:
        raise InvalidInput(f"{Path(clip).name} has no picture to make a thumbnail from.")
    t = info.duration / 2 if at is None else min(max(0.0, at), max(0.0, info.duration - 0.05))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not info.has_video:
        return _waveform(clip, out, t)
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


#: Seconds of sound an audio clip's still draws, around its time: a radio or podcast clip is
#: told apart by the shape of its speech, and a whole programme is never read for a still.
WAVE_SECONDS = 10.0


def _waveform(clip: Path, out: Path, t: float) -> Path:
    """The waveform of the WAVE_SECONDS around `t`, as out's JPG (16:9, WIDTH px wide)."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex}.jpg")
    start = max(0.0, t - WAVE_SECONDS / 2)
    stream = (ffmpeg.input(str(clip), ss=f"{start:.3f}", t=f"{WAVE_SECONDS:.3f}").audio
              .filter("showwavespic", s=f"{WIDTH}x{WIDTH * 9 // 16}", colors="0x3b82f6")
              .filter("format", "yuvj420p"))
    try:
        ffrun.run(ffmpeg.output(stream, str(tmp), **{"frames:v": 1, "q:v": 3}),
                  what="draw an audio clip's waveform")
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise InvalidInput(f"No sound at {t:.2f} s in {Path(clip).name} to draw.")
        os.replace(tmp, out)
        return out
    finally:
        tmp.unlink(missing_ok=True)
