"""Live transcription windows (pure): planning over recorded spans and the sure-words rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clipper.transcribe.windows import (
    Skip,
    Window,
    check_geometry,
    lag,
    merge_spans,
    next_window,
    plan,
    repeats,
    seam_slack,
    stitch,
    sure_words,
)


@dataclass(frozen=True)
class W:
    start: float
    end: float
    text: str = ""


def test_windows_overlap_and_their_keep_regions_tile_the_recording():
    steps = list(plan([(100.0, 200.0)], None, window=30, hop=25))
    assert steps[0] == Window(100, 130, 100, 127.5)  # nothing before: keeps from its start
    assert steps[1] == Window(125, 155, 127.5, 152.5)
    assert steps[2] == Window(150, 180, 152.5, 177.5)
    # The newest span is still being recorded: its tail waits for a whole window.
    assert len(steps) == 3
    final = list(plan([(100.0, 200.0)], steps[-1].keep_to, window=30, hop=25, final=True))
    assert final == [Window(175, 200, 177.5, 200)]


def test_nothing_to_do_without_a_whole_window():
    assert next_window([], None) is None
    assert next_window([(0.0, 29.0)], None, window=30, hop=25) is None
    assert next_window([(0.0, 30.0)], None, window=30, hop=25) == Window(0, 30, 0, 27.5)
    assert next_window([(0.0, 30.0)], 27.5, window=30, hop=25) is None
    assert next_window([(0.0, 30.0)], 30.0, window=30, hop=25, final=True) is None


def test_gaps_are_skipped_and_windows_never_cross_one():
    spans = [(0.0, 40.0), (55.0, 120.0)]
    steps = list(plan(spans, None, window=30, hop=25))
    assert steps == [Window(0, 30, 0, 27.5),
                     Window(25, 40, 27.5, 40),  # the last of its span keeps up to the gap
                     Skip(55.0),
                     Window(55, 85, 55, 82.5),
                     Window(80, 110, 82.5, 107.5)]
    # Progress in a gap, or before the recording began (retention removed it): skip.
    assert next_window(spans, 45.0) == Skip(55.0)
    assert next_window(spans, -100.0) == Skip(0.0)


def test_a_window_starting_near_a_span_start_reaches_back_no_further_than_it():
    assert next_window([(10.0, 100.0)], 11.0, window=30, hop=25) == Window(10, 40, 11, 37.5)


def test_merge_spans_joins_touching_segments_and_keeps_gaps():
    pieces = [(4.0, 6.0), (0.0, 2.0), (2.3, 4.0), (8.0, 10.0), (9.0, 9.5), (12.0, 12.0)]
    assert merge_spans(pieces, tolerance=0.5) == [(0.0, 6.0), (8.0, 10.0)]


def test_geometry_checked():
    check_geometry(30, 30)
    for window, hop in ((30, 0), (30, 31), (10, -1)):
        with pytest.raises(ValueError):
            check_geometry(window, hop)
        with pytest.raises(ValueError):
            next_window([(0.0, 100.0)], None, window=window, hop=hop)


def test_sure_words_are_those_whose_midpoint_is_in_the_keep_region():
    win = Window(100, 130, 102.5, 127.5)
    words = [W(0.0, 1.0), W(1.5, 3.6), W(3.0, 3.9), W(27.0, 27.9), W(27.4, 27.7), W(29.5, 30.5)]
    kept = sure_words(words, win, offset=100)
    assert kept == [W(1.5, 3.6), W(3.0, 3.9), W(27.0, 27.9)]
    # A midpoint exactly on the seam belongs to the later window only.
    seam = W(127.0, 128.0)
    assert sure_words([seam], win) == []
    assert sure_words([seam], Window(125, 155, 127.5, 152.5)) == [seam]


def test_stitch_keeps_a_word_timed_across_the_seam_once():
    win = Window(90.0, 100.0, 91.0, 99.0)
    stored = [(90.2, 90.5, "said"), (90.759, 91.019, "in")]  # the previous window's last words
    # Heard again later ("in", "In."), and one the previous window timed past its seam.
    words = [(90.2, 90.5, "said"), (90.759, 91.449, "In."), (90.5, 90.7, "forty"),
             (91.5, 91.8, "London")]
    assert stitch(words, win, stored) == [(90.5, 90.7, "forty"), (91.5, 91.8, "London")]
    # A span's first window looks back at nothing; the same word said again later is kept.
    first = Window(91.0, 101.0, 91.0, 99.0)
    assert stitch([(91.2, 91.4, "in"), (93.0, 93.2, "in")], first, [(90.9, 91.1, "in")]) == \
        [(91.2, 91.4, "in"), (93.0, 93.2, "in")]
    assert repeats((1.0, 1.2, "Mayor,"), [(1.4, 1.6, "mayor")], 0.5)
    assert not repeats((1.0, 1.2, "mayor"), [(1.6, 1.8, "mayor")], 0.5)
    assert seam_slack(10, 8) == 0.5 and seam_slack(30, 25) == 0.5 and seam_slack(10, 10) == 0


def test_lag():
    assert lag(None, 5.0) is None and lag(10.0, None) is None
    assert lag(100.0, 90.0) == 10.0 and lag(100.0, 101.0) == 0.0


# ---------------------------------------------------------------- properties

@st.composite
def recordings(draw: st.DrawFn) -> tuple[list[tuple[float, float]], float, float]:
    """Spans with gaps between them, and a window geometry."""
    window = draw(st.sampled_from([10.0, 15.0, 20.0, 30.0]))
    hop = draw(st.floats(min_value=window / 2, max_value=window))
    spans, t = [], draw(st.floats(min_value=0, max_value=1e6))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        length = draw(st.floats(min_value=0.5, max_value=90))
        spans.append((t, t + length))
        t += length + draw(st.floats(min_value=1.0, max_value=100))
    return spans, window, hop


@st.composite
def spoken(draw: st.DrawFn) -> tuple[list[tuple[float, float]], float, float, list[W], float]:
    """A recording, the words spoken in it, and how much a recogniser's word times may differ
    between windows. No word crosses a gap, and none is so long that the window meant to keep
    it cannot hear it whole (there is no overlap to find it in)."""
    spans, window, hop = draw(recordings())
    half = (window - hop) / 2
    jitter = seam_slack(window, hop) / 2
    longest = min(2 * (half - 2 * jitter - jitter), 2.0)
    assume(longest >= 0.1)
    words = []
    for a, b in spans:
        t = a + draw(st.floats(min_value=0, max_value=1))
        while True:
            length = draw(st.floats(min_value=0.05, max_value=longest))
            if t + length > b:
                break
            words.append(W(t, t + length, f"w{len(words)}"))
            t += length + draw(st.floats(min_value=0, max_value=2))
    return spans, window, hop, words, jitter


def heard(words: list[W], win: Window, shift: Any = lambda w: 0.0) -> list[W]:
    """What a recogniser reports for a window: the words it hears, each moved by `shift(word)`,
    those cut by an edge with their times clipped to it, on the window's own timeline."""
    out = []
    for w in words:
        a, b = max(w.start, win.start), min(w.end, win.end)
        if b > a:
            d = shift(w)
            out.append(W(a - win.start + d, b - win.start + d, w.text))
    return out


