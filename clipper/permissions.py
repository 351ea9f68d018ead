"""Who may do what: roles, the acting person, and the permission check services call."""

from __future__ import annotations

from dataclasses import dataclass

from clipper.errors import PermissionDenied

ROLES = ("volunteer", "social", "editor", "admin")

#: action -> roles allowed (admin may do everything).
PERMISSIONS: dict[str, frozenset[str]] = {
    "flag": frozenset({"volunteer", "social", "editor"}),
    "view_own_flags": frozenset({"volunteer", "social", "editor"}),
    "review": frozenset({"social"}),          # see the queue, claim, edit, trim, caption
    "approve": frozenset({"social"}),         # approve/reject, render, export, publish
    "search": frozenset({"editor", "social"}),
    "clip_from_hit": frozenset({"editor"}),
    "view_clip": frozenset({"volunteer", "social", "editor"}),
    "admin": frozenset(),
}


@dataclass(frozen=True)
class Actor:
    """The person acting: the dashboard's logged-in user, or the local CLI operator (admin)."""

    name: str
    role: str = "admin"

    def can(self, action: str) -> bool:
        return self.role == "admin" or self.role in PERMISSIONS.get(action, frozenset())


def require(actor: Actor, action: str) -> None:
    """PermissionDenied unless `actor` may do `action`."""
    if not actor.can(action):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {action.replace('_', ' ')}.",
                               "Ask an admin for the right role.")


def as_actor(who: Actor | str) -> Actor:
    """CLI callers pass a plain name: the local operator is trusted as admin."""
    return who if isinstance(who, Actor) else Actor(who or "cli", "admin")
