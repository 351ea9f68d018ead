"""Personal API and calendar tokens: made by a person for themselves, shown once, kept hashed."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from clipper.permissions import ROLES, Actor, requires
from clipper.pipeline.lifecycle import log_event
from clipper.settings import Settings
from clipper.storage.tables import ApiToken, User, utcnow

log = logging.getLogger(__name__)

#: Token kinds: `api` goes in `Authorization: Bearer …` and carries its owner's role;
#: `calendar` is the secret part of a private iCalendar feed URL and reads only that feed.
KINDS = ("api", "calendar")
#: A recognisable prefix per kind, so a leaked token is easy to spot (secret scanners, logs)
#: and a token of one kind is refused by the other without a database lookup.
PREFIXES = {"api": "clp_", "calendar": "clpcal_"}
#: Longest label, as the column allows.
MAX_NAME = 64
#: A token's `last_used_at` is written at most this often: a busy client must not turn every
#: read into a write (SQLite has one write lock for everyone).
TOUCH_EVERY = timedelta(minutes=1)
#: Nothing longer is a token of ours; refused before hashing.
MAX_TOKEN = 128


def token_hash(token: str) -> str:
    """What is stored: the sha256 of the token (tokens are random, so no salt or slow hash)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(kind: str) -> str:
    """A fresh token of `kind`: its prefix and 32 random bytes, URL-safe."""
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def calendar_url(settings: Settings, token: str) -> str:
    """The private feed address of a calendar token: the API's port on the dashboard's host
    (CLIPPER_BASE_URL, else 127.0.0.1)."""
    base = urlsplit(settings.base_url or "http://127.0.0.1")
    host = base.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((base.scheme or "http", f"{netloc}:{settings.api_port}",
                       f"/api/calendar/{token}.ics", "", ""))


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"Unknown token kind {kind!r}.", f"Use one of {', '.join(KINDS)}.")
    return kind


def _check_name(name: str | None, kind: str) -> str:
    name = (name or "").strip() or kind
    if len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"The token label {name[:80]!r} is not usable.",
                           f"Use up to {MAX_NAME} printable characters, e.g. --name laptop.")
    return name


def _target(actor: Actor, user: str | None, what: str) -> str:
    """The person whose tokens these are: the actor unless `user` names someone else, which
    only an admin (or the operator) may. Checked before any lookup, so it reveals nobody."""
    name = (user or "").strip() or actor.name
    if name != actor.name and not actor.can("admin"):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {what} for {name}.",
                               "Each person manages their own tokens.")
    return name


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"No user {name!r}.", "Give --user NAME; list users with "
                       "`clipper users list`.")
    return user


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _token_dict(row: ApiToken, user: str) -> dict[str, Any]:
    return {"id": row.id, "user": user, "name": row.name, "kind": row.kind,
            "created_at": _iso(row.created_at), "last_used_at": _iso(row.last_used_at),
            "revoked_at": _iso(row.revoked_at), "active": row.revoked_at is None}


@requires("own_tokens")
def create_token(ctx: Context, actor: Actor, *, name: str | None = None, user: str | None = None,
                 kind: str = "api") -> dict[str, Any]:
    """Make a token for the actor (an admin or the operator: for `user`). Returns the token's
    listing plus `"token"`, the only time the token itself is seen; only its hash is kept.
    A disabled account gets none (Conflict)."""
    kind = _check_kind(kind)
    label = _check_name(name, kind)
    owner = _target(actor, user, "create tokens")
    token = new_token(kind)
    with ctx.db.session() as session:
        person = _user(session, owner)
        if person.disabled:
            raise Conflict(f"The account {owner} is disabled.", "Enable it first.")
        row = ApiToken(user_id=person.id, name=label, kind=kind, token_hash=token_hash(token))
        session.add(row)
        session.flush()
        log_event(session, actor.name, "token.created", None,
                  {"user": owner, "token_id": row.id, "kind": kind, "name": label})
        out = _token_dict(row, owner)
    out["token"] = token
    return out


@requires("own_tokens")
def list_tokens(ctx: Context, actor: Actor, *, user: str | None = None,
                everyone: bool = False) -> list[dict[str, Any]]:
    """The actor's tokens (or `user`'s; or with `everyone` all of them: admins and the
    operator), oldest first, revoked ones included; never the tokens themselves."""
    if everyone and not actor.can("admin"):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not list everyone's tokens.",
                               "Each person manages their own tokens.")
    owner = None if everyone else _target(actor, user, "list tokens")
    with ctx.db.read() as session:
        q = (select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
             .order_by(ApiToken.id))
        if owner is not None:
            q = q.where(User.id == _user(session, owner).id)
        return [_token_dict(row, who) for row, who in session.execute(q)]


@requires("own_tokens")
def revoke_token(ctx: Context, actor: Actor, token_id: int) -> dict[str, Any]:
    """Revoke one of the actor's tokens (an admin or the operator: anyone's); it stops working
    at once. Revoking a revoked token changes nothing. Someone else's token is the same
    NotFound as a missing one."""
    try:
        token_id = int(token_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"Token id {token_id!r} is not a whole number.") from None
    with ctx.db.session() as session:
        found = session.execute(select(ApiToken, User.name)
                                .join(User, User.id == ApiToken.user_id)
                                .where(ApiToken.id == token_id)).first()
        if found is None or (found[1] != actor.name and not actor.can("admin")):
            raise NotFound(f"No token {token_id}.", "List yours with `clipper tokens list`.")
        row, owner = found
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            log_event(session, actor.name, "token.revoked", None,
                      {"user": owner, "token_id": row.id, "kind": row.kind})
        return _token_dict(row, owner)


def actor_for_token(ctx: Context, token: str | None, kind: str = "api") -> Actor | None:
    """The person a token of `kind` acts for, with their current role; None when it is not
    one (unknown, another kind, revoked, or its account disabled). Notes when it was used,
    at most once a minute."""
    prefix = PREFIXES.get(kind)
    if not token or prefix is None or not token.startswith(prefix) or len(token) > MAX_TOKEN:
        return None
    digest = token_hash(token)
    with ctx.db.read() as session:
        found = session.execute(
            select(ApiToken.id, ApiToken.last_used_at, User.name, User.role, User.disabled)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest, ApiToken.kind == kind,
                   ApiToken.revoked_at.is_(None))).first()
    # Only account roles: a row saying "operator" (edited by hand) gets nothing.
    if found is None or found.disabled or found.role not in ROLES:
        return None
    now = utcnow()
    if found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY:
        try:
            with ctx.db.session() as session:
                session.execute(update(ApiToken).where(ApiToken.id == found.id)
                                .values(last_used_at=now))
        except OperationalError as exc:  # a busy database: the note waits, the caller does not
            log.warning("token %d: last use not noted: %s", found.id, exc)
    return Actor(found.name, found.role)
