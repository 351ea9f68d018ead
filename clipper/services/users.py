"""Dashboard accounts: argon2 passwords, roles, sessions, lockout, and one's own time zone/email."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import zoneinfo
from datetime import UTC, datetime, timedelta
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
from clipper.storage.tables import LoginSession, LoginThrottle, User, utcnow

FREE_TRIES = 5
"""Failed logins of one name from one address allowed before that pair is locked a while."""

#: Per kind of throttle key: failures allowed before a lock, and the longest lock. A name from
#: one address is locked soon (guessing one password); an address trying many names later
#: (spraying); a name from everywhere much later and briefly, so a crowd of guessers cannot
#: keep the real person out for long.
THROTTLES = {"pair": (FREE_TRIES, 3600.0), "client": (20, 3600.0), "name": (50, 300.0)}
#: Throttle rows untouched for this long are forgotten.
THROTTLE_MEMORY = timedelta(days=1)

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


def lock_seconds(failures: int, free: int = FREE_TRIES, cap: float = LOCK_MAX_SECONDS) -> float:
    """How long to lock after `failures` consecutive failures (0 while under `free`)."""
    if failures < free:
        return 0.0
    return min(cap, LOCK_BASE_SECONDS * 2 ** (failures - free))


def throttle_keys(name: str, client: str) -> dict[str, str]:
    """Pure: the throttle rows one login attempt counts against, by kind."""
    name, client = name.strip().lower()[:64], (client or "unknown")[:64]
    return {"pair": f"pair:{name}|{client}", "client": f"client:{client}", "name": f"name:{name}"}


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
    hashed = _hasher.hash(password)  # ~0.1 s: not while holding the database's write lock
    try:
        with ctx.db.session() as session:
            if session.scalars(select(User.id).where(User.name == name)).first() is not None:
                raise Conflict(f"User {name!r} already exists.")
            session.add(User(name=name, role=role, password_hash=hashed))
            log_event(session, actor.name, "user.added", None, {"user": name, "role": role})
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"User {name!r} already exists.") from exc
    return password


def _user_dict(u: User, throttle: LoginThrottle | None = None) -> dict[str, Any]:
    """An account for admins; failures and lock are the name's own throttle (from anywhere)."""
    locked = throttle.locked_until if throttle else None
    return {"name": u.name, "role": u.role, "disabled": u.disabled,
            "failed_logins": throttle.failures if throttle else 0,
            "locked_until": locked.isoformat() if locked else None,
            "created_at": u.created_at.isoformat()}


@requires("admin")
def list_users(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Every account, by name (no password hashes)."""
    with ctx.db.read() as session:
        throttles = {t.key: t for t in session.scalars(
            select(LoginThrottle).where(LoginThrottle.key.like("name:%")))}
        return [_user_dict(u, throttles.get(f"name:{u.name.lower()}"))
                for u in session.scalars(select(User).order_by(User.name))]


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


def _check_email(email: str | None) -> str:
    """The address trimmed ("" clears it); InvalidInput for anything that is not one."""
    email = (email or "").strip()
    if email and (len(email) > 320 or email.count("@") != 1 or any(c.isspace() for c in email)
                  or not all(email.split("@"))):
        raise InvalidInput(f"{email!r} is not an email address.", "For example ana@example.org.")
    return email


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA time zone name this machine knows, sorted: the choices a person has."""
    # Scanning the zone files takes a while and they do not change under a running server.
    # "localtime" (the server's own zone, by a link) and "Factory" are no place anyone lives.
    return tuple(sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}))


def _check_timezone(tz: str | None) -> str:
    """The zone name trimmed ("" clears it: CLIPPER_TIMEZONE); InvalidInput for an unknown one."""
    tz = (tz or "").strip()
    # Only the listed names: ZoneInfo would also open odd files such as "localtime".
    if tz and tz not in time_zones():
        raise InvalidInput(f"Unknown time zone {tz!r}.",
                           "Use an IANA name such as Europe/London or America/New_York.")
    return tz


def _store_email(ctx: Context, actor: Actor, name: str, email: str | None) -> None:
    email = _check_email(email)
    with ctx.db.session() as session:
        user = _get(session, name)
        user.email = email or None
        log_event(session, actor.name, "user.email", None, {"user": name})


