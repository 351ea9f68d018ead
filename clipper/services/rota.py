"""The rota: shifts, sign-ups, coverage, gaps, check-ins, missed shifts, team numbers, calendars.

Times go in as ISO 8601 (without an offset: CLIPPER_TIMEZONE) and come out as ISO 8601 UTC.
The decisions (repeats across daylight saving, coverage, overlap, gap merging) are pure, in
`clipper.rota`; this module loads, checks who may do what, and stores.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clipper import rota
from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from clipper.permissions import Actor, require, requires
from clipper.pipeline import notifications
from clipper.pipeline.lifecycle import log_event
from clipper.storage.tables import Channel, Flag, Publication, Shift, Signup, User

#: A volunteer may check in this long before their shift starts.
CHECK_IN_EARLY = timedelta(minutes=15)


def _now(at: datetime | None) -> datetime:
    return (at or datetime.now(UTC)).astimezone(UTC)


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == (name or "").strip())).first()
    if user is None:
        raise NotFound(f"No user {name!r}.", "List users with `clipper users list`.")
    return user


def _shift(session: Session, shift_id: int, *, lock: bool = False) -> Shift:
    q = select(Shift).where(Shift.id == int(shift_id))
    shift = session.scalars(q.with_for_update() if lock else q).first()
    if shift is None:
        raise NotFound(f"No shift {shift_id}.", "See the shifts with `clipper rota list`.")
    return shift


def _active_signup(session: Session, shift: Shift, person: User) -> Signup:
    """`person`'s live signup on `shift` (signed or checked in); Conflict when there is none."""
    mine = session.scalars(select(Signup).where(Signup.shift_id == shift.id,
                                                Signup.user_id == person.id)).first()
    if mine is None or mine.state not in rota.ACTIVE:
        raise Conflict(f"{person.name} is not on shift {shift.id}.")
    return mine


def _not_ended(shift: Shift, now: datetime, name: str) -> None:
    """Refuse to take `name` off a shift that has ended (Conflict), for coordinators too: its
    sign-ups are the record of who watched it and who missed it."""
    if shift.end <= now:
        raise Conflict(f"Shift {shift.id} ended at {rota.iso(shift.end)}: {name} can no longer "
                       "be taken off it.",
                       "A shift's sign-ups stay once it is over: they record who watched it "
                       "and who missed it.")


def _for_self_or_manager(actor: Actor, user: str | None, what: str) -> str:
    """The person acted on: the actor unless `user` names someone else (needs manage_rota)."""
    name = (user or "").strip() or actor.name
    if name != actor.name and not actor.can("manage_rota"):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {what} for {name}.",
                               "Only a coordinator may act for someone else.")
    return name


def _people(session: Session, shift_ids: list[int]) -> dict[int, list[str]]:
    """Names of the people filling each shift (signed or checked in), by shift id."""
    out: dict[int, list[str]] = {i: [] for i in shift_ids}
    if not shift_ids:
        return out
    rows = session.execute(
        select(Signup.shift_id, User.name).join(User, User.id == Signup.user_id)
        .where(Signup.shift_id.in_(shift_ids), Signup.state.in_(rota.ACTIVE))
        .order_by(Signup.shift_id, Signup.id))
    for sid, name in rows:
        out[sid].append(name)
    return out


def _window(session: Session, start: datetime, end: datetime, channel: str | None = None,
            user: str | None = None) -> list[tuple[Shift, str]]:
    q = (select(Shift, Channel.name).join(Channel, Channel.id == Shift.channel_id)
         .where(Shift.cancelled.is_(False), Shift.start < end, Shift.end > start)
         .order_by(Shift.start, Channel.name, Shift.id))
    if channel:
        q = q.where(Channel.name == channel)
    if user:
        # In SQL, through the signups' user index: one person's few shifts, not every shift of
        # the window loaded and filtered (a 1,000-person rota's My shifts page read 3,000).
        q = q.where(Shift.id.in_(
            select(Signup.shift_id).join(User, User.id == Signup.user_id)
            .where(User.name == user, Signup.state.in_(rota.ACTIVE))))
    return [(s, n) for s, n in session.execute(q)]


