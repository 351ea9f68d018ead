"""Retention of recorded channels: which segments go (`plan`), and the sweep that deletes them.

Two rules, both oldest first and neither touching a protected segment (one that overlaps the
padded interval of a channel clip whose section is not cut yet: status queued, fetching or
cutting):
- a segment that ended more than its channel's retention hours ago (`Channel.retention_hours`,
  else CLIPPER_RETENTION_HOURS) is deleted;
- while the disk under the media folder has less than CLIPPER_MIN_FREE_GB free, the oldest
  segments of all channels are deleted, whatever their retention, until enough would be free.

Files are deleted before their rows, so a row never names a missing file for long (a crash in
between leaves rows whose files are gone; the next sweep deletes those too, being older).
When disk pressure deleted anything, the sweep writes `media_dir/channels/retention.json`:
{"at", "deleted", "freed_bytes", "free_bytes", "min_free_bytes", "message"} — the System page
shows its "message" (`read_disk_note`); the file stays until pressure deletes again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from clipper.context import Context
from clipper.storage.tables import Channel, ChannelSegment, Clip, Source

log = logging.getLogger(__name__)

UNCUT_STATUSES = ("queued", "fetching", "cutting")
"""Clip statuses whose section is still to be cut from the stored segments."""

DISK_BATCH = 2000
"""Oldest segments looked at per sweep when the disk is short of space."""

_DELETE_CHUNK = 500
GB = 1024 ** 3


@dataclass(frozen=True)
class SegmentRef:
    """What retention needs to know of a stored segment."""

    id: int
    channel_id: int
    wall_start: float
    duration: float
    bytes: int
    path: str = ""

    @property
    def wall_end(self) -> float:
        return self.wall_start + self.duration


@dataclass(frozen=True)
class Plan:
    """Segments to delete: expired by retention, and (further) to free disk space."""

    expired: tuple[int, ...] = ()
    for_disk: tuple[int, ...] = ()
    freed_for_disk: int = 0

    @property
    def ids(self) -> tuple[int, ...]:
        return self.expired + self.for_disk


@dataclass(frozen=True)
class Limits:
    """Retention hours per channel id (None: the default), and the free-disk minimum."""

    default_hours: float
    hours: Mapping[int, float | None] = field(default_factory=dict)
    min_free_bytes: int = 0

    def keep_from(self, channel_id: int, now: float) -> float:
        """The Unix time before which this channel's recording may go."""
        hours = self.hours.get(channel_id)
        return now - 3600 * (self.default_hours if hours is None else hours)


def _protected(seg: SegmentRef, intervals: Mapping[int, Sequence[tuple[float, float]]]) -> bool:
    return any(seg.wall_start < b and seg.wall_end > a for a, b in intervals.get(seg.channel_id,
                                                                                   ()))


def plan(segments: Iterable[SegmentRef], *, now: float, limits: Limits, free_bytes: int,
         protected: Mapping[int, Sequence[tuple[float, float]]] | None = None) -> Plan:
    """Which segments to delete, oldest first (pure).

    `segments`: the candidates (all stored segments, or the oldest ones); `free_bytes`: free
    space under the media folder now; `protected`: per channel id, [from, to] Unix-second
    intervals still needed by clips.
    """
    keep = protected or {}
    ordered = sorted(segments, key=lambda s: (s.wall_start, s.id))
    candidates = [s for s in ordered if not _protected(s, keep)]
    expired = [s for s in candidates if s.wall_end < limits.keep_from(s.channel_id, now)]
    need = limits.min_free_bytes - free_bytes - sum(s.bytes for s in expired)
    gone = {s.id for s in expired}
    for_disk: list[SegmentRef] = []
    for seg in candidates:
        if need <= 0:
            break
        if seg.id not in gone:
            for_disk.append(seg)
            need -= seg.bytes
    return Plan(tuple(s.id for s in expired), tuple(s.id for s in for_disk),
                sum(s.bytes for s in for_disk))


# ---------------------------------------------------------------- the sweep

def protected_intervals(ctx: Context) -> dict[int, list[tuple[float, float]]]:
    """Per channel id, the padded intervals of its clips whose section is not cut yet."""
    pad = ctx.settings.pad_seconds
    with ctx.db.session() as session:
        rows = session.execute(
            select(Channel.id, Clip.start, Clip.end)
            .join(Source, Clip.source_id == Source.id)
            .join(Channel, Channel.name == Source.location)
            .where(Source.kind == "channel", Clip.status.in_(UNCUT_STATUSES))).all()
    out: dict[int, list[tuple[float, float]]] = {}
    for channel_id, start, end in rows:
        out.setdefault(channel_id, []).append((start - pad, end + pad))
    return out


