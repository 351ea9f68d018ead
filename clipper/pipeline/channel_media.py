"""A recorded channel's stored segments: finding them, their gaps, and sections made of them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.domain import FetchedSection
from clipper.errors import PermanentError, StageDeferred
from clipper.media.concat import SegmentFile, join_segments
from clipper.storage.tables import Channel, ChannelSegment
from clipper.timecode import format_wallclock

#: Missing wall-clock coverage shorter than this is jitter between segment times, not a gap.
GAP_TOLERANCE = 0.5
#: Previews older than this are deleted when another preview of the channel is made.
PREVIEW_KEEP_SECONDS = 600.0

Interval = tuple[float, float]


@dataclass(frozen=True)
class RecordedSection:
    """A section joined from stored segments, the wall-clock range it covers, and the parts of
    the flagged interval the recording lacks."""

    media: FetchedSection
    covers: Interval
    gaps: tuple[Interval, ...]


def missing(spans: Iterable[Interval], lo: float, hi: float, *,
            tolerance: float = GAP_TOLERANCE) -> list[Interval]:
    """Pure: the parts of [lo, hi] that no span covers, each longer than `tolerance`."""
    out: list[Interval] = []
    reached = lo
    for a, b in sorted(spans):
        if b <= reached:
            continue
        if a - reached > tolerance:
            out.append((reached, min(a, hi)))
        reached = max(reached, b)
        if reached >= hi:
            break
    if hi - reached > tolerance:
        out.append((reached, hi))
    return [(a, b) for a, b in out if b - a > tolerance]


def between_gaps(spans: Sequence[Interval], *, tolerance: float = GAP_TOLERANCE) -> list[Interval]:
    """Pure: the gaps between consecutive recorded spans (not before the first or after the
    last)."""
    if not spans:
        return []
    ordered = sorted(spans)
    return missing(ordered, ordered[0][0], max(b for _, b in ordered), tolerance=tolerance)


def wait_until(end: float, *, pad: float, now: float, recorded_to: float | None,
               grace: float) -> float | None:
    """Pure: when to look again for a flag whose end (+ pad) is not recorded yet, or None to cut
    now (it is recorded, or the end is more than `grace` seconds old: cut what there is).

    The next look is when the end should have been recorded, judging by how far behind live the
    recording runs now; at least a second from now and no later than the grace's end.
    """
    needed = end + pad
    if recorded_to is not None and recorded_to >= needed - GAP_TOLERANCE:
        return None
    if now - end > grace:
        return None
    lag = max(0.0, now - recorded_to) if recorded_to is not None else 0.0
    return max(now + 1.0, min(needed + lag, end + grace + 1.0))


def find_channel(session: Session, name: str) -> Channel | None:
    return session.scalars(select(Channel).where(Channel.name == name)).first()


def recorded_range(session: Session, channel_id: int) -> Interval | None:
    """(first wall_start, latest end) of everything stored for the channel, or None."""
    lo, hi = session.execute(
        select(func.min(ChannelSegment.wall_start),
               func.max(ChannelSegment.wall_start + ChannelSegment.duration))
        .where(ChannelSegment.channel_id == channel_id)).one()
    return None if lo is None else (float(lo), float(hi))


def segments_overlapping(session: Session, channel_id: int, lo: float,
                         hi: float) -> list[SegmentFile]:
    """The channel's segments overlapping [lo, hi], in wall-clock order."""
    rows = session.execute(
        select(ChannelSegment.path, ChannelSegment.wall_start, ChannelSegment.duration)
        .where(ChannelSegment.channel_id == channel_id, ChannelSegment.wall_start < hi,
               ChannelSegment.wall_start + ChannelSegment.duration > lo)
        .order_by(ChannelSegment.wall_start))
    return [SegmentFile(Path(p), float(w), float(d)) for p, w, d in rows]


def _on_disk(files: Iterable[SegmentFile]) -> list[SegmentFile]:
    # A file retention or a person removed after the row was read counts as a gap.
    return [f for f in files if f.path.is_file()]


def _spans(files: Iterable[SegmentFile]) -> list[Interval]:
    return [(f.wall_start, f.wall_start + f.duration) for f in files]


def _when(start: float, end: float) -> str:
    return f"{format_wallclock(start)} and {format_wallclock(end)}"


