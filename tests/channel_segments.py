"""Recorded channel segments for tests, without the recorder: ffmpeg writes MPEG-TS segment
files, and their rows go straight into the database with the wall-clock times we know."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clipper.context import Context
from clipper.storage.tables import Channel, ChannelSegment
from testmedia.mediagen import FFMPEG, make_video

RATE = 25
WRAP = 1 << 33
PTS_NEAR_WRAP = 95440.0  # seconds: 2^33 ticks is 95443.72 s, so PTS wraps ~2.3 s into a part


@dataclass(frozen=True)
class Piece:
    """One segment file of the test broadcast: `start` is the source time of its first sample
    (so its wall_start is the recording's base + start)."""

    path: Path
    start: float
    duration: float
    first_pts: int
    discontinuity: bool


@dataclass(frozen=True)
class Part:
    """A stretch of the source [first_frame, end_frame) encoded as its own TS stream whose PTS
    start near `pts_offset` seconds: a new part is a source restart (PTS reset)."""

    first_frame: int
    end_frame: int
    pts_offset: float


def _probe(path: Path, entries: str, *select: str) -> float:
    args = ["ffprobe", "-v", "error", *select, "-show_entries", entries, "-of", "csv=p=0"]
    out = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def pts_delta(later: float, earlier: float) -> float:
    """Seconds from `earlier` to `later` PTS (seconds), across the 33-bit wrap."""
    d = round((later - earlier) * 90000) % WRAP
    return (d - WRAP if d > WRAP // 2 else d) / 90000


def encode_part(folder: Path, prefix: str, part: Part, seconds: float,
                size: str = "320x180") -> list[Piece]:
    """The part as ~2 s TS segments (keyframes every 2 s) with a tone; the pieces' `start` is
    their first sample's source time, found from their PTS as a recorder with program-date-time
    would."""
    a, b = part.first_frame / RATE, part.end_frame / RATE
    args = [*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={seconds}",
            "-vf", f"trim=start_frame={part.first_frame}:end_frame={part.end_frame},"
                   "setpts=PTS-STARTPTS",
            "-af", f"atrim=start={a}:end={b},asetpts=PTS-STARTPTS",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50",
            "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000", "-ac", "1",
            "-output_ts_offset", f"{part.pts_offset}", "-f", "segment", "-segment_time", "2",
            "-segment_format", "mpegts", str(folder / f"{prefix}%03d.ts")]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    files = sorted(folder.glob(f"{prefix}*.ts"))
    # The part's first video frame is source time a; every other time follows from its PTS.
    video0 = _probe(files[0], "stream=start_time", "-select_streams", "v:0")
    starts = [_probe(f, "format=start_time") for f in files]
    return [Piece(f, a + pts_delta(t, video0), _probe(f, "format=duration"),
                  round(t * 90000) % WRAP, i == 0)
            for i, (f, t) in enumerate(zip(files, starts, strict=True))]


def make_broadcast(folder: Path, parts: Sequence[Part], seconds: float) -> tuple[Path, list[Piece]]:
    """The whole source as an MP4 (for comparing frames) and the parts' segments."""
    folder.mkdir(parents=True, exist_ok=True)
    master = make_video(folder / "master.mp4", seconds, gop=50)
    pieces = [p for i, part in enumerate(parts)
              for p in encode_part(folder, f"p{i}-", part, seconds)]
    return master, pieces


def segment_path(ctx: Context, channel: str, seq: int, wall_start: float) -> Path:
    """Where the recorder keeps a segment: channels/<name>/<UTC date>/<UTC hour>/<seq>-<ms>.ts."""
    at = datetime.fromtimestamp(wall_start, UTC)
    return (ctx.settings.media_dir / "channels" / channel / at.strftime("%Y-%m-%d")
            / at.strftime("%H") / f"{seq}-{round(wall_start * 1000)}.ts")


def store_pieces(ctx: Context, channel: str, pieces: Sequence[Piece], base: float, *,
                 first_seq: int = 0, files: bool = True) -> list[float]:
    """Copy the pieces into the channel's folder and insert their rows, wall_start = base +
    piece.start; `files=False` inserts rows only (checks that never read media). Returns the
    wall_starts."""
    walls = []
    with ctx.db.session() as session:
        ch = session.query(Channel).filter_by(name=channel).one()
        for seq, piece in enumerate(pieces, start=first_seq):
            wall = base + piece.start
            path = segment_path(ctx, channel, seq, wall)
            if files:
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(piece.path, path)
            session.add(ChannelSegment(
                channel_id=ch.id, seq=seq, wall_start=wall, duration=piece.duration,
                first_pts=piece.first_pts, discontinuity=piece.discontinuity,
                bytes=piece.path.stat().st_size, path=str(path)))
            walls.append(wall)
        ch.last_segment_at = datetime.now(UTC)
    return walls


def store_spans(ctx: Context, channel: str, spans: Sequence[tuple[float, float]], *,
                first_seq: int = 0, size: int = 1000) -> None:
    """Rows only (no files): one segment per (wall_start, duration)."""
    with ctx.db.session() as session:
        ch = session.query(Channel).filter_by(name=channel).one()
        for seq, (wall, seconds) in enumerate(spans, start=first_seq):
            session.add(ChannelSegment(
                channel_id=ch.id, seq=seq, wall_start=wall, duration=seconds, first_pts=0,
                discontinuity=False, bytes=size,
                path=str(segment_path(ctx, channel, seq, wall))))
