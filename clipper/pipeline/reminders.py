"""Rota reminders and alerts, sent once each, and missed shifts; run by `clipper up`.

`run_reminders(ctx, now)` marks missed shifts, then sends what `clipper.reminders` says is due
by email (CLIPPER_SMTP_URL, to users with an email address) and by the team's webhook
(CLIPPER_WEBHOOK_URL); shift changes (edited, cancelled, a person taken off), which the services
already posted to the webhook, by email only. Times in each text are in its reader's zone (see
`clipper.reminders`), so a coordinators' alert is one email per coordinator and one webhook post
in CLIPPER_TIMEZONE. Each is stored per channel in `sent_reminders`
once delivered, so a restart never sends it again; one that failed (mail server down) is tried
on the next run.
A crash between delivering and storing may repeat that one message: at least once, not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clipper import reminders, rota
from clipper.context import Context
from clipper.pipeline.lifecycle import log_event
from clipper.storage.tables import Channel, Event, SentReminder, Shift, Signup, User

log = logging.getLogger(__name__)


@dataclass
class Notice:
    key: str
    kind: str
    emails: list[str]
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = reminders.CHANNELS


def mark_missed(ctx: Context, now: datetime, *, by: str = "clipper") -> int:
    """Every signed-up person who never checked in to a shift that ended by `now` is marked
    missed; returns how many. Repeating it is harmless."""
    t = now.astimezone(UTC)
    with ctx.db.session() as session:
        rows = session.scalars(
            select(Signup).join(Shift, Shift.id == Signup.shift_id)
            .where(Signup.state == "signed", Shift.cancelled.is_(False), Shift.end <= t)).all()
        for row in rows:
            row.state = "missed"
        if rows:
            log_event(session, by, "rota.missed", None, {"signups": [r.id for r in rows]})
        return len(rows)


def due_notices(ctx: Context, now: datetime) -> list[Notice]:
    """Everything due at `now`, sent or not (the caller skips what was sent). Times in each
    text are in the zone of the person it is for; the team's webhook reads CLIPPER_TIMEZONE."""
    t = now.astimezone(UTC)
    team_tz = ctx.settings.timezone
    out: list[Notice] = []
    with ctx.db.session() as session:
        coordinators = [(uid, email, reminders.person_zone(tz, team_tz))
                        for uid, email, tz in session.execute(
                            select(User.id, User.email, User.timezone)
                            .where(User.role == "coordinator", User.disabled.is_(False),
                                   User.email.is_not(None)).order_by(User.id)) if email]
        upcoming = session.execute(
            select(Shift, Channel.name).join(Channel, Channel.id == Shift.channel_id)
            .where(Shift.cancelled.is_(False), Shift.start > t,
                   Shift.start <= t + reminders.SHORT_WINDOW)).all()
        ids = [s.id for s, _ in upcoming]
        people: dict[int, int] = dict(session.execute(
            select(Signup.shift_id, func.count()).where(Signup.shift_id.in_(ids),
                                                        Signup.state.in_(rota.ACTIVE))
            .group_by(Signup.shift_id)).all()) if ids else {}
        signed = session.execute(
            select(Signup.shift_id, User.id, User.name, User.email, User.timezone)
            .join(User, User.id == Signup.user_id)
            .where(Signup.shift_id.in_(ids), Signup.state.in_(rota.ACTIVE))).all() if ids else []
        by_id = {s.id: (s, n) for s, n in upcoming}
        for shift_id, user_id, name, email, tz in signed:
            shift, channel = by_id[shift_id]
            kind = reminders.volunteer_due(shift.start, t)
            if kind is None:
                continue
            # Their reminder, in their zone, on both channels: the webhook post is theirs too.
            subject, text = reminders.reminder_message(
                kind, name=name, channel=channel, tz=reminders.person_zone(tz, team_tz),
                start=shift.start, end=shift.end, note=shift.note or "")
            out.append(Notice(reminders.key(shift_id, kind, user_id=user_id), kind,
                              [email] if email else [], subject, text,
                              {"event": "rota.reminder", "kind": kind, "user": name,
                               "shift_id": shift_id, "channel": channel,
                               "start": rota.iso(shift.start)}))
        for shift, channel in upcoming:
            n = people.get(shift.id, 0)
            if reminders.short_due(shift.start, shift.needs, n, t):
                out.extend(_for_coordinators(
                    coordinators, team_tz, shift.id, "short", None,
                    partial(reminders.short_message, shift_id=shift.id, channel=channel,
                            start=shift.start, end=shift.end, needs=shift.needs, people=n),
                    {"event": "rota.short", "shift_id": shift.id, "channel": channel,
                     "start": rota.iso(shift.start), "missing": shift.needs - n}))
        cancels = session.execute(select(Event.id, Event.details)
                                  .where(Event.action == "rota.cancelled")).all()
        late = [(eid, d) for eid, d in cancels if isinstance(d, dict) and d.get("late")]
        shifts = {s.id: (s, n) for s, n in session.execute(
            select(Shift, Channel.name).join(Channel, Channel.id == Shift.channel_id)
            .where(Shift.id.in_(sorted({int(d["shift_id"]) for _, d in late})),
                   Shift.end > t))} if late else {}
        for eid, d in late:
            found = shifts.get(int(d["shift_id"]))
            if found is None or not reminders.late_cancel_due(found[0].end, t):
                continue
            shift, channel = found
            out.extend(_for_coordinators(
                coordinators, team_tz, shift.id, "late-cancel", eid,
                partial(reminders.late_cancel_message, shift_id=shift.id, channel=channel,
                        start=shift.start, end=shift.end, user=str(d.get("user"))),
                {"event": "rota.late_cancel", "shift_id": shift.id, "channel": channel,
                 "user": d.get("user"), "start": rota.iso(shift.start)}))
        out.extend(_change_notices(session, t, team_tz))
    return out


