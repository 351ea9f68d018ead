"""The clip state machine: statuses, the legal moves between them, and the one function that
applies a move and logs it (the stage table says which stage runs in which status)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clipper.errors import Conflict
from clipper.storage.tables import Clip, Event, Source

#: Past review: a merged flag is credited but does not re-cut the clip.
REVIEWED = frozenset({"approved", "rendering", "rendered", "exported", "published"})

_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"fetching", "failed", "queued"}),
    "fetching": frozenset({"fetching", "cutting", "failed", "queued"}),
    "cutting": frozenset({"cutting", "transcribing", "ready", "failed", "queued"}),
    "transcribing": frozenset({"transcribing", "ready", "failed", "queued"}),
    "ready": frozenset({"queued", "approved", "rejected", "rendering", "published"}),
    "approved": frozenset({"rendering", "rejected", "published"}),
    "rendering": frozenset({"rendering", "rendered", "failed"}),
    "rendered": frozenset({"rendering", "exported", "published", "rejected"}),
    "exported": frozenset({"rendering", "exported", "published"}),
    "published": frozenset({"published", "rendering", "exported"}),
    "failed": frozenset({"queued", "rendering", "rejected"}),
    "rejected": frozenset(),
}
STATUSES = tuple(_MOVES)


def can_move(old: str, new: str) -> bool:
    return new in _MOVES.get(old, frozenset())


def move(session: Session, clip: Clip, new: str, *, actor: str, action: str | None = None,
         details: dict[str, Any] | None = None) -> None:
    """Change a clip's status and log it, in the caller's transaction; Conflict if illegal."""
    if not can_move(clip.status, new):
        raise Conflict(f"Clip {clip.id} is {clip.status}; it cannot become {new}.")
    old = clip.status
    clip.status = new
    log_event(session, actor, action or f"status.{new}", clip.id, {"from": old, **(details or {})})


def log_event(session: Session, actor: str, action: str, clip_id: int | None,
              details: dict[str, Any] | None = None) -> None:
    session.add(Event(actor=actor, action=action, clip_id=clip_id, details=details or {}))


def lock_clip(session: Session, clip_id: int) -> Clip | None:
    """The clip, locked for update, taking row locks in the one order used everywhere: its
    source first, then the clip (a merging flag locks the source, then its clips).

    Locking through `session.get(Clip, with_for_update=True)` would lock the joined source
    row too, in whatever order PostgreSQL's plan visits them; against a flag holding the
    source and waiting for the clip, that is a deadlock. SQLite ignores row locks (its
    writers are serialised by BEGIN IMMEDIATE)."""
    source_id = session.scalar(select(Clip.source_id).where(Clip.id == clip_id))
    if source_id is None:
        return None
    session.execute(select(Source.id).where(Source.id == source_id).with_for_update())
    stmt = (select(Clip).where(Clip.id == clip_id).with_for_update(of=Clip)
            .execution_options(populate_existing=True))
    return session.scalars(stmt).unique().first()
