"""The rota's reminder decisions (pure): which reminders and alerts are due at `now`.

- A volunteer gets a reminder 24 h and 1 h before each shift they are on. One whose time passed
  while Clipper was down is still sent when it comes back, as long as the shift has not started;
  once the 1 h reminder is due the 24 h one is superseded (never both at once).
- Coordinators are alerted once when a shift starting in the next 24 h is short of people, and
  once for each late cancellation of a shift that has not ended: each coordinator by email in
  their own zone, the team once by its webhook in CLIPPER_TIMEZONE.
- Every text gives times in the zone of the person it is for (their setting, else
  CLIPPER_TIMEZONE), named, so nobody has to convert from UTC.
- When a coordinator edits or cancels a shift, everyone signed up to it is emailed; when they
  take a person off one, that person is. Once each (per change Event and person), while the
  shift has not ended and the change is less than CHANGE_WINDOW old; times in the person's zone.
Each is sent once per delivery channel; `clipper.pipeline.reminders` stores what was sent.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from clipper import rota
from clipper.errors import InvalidInput

LEADS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)))  # latest first
SHORT_WINDOW = timedelta(hours=24)
CHANNELS = ("email", "webhook")
#: Shift-change Events (their `action`) people are emailed about, and the notice kind of each.
CHANGES = {"rota.edited": "changed", "rota.shift_cancelled": "cancelled",
           "rota.removed": "removed"}
#: A change older than this is not emailed any more (after a long outage it is stale news).
CHANGE_WINDOW = timedelta(days=7)


def volunteer_due(start: datetime, now: datetime) -> str | None:
    """The reminder kind due for a shift starting at `start` (`1h`, `24h` or None)."""
    if now >= start:
        return None
    for kind, lead in LEADS:
        if now >= start - lead:
            return kind
    return None


def short_due(start: datetime, needs: int, people: int, now: datetime) -> bool:
    """Alert coordinators: the shift starts within 24 h and is short of people."""
    return now < start <= now + SHORT_WINDOW and people < needs


def late_cancel_due(end: datetime, now: datetime) -> bool:
    """Alert coordinators about a late cancellation while its shift has not ended."""
    return now < end


def key(shift_id: int, kind: str, *, user_id: int | None = None,
        event_id: int | None = None) -> str:
    """The stored key of a reminder, e.g. `shift-12:user-3:24h` (a channel is appended)."""
    parts = [f"shift-{shift_id}"]
    if user_id is not None:
        parts.append(f"user-{user_id}")
    parts.append(kind)
    if event_id is not None:
        parts.append(f"event-{event_id}")
    return ":".join(parts)


def change_due(event_at: datetime, shift_end: datetime, now: datetime) -> bool:
    """Email people about a shift change made at `event_at`: while the shift has not ended and
    the change is recent."""
    return now < shift_end and now - event_at <= CHANGE_WINDOW


def change_recipients(action: str, details: dict[str, Any], still_on: Collection[str]
                      ) -> list[str]:
    """Who is emailed about a shift-change Event (names): for an edit, those signed up when it
    was made who are still on the shift (one taken off meanwhile hears of that instead); for a
    cancelled shift, those signed up when it was cancelled; for a removal, the person removed."""
    kind = CHANGES.get(action)
    if kind == "removed":
        return [details["user"]] if details.get("user") else []
    people = [str(p) for p in details.get("volunteers") or []]
    if kind == "changed":
        return [p for p in people if p in still_on]
    return people if kind == "cancelled" else []


def person_zone(tz: str | None, default: str) -> str:
    """The zone a person reads times in: theirs when it is a real one, else `default`."""
    if tz:
        try:
            rota.zone(tz)
            return tz
        except InvalidInput:  # a bad stored zone must not stop the notice
            pass
    return default


def span(start: datetime, end: datetime, tz: str) -> str:
    """`Tue 01 Dec 19:00–21:00 (Europe/London)`; the end's day too when it is another day."""
    z = rota.zone(tz)
    a, b = start.astimezone(z), end.astimezone(z)
    until = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%a %d %b %H:%M}"
    return f"{a:%a %d %b %H:%M}–{until} ({tz})"


def reminder_message(kind: str, *, name: str, channel: str, tz: str, start: datetime,
                     end: datetime, note: str = "") -> tuple[str, str]:
    """Subject and text of the `kind` (`24h` or `1h`) reminder to `name`, times in `tz`."""
    return (f"Clipper: your shift on {channel}",
            f"Reminder: {name}, your shift watching {channel} is {span(start, end, tz)}, "
            f"starting in about {kind}." + (f" Note: {note}" if note else ""))


def short_message(*, shift_id: int, channel: str, tz: str, start: datetime, end: datetime,
                  needs: int, people: int) -> tuple[str, str]:
    """Subject and text of the alert that a shift is short of people, times in `tz`."""
    return (f"Clipper: shift on {channel} is short",
            f"Shift {shift_id} on {channel}, {span(start, end, tz)}, is short: {people} of "
            f"{needs} people.")


def late_cancel_message(*, shift_id: int, channel: str, tz: str, start: datetime,
                        end: datetime, user: str) -> tuple[str, str]:
    """Subject and text of the alert that `user` left a shift late, times in `tz`."""
    return (f"Clipper: late cancellation on {channel}",
            f"Late cancellation: {user} is off shift {shift_id} on {channel}, "
            f"{span(start, end, tz)}.")


def change_message(kind: str, *, name: str, channel: str, tz: str, start: datetime,
                   end: datetime, by: str, before: dict[str, Any] | None = None,
                   changed: dict[str, Any] | None = None) -> tuple[str, str]:
    """Subject and text of a shift-change email to `name`, times in `tz`. For `changed`,
    `start`/`end` are the new times, `before` the shift as it was and `changed` what changed."""
    when = span(start, end, tz)
    if kind == "cancelled":
        return (f"Clipper: your shift on {channel} is cancelled",
                f"Hello {name},\n\nyour shift watching {channel} on {when} was cancelled by "
                f"{by}. You need not watch it.\n")
    if kind == "removed":
        return (f"Clipper: you are off the shift on {channel}",
                f"Hello {name},\n\n{by} took you off the shift watching {channel} on {when}. "
                "You need not watch it.\n")
    before, changed = before or {}, changed or {}
    lines = [f"Hello {name},", "", f"{by} changed your shift watching {channel}.", "",
             f"Now: {when}"]
    if {"start", "end"} & set(changed) and before.get("start") and before.get("end"):
        was = span(rota.parse_time(before["start"], "UTC"),
                   rota.parse_time(before["end"], "UTC"), tz)
        lines.append(f"Was: {was}")
    if "needs" in changed:
        lines.append(f"People needed: {changed['needs']} (was {before.get('needs', '?')})")
    if "note" in changed:
        lines.append(f"Note: {changed['note']}" if changed["note"] else "The note was removed.")
    return f"Clipper: your shift on {channel} was changed", "\n".join(lines) + "\n"