@settings(max_examples=300, deadline=None)
@given(recordings())
def test_keep_regions_tile_every_span_exactly_once(rec):
    spans, window, hop = rec
    covered = []
    for step in plan(spans, None, window=window, hop=hop, final=True):
        if isinstance(step, Window):
            assert step.start <= step.keep_from < step.keep_to <= step.end
            assert step.end - step.start <= window + 1e-6
            # Every window lies inside one recorded span.
            assert any(a - 1e-6 <= step.start and step.end <= b + 1e-6 for a, b in spans)
            covered.append((step.keep_from, step.keep_to))
    joined = merge_spans(covered, tolerance=1e-6)
    assert [(round(a, 4), round(b, 4)) for a, b in joined] == \
        [(round(a, 4), round(b, 4)) for a, b in spans]
    assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in zip(covered, covered[1:], strict=False))


@settings(max_examples=300, deadline=None)
@given(spoken())
def test_consecutive_windows_keep_every_word_once(case):
    spans, window, hop, words, _ = case
    kept: list[str] = []
    for step in plan(spans, None, window=window, hop=hop, final=True):
        if isinstance(step, Window):
            kept += [w.text for w in sure_words(heard(words, step), step, offset=step.start)]
    assert kept == [w.text for w in words]


@settings(max_examples=300, deadline=None)
@given(spoken(), st.randoms(use_true_random=False))
def test_stitched_windows_keep_every_word_once_though_each_times_it_differently(case, rnd):
    """Each window times each word up to `jitter` off (differently each time): the stitched
    transcript still holds every word exactly once."""
    spans, window, hop, words, jitter = case
    slack = seam_slack(window, hop)
    stored: list[tuple[float, float, str]] = []
    for step in plan(spans, None, window=window, hop=hop, final=True):
        if isinstance(step, Window):
            said = [(step.start + w.start, step.start + w.end, w.text)
                    for w in heard(words, step, lambda w: rnd.uniform(-jitter, jitter))]
            stored += stitch(said, step, stored, slack=slack)
    # Independent errors may swap two words closer than the jitter: each is there once.
    assert sorted(w[2] for w in stored) == sorted(w.text for w in words)


@settings(max_examples=200, deadline=None)
@given(spoken(), st.data())
def test_a_restart_anywhere_gives_the_same_words(case, data):
    """Resuming from any stored `done_until` (a restart) continues exactly where it stopped."""
    spans, window, hop, words, _ = case
    steps = list(plan(spans, None, window=window, hop=hop, final=True))
    cut = data.draw(st.integers(min_value=0, max_value=len(steps)))
    resume = None if cut == 0 else (steps[cut - 1].keep_to if isinstance(steps[cut - 1], Window)
                                    else steps[cut - 1].to)
    again = list(plan(spans, resume, window=window, hop=hop, final=True))
    assert again == steps[cut:]


@settings(max_examples=200, deadline=None)
@given(recordings(), st.floats(min_value=0.0, max_value=1.0))
def test_a_growing_recording_never_changes_what_was_planned(rec, fraction):
    """Windows planned while the newest span was still growing are the ones planned later."""
    spans, window, hop = rec
    a, b = spans[-1]
    partial = [*spans[:-1], (a, a + (b - a) * fraction)]
    early = [s for s in plan(partial, None, window=window, hop=hop)]
    late = list(plan(spans, None, window=window, hop=hop, final=True))
    assert late[:len(early)] == early
