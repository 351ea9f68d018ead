"""Who may do what: roles, the acting person, and the permission check every service makes.

Every service function that reads or changes team data is written `fn(ctx, actor, ...)` and
decorated with `@requires("<permission>")`, which checks the actor before the body runs and
records the permission on the function (`fn.permission`), so a test can prove each service
refuses every role the table below does not list.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from clipper.errors import PermissionDenied

#: Account roles: the choices of `clipper users add --role` and the Team page.
ROLES = ("volunteer", "coordinator", "social", "editor", "admin")

#: The local command-line operator: a pseudo-role, never an account. Whoever runs `clipper`
#: on the server can already read its files and database, so it may do everything.
OPERATOR = "operator"

#: Admins and the operator may do everything on the desk (the operator a little more).
_DESK = frozenset({"admin", OPERATOR})

#: permission -> roles allowed. Every role is listed explicitly (admin and operator included),
#: so this table is the whole truth.
PERMISSIONS: dict[str, frozenset[str]] = {
    "flag": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    "view_own_flags": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    # One clip's status and event log. Volunteers only see clips their own flags made (the
    # object-level rule lives in services.clips); `view_all_clips` lifts it.
    "view_clip": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    "view_all_clips": frozenset({"social", "editor"}) | _DESK,   # the whole desk: list, any clip
    "review": frozenset({"social"}) | _DESK,          # the queue, claims, caption, trim
    "edit_transcript": frozenset({"social"}) | _DESK,
    "approve": frozenset({"social"}) | _DESK,         # approve/reject, render, export, publish
    "search": frozenset({"editor", "social"}) | _DESK,
    "clip_from_hit": frozenset({"editor"}) | _DESK,
    "retry": _DESK,                                   # send a failed clip round again
    "admin": _DESK,                                   # accounts
    # Live channels: everyone on the desk watches them and flags them; admins run them.
    "view_channels": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    "manage_channels": _DESK,                         # add, pause, resume, remove
    # The rota: everyone sees it; anyone who can flag signs up for shifts (their own); the
    # coordinators run it (create, edit, cancel shifts; assign and remove people; everyone's
    # shifts and stats).
    "view_rota": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    "signup": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    "manage_rota": frozenset({"coordinator"}) | _DESK,
    # Watch-lists on the live transcripts: the desk's senior roles set them up (add, remove;
    # the live transcriber runs the matcher as the operator). Everyone sees alerts; volunteers
    # only those of the channels they are on shift for now (the object-level rule lives in
    # services.watches), which `manage_watches` lifts.
    "manage_watches": frozenset({"social", "editor", "coordinator"}) | _DESK,
    "view_alerts": frozenset({"volunteer", "coordinator", "social", "editor"}) | _DESK,
    # One's own account (time zone, email, password): every account, and the operator.
    "own_account": frozenset(ROLES) | _DESK,
    # One's own personal API and calendar tokens (create, list, revoke); admins anyone's.
    "own_tokens": frozenset(ROLES) | _DESK,
    # Naming a file on the server (a source path, an export folder): the local operator only,
    # or anyone could clip another team's uploads or any recording the server can read.
    "use_server_files": frozenset({OPERATOR}),
}
#: Permissions even an admin lacks.
OPERATOR_ONLY = frozenset(p for p, roles in PERMISSIONS.items() if "admin" not in roles)


@dataclass(frozen=True)
class Actor:
    """The person acting: the dashboard's logged-in user, or the local CLI operator."""

    name: str
    role: str

    @classmethod
    def operator(cls, name: str | None = None) -> Actor:
        """The person running `clipper` on the server (`--by NAME`, or their login name)."""
        return cls((name or "").strip() or "cli", OPERATOR)

    def can(self, action: str) -> bool:
        """Whether this actor's role has permission `action` (ValueError for an unknown one)."""
        return self.role in _roles(action)


def _roles(action: str) -> frozenset[str]:
    try:
        return PERMISSIONS[action]
    except KeyError:  # a misspelt permission must fail loudly, not deny (or allow) quietly
        raise ValueError(f"Unknown permission {action!r}.") from None


def require(actor: Actor, action: str) -> None:
    """PermissionDenied unless `actor` may do `action`."""
    if not isinstance(actor, Actor):  # no plain-string actors: that was an admin back door
        raise TypeError(f"Expected an Actor, got {type(actor).__name__}.")
    if not actor.can(action):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {action.replace('_', ' ')}.",
                               "Ask an admin for the right role.")


P = ParamSpec("P")
R = TypeVar("R")


def requires(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a service `fn(ctx, actor, ...)`: check `actor` may do `action` before the body.

    The permission is recorded as `fn.permission`. Decorating a function whose first two
    parameters are not `ctx, actor` is a TypeError at import, which keeps the style uniform.
    """
    _roles(action)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        params = list(inspect.signature(fn).parameters)
        if params[:2] != ["ctx", "actor"]:
            raise TypeError(f"{fn.__qualname__} must take (ctx, actor, ...) to use @requires.")

        @functools.wraps(fn)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            actor = args[1] if len(args) > 1 else kwargs.get("actor")
            require(actor, action)  # type: ignore[arg-type]
            return fn(*args, **kwargs)

        checked.permission = action  # type: ignore[attr-defined]
        return checked

    return decorate


def permission_of(fn: Callable[..., object]) -> str | None:
    """The permission a service function checks, or None when it has no `@requires`."""
    return getattr(fn, "permission", None)
