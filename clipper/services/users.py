"""Dashboard accounts: argon2 passwords, roles, login sessions and failed-login lockout."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from clipper.permissions import ROLES, Actor, requires
from clipper.pipeline.lifecycle import log_event
from clipper.storage.tables import LoginSession, User, utcnow

FREE_TRIES = 5
"""Failed logins allowed before the account is locked for a while."""

LOCK_BASE_SECONDS = 30.0
"""First lockout; each further failure doubles it."""

LOCK_MAX_SECONDS = 3600.0
"""Longest lockout."""

MIN_PASSWORD = 8
FIRST_ADMIN = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# OWASP's argon2id minimum (19 MiB, t=2, p=1): ~0.1 s a check on a small shared server, where
# argon2-cffi's default (64 MiB, p=4) took ~0.8 s and would stall the dashboard on every login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class LoginFailed(PermissionDenied):
    """Wrong name or password, a disabled account, or a locked one."""


def lock_seconds(failures: int) -> float:
    """How long to lock after `failures` consecutive failures (0 while under FREE_TRIES)."""
    if failures < FREE_TRIES:
        return 0.0
    return min(LOCK_MAX_SECONDS, LOCK_BASE_SECONDS * 2 ** (failures - FREE_TRIES))


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise InvalidInput(f"{name!r} is not a usable user name.",
                           "Use letters, digits and . _ @ - (up to 64), "
                           "starting with a letter or digit.")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}.", f"Use one of {', '.join(ROLES)}.")
    return role


def _check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"The password is shorter than {MIN_PASSWORD} characters.",
                           "Leave it out to get a generated one.")
    return password


def _get(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"No user {name!r}.", "List users with `clipper users list`.")
    return user


@requires("admin")
def add_user(ctx: Context, actor: Actor, name: str, role: str, password: str | None = None) -> str:
    """Create an account; returns the password (generated when None) so it can be shown once."""
    name, role = _check_name(name), _check_role(role)
    password = _check_password(password) if password is not None else generate_password()
    try:
        with ctx.db.session() as session:
            if session.scalars(select(User.id).where(User.name == name)).first() is not None:
                raise Conflict(f"User {name!r} already exists.")
            session.add(User(name=name, role=role, password_hash=_hasher.hash(password)))
            log_event(session, actor.name, "user.added", None, {"user": name, "role": role})
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"User {name!r} already exists.") from exc
    return password


def _user_dict(u: User) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "disabled": u.disabled,
            "failed_logins": u.failed_logins,
            "locked_until": u.locked_until.isoformat() if u.locked_until else None,
            "created_at": u.created_at.isoformat()}


@requires("admin")
def list_users(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Every account, by name (no password hashes)."""
    with ctx.db.session() as session:
        return [_user_dict(u) for u in session.scalars(select(User).order_by(User.name))]


def _active_admins(session: Session) -> int:
    stmt = (select(func.count()).select_from(User)
            .where(User.role == "admin", User.disabled.is_(False)))
    return int(session.scalar(stmt) or 0)


def _guard_last_admin(session: Session, user: User) -> None:
    if user.role == "admin" and not user.disabled and _active_admins(session) <= 1:
        raise Conflict(f"{user.name} is the only active admin.", "Make someone else admin first.")


@requires("admin")
def disable_user(ctx: Context, actor: Actor, name: str) -> None:
    """Disable an account and end its sessions (the last active admin cannot be disabled)."""
    with ctx.db.session() as session:
        user = _get(session, name)
        _guard_last_admin(session, user)
        user.disabled = True
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        log_event(session, actor.name, "user.disabled", None, {"user": name})


@requires("admin")
def enable_user(ctx: Context, actor: Actor, name: str) -> None:
    """Re-enable an account and clear its lockout."""
    with ctx.db.session() as session:
        user = _get(session, name)
        user.disabled, user.failed_logins, user.locked_until = False, 0, None
        log_event(session, actor.name, "user.enabled", None, {"user": name})


@requires("admin")
def set_role(ctx: Context, actor: Actor, name: str, role: str) -> None:
    """Change an account's role (the last active admin keeps theirs)."""
    role = _check_role(role)
    with ctx.db.session() as session:
        user = _get(session, name)
        if role != "admin":
            _guard_last_admin(session, user)
        old, user.role = user.role, role
        log_event(session, actor.name, "user.role", None, {"user": name, "from": old, "to": role})


