"""Pure planning of overlapping live-transcription windows and the "sure words" rule."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

#: Seconds of audio Whisper hears per window, and how far consecutive windows move on. Measured
#: here (tiny.en int8, one thread; the table is in `clipper/pipeline/live_asr.py`): the CPU cost
#: per audio second hardly depends on them, but windows of 10-20 s roughly double the word
#: errors of 30 s ones, for words that wait 5-11 s instead of ~17 s on average.
DEFAULT_WINDOW = 30.0
DEFAULT_HOP = 25.0
#: Missing coverage shorter than this between two segments is timing jitter, not a gap (as
#: `clipper.pipeline.channel_media.GAP_TOLERANCE`).
GAP_TOLERANCE = 0.5

#: Whisper times a word differently in two windows (by up to a few hundred ms), so a word near a
#: seam could be kept by both windows or by neither. Each window therefore also looks this far
#: before its seam, and leaves out a word there or after it that repeats one already stored.
SEAM_SLACK = 0.5

Interval = tuple[float, float]
#: A word on the wall clock: (start, end, text).
Said = tuple[float, float, str]
_EPSILON = 1e-6  # float error in sums of hops: less than this left of a span is none left


@dataclass(frozen=True)
class Window:
    """Audio [start, end] (wall clock) to transcribe; of its words keep those whose midpoint
    lies in [keep_from, keep_to). `keep_to` is where the transcript is done after it."""

    start: float
    end: float
    keep_from: float
    keep_to: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Skip:
    """Nothing to transcribe before `to` (a gap in the recording, or before it began): the
    transcript is done up to there without a window."""

    to: float


class Timed(Protocol):
    start: float
    end: float


T = TypeVar("T", bound=Timed)
#: A word on the wall clock, (start, end, text, ...): more items may follow (they are kept).
S = TypeVar("S", bound=tuple)


def check_geometry(window: float, hop: float) -> None:
    """ValueError unless 0 < hop <= window (an overlap of 0 is allowed: plain chunks)."""
    if not (0 < hop <= window):
        raise ValueError(f"hop {hop!r} must be above 0 and at most the window {window!r}")


def merge_spans(pieces: Iterable[Interval], *, tolerance: float = GAP_TOLERANCE) -> list[Interval]:
    """Segments (start, end) merged into the contiguous recorded spans, in order; pieces closer
    than `tolerance` count as touching."""
    spans: list[list[float]] = []
    for a, b in sorted(pieces):
        if b <= a:
            continue
        if spans and a - spans[-1][1] <= tolerance:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b) for a, b in spans]


def next_window(spans: Sequence[Interval], done_until: float | None, *,
                window: float = DEFAULT_WINDOW, hop: float = DEFAULT_HOP,
                final: bool = False) -> Window | Skip | None:
    """The next step of a channel's transcript, done up to `done_until` (None: nothing yet,
    start where the recording starts), given its recorded `spans` (merged, in order).

    A window reaches back half the overlap before `done_until` (never before its span starts)
    and is `window` long; it keeps words up to half the overlap before its end, which the next
    window hears from well inside. Windows never cross a gap: the last one of a span stops at
    the span's end and keeps everything up to it, and the transcript then skips to the next
    span. The newest span is still growing, so its tail waits for more audio unless `final`
    (the recording has stopped: transcribe what there is). None: wait for more recording.
    """
    check_geometry(window, hop)
    if not spans:
        return None
    half = (window - hop) / 2
    done = spans[0][0] if done_until is None else done_until
    for i, (a, b) in enumerate(spans):
        if done >= b - _EPSILON:
            continue
        if done < a:  # before the recording began, or in a gap
            return Skip(a)
        start = max(a, done - half)
        end = start + window
        if end <= b:
            return Window(start, end, done, end - half)  # end - half > done: hop > 0
        if final or i < len(spans) - 1:  # the span is complete: its tail, up to its end
            return Window(start, b, done, b)
        return None
    return None


def plan(spans: Sequence[Interval], done_until: float | None, *, window: float = DEFAULT_WINDOW,
         hop: float = DEFAULT_HOP, final: bool = False,
         limit: int = 10_000) -> Iterator[Window | Skip]:
    """Every step `next_window` gives from `done_until` on, in order (at most `limit`)."""
    for _ in range(limit):
        step = next_window(spans, done_until, window=window, hop=hop, final=final)
        if step is None:
            return
        yield step
        done_until = step.keep_to if isinstance(step, Window) else step.to


def midpoint(item: Timed) -> float:
    return (item.start + item.end) / 2


def sure_words(words: Iterable[T], win: Window, *, offset: float = 0.0) -> list[T]:
    """The words of one window the transcript keeps: those whose midpoint (`offset` + its times:
    the wall-clock time of the window's audio at 0) lies in [keep_from, keep_to). A word cut by
    an edge another window covers has its midpoint within half the overlap of that edge, so it
    is left to the window that hears it whole; consecutive windows neither repeat nor drop a
    word no longer than the overlap."""
    return [w for w in words if win.keep_from <= offset + midpoint(w) < win.keep_to]


def seam_slack(window: float, hop: float) -> float:
    """How far before its seam a window looks for words the previous one missed: SEAM_SLACK,
    or less when the overlap is short (a word is only looked for where the window heard it
    whole)."""
    return min(SEAM_SLACK, (window - hop) / 4)


def _plain(text: str) -> str:
    return re.sub(r"[^\w']+", "", text.lower())


def repeats(word: tuple, stored: Iterable[Said], slack: float) -> bool:
    """Whether `word` is one of `stored` heard again: the same word (case and punctuation
    aside), overlapping it in time or starting within `slack` of it."""
    text = _plain(word[2])
    return any(_plain(s[2]) == text and (min(word[1], s[1]) > max(word[0], s[0])
                                         or abs(word[0] - s[0]) <= slack) for s in stored)


def stitch(words: Iterable[S], win: Window, stored: Sequence[Said], *,
           slack: float = SEAM_SLACK) -> list[S]:
    """The words of one window (wall clock) the transcript keeps, given the words `stored`
    before its seam by earlier windows: the sure words (midpoint in [keep_from, keep_to)), plus
    those up to `slack` before the seam, less any that repeat a stored word. With word times
    that differ between windows by up to slack/2, every word is kept exactly once."""
    # A window's edge with no window beyond it (a span's start or end) bounds nothing: a word
    # timed a little past it is still this window's.
    opens, closes = win.keep_from <= win.start, win.keep_to >= win.end
    slack = 0.0 if opens else max(0.0, min(slack, (win.keep_from - win.start) / 2))
    lo = -math.inf if opens else win.keep_from - slack
    hi = math.inf if closes else win.keep_to
    near = [s for s in stored if s[1] >= win.keep_from - 3 * slack]
    out = []
    for w in words:
        mid = (w[0] + w[1]) / 2
        if lo <= mid < hi and not (mid < win.keep_from + 2 * slack and repeats(w, near, slack)):
            out.append(w)
    return out


def lag(recorded_to: float | None, done_until: float | None) -> float | None:
    """Seconds of recording not transcribed yet (None when nothing is recorded or started)."""
    if recorded_to is None or done_until is None:
        return None
    return max(0.0, recorded_to - done_until)
