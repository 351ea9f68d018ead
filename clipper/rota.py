"""The rota's pure decisions: times, weekly repeats across daylight saving, coverage, overlap,
gaps and the coverage grid. No database: the services in `clipper.services.rota` store and
load, this decides.

Gaps, as decided here: a gap is a stretch of time in which a channel's shifts are short of
people. Only shifts count (a period with no shift at all is not a gap: nobody planned to watch
it). Short or empty shifts of one channel that touch or overlap are merged into one maximal
interval, and its `missing` is the most people missing at any one of the merged shifts.

The coverage grid, as decided here: each channel's time is cut into slots of SLOT_HOURS hours
of local wall time from midnight in the viewer's zone (00:00-03:00, 03:00-06:00, ... : eight a
day, so a day always has the same columns; on a daylight-saving day one slot lasts 2 or 4 real
hours). A slot is covered when every shift overlapping it has its people, empty when nobody is
on any of them, short in between (the shift statuses of `status`), and `NONE` when no shift
overlaps it at all: like gaps, time nobody planned to watch is not coloured as missing people.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clipper.errors import Conflict, InvalidInput

#: A weekly repeat makes at most this many shifts.
MAX_REPEATS = 60

ACTIVE = ("signed", "checked_in")  # signup states that fill a place on a shift
STATES = ("signed", "cancelled", "checked_in", "missed")
#: Length of a coverage-grid slot, in hours of local wall time; divides 24.
SLOT_HOURS = 3
#: Grid cell for a slot without any shift planned.
NONE = "none"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"Unknown time zone {name!r}.",
                           "Use an IANA name such as Europe/London.") from exc


def parse_time(text: str | datetime, tz: str, *, field: str = "time") -> datetime:
    """An ISO 8601 time as aware UTC; without an offset it is a wall time in zone `tz`."""
    if isinstance(text, datetime):
        value = text
    else:
        raw = str(text or "").strip()
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{field} {raw!r} is not an ISO 8601 time.",
                               "For example 2027-03-21T19:00 or 2027-03-21T19:00:00+00:00.") \
                from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return value.astimezone(UTC)


def parse_day(text: str | date, *, field: str = "day") -> date:
    """A calendar day, YYYY-MM-DD."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text or "").strip())
    except ValueError:
        raise InvalidInput(f"{field} {text!r} is not a day like 2027-03-21.") from None


def weekly(start: datetime, end: datetime, tz: str,
           until: date | None) -> list[tuple[datetime, datetime]]:
    """The shift `[start, end)` (aware), then the same local wall time every 7 days while the
    local day is on or before `until`: a 19:00 London shift stays 19:00 in London across the
    clock change, so its UTC time moves. Returns UTC pairs; InvalidInput for a bad repeat."""
    if end <= start:
        raise InvalidInput("A shift must end after it starts.")
    if until is None:
        return [(start.astimezone(UTC), end.astimezone(UTC))]
    z = zone(tz)
    local_start = start.astimezone(z).replace(tzinfo=None)
    local_end = end.astimezone(z).replace(tzinfo=None)
    if until < local_start.date():
        raise InvalidInput(f"The repeat ends ({until}) before the first shift "
                           f"({local_start.date()}).")
    weeks = (until - local_start.date()).days // 7 + 1
    if weeks > MAX_REPEATS:
        raise InvalidInput(f"A weekly repeat makes at most {MAX_REPEATS} shifts, not {weeks}.",
                           "Pick an earlier --weekly-until.")
    out = []
    for k in range(weeks):
        step = timedelta(days=7 * k)
        s = (local_start + step).replace(tzinfo=z).astimezone(UTC)
        e = (local_end + step).replace(tzinfo=z).astimezone(UTC)
        out.append((s, e))
    return out


def check_shift(start: datetime, end: datetime, needs: int) -> None:
    if end <= start:
        raise InvalidInput("A shift must end after it starts.",
                           f"Got {iso(start)} .. {iso(end)}.")
    if isinstance(needs, bool) or not isinstance(needs, int) or needs < 1:
        raise InvalidInput(f"A shift needs at least 1 person, not {needs!r}.")


