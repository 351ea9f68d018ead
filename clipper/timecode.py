"""Timecodes: parse `75`, `75.5`, `1:15`, `01:01:15.250` into seconds, and validate intervals."""

from __future__ import annotations

import math
import re

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
