"""The System page's view of the machine: queues, workers, disk, and when a short disk made
the recorder delete recordings (admins only)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rq import Worker
from sqlalchemy import func, select

from clipper.context import Context
from clipper.errors import ClipperError
from clipper.permissions import Actor, requires
from clipper.pipeline.jobqueue import queue_lengths
from clipper.pipeline.retention import read_disk_note
from clipper.storage.tables import ChannelSegment


@dataclass(frozen=True)
class WorkQueue:
    """Queue lengths and live workers, or why Redis could not be asked."""

    lengths: dict[str, int] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Disk:
    """Bytes used by media and exports, and bytes free where CLIPPER_HOME lives."""

    media: int
    exports: int
    free: int


def folder_bytes(folder: Path, *, skip: Path | None = None) -> int:
    """Bytes of the files under `folder`, leaving out the tree at `skip`."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and (skip is None or not p.is_relative_to(skip)))


def _recorded_bytes(ctx: Context) -> int:
    """Bytes of every stored channel segment, from the index: a day of recordings is tens of
    thousands of files, too many to stat on each view of the System page."""
    with ctx.db.read() as session:
        return int(session.scalar(select(func.coalesce(func.sum(ChannelSegment.bytes), 0))))


@requires("admin")
def work_queue(ctx: Context, actor: Actor) -> WorkQueue:
    """Lengths of every queue and the workers Redis knows, never raising for a Redis outage."""
    try:
        lengths = queue_lengths(ctx.redis)
        workers = [{"worker": w.name, "state": w.get_state(), "queues": ", ".join(w.queue_names()),
                    "current job": w.get_current_job_id() or "",
                    "last heartbeat": str(w.last_heartbeat or "")}
                   for w in Worker.all(connection=ctx.redis)]
    except (ClipperError, redis.RedisError, OSError) as exc:
        return WorkQueue(error=f"The work queue (Redis) is unreachable: {exc}")
    return WorkQueue(lengths, workers)


@requires("admin")
def disk_usage(ctx: Context, actor: Actor) -> Disk:
    s = ctx.settings
    free = shutil.disk_usage(s.home if s.home.exists() else Path("/")).free
    media = folder_bytes(s.media_dir, skip=s.media_dir / "channels") + _recorded_bytes(ctx)
    return Disk(media, folder_bytes(s.exports_dir), free)


@requires("admin")
def disk_pressure(ctx: Context, actor: Actor) -> dict[str, Any] | None:
    """The last time free disk fell under CLIPPER_MIN_FREE_GB and the retention sweep deleted
    the oldest recordings early ({"at", "deleted", "freed_bytes", ..., "message"}), or None."""
    return read_disk_note(ctx.settings.media_dir)