@requires("manage_rota")
def add_shifts(ctx: Context, actor: Actor, channel: str, start: str, end: str, *,
               needs: int = 1, note: str = "", weekly_until: str | date | None = None
               ) -> list[int]:
    """Create a shift, or a weekly repeat up to `weekly_until` (a local day, inclusive) that
    keeps its local wall time across daylight saving. Returns the new shift ids. Refused with
    nothing stored: an unknown channel, end <= start, needs < 1, a repeat ending before it
    starts or longer than rota.MAX_REPEATS."""
    tz = ctx.settings.timezone
    s = rota.parse_time(start, tz, field="start")
    e = rota.parse_time(end, tz, field="end")
    try:
        needs = int(needs)
    except (TypeError, ValueError):
        raise InvalidInput(f"needs {needs!r} is not a whole number.") from None
    rota.check_shift(s, e, needs)
    until = None if weekly_until in (None, "") else rota.parse_day(weekly_until,
                                                                  field="weekly-until")
    times = rota.weekly(s, e, tz, until)
    series = uuid.uuid4().hex if until is not None else None
    with ctx.db.session() as session:
        ch = session.scalars(select(Channel).where(Channel.name == (channel or "").strip())
                             ).first()
        if ch is None:
            raise InvalidInput(f"There is no channel named {channel!r}.",
                               "See the channels with `clipper channels list`.")
        rows = [Shift(channel_id=ch.id, start=a, end=b, needs=needs, note=note or "",
                      series_id=series, created_by=actor.name) for a, b in times]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
        log_event(session, actor.name, "rota.added", None,
                  {"channel": ch.name, "shift_ids": ids, "needs": needs})
    return ids


def _shift_dict(s: Shift, channel: str, people: list[str]) -> dict[str, Any]:
    return {"id": s.id, "channel": channel, "start": rota.iso(s.start), "end": rota.iso(s.end),
            "needs": s.needs, "volunteers": people, "status": rota.status(s.needs, len(people)),
            "note": s.note}


@requires("view_rota")
def list_shifts(ctx: Context, actor: Actor, *, start_day: str | date | None = None,
                days: int = 7, channel: str | None = None,
                user: str | None = None) -> list[dict[str, Any]]:
    """Shifts (not cancelled) overlapping `days` local days from `start_day` (default today in
    CLIPPER_TIMEZONE), by start; only those `user` is on (signed up or checked in) when given,
    each still with everyone on it."""
    if isinstance(days, bool) or int(days) < 1:
        raise InvalidInput(f"days must be at least 1, not {days!r}.")
    z = rota.zone(ctx.settings.timezone)
    day = (datetime.now(z).date() if start_day in (None, "")
           else rota.parse_day(start_day, field="from"))
    lo = datetime.combine(day, time(), z).astimezone(UTC)
    hi = datetime.combine(day + timedelta(days=int(days)), time(), z).astimezone(UTC)
    with ctx.db.read() as session:
        rows = _window(session, lo, hi, channel, user)
        people = _people(session, [s.id for s, _ in rows])
        return [_shift_dict(s, n, people[s.id]) for s, n in rows]


@requires("signup")
def signup(ctx: Context, actor: Actor, shift_id: int, user: str | None = None, *,
           at: datetime | None = None) -> dict[str, Any]:
    """Put `user` (default: the actor) on a shift. Refused, nothing stored: a cancelled or ended
    shift, a full one, one already signed up for, one overlapping another of theirs."""
    name = _for_self_or_manager(actor, user, "sign up")
    now = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id, lock=True)
        person = _user(session, name)
        if shift.cancelled:
            raise Conflict(f"Shift {shift.id} was cancelled.")
        if shift.end <= now:
            raise Conflict(f"Shift {shift.id} has ended ({rota.iso(shift.end)}).")
        mine = session.scalars(select(Signup).where(Signup.shift_id == shift.id,
                                                    Signup.user_id == person.id)).first()
        if mine is not None and mine.state in rota.ACTIVE:
            raise Conflict(f"{name} is already on shift {shift.id}.")
        taken = session.scalar(select(func.count()).select_from(Signup).where(
            Signup.shift_id == shift.id, Signup.state.in_(rota.ACTIVE))) or 0
        if taken >= shift.needs:
            raise Conflict(f"Shift {shift.id} is full ({taken} of {shift.needs}).",
                           "Pick another shift from `clipper rota list`.")
        clash = session.execute(
            select(Shift.id, Shift.start, Shift.end).join(Signup, Signup.shift_id == Shift.id)
            .where(Signup.user_id == person.id, Signup.state.in_(rota.ACTIVE),
                   Shift.cancelled.is_(False), Shift.id != shift.id,
                   Shift.start < shift.end, Shift.end > shift.start)).first()
        if clash is not None:
            raise Conflict(f"{name} is already on shift {clash[0]} "
                           f"({rota.iso(clash[1])} .. {rota.iso(clash[2])}), which overlaps "
                           f"shift {shift.id}.")
        if mine is None:
            session.add(Signup(shift_id=shift.id, user_id=person.id, state="signed"))
        else:
            mine.state, mine.checked_in_at = "signed", None
        log_event(session, actor.name, "rota.signup", None, {"shift_id": shift.id, "user": name})
    return {"shift_id": int(shift_id), "user": name, "state": "signed"}


