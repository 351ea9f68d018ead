"""Recorded segments joined into one file whose timeline is linear in wall-clock time."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipper.domain import FetchedSection
from clipper.errors import PermanentError


@dataclass(frozen=True)
class SegmentFile:
    """One stored segment: its file, the wall-clock time of its first sample, its length."""

    path: Path
    wall_start: float
    duration: float


def _quoted(path: Path) -> str:
    """A path as an ffconcat string ('...' with each ' written '\\'')."""
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_listing(files: Sequence[SegmentFile]) -> str:
    """Pure: the ffconcat list for `files` (in wall-clock order).

    Each file lasts until the next one starts (`next.wall_start - this.wall_start`; the last its
    own duration), so section time t is wall time `files[0].wall_start + t` throughout: a gap in
    the recording becomes a jump in the timestamps, a PTS reset or wrap changes nothing.
    """
    if not files:
        raise ValueError("no segments to join")
    lines = ["ffconcat version 1.0"]
    for this, nxt in zip(files, [*files[1:], None], strict=True):
        seconds = nxt.wall_start - this.wall_start if nxt is not None else this.duration
        lines += [f"file {_quoted(Path(this.path).resolve())}",
                  f"duration {max(seconds, 0.001):.6f}"]
    return "\n".join(lines) + "\n"


def join_segments(files: Sequence[SegmentFile], out: Path, *,
                  timeout: float | None = 600) -> FetchedSection:
    """Remux `files` (stream copy: first video and first audio) into the MP4 `out`.

    Written to a temporary name beside `out`, then renamed. File time t is wall-clock time
    `offset + t`, with offset the first segment's wall_start.
    """
    # Here, not at the top: `clipper flag` imports this module (channel_media needs SegmentFile)
    # and must start without loading ffmpeg-python, which only a join uses.
    import ffmpeg

    from clipper.media import ffrun
    from clipper.media.probe import probe_media

    files = sorted(files, key=lambda f: f.wall_start)
    out.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    listing = out.with_name(f".{out.stem}.{token}.ffconcat")
    tmp = out.with_name(f".{out.stem}.{token}.part.mp4")
    listing.write_text(concat_listing(files))
    try:
        inp = ffmpeg.input(str(listing), f="concat", safe=0)
        # Only the first video and audio: broadcasts also carry teletext, SCTE-35 and other
        # data streams that MP4 cannot hold.
        stream = ffmpeg.output(inp["v:0?"], inp["a:0?"], str(tmp), c="copy", f="mp4",
                               movflags="+faststart")
        ffrun.run(stream, what="join the recorded segments", timeout=timeout)
        info = probe_media(tmp)
        if info.duration <= 0:
            raise PermanentError("The recorded segments hold no playable media.")
        os.replace(tmp, out)
    finally:
        listing.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return FetchedSection(out, files[0].wall_start, info.duration)