@requires("admin")
def set_email(ctx: Context, actor: Actor, name: str, email: str) -> None:
    """Set (or with "" clear) the address rota reminders and alerts are emailed to."""
    email = (email or "").strip()
    if email and (len(email) > 320 or email.count("@") != 1 or any(c.isspace() for c in email)
                  or not all(email.split("@"))):
        raise InvalidInput(f"{email!r} is not an email address.", "For example ana@example.org.")
    with ctx.db.session() as session:
        user = _get(session, name)
        user.email = email or None
        log_event(session, actor.name, "user.email", None, {"user": name})


@requires("admin")
def set_password(ctx: Context, actor: Actor, name: str, password: str | None = None) -> str:
    """Reset a password (generated when None); ends the user's sessions; returns the password."""
    password = _check_password(password) if password is not None else generate_password()
    with ctx.db.session() as session:
        user = _get(session, name)
        user.password_hash = _hasher.hash(password)
        user.failed_logins, user.locked_until = 0, None
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        log_event(session, actor.name, "user.password", None, {"user": name})
    return password


def _verify(hash_: str, password: str) -> bool:
    try:
        return _hasher.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


def _refuse_locked(user: User, now: datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        raise LoginFailed(f"Too many failed logins for {user.name}; try again in {wait} s.",
                          "Ask an admin if you have forgotten the password.")


def authenticate(ctx: Context, name: str, password: str) -> str:
    """Check a login; returns a new session token. LoginFailed for anything wrong.

    Each user gets FREE_TRIES failures, then a lock that doubles with every further failure.
    """
    name = (name or "").strip()
    now = utcnow()
    with ctx.db.session() as session:
        user = session.scalars(select(User).where(User.name == name).with_for_update()).first()
        if user is None:
            _verify(_DUMMY_HASH, password or "")
            raise LoginFailed("Wrong username or password.")
        _refuse_locked(user, now)
        if not _verify(user.password_hash, password or ""):
            user.failed_logins += 1
            lock = lock_seconds(user.failed_logins)
            user.locked_until = now + timedelta(seconds=lock) if lock else None
            log_event(session, name, "user.login_failed", None, {"failures": user.failed_logins})
            failed = True
        else:
            failed = False
            token = _open_session(session, user, ctx.settings.session_minutes, now)
    if failed:  # raised after the commit, so the failure count is kept
        raise LoginFailed("Wrong username or password.")
    return token


def _open_session(session: Session, user: User, minutes: float, now: datetime) -> str:
    if user.disabled:
        raise LoginFailed(f"The account {user.name} is disabled.", "Ask an admin.")
    user.failed_logins, user.locked_until = 0, None
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=_token_hash(token), user_id=user.id,
                             expires_at=now + timedelta(minutes=minutes)))
    log_event(session, user.name, "user.login", None, {})
    return token


def user_for_token(ctx: Context, token: str | None) -> Actor | None:
    """The logged-in person for a session token; None when unknown, expired or disabled."""
    if not token:
        return None
    with ctx.db.session() as session:
        row = session.get(LoginSession, _token_hash(token))
        if row is None:
            return None
        if row.expires_at <= utcnow():
            session.delete(row)
            return None
        user = session.get(User, row.user_id)
        # Only account roles log in: a row saying "operator" (edited by hand) gets nothing.
        if user is None or user.disabled or user.role not in ROLES:
            return None
        return Actor(user.name, user.role)


def logout(ctx: Context, token: str | None) -> None:
    """End the login session of `token` (nothing when unknown)."""
    if not token:
        return
    with ctx.db.session() as session:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == _token_hash(token)))


@requires("admin")
def ensure_first_admin(ctx: Context, actor: Actor) -> tuple[str, str] | None:
    """Create `admin` with a generated password when there are no users; (name, password) or None.

    `actor` is whoever starts Clipper (`clipper up`: the local operator).
    """
    with ctx.db.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    try:
        password = add_user(ctx, actor, FIRST_ADMIN, "admin")
    except Conflict:  # another `clipper up` got there first
        return None
    return FIRST_ADMIN, password
