"""The rota's reminder decisions (pure): which reminders and alerts are due at `now`.

- A volunteer gets a reminder 24 h and 1 h before each shift they are on. One whose time passed
  while Clipper was down is still sent when it comes back, as long as the shift has not started;
  once the 1 h reminder is due the 24 h one is superseded (never both at once).
- Coordinators are alerted once when a shift starting in the next 24 h is short of people, and
  once for each late cancellation of a shift that has not ended.
Each is sent once per delivery channel; `clipper.pipeline.reminders` stores what was sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

LEADS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)))  # latest first
SHORT_WINDOW = timedelta(hours=24)
CHANNELS = ("email", "webhook")


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
