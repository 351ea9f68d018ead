"""Deciding when a new flag is the same moment as an existing clip (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A clip in one of these states can no longer absorb flags: a new flag starts a new clip.
CLOSED_STATES = frozenset({"published", "rejected"})


@dataclass(frozen=True)
class Candidate:
    clip_id: int
    start: float
    end: float
    status: str


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def same_moment(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Overlap of at least half of the shorter interval."""
    shorter = min(a[1] - a[0], b[1] - b[0])
    return shorter > 0 and overlap(a, b) >= 0.5 * shorter


def choose_clip(flag: tuple[float, float], candidates: Iterable[Candidate]) -> Candidate | None:
    """The open clip this flag should join: the one it overlaps most (oldest on ties)."""
    best: Candidate | None = None
    best_overlap = 0.0
    for c in sorted(candidates, key=lambda c: c.clip_id):
        if c.status in CLOSED_STATES or not same_moment(flag, (c.start, c.end)):
            continue
        o = overlap(flag, (c.start, c.end))
        if o > best_overlap:
            best, best_overlap = c, o
    return best


def merged_interval(a: tuple[float, float], b: tuple[float, float], *,
                    max_seconds: float) -> tuple[float, float]:
    """The union of two intervals, capped at `max_seconds` (kept from the earliest start)."""
    start, end = min(a[0], b[0]), max(a[1], b[1])
    return start, min(end, start + max_seconds)