def _store_timezone(ctx: Context, actor: Actor, name: str, tz: str | None) -> None:
    tz = _check_timezone(tz)
    with ctx.db.session() as session:
        user = _get(session, name)
        user.timezone = tz or None
        log_event(session, actor.name, "user.timezone", None, {"user": name, "timezone": tz})


@requires("admin")
def set_email(ctx: Context, actor: Actor, name: str, email: str) -> None:
    """Set (or with "" clear) the address rota reminders and alerts are emailed to."""
    _store_email(ctx, actor, name, email)


@requires("admin")
def set_timezone(ctx: Context, actor: Actor, name: str, tz: str) -> None:
    """Set (or with "" clear, back to CLIPPER_TIMEZONE) the zone a person's times are shown in."""
    _store_timezone(ctx, actor, name, tz)


@requires("own_account")
def my_account(ctx: Context, actor: Actor) -> dict[str, Any]:
    """The actor's own account: `{"name", "role", "timezone", "email"}`; `timezone` is the one
    their times are shown in (CLIPPER_TIMEZONE unless they chose one), `email` None when unset."""
    with ctx.db.read() as session:
        user = _get(session, actor.name)
        tz = user.timezone if user.timezone in time_zones() else ctx.settings.timezone
        return {"name": user.name, "role": user.role, "timezone": tz, "email": user.email}


@requires("own_account")
def set_my_timezone(ctx: Context, actor: Actor, tz: str) -> None:
    """The actor chooses the zone their times are shown in ("" goes back to the default)."""
    _store_timezone(ctx, actor, actor.name, tz)


@requires("own_account")
def set_my_email(ctx: Context, actor: Actor, email: str) -> None:
    """The actor sets (or with "" clears) the address their rota reminders go to."""
    _store_email(ctx, actor, actor.name, email)


@requires("own_account")
def change_my_password(ctx: Context, actor: Actor, current: str, new: str, *,
                       keep: str | None = None) -> None:
    """The actor changes their password, giving the current one. Every other login session of
    theirs ends (`keep`: the token of the one they are using). A wrong current password counts
    as a failed login, so a stolen session cannot try passwords without the lockout."""
    if len(new or "") < MIN_PASSWORD:
        raise InvalidInput(f"The new password is shorter than {MIN_PASSWORD} characters.",
                           "Choose a longer one; a few unrelated words are easy to remember.")
    if _checked_password(ctx, actor.name, current, f"account:{actor.name}", utcnow()) is None:
        raise LoginFailed("The current password is wrong; the password was not changed.",
                          "Type the password you log in with. An admin can reset a forgotten "
                          "one.")
    new_hash = _hasher.hash(new)
    with ctx.db.session() as session:
        user = session.scalars(select(User).where(User.name == actor.name)).first()
        if user is None:
            raise NotFound(f"No user {actor.name!r}.", "List users with `clipper users list`.")
        user.password_hash = new_hash
        others = delete(LoginSession).where(LoginSession.user_id == user.id)
        if keep:
            others = others.where(LoginSession.token_hash != _token_hash(keep))
        session.execute(others)
        log_event(session, actor.name, "user.password", None, {"user": actor.name})


@requires("admin")
def set_password(ctx: Context, actor: Actor, name: str, password: str | None = None) -> str:
    """Reset a password (generated when None); ends the user's sessions; returns the password."""
    password = _check_password(password) if password is not None else generate_password()
    with ctx.db.session() as session:
        user = _get(session, name)
        user.password_hash = _hasher.hash(password)
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        # A reset lets the person in at once, from wherever they were locked out.
        session.execute(delete(LoginThrottle).where(LoginThrottle.key.like(f"pair:{name.lower()}|%")
                                                   | (LoginThrottle.key == f"name:{name.lower()}")))
        log_event(session, actor.name, "user.password", None, {"user": name})
    return password


def _verify(hash_: str, password: str) -> bool:
    try:
        return _hasher.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


