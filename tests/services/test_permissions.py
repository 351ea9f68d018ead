"""Every service checks a named permission before it touches anything, for every role.

The services are found by inspection (every public function of a clipper.services module whose
first parameter is `ctx`), so a new service without `@requires` fails here. Each is called with
an Actor of every role and a Context whose database and Redis raise on any use: a role without
the permission must get PermissionDenied, a role with it anything else (usually the exploding
database's error). Pure: no database, Redis, ffmpeg or network.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import clipper.services
from clipper.context import Context
from clipper.errors import PermissionDenied
from clipper.permissions import (
    OPERATOR,
    OPERATOR_ONLY,
    PERMISSIONS,
    ROLES,
    Actor,
    permission_of,
    require,
    requires,
)
from clipper.settings import Settings

ALL_ROLES = (*ROLES, OPERATOR)
#: The login functions that establish who the actor is: they cannot take one.
EXEMPT = {"clipper.services.users.authenticate", "clipper.services.users.user_for_token",
          "clipper.services.users.logout", "clipper.services.tokens.actor_for_token",
          # Slack: who the Slack user is (like a login), the replay guard, a thumbnail
          # authorised by a token in its URL, and background replies (like reminders).
          "clipper.services.slack.actor_for_slack", "clipper.services.slack.link_slack",
          "clipper.services.slack.remember_slack_request",
          "clipper.services.slack.slack_thumbnail", "clipper.services.slack.send_slack_replies"}


class Touched(Exception):
    """The service reached the database or Redis: it had passed its permission check."""


class Exploding:
    """A database or Redis connection that raises on any use."""

    def __getattr__(self, name: str) -> Any:
        raise Touched(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise Touched("call")


def service_functions() -> list[tuple[str, Callable[..., Any]]]:
    """(qualified name, function) for every public `fn(ctx, ...)` defined in clipper.services."""
    found = []
    for info in pkgutil.iter_modules(clipper.services.__path__, "clipper.services."):
        module = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or fn.__module__ != module.__name__:
                continue
            params = list(inspect.signature(fn).parameters)
            if params and params[0] == "ctx":
                found.append((f"{module.__name__}.{name}", fn))
    return sorted(found, key=lambda item: item[0])


SERVICES = service_functions()
CHECKED = [(name, fn) for name, fn in SERVICES if name not in EXEMPT]


def dummy(param: inspect.Parameter) -> Any:
    """A plausible value for a required parameter, from its annotation (strings here)."""
    note = str(param.annotation)
    for kind, value in (("bytes", b"\0"), ("int", 1), ("float", 1.0), ("Sequence", ["x"])):
        if note.startswith(kind):
            return value
    return "x"


def call(fn: Callable[..., Any], ctx: Context, actor: Actor) -> None:
    """Call `fn(ctx, actor, ...)` with dummies for the other required parameters."""
    args: list[Any] = [ctx, actor]
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(fn).parameters.values())[2:]:
        if param.default is not inspect.Parameter.empty or param.kind in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[param.name] = dummy(param)
        else:
            args.append(dummy(param))
    fn(*args, **kwargs)


@pytest.fixture
def exploding_ctx(tmp_path: Path) -> Context:
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path / "home")})
    return Context(settings=settings, db=Exploding(), _redis=Exploding())  # type: ignore[arg-type]


def test_the_services_are_found():
    names = {name.rsplit(".", 1)[-1] for name, _ in SERVICES}
    assert {"file_flag", "clip_status", "list_clips", "clip_events", "retry_clip", "claim",
            "edit_transcript", "search_transcripts", "add_user", "clip_from_hit",
            "request_render", "save_upload", "authenticate"} <= names
    assert EXEMPT <= {name for name, _ in SERVICES}, "an exemption names no service"


@pytest.mark.parametrize(("name", "fn"), SERVICES, ids=[n for n, _ in SERVICES])
def test_every_service_declares_a_permission(name, fn):
    if name in EXEMPT:
        assert permission_of(fn) is None
        return
    assert permission_of(fn) in PERMISSIONS, f"{name} has no @requires(...)"
    assert list(inspect.signature(fn).parameters)[:2] == ["ctx", "actor"]


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize(("name", "fn"), CHECKED, ids=[n for n, _ in CHECKED])
def test_each_service_refuses_exactly_the_roles_without_its_permission(exploding_ctx, name, fn,
                                                                       role):
    actor = Actor(f"someone-{role}", role)
    if role in PERMISSIONS[permission_of(fn)]:
        try:
            call(fn, exploding_ctx, actor)
        except PermissionDenied as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{name} refused {role}, which has {permission_of(fn)}: {exc}")
        except Exception:  # noqa: BLE001 - anything but a refusal means the check let it through
            pass
    else:
        with pytest.raises(PermissionDenied):
            call(fn, exploding_ctx, actor)
        assert not exploding_ctx.settings.home.exists(), "a refused call wrote files"


def test_the_table_admin_everything_but_operator_only_and_no_operator_account():
    assert OPERATOR not in ROLES
    assert ROLES == ("volunteer", "coordinator", "social", "editor", "admin")
    assert OPERATOR_ONLY == {"use_server_files"}
    for permission, roles in PERMISSIONS.items():
        assert OPERATOR in roles, permission
        assert ("admin" in roles) == (permission not in OPERATOR_ONLY), permission
        assert roles <= set(ALL_ROLES), permission
    assert PERMISSIONS["use_server_files"] == {OPERATOR}
    assert "volunteer" not in PERMISSIONS["view_all_clips"]
    assert PERMISSIONS["own_account"] == set(ALL_ROLES)  # everyone sets their own zone, email


def test_no_plain_string_actor_and_no_unknown_permission():
    with pytest.raises(TypeError):
        require("cli", "admin")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Actor("ann", "admin").can("adminn")
    with pytest.raises(ValueError):
        requires("no_such_permission")

    @requires("admin")
    def manage(ctx: object, actor: Actor) -> str:
        return "done"

    assert manage.permission == "admin"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        manage(None, "cli")  # type: ignore[arg-type]
    assert manage(None, actor=Actor.operator("root")) == "done"
    with pytest.raises(TypeError, match=r"\(ctx, actor"):
        requires("admin")(lambda actor, ctx: None)


def test_the_operator_actor():
    assert Actor.operator("ann") == Actor("ann", OPERATOR)
    assert Actor.operator("  ") == Actor("cli", OPERATOR)
    assert Actor.operator("ann").can("use_server_files")
    assert not Actor("ann", "admin").can("use_server_files")