@requires("signup")
def cancel_signup(ctx: Context, actor: Actor, shift_id: int, user: str | None = None, *,
                  at: datetime | None = None) -> dict[str, Any]:
    """Take `user` (default: the actor) off a shift. Less than CLIPPER_ROTA_LATE_CANCEL_HOURS
    before the start (or later) needs a coordinator; once the shift has ended nobody may."""
    name = _for_self_or_manager(actor, user, "cancel a shift")
    now = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id)
        person = _user(session, name)
        _not_ended(shift, now, name)
        mine = _active_signup(session, shift, person)
        hours = ctx.settings.rota_late_cancel_hours
        late = shift.start - now < timedelta(hours=hours)
        if late:
            try:
                require(actor, "manage_rota")
            except PermissionDenied as exc:
                raise PermissionDenied(
                    f"Shift {shift.id} starts in less than {hours:g} h: too late to cancel "
                    "on your own.", "Ask a coordinator to take you off it.") from exc
        mine.state = "cancelled"
        log_event(session, actor.name, "rota.cancelled", None,
                  {"shift_id": shift.id, "user": name, "late": late})
    return {"shift_id": int(shift_id), "user": name, "state": "cancelled", "late": late}


def _tell(ctx: Context, event: str, text: str, details: dict[str, Any]) -> None:
    """Tell the team (and so everyone signed up) about a change to a shift, by the webhook.
    Never fails the change: the Event row is the record."""
    try:
        notifications.notify(ctx, {"text": text, "event": event, **details})
    except Exception:  # noqa: BLE001 - a webhook problem must not undo a stored change
        pass


def _span(shift: Shift) -> str:
    return f"{rota.iso(shift.start)} .. {rota.iso(shift.end)}"


def _edit_clash(session: Session, shift: Shift, start: datetime, end: datetime
                ) -> tuple[str, int, datetime, datetime] | None:
    """Someone on `shift` who is also on another live shift overlapping `[start, end)` (the
    same half-open rule as signing up): (name, other shift id, its start, its end)."""
    on_it = (select(Signup.user_id)
             .where(Signup.shift_id == shift.id, Signup.state.in_(rota.ACTIVE)))
    return session.execute(
        select(User.name, Shift.id, Shift.start, Shift.end)
        .join(Signup, Signup.shift_id == Shift.id).join(User, User.id == Signup.user_id)
        .where(Signup.user_id.in_(on_it), Signup.state.in_(rota.ACTIVE),
               Shift.cancelled.is_(False), Shift.id != shift.id,
               Shift.start < end, Shift.end > start)
        .order_by(User.name, Shift.start)).first()