def _wait_seconds(session: Session, keys: dict[str, str], now: datetime) -> int:
    """Seconds until none of these throttle rows is locked (0: not locked)."""
    rows = session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys.values())))
    ends = [_aware(r.locked_until) for r in rows if r.locked_until is not None]
    later = [t for t in ends if t > now]
    return int((max(later) - now).total_seconds()) + 1 if later else 0


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _count_failure(session: Session, keys: dict[str, str], now: datetime) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.updated_at < now - THROTTLE_MEMORY))
    for kind, key in keys.items():
        row = session.get(LoginThrottle, key, with_for_update=True)
        if row is None:
            row = LoginThrottle(key=key, failures=0)
            session.add(row)
        row.failures += 1
        lock = lock_seconds(row.failures, *THROTTLES[kind])
        row.locked_until = now + timedelta(seconds=lock) if lock else None
        row.updated_at = now


def _refuse_throttled(ctx: Context, keys: dict[str, str], now: datetime) -> None:
    with ctx.db.read() as session:
        wait = _wait_seconds(session, keys, now)
    if wait:
        # The same words whether or not the name exists: a lock reveals no account.
        raise LoginFailed(f"Too many failed logins; try again in {wait} s.",
                          "Ask an admin if you have forgotten the password.")


def _checked_password(ctx: Context, name: str, password: str, client: str,
                      now: datetime) -> int | None:
    """The user id when `password` is `name`'s, else None (the failure counted). argon2 runs
    outside any transaction: it takes ~0.1 s, and SQLite has one write lock for everyone."""
    keys = throttle_keys(name, client)
    _refuse_throttled(ctx, keys, now)
    with ctx.db.read() as session:
        row = session.execute(select(User.id, User.password_hash)
                              .where(User.name == name)).first()
    # An unknown name costs as long as a wrong password, and is counted the same way.
    if row is not None and _verify(row.password_hash, password or ""):
        with ctx.db.session() as session:
            session.execute(delete(LoginThrottle).where(LoginThrottle.key == keys["pair"]))
        return row.id
    if row is None:
        _verify(_DUMMY_HASH, password or "")
    with ctx.db.session() as session:
        _count_failure(session, keys, now)
        log_event(session, name[:128], "user.login_failed", None, {"client": client[:64]})
    return None


def authenticate(ctx: Context, name: str, password: str, *, client: str = "local",
                 now: datetime | None = None) -> str:
    """Check a login from `client` (the dashboard passes the browser's address); returns a new
    session token. LoginFailed for anything wrong.

    Failures are counted per name from that address, per address, and per name from anywhere
    (THROTTLES); past each allowance a lock doubles with every further failure.
    """
    name, now = (name or "").strip(), now or utcnow()
    user_id = _checked_password(ctx, name, password, client, now)
    if user_id is None:
        raise LoginFailed("Wrong username or password.")
    with ctx.db.session() as session:
        return _open_session(session, session.get(User, user_id), ctx.settings.session_minutes,
                             now)


def _open_session(session: Session, user: User, minutes: float, now: datetime) -> str:
    if user.disabled:
        raise LoginFailed(f"The account {user.name} is disabled.", "Ask an admin.")
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=_token_hash(token), user_id=user.id,
                             expires_at=now + timedelta(minutes=minutes)))
    log_event(session, user.name, "user.login", None, {})
    return token


def user_for_token(ctx: Context, token: str | None) -> Actor | None:
    """The logged-in person for a session token; None when unknown, expired or disabled."""
    if not token:
        return None
    key, now = _token_hash(token), utcnow()
    # Every page load asks: a read, so it neither takes nor waits for SQLite's one write lock.
    with ctx.db.read() as session:
        row = session.get(LoginSession, key)
        if row is None:
            return None
        expired = row.expires_at <= now
        user = None if expired else session.get(User, row.user_id)
        # Only account roles log in: a row saying "operator" (edited by hand) gets nothing.
        actor = (Actor(user.name, user.role)
                 if user is not None and not user.disabled and user.role in ROLES else None)
    if expired:  # the rare write, in its own short transaction (another page may beat us)
        with ctx.db.session() as session:
            session.execute(delete(LoginSession).where(LoginSession.token_hash == key,
                                                       LoginSession.expires_at <= now))
    return actor


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
