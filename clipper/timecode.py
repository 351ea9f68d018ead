"""Timecodes (`75`, `1:15`, `01:01:15.250`) and wall-clock times (`19:42:10`, ISO 8601) parsed."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clipper.errors import InvalidInput

EXAMPLES = "75, 75.5, 1:15 or 01:01:15.250"
_NUMBER = r"\d+(?:\.\d+)?"
_PATTERN = re.compile(rf"^(?:(?:(\d+):)?(\d+):)?({_NUMBER})$")


def parse_timecode(text: str | float | int, *, field: str = "time") -> float:
    """Seconds from a timecode; InvalidInput (with a valid example) for anything else."""
    if isinstance(text, bool):
        raise InvalidInput(f"{field} must be a time like {EXAMPLES}, not {text!r}.")
    if isinstance(text, int | float):
        value = float(text)
        if math.isnan(value) or math.isinf(value) or value < 0:
            raise InvalidInput(f"{field} {text!r} is not a valid time.",
                               f"Use a time like {EXAMPLES}.")
        return value
    raw = str(text).strip()
    match = _PATTERN.match(raw)
    if not match:
        hint = f"Use seconds or h:mm:ss, e.g. {EXAMPLES}."
        if raw.startswith("-"):
            raise InvalidInput(f"{field} {raw!r} is negative; "
                               "times count from the start of the source.", hint)
        raise InvalidInput(f"{field} {raw!r} is not a time Clipper understands.", hint)
    hours, minutes, seconds = match.groups()
    if minutes is not None and float(seconds) >= 60:
        raise InvalidInput(f"{field} {raw!r} has {seconds} in the seconds place "
                           "(must be below 60).",
                           f"Use a time like {EXAMPLES}.")
    if hours is not None and int(minutes) >= 60:
        raise InvalidInput(f"{field} {raw!r} has {minutes} in the minutes place "
                           "(must be below 60).",
                           f"Use a time like {EXAMPLES}.")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def format_timecode(seconds: float) -> str:
    """`3675.25` -> `01:01:15.250`."""
    millis = round(seconds * 1000)
    h, rest = divmod(millis, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def parse_interval(start: str | float, end: str | float, *,
                   max_seconds: float) -> tuple[float, float]:
    """Both ends parsed and checked: end after start, no longer than `max_seconds`."""
    s = parse_timecode(start, field="Start")
    e = parse_timecode(end, field="End")
    check_interval(s, e, max_seconds=max_seconds)
    return s, e


def check_interval(start: float, end: float, *, max_seconds: float) -> None:
    if end <= start:
        raise InvalidInput(
            f"End ({format_timecode(end)}) must be after start ({format_timecode(start)}).",
            "For example --start 1:15 --end 1:45.",
        )
    if end - start > max_seconds:
        raise InvalidInput(
            f"The clip would be {end - start:.1f} s long; "
            f"the longest allowed is {max_seconds:g} s.",
            f"Flag a shorter moment, e.g. --start {format_timecode(start)} --end "
            f"{format_timecode(start + min(60, max_seconds))}.",
        )


# --- wall-clock times (channel flags) --------------------------------------------------------

WALL_EXAMPLES = "19:42:10, 19:42:10.5 or 2026-11-30T19:42:10Z"
#: A bare clock time that would fall further than this in the future means the day before.
FUTURE_SLACK = 12 * 3600.0
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; InvalidInput for an unknown one."""
    try:
        return ZoneInfo((name or "").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Unknown time zone {name!r}.",
                           "Use an IANA name such as Europe/London or UTC.") from None


def parse_date(text: str) -> date:
    """`YYYY-MM-DD` as a date; InvalidInput otherwise."""
    raw = (text or "").strip()
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"Date {text!r} is not a date Clipper understands.",
                           "Write it as YYYY-MM-DD, e.g. --date 2026-11-30.") from None


def _clock(raw: str, field: str) -> time | None:
    """`19:42:10(.5)` as a time of day; None when `raw` is not written that way."""
    match = _CLOCK.match(raw)
    if not match:
        return None
    h, m, s = int(match[1]), int(match[2]), float(match[3])
    if h > 23 or m > 59 or s >= 60:
        raise InvalidInput(f"{field} {raw!r} is not a time of day.",
                           f"Use a time like {WALL_EXAMPLES}.")
    whole, micros = divmod(min(round(s * 1_000_000), 59_999_999), 1_000_000)
    return time(h, m, whole, micros)


def _iso(raw: str, field: str) -> datetime | None:
    """A full ISO 8601 date and time (`T` or a space between them); None when it is not one."""
    if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d", raw):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{field} {raw!r} is not a valid date and time.",
                           f"Use a time like {WALL_EXAMPLES}.") from None


def readings(day: date, clock: time, zone: ZoneInfo) -> list[float]:
    """Pure: the Unix seconds, in order, at which `zone`'s clocks show `clock` on `day`: none
    in an hour skipped when the clocks went forward, two in one repeated when they went back."""
    naive = datetime.combine(day, clock)
    found = sorted({naive.replace(tzinfo=zone, fold=f).timestamp() for f in (0, 1)})
    return [t for t in found if datetime.fromtimestamp(t, zone).replace(tzinfo=None) == naive]