def _limits(ctx: Context) -> Limits:
    with ctx.db.session() as session:
        hours = dict(session.execute(select(Channel.id, Channel.retention_hours)).all())
    return Limits(ctx.settings.retention_hours, hours, int(ctx.settings.min_free_gb * GB))


def _candidates(ctx: Context, limits: Limits, now: float, short_of_disk: bool) -> list[SegmentRef]:
    """Segments past their channel's retention, plus (short of disk) the oldest of all."""
    columns = (ChannelSegment.id, ChannelSegment.channel_id, ChannelSegment.wall_start,
               ChannelSegment.duration, ChannelSegment.bytes, ChannelSegment.path)
    found: dict[int, SegmentRef] = {}
    with ctx.db.session() as session:
        for channel_id in limits.hours:
            rows = session.execute(select(*columns).where(
                ChannelSegment.channel_id == channel_id,
                ChannelSegment.wall_start < limits.keep_from(channel_id, now))).all()
            found.update((r.id, SegmentRef(*r)) for r in rows)
        if short_of_disk:
            rows = session.execute(select(*columns).order_by(ChannelSegment.wall_start)
                                   .limit(DISK_BATCH)).all()
            found.update((r.id, SegmentRef(*r)) for r in rows)
    return list(found.values())


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk holding `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def sweep(ctx: Context, *, now: float | None = None, free_bytes: int | None = None) -> Plan:
    """Delete what `plan` says (files, then rows); returns the plan carried out.

    `free_bytes` stands in for the disk's free space (tests); by default it is measured.
    """
    now = time.time() if now is None else now
    media = ctx.settings.media_dir
    free = free_disk_bytes(media) if free_bytes is None else free_bytes
    limits = _limits(ctx)
    segments = _candidates(ctx, limits, now, free < limits.min_free_bytes)
    result = plan(segments, now=now, limits=limits, free_bytes=free,
                  protected=protected_intervals(ctx))
    if not result.ids:
        return result
    by_id = {s.id: s for s in segments}
    _delete(ctx, [by_id[i] for i in result.ids])
    if result.for_disk:
        _write_disk_note(media, result, free, limits.min_free_bytes, now)
        log.warning("deleted %d oldest segments: free disk below %.1f GB",
                    len(result.for_disk), limits.min_free_bytes / GB)
    return result


def _delete(ctx: Context, segments: Sequence[SegmentRef]) -> None:
    folders = set()
    for seg in segments:
        path = Path(seg.path)
        path.unlink(missing_ok=True)
        folders.add(path.parent)
    ids = [s.id for s in segments]
    for i in range(0, len(ids), _DELETE_CHUNK):
        with ctx.db.session() as session:
            session.execute(delete(ChannelSegment).where(
                ChannelSegment.id.in_(ids[i:i + _DELETE_CHUNK])))
    for folder in folders:  # the hour folder, then its day folder, once empty
        for empty in (folder, folder.parent):
            try:
                empty.rmdir()
            except OSError:
                break  # not empty (or gone)


def disk_note_path(media_dir: Path) -> Path:
    """Where the sweep leaves its note about disk pressure."""
    return media_dir / "channels" / "retention.json"


def _write_disk_note(media_dir: Path, result: Plan, free: int, minimum: int,
                     now: float) -> None:
    at = datetime.fromtimestamp(now, UTC)
    note = {
        "at": at.isoformat(), "deleted": len(result.for_disk),
        "freed_bytes": result.freed_for_disk, "free_bytes": free, "min_free_bytes": minimum,
        "message": (f"{at:%Y-%m-%d %H:%M} UTC: deleted {len(result.for_disk)} oldest recorded "
                    f"segments ({result.freed_for_disk / GB:.2f} GB) because free disk "
                    f"({free / GB:.2f} GB) was below CLIPPER_MIN_FREE_GB "
                    f"({minimum / GB:g} GB)."),
    }
    path = disk_note_path(media_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.write_text(json.dumps(note, indent=1))
    os.replace(part, path)


def read_disk_note(media_dir: Path) -> dict[str, Any] | None:
    """The last time disk pressure deleted recordings, or None (for the System page)."""
    try:
        return json.loads(disk_note_path(media_dir).read_text())
    except (OSError, ValueError):
        return None