@requires("manage_rota")
def edit_shift(ctx: Context, actor: Actor, shift_id: int, *, start: str | datetime | None = None,
               end: str | datetime | None = None, needs: int | None = None,
               note: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """Change a shift's times, needs or note (None: unchanged); everyone signed up is told (the
    team's webhook now, each of them by email on the next reminders pass). Refused, nothing
    stored: a cancelled or ended shift, end <= start, needs < 1 or below the people already
    on it, new times that overlap another shift of someone on it."""
    tz = ctx.settings.timezone
    t = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id, lock=True)
        if shift.cancelled:
            raise Conflict(f"Shift {shift.id} was cancelled: it can no longer be edited.",
                           "Create a new shift instead.")
        if shift.end <= t:
            raise Conflict(f"Shift {shift.id} has ended ({rota.iso(shift.end)}): "
                           "it can no longer be edited.", "Create a new shift instead.")
        s = shift.start if start in (None, "") else rota.parse_time(start, tz, field="start")
        e = shift.end if end in (None, "") else rota.parse_time(end, tz, field="end")
        n = shift.needs
        if needs is not None:
            try:
                n = int(needs)
            except (TypeError, ValueError):
                raise InvalidInput(f"needs {needs!r} is not a whole number.") from None
        rota.check_shift(s, e, n)
        people = _people(session, [shift.id])[shift.id]
        rota.check_needs(shift.id, n, people)
        if (s, e) != (shift.start, shift.end) and (clash := _edit_clash(session, shift, s, e)):
            who, other, a, b = clash
            raise Conflict(f"{who} is also on shift {other} ({rota.iso(a)} .. {rota.iso(b)}), "
                           f"which the new times {rota.iso(s)} .. {rota.iso(e)} overlap.",
                           f"Pick times that miss it, or take {who} off one of the shifts "
                           "first.")
        before = {"start": rota.iso(shift.start), "end": rota.iso(shift.end),
                  "needs": shift.needs, "note": shift.note}
        shift.start, shift.end, shift.needs = s, e, n
        if note is not None:
            shift.note = note
        after = {"start": rota.iso(s), "end": rota.iso(e), "needs": n, "note": shift.note}
        changed = {k: after[k] for k in after if after[k] != before[k]}
        channel = session.get(Channel, shift.channel_id).name
        if changed:
            log_event(session, actor.name, "rota.edited", None,
                      {"shift_id": shift.id, "channel": channel, "before": before,
                       "changed": changed, "volunteers": people})
        result = _shift_dict(shift, channel, people)
    if changed:
        what = ", ".join(f"{k} {v}" for k, v in changed.items())
        _tell(ctx, "rota.shift_changed",
              f"Shift {result['id']} on {channel} was changed ({what}); now "
              f"{result['start']} .. {result['end']}."
              + (f" Signed up: {', '.join(people)}." if people else ""),
              {"shift_id": result["id"], "channel": channel, "changed": changed,
               "volunteers": people})
    return result


@requires("manage_rota")
def cancel_shift(ctx: Context, actor: Actor, shift_id: int, *,
                 at: datetime | None = None) -> dict[str, Any]:
    """Cancel a shift (kept, marked cancelled, gone from lists and gaps); everyone signed up is
    told (the webhook now, each by email on the next reminders pass). Refused: a shift already
    cancelled or ended."""
    t = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id, lock=True)
        if shift.cancelled:
            raise Conflict(f"Shift {shift.id} was already cancelled.")
        if shift.end <= t:
            raise Conflict(f"Shift {shift.id} has ended ({rota.iso(shift.end)}).")
        shift.cancelled = True
        channel = session.get(Channel, shift.channel_id).name
        people = _people(session, [shift.id])[shift.id]
        span = _span(shift)
        log_event(session, actor.name, "rota.shift_cancelled", None,
                  {"shift_id": shift.id, "channel": channel, "volunteers": people})
    _tell(ctx, "rota.shift_cancelled",
          f"Shift {int(shift_id)} on {channel} ({span}) was cancelled."
          + (f" Signed up: {', '.join(people)}." if people else ""),
          {"shift_id": int(shift_id), "channel": channel, "volunteers": people})
    return {"shift_id": int(shift_id), "channel": channel, "cancelled": True,
            "volunteers": people}


@requires("manage_rota")
def remove_person(ctx: Context, actor: Actor, shift_id: int, user: str, *,
                  at: datetime | None = None) -> dict[str, Any]:
    """A coordinator takes `user` off a shift, at any time until it ends; they are told (the
    team's webhook now, they by email on the next reminders pass)."""
    now = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id)
        person = _user(session, user)
        _not_ended(shift, now, person.name)
        mine = _active_signup(session, shift, person)
        mine.state = "cancelled"
        channel = session.get(Channel, shift.channel_id).name
        span = _span(shift)
        log_event(session, actor.name, "rota.removed", None,
                  {"shift_id": shift.id, "channel": channel, "user": person.name})
        name = person.name
    _tell(ctx, "rota.person_removed",
          f"{name} was taken off shift {int(shift_id)} on {channel} ({span}) by {actor.name}.",
          {"shift_id": int(shift_id), "channel": channel, "user": name})
    return {"shift_id": int(shift_id), "user": name, "state": "cancelled"}


