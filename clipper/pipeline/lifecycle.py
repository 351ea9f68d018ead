"""The clip state machine: statuses, the legal moves between them, and the one function that
applies a move and logs it (the stage table says which stage runs in which status)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from clipper.errors import Conflict
from clipper.storage.tables import Clip, Event

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
