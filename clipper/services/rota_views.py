"""Read-only views of the rota for the dashboard: a person's time zone, the week grid
(channel x 3-hour slot of local time, coloured covered / short / empty), a person's own shifts,
and the channels nobody is watching now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select

from clipper import rota
from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import Actor, requires
from clipper.services.rota import list_shifts
from clipper.storage.tables import Channel, Shift, Signup, User

#: Grid cell for a channel and slot without any shift planned.
NONE = rota.NONE


@requires("view_rota")
def my_timezone(ctx: Context, actor: Actor) -> str:
    """The actor's own time zone (users.timezone), else CLIPPER_TIMEZONE."""
    with ctx.db.read() as session:
        tz = session.scalar(select(User.timezone).where(User.name == actor.name))
    if tz:
        try:
            rota.zone(tz)
            return tz
        except InvalidInput:  # a bad stored zone must not break the pages; fall back
            pass
    return ctx.settings.timezone


@requires("view_rota")
def week_grid(ctx: Context, actor: Actor, *, start_day: str | date | None = None,
              days: int = 7, tz: str | None = None,
              slot_hours: int = rota.SLOT_HOURS) -> dict[str, Any]:
    """Coverage by channel and time slot: `days` local days from `start_day` (default today) in
    `tz` (default CLIPPER_TIMEZONE), each cut into slots of `slot_hours` hours of wall time
    from midnight (see `clipper.rota`). Returns `{"days": ["YYYY-MM-DD", ...], "times":
    ["00:00", "03:00", ...], "slots": [{"day", "time", "start", "end"}, ...], "rows":
    [{"channel", "cells": [status, ...]}]}`: slot i is day `i // len(times)` at
    `times[i % len(times)]`, `start`/`end` ISO 8601 UTC; a cell is covered, short, empty or
    none (no shift). Every channel has a row, with or without shifts."""
    name = tz or ctx.settings.timezone
    first = (datetime.now(rota.zone(name)).date() if start_day in (None, "")
             else rota.parse_day(start_day, field="from"))
    edges = rota.slot_bounds(first, int(days), name, int(slot_hours))
    # list_shifts counts local days in CLIPPER_TIMEZONE: ask for one more day on each side.
    shifts = list_shifts(ctx, actor, start_day=first - timedelta(days=1), days=int(days) + 2)
    with ctx.db.read() as session:
        channels = list(session.scalars(select(Channel.name).order_by(Channel.name)))
    cells = rota.grid_cells(((s["channel"], rota.parse_time(s["start"], "UTC"),
                              rota.parse_time(s["end"], "UTC"), s["status"]) for s in shifts),
                            edges, channels)
    times = [f"{h:02d}:00" for h in range(0, 24, int(slot_hours))]
    slots = [{"day": (first + timedelta(days=i // len(times))).isoformat(),
              "time": times[i % len(times)], "start": rota.iso(lo), "end": rota.iso(hi)}
             for i, (lo, hi) in enumerate(pairwise(edges))]
    return {"days": [(first + timedelta(days=i)).isoformat() for i in range(int(days))],
            "times": times, "slots": slots,
            "rows": [{"channel": c, "cells": cells[c]} for c in sorted(cells)]}


@requires("signup")
def my_shifts(ctx: Context, actor: Actor, *, days: int = 28) -> list[dict[str, Any]]:
    """The actor's shifts (signed or checked in) not yet ended, from today for `days` days."""
    now = datetime.now(UTC)
    return [s for s in list_shifts(ctx, actor, days=days, user=actor.name)
            if rota.parse_time(s["end"], "UTC") > now]


@requires("view_rota")
def unwatched(ctx: Context, actor: Actor, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """The channels being recorded (not paused) with nobody signed up on a shift running at `at`
    (default now), by name: `{"channel", "next_shift"}`, `next_shift` the ISO UTC start of the
    channel's next shift after `at`, or None. A shift short of people but not empty counts as
    watched."""
    t = (at or datetime.now(UTC)).astimezone(UTC)
    live = (Shift.channel_id == Channel.id, Shift.cancelled.is_(False))
    watched = (select(Signup.id).join(Shift, Shift.id == Signup.shift_id)
               .where(*live, Shift.start <= t, Shift.end > t, Signup.state.in_(rota.ACTIVE))
               .exists())
    following = select(func.min(Shift.start)).where(*live, Shift.start > t).scalar_subquery()
    # One query, however many channels: correlated subqueries rather than a loop.
    with ctx.db.read() as session:
        rows = session.execute(select(Channel.name, following)
                               .where(Channel.paused.is_(False), ~watched)
                               .order_by(Channel.name)).all()
    return [{"channel": name, "next_shift": rota.iso(start) if start else None}
            for name, start in rows]