@requires("view_rota")
def gaps(ctx: Context, actor: Actor, *, days: int = 7,
         now: datetime | None = None) -> list[dict[str, Any]]:
    """Stretches of the next `days` days where a channel's shifts are short of people, merged
    per channel (see `clipper.rota`); a gap already under way starts now."""
    lo = _now(now)
    hi = lo + timedelta(days=int(days))
    with ctx.db.read() as session:
        rows = _window(session, lo, hi)
        people = _people(session, [s.id for s, _ in rows])
        # Inside: a read session's rollback expires its rows, which then cannot load again.
        spans = [(n, max(s.start, lo), s.end, s.needs, len(people[s.id])) for s, n in rows]
    merged = rota.merge_gaps(spans)
    return [{"channel": g.channel, "start": rota.iso(g.start), "end": rota.iso(g.end),
             "missing": g.missing} for g in merged]


@requires("view_rota")
def now(ctx: Context, actor: Actor, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """Who is watching what now: the shifts running at `at` (default now)."""
    t = _now(at)
    with ctx.db.read() as session:
        rows = _window(session, t, t + timedelta(microseconds=1))
        people = _people(session, [s.id for s, _ in rows])
        return [{"channel": n, "shift_id": s.id, "volunteers": people[s.id],
                 "until": rota.iso(s.end)} for s, n in rows]


@requires("signup")
def check_in(ctx: Context, actor: Actor, shift_id: int, *,
             at: datetime | None = None) -> dict[str, Any]:
    """The actor says they are watching their shift (from 15 minutes before it until its end)."""
    t = _now(at)
    with ctx.db.session() as session:
        shift = _shift(session, shift_id)
        person = _user(session, actor.name)
        mine = session.scalars(select(Signup).where(Signup.shift_id == shift.id,
                                                    Signup.user_id == person.id)).first()
        if mine is None or mine.state not in rota.ACTIVE:
            raise Conflict(f"{actor.name} is not on shift {shift.id}.")
        if shift.cancelled:
            raise Conflict(f"Shift {shift.id} was cancelled.")
        if not shift.start - CHECK_IN_EARLY <= t < shift.end:
            raise Conflict(f"Shift {shift.id} runs {rota.iso(shift.start)} .. "
                           f"{rota.iso(shift.end)}: check in while it is on.")
        if mine.state == "signed":
            mine.state, mine.checked_in_at = "checked_in", t
            log_event(session, actor.name, "rota.checked_in", None, {"shift_id": shift.id})
    return {"shift_id": int(shift_id), "user": actor.name, "state": "checked_in"}


@requires("manage_rota")
def mark_missed(ctx: Context, actor: Actor, *, now: datetime) -> int:
    """Every signed-up person who never checked in to a shift that ended by `now` is marked
    missed; returns how many. Run by `clipper up` or a coordinator; repeating it is harmless."""
    # One implementation, in the pipeline: `clipper up` runs it with the reminders.
    from clipper.pipeline.reminders import mark_missed as _mark_missed

    return _mark_missed(ctx, _now(now), by=actor.name)


@requires("view_rota")
def stats(ctx: Context, actor: Actor, user: str | None = None) -> dict[str, int]:
    """A person's shifts done (checked in), missed, flags filed and flags whose clip was
    published. Someone else's need manage_rota."""
    with ctx.db.read() as session:
        name = _for_self_or_manager(actor, user, "see the stats")
        person = _user(session, name)

        def count(state: str) -> int:
            return session.scalar(
                select(func.count()).select_from(Signup).join(Shift, Shift.id == Signup.shift_id)
                .where(Signup.user_id == person.id, Signup.state == state,
                       Shift.cancelled.is_(False))) or 0

        filed = session.scalar(select(func.count()).select_from(Flag)
                               .where(Flag.by == name)) or 0
        published = session.scalar(
            select(func.count(func.distinct(Flag.id))).select_from(Flag)
            .join(Publication, Publication.clip_id == Flag.clip_id)
            .where(Flag.by == name)) or 0
        return {"shifts_done": count("checked_in"), "missed": count("missed"),
                "flags_filed": int(filed), "flags_published": int(published)}


@requires("manage_rota")
def team_stats(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """`stats` for every enabled person but admins, by name: `{"name", "role", "shifts_done",
    "missed", "flags_filed", "flags_published"}`. Four queries however big the team (one per
    kind of count, grouped), not one set per person."""
    with ctx.db.read() as session:
        people = session.execute(
            select(User.id, User.name, User.role)
            .where(User.disabled.is_(False), User.role != "admin").order_by(User.name)).all()
        shifts: dict[tuple[int, str], int] = {
            (uid, state): n for uid, state, n in session.execute(
                select(Signup.user_id, Signup.state, func.count())
                .join(Shift, Shift.id == Signup.shift_id)
                .where(Signup.state.in_(("checked_in", "missed")), Shift.cancelled.is_(False))
                .group_by(Signup.user_id, Signup.state))}
        filed = dict(session.execute(select(Flag.by, func.count()).group_by(Flag.by)).all())
        published = dict(session.execute(
            select(Flag.by, func.count(func.distinct(Flag.id)))
            .join(Publication, Publication.clip_id == Flag.clip_id).group_by(Flag.by)).all())
    return [{"name": name, "role": role, "shifts_done": shifts.get((uid, "checked_in"), 0),
             "missed": shifts.get((uid, "missed"), 0), "flags_filed": int(filed.get(name, 0)),
             "flags_published": int(published.get(name, 0))} for uid, name, role in people]


@requires("manage_rota")
def missed_shifts(ctx: Context, actor: Actor, *, days: int = 14, limit: int = 100,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Who missed which shift (signed up, never checked in) among shifts that ended in the last
    `days` days, latest first: `{"user", "channel", "shift_id", "start", "end"}`. Shifts are
    marked missed by the reminders pass `clipper up` runs (or `mark_missed`)."""
    if isinstance(days, bool) or int(days) < 1:
        raise InvalidInput(f"days must be at least 1, not {days!r}.")
    t = _now(now)
    with ctx.db.read() as session:
        rows = session.execute(
            select(User.name, Channel.name, Shift.id, Shift.start, Shift.end)
            .select_from(Signup).join(Shift, Shift.id == Signup.shift_id)
            .join(Channel, Channel.id == Shift.channel_id).join(User, User.id == Signup.user_id)
            .where(Signup.state == "missed", Shift.cancelled.is_(False),
                   Shift.end > t - timedelta(days=int(days)))
            .order_by(Shift.start.desc(), Shift.id.desc(), User.name).limit(int(limit))).all()
    return [{"user": who, "channel": ch, "shift_id": sid, "start": rota.iso(a),
             "end": rota.iso(b)} for who, ch, sid, a, b in rows]


@requires("view_rota")
def ical(ctx: Context, actor: Actor, user: str) -> str:
    """`user`'s shifts as an iCalendar (RFC 5545) text; UID `shift-<id>@clipper` per shift, so
    a calendar that loads it again replaces its events. A cancelled shift they were on comes
    with STATUS:CANCELLED. Only their own calendar unless the actor has manage_rota."""
    from icalendar import Calendar, Event

    with ctx.db.read() as session:
        name = _for_self_or_manager(actor, user, "get the calendar")
        person = _user(session, name)
        rows = session.execute(
            select(Shift.id, Shift.start, Shift.end, Shift.note, Shift.cancelled, Channel.name)
            .join(Channel, Channel.id == Shift.channel_id)
            .join(Signup, Signup.shift_id == Shift.id)
            .where(Signup.user_id == person.id, Signup.state != "cancelled")
            .order_by(Shift.start, Shift.id)).all()
    cal = Calendar()
    cal.add("prodid", "-//Clipper//rota//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"Clipper rota: {name}")
    stamp = datetime.now(UTC).replace(microsecond=0)
    for shift_id, start, end, note, cancelled, channel in rows:
        ev = Event()
        ev.add("uid", f"shift-{shift_id}@clipper")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", start)
        ev.add("dtend", end)
        ev.add("summary", f"Watch {channel}")
        if note:
            ev.add("description", note)
        ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        cal.add_component(ev)
    return cal.to_ical().decode()