def _for_coordinators(coordinators: list[tuple[int, str, str]], team_tz: str, shift_id: int,
                      kind: str, event_id: int | None,
                      message: Callable[..., tuple[str, str]],
                      payload: dict[str, Any]) -> list[Notice]:
    """A coordinators' alert: one email to each (`(user id, email, zone)`), in their own zone
    and so keyed per person, and one post to the team's webhook in `team_tz`. `message(tz=...)`
    gives the subject and text in a zone."""
    subject, text = message(tz=team_tz)
    out = [Notice(reminders.key(shift_id, kind, event_id=event_id), kind, [], subject, text,
                  payload, channels=("webhook",))]
    for uid, email, tz in coordinators:
        subject, text = message(tz=tz)
        out.append(Notice(reminders.key(shift_id, kind, user_id=uid, event_id=event_id), kind,
                          [email], subject, text, channels=("email",)))
    return out


def _change_notices(session: Session, t: datetime, default_tz: str) -> list[Notice]:
    """One email notice per recent shift-change Event and person it concerns (with an email
    address), keyed by the Event and the person so each goes once."""
    events = session.execute(
        select(Event.id, Event.at, Event.actor, Event.action, Event.details)
        .where(Event.action.in_(list(reminders.CHANGES)),
               Event.at >= t - reminders.CHANGE_WINDOW).order_by(Event.id)).all()
    events = [e for e in events if isinstance(e.details, dict) and "shift_id" in e.details]
    if not events:
        return []
    ids = sorted({int(e.details["shift_id"]) for e in events})
    shifts = {s.id: (s, n) for s, n in session.execute(
        select(Shift, Channel.name).join(Channel, Channel.id == Shift.channel_id)
        .where(Shift.id.in_(ids)))}
    on: dict[int, set[str]] = {}
    for sid, name in session.execute(
            select(Signup.shift_id, User.name).join(User, User.id == Signup.user_id)
            .where(Signup.shift_id.in_(ids), Signup.state.in_(rota.ACTIVE))):
        on.setdefault(sid, set()).add(name)
    wanted = {e.id: reminders.change_recipients(
        e.action, e.details, on.get(int(e.details["shift_id"]), set())) for e in events}
    names = sorted({n for people in wanted.values() for n in people})
    users = {u.name: u for u in session.scalars(
        select(User).where(User.name.in_(names), User.disabled.is_(False),
                           User.email.is_not(None)))} if names else {}
    out: list[Notice] = []
    for e in events:
        found = shifts.get(int(e.details["shift_id"]))
        kind = reminders.CHANGES[e.action]
        if found is None or not reminders.change_due(e.at, found[0].end, t):
            continue
        shift, channel = found
        if kind == "changed" and shift.cancelled:  # the cancellation notice says it all
            continue
        start, end = shift.start, shift.end
        changed = e.details.get("changed") or {}
        before = e.details.get("before") or {}
        if kind == "changed":  # the times this change set, not later ones (each has its own)
            start = rota.parse_time(changed.get("start") or before.get("start") or start, "UTC")
            end = rota.parse_time(changed.get("end") or before.get("end") or end, "UTC")
        for name in wanted[e.id]:
            user = users.get(name)
            if user is None or not user.email:
                continue
            tz = reminders.person_zone(user.timezone, default_tz)
            subject, text = reminders.change_message(
                kind, name=name, channel=channel, tz=tz, start=start, end=end, by=e.actor,
                before=before, changed=changed)
            out.append(Notice(reminders.key(shift.id, kind, user_id=user.id, event_id=e.id),
                              kind, [user.email], subject, text, channels=("email",)))
    return out


def _store(ctx: Context, key: str, kind: str, now: datetime) -> None:
    try:
        with ctx.db.session() as session:
            session.add(SentReminder(key=key, kind=kind, sent_at=now))
    except IntegrityError:  # stored by someone else meanwhile
        pass


def _deliver(ctx: Context, notice: Notice, channel: str) -> bool:
    from clipper.net.mail import MailError, send_mail
    from clipper.net.webhook import post_webhook

    s = ctx.settings
    if channel == "email":
        if not s.smtp_url or not notice.emails:
            return False
        try:
            send_mail(s.smtp_url, s.smtp_from, notice.emails, notice.subject, notice.text)
        except MailError as exc:
            log.warning("reminder %s not emailed (retried next run): %s", notice.key, exc)
            return False
        return True
    if not s.webhook_url:
        return False
    ok = post_webhook(s.webhook_url, {"text": notice.text, **notice.payload},
                      tries=2, timeout=5.0)
    if not ok:
        log.warning("reminder %s not posted to the webhook (retried next run)", notice.key)
    return ok


def run_reminders(ctx: Context, now: datetime | None = None) -> dict[str, int]:
    """Mark missed shifts, then send every due reminder not sent yet; returns the counts."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    missed = mark_missed(ctx, t)
    notices = due_notices(ctx, t)
    keys = [f"{n.key}/{c}" for n in notices for c in n.channels]
    with ctx.db.session() as session:
        done = set(session.scalars(select(SentReminder.key)
                                   .where(SentReminder.key.in_(keys)))) if keys else set()
    sent = 0
    for notice in notices:
        for channel in notice.channels:
            k = f"{notice.key}/{channel}"
            if k in done or not _deliver(ctx, notice, channel):
                continue
            _store(ctx, k, notice.kind, t)
            sent += 1
    return {"missed": missed, "sent": sent}