def check_needs(shift_id: int, needs: int, people: list[str]) -> None:
    """A shift may not need fewer people than are already on it (Conflict): the coordinator
    takes someone off first, so nobody is dropped without being told."""
    if needs < len(people):
        raise Conflict(f"Shift {shift_id} already has {len(people)} people "
                       f"({', '.join(people)}): it cannot need only {needs}.",
                       f"Take someone off it first, or ask for at least {len(people)}.")


def status(needs: int, people: int) -> str:
    """covered (enough people), short (some), or empty (nobody)."""
    if people <= 0:
        return "empty"
    return "covered" if people >= needs else "short"


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: back-to-back shifts do not overlap."""
    return a_start < b_end and b_start < a_end


@dataclass(frozen=True)
class Gap:
    channel: str
    start: datetime
    end: datetime
    missing: int


def merge_gaps(shifts: Iterable[tuple[str, datetime, datetime, int, int]]) -> list[Gap]:
    """Gaps from `(channel, start, end, needs, people)` shifts: those short of people, merged
    per channel into maximal intervals where they touch or overlap; sorted by channel, start."""
    short = sorted((ch, s, e, needs - people) for ch, s, e, needs, people in shifts
                   if people < needs)
    out: list[Gap] = []
    for ch, s, e, missing in short:
        last = out[-1] if out else None
        if last is not None and last.channel == ch and s <= last.end:
            out[-1] = Gap(ch, last.start, max(last.end, e), max(last.missing, missing))
        else:
            out.append(Gap(ch, s, e, missing))
    return out


def slot_bounds(first: date, days: int, tz: str, hours: int = SLOT_HOURS) -> list[datetime]:
    """The grid's slot edges as aware UTC times: local wall times 00:00, 03:00, ... of each day
    from `first` for `days` days, then midnight after the last day (`days * 24 / hours + 1`
    edges; slot i is `[edges[i], edges[i + 1])`)."""
    if hours < 1 or 24 % hours:
        raise InvalidInput(f"A grid slot must divide the day into whole hours, not {hours!r}.")
    z = zone(tz)
    edges = [datetime.combine(first + timedelta(days=d), time(h), z).astimezone(UTC)
             for d in range(int(days)) for h in range(0, 24, hours)]
    return edges + [datetime.combine(first + timedelta(days=int(days)), time(), z)
                    .astimezone(UTC)]


def coverage(statuses: Iterable[str]) -> str:
    """A grid cell from the statuses of the shifts overlapping it: NONE without any, covered
    when every one is covered, empty when every one is empty, short otherwise."""
    seen = set(statuses)
    if not seen:
        return NONE
    if seen == {"covered"}:
        return "covered"
    return "empty" if seen == {"empty"} else "short"


def grid_cells(shifts: Iterable[tuple[str, datetime, datetime, str]], edges: list[datetime],
               channels: Iterable[str] = ()) -> dict[str, list[str]]:
    """Coverage of each channel per slot (see the module's docstring) from `(channel, start,
    end, status)` shifts and the `slot_bounds` edges: channel -> one cell per slot. Every name
    in `channels` gets a row, with or without shifts."""
    n = len(edges) - 1
    found: dict[str, list[list[str]]] = {c: [[] for _ in range(n)] for c in channels}
    for channel, start, end, state in shifts:
        row = found.setdefault(channel, [[] for _ in range(n)])
        # The first slot that can hold the start, then on while slots begin before the end:
        # a few slots per shift rather than every slot of the week.
        i = max(bisect_right(edges, start) - 1, 0)
        while i < n and edges[i] < end:
            if start < edges[i + 1]:
                row[i].append(state)
            i += 1
    return {c: [coverage(cell) for cell in row] for c, row in found.items()}


def iso(t: datetime) -> str:
    """Aware time as ISO 8601 UTC, `2027-03-21T19:00:00Z`."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