def local_instant(day: date, clock: time, zone: ZoneInfo, *, now: float) -> float:
    """Unix seconds of the local time `clock` on `day` in `zone`, DST-safe.

    A time that never happens (clocks went forward) is refused; one that happens twice (clocks
    went back) is the later of the two that is not in the future, else the earlier.
    """
    real = readings(day, clock, zone)
    if not real:
        naive = datetime.combine(day, clock)
        raise InvalidInput(f"{naive:%Y-%m-%d %H:%M:%S} does not exist in {zone.key}: "
                           "the clocks went forward then.",
                           "Give a time outside the skipped hour, or an ISO time with an offset.")
    past = [t for t in real if t <= now]
    return past[-1] if past else real[0]


def parse_wallclock(text: str | float | int, *, zone: str, now: float, day: date | None = None,
                    field: str = "Time") -> float:
    """Unix seconds from a wall-clock time a person typed.

    `19:42:10` / `19:42:10.5`: that time in `zone` on `day`; without a day, today there — or the
    day before when today's would be more than 12 h in the future. A full ISO 8601 time
    (`2026-11-30T19:42:10Z`, `…10.250+00:00`) is that instant (without an offset: in `zone`);
    it must agree with `day` when both are given. A number is Unix seconds.
    """
    if isinstance(text, bool):
        raise InvalidInput(f"{field} must be a time like {WALL_EXAMPLES}, not {text!r}.")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text <= 0:
            raise InvalidInput(f"{field} {text!r} is not a valid time.")
        return float(text)
    raw = str(text).strip()
    tz = time_zone(zone)
    stamp = _iso(raw, field)
    if stamp is not None:
        if day is not None and stamp.date() != day:
            raise InvalidInput(f"{field} {raw!r} is on {stamp.date()}, but the date given is "
                               f"{day}.", "Leave out --date when the time has its own date.")
        if stamp.tzinfo is None:
            return local_instant(stamp.date(), stamp.time(), tz, now=now)
        return stamp.timestamp()
    clock = _clock(raw, field)
    if clock is None:
        raise InvalidInput(f"{field} {raw!r} is not a wall-clock time Clipper understands.",
                           f"Use a time like {WALL_EXAMPLES}.")
    if day is not None:
        return local_instant(day, clock, tz, now=now)
    today = datetime.fromtimestamp(now, tz).date()
    instant = local_instant(today, clock, tz, now=now)
    if instant - now > FUTURE_SLACK:
        instant = local_instant(today - timedelta(days=1), clock, tz, now=now)
    return instant


def parse_wall_interval(start: str | float, end: str | float, *, zone: str, now: float,
                        day: date | None = None) -> tuple[float, float]:
    """Both ends of a channel flag as Unix seconds.

    The start follows `parse_wallclock`; a bare clock-time end is the first such time after
    the start (so 23:59:50 to 00:00:10 crosses midnight), on the start's local date or the next.
    """
    s = parse_wallclock(start, zone=zone, now=now, day=day, field="Start")
    if isinstance(end, str) and _clock(end.strip(), "End") is not None:
        tz = time_zone(zone)
        clock = _clock(end.strip(), "End")
        assert clock is not None
        first = datetime.fromtimestamp(s, tz).date()
        # The first instant after the start that shows the reading: in the hour the clocks
        # repeat, a start on its second pass ends on the second pass too, however near now.
        after = [t for day in (first, first + timedelta(days=1))
                 for t in readings(day, clock, tz) if t > s]
        return s, (after[0] if after
                   else local_instant(first + timedelta(days=1), clock, tz, now=now))
    return s, parse_wallclock(end, zone=zone, now=now, day=day, field="End")


def format_wallclock(unix: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: `2026-11-30T19:42:10.250Z`."""
    stamp = datetime.fromtimestamp(round(unix, 3), UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_wall_interval(start: float, end: float, *, max_seconds: float) -> None:
    """End after start, no longer than `max_seconds`; messages in wall-clock time (UTC)."""
    if end <= start:
        raise InvalidInput(f"End ({format_wallclock(end)}) must be after start "
                           f"({format_wallclock(start)}).",
                           "For example --start 19:42:10 --end 19:42:40.")
    if end - start > max_seconds:
        raise InvalidInput(f"The clip would be {end - start:.1f} s long; "
                           f"the longest allowed is {max_seconds:g} s.",
                           "Flag a shorter moment.")


def parse_last(seconds: str | float, *, max_seconds: float) -> float:
    """`--last N`: N seconds (timecodes allowed), above 0 and at most `max_seconds`."""
    value = parse_timecode(seconds, field="--last")
    if value <= 0:
        raise InvalidInput("--last must be more than 0 seconds.", "For example --last 30.")
    if value > max_seconds:
        raise InvalidInput(f"--last {value:g} is longer than the longest clip allowed "
                           f"({max_seconds:g} s).", f"For example --last {min(60, max_seconds):g}.")
    return value