def channel_section(ctx: Context, name: str, start: float, end: float, *,
                    dest_dir: Path) -> RecordedSection:
    """The recording of channel `name` over [start - pad, end + pad] as one local MP4.

    StageDeferred while the end (+ pad) is not recorded yet and not older than the grace
    (CLIPPER_STALL_SECONDS); after it, what was recorded, with the rest listed as gaps.
    PermanentError for an unknown channel or when nothing was recorded in [start, end].
    """
    pad = ctx.settings.pad_seconds
    with ctx.db.session() as session:
        channel = find_channel(session, name)
        if channel is None:
            raise PermanentError(f"There is no channel named {name!r} any more.",
                                 "It was removed; its recording went with it.")
        span = recorded_range(session, channel.id)
        later = wait_until(end, pad=pad, now=time.time(), recorded_to=span and span[1],
                           grace=ctx.settings.stall_seconds)
        if later is not None:
            raise StageDeferred(later, f"waiting for {name} to record up to "
                                       f"{format_wallclock(end + pad)}")
        files = _on_disk(segments_overlapping(session, channel.id, start - pad, end + pad))
    if not any(f.wall_start < end and f.wall_start + f.duration > start for f in files):
        raise PermanentError(f"Nothing of {name} was recorded between {_when(start, end)}.",
                             "The recording has a gap there, or the channel was not recording.")
    media = join_segments(files, Path(dest_dir) / f"section-{uuid.uuid4().hex}.mp4")
    gaps = tuple(missing(_spans(files), start, end))
    return RecordedSection(media, (files[0].wall_start, media.offset + media.duration), gaps)


def preview_file(ctx: Context, name: str, lo: float, hi: float) -> Path | None:
    """An MP4 remux of channel `name`'s segments overlapping [lo, hi], or None when nothing is
    recorded there. Cached as media_dir/previews/<name>/<first wall_start ms>-<last ms>.mp4:
    file time t is wall-clock time (first wall_start ms) / 1000 + t."""
    with ctx.db.session() as session:
        channel = find_channel(session, name)
        files = (_on_disk(segments_overlapping(session, channel.id, lo, hi))
                 if channel is not None else [])
    if not files:
        return None
    folder = ctx.settings.media_dir / "previews" / name
    out = folder / f"{round(files[0].wall_start * 1000)}-{round(files[-1].wall_start * 1000)}.mp4"
    if out.is_file():
        return out
    _prune(folder, keep=out)
    return join_segments(files, out).path


def _prune(folder: Path, *, keep: Path) -> None:
    cutoff = time.time() - PREVIEW_KEEP_SECONDS
    for old in folder.glob("*.mp4"):
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:  # another page pruned it first
            pass


# --- checking a flag before it is stored ------------------------------------------------------

@dataclass(frozen=True)
class Recording:
    """What a channel has stored around a flag [start, end]."""

    first: float | None
    """wall_start of the oldest stored segment (None: nothing stored)."""
    last_end: float | None
    """End of the newest stored segment."""
    overlaps: bool
    """Whether any stored segment overlaps [start, end]."""
    before: float | None
    """End of the latest segment starting before `start` (where a gap around it begins)."""
    after: float | None
    """Start of the first segment starting at or after `end` (where such a gap ends)."""


def recording_around(session: Session, channel_id: int, start: float, end: float) -> Recording:
    """The stored recording of a channel around [start, end] (four small indexed queries)."""
    seg, ends = ChannelSegment, ChannelSegment.wall_start + ChannelSegment.duration
    mine = seg.channel_id == channel_id
    span = recorded_range(session, channel_id)
    overlaps = session.scalars(select(seg.id).where(mine, seg.wall_start < end, ends > start)
                               .limit(1)).first() is not None
    before = session.scalar(select(func.max(ends)).where(mine, seg.wall_start < start))
    after = session.scalar(select(func.min(seg.wall_start)).where(mine, seg.wall_start >= end))
    return Recording(span and span[0], span and span[1], overlaps,
                     None if before is None else float(before),
                     None if after is None else float(after))


def flag_refusal(name: str, start: float, end: float, rec: Recording, *, now: float,
                 retention_seconds: float, grace: float) -> str | None:
    """Pure: why a flag on channel `name` cannot be clipped (None: it can, perhaps later).

    Refused: older than the channel's retention, wholly before its recording began, wholly in a
    gap, or after a recording that stopped more than `grace` ago. An end not recorded yet is
    fine: the fetch waits for it.
    """
    when = _when(start, end)
    if end <= now - retention_seconds:
        return (f"{name} keeps {retention_seconds / 3600:g} h of recording; the flag "
                f"(between {when}) is older than that.")
    if rec.first is None or rec.last_end is None:
        if end <= now - grace:
            return f"Nothing of {name} has been recorded yet, so nothing between {when}."
        return None
    if end <= rec.first:
        return (f"{name}'s recording begins at {format_wallclock(rec.first)}; the flag (between "
                f"{when}) is wholly before it.")
    if rec.overlaps:
        return None
    if start >= rec.last_end - GAP_TOLERANCE:
        if end <= now - grace:
            return (f"{name} has recorded nothing since {format_wallclock(rec.last_end)}; "
                    f"nothing between {when}.")
        return None
    gap_from = format_wallclock(rec.before) if rec.before is not None else "?"
    gap_to = format_wallclock(rec.after) if rec.after is not None else "?"
    return (f"The flag (between {when}) is wholly inside a gap in {name}'s recording: nothing "
            f"was recorded from {gap_from} to {gap_to}.")
