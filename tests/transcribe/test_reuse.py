"""Reusing an earlier transcription of the same source (pure): Whisper hears only what is new,
and the clip's transcript still holds every word said in it exactly once."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from clipper.domain import Segment, Transcript, Word
from clipper.transcribe.reuse import (
    CONTEXT,
    EDGE_MARGIN,
    MIN_REUSE,
    Heard,
    Kept,
    combine,
    heard_from,
    on_clip,
    plan_reuse,
    trusted_part,
)

Said = tuple[float, float, str]


def speech(seed: int, until: float = 200.0) -> list[Said]:
    """Words of 0.2-0.6 s with pauses of 0.05-0.4 s, named by their order."""
    rng, t, words = random.Random(seed), 0.0, []
    while t < until:
        length = rng.uniform(0.2, 0.6)
        words.append((round(t, 3), round(t + length, 3), f"w{len(words)}"))
        t += length + rng.uniform(0.05, 0.4)
    return words


def hear(said: list[Said], start: float, end: float, rng: random.Random,
         per_segment: int = 7) -> tuple:
    """What Whisper makes of [start, end]: the words it hears whole, each timed up to 0.2 s off
    (differently each time), in segments; a word cut by either edge is lost."""
    jitter = [(max(start, w[0] + rng.uniform(-0.2, 0.2)), min(end, w[1] + rng.uniform(-0.2, 0.2)),
               w[2]) for w in said if w[0] >= start and w[1] <= end]
    words = [(a, max(a + 0.01, b), text) for a, b, text in jitter]
    return tuple((chunk[0][0], chunk[-1][1], " ".join(w[2] for w in chunk), tuple(chunk))
                 for chunk in (words[i:i + per_segment] for i in range(0, len(words), per_segment)))


def whole_inside(said: list[Said], start: float, end: float) -> list[str]:
    """Words a transcription of [start, end] hears whole (a hundredth of a second inside)."""
    return [w[2] for w in said if w[0] >= start + 0.01 and w[1] <= end - 0.01]


def transcribe_reusing(said, want, earlier, rng):
    plan = plan_reuse(want, earlier)
    if plan is None:
        return None, Heard(*want, hear(said, *want, rng))
    return plan, combine(plan, [hear(said, w.start, w.end, rng) for w in plan.new])


def check_kept_once(said, want, plan, heard, context=()):
    """Every word a fresh transcription of `want` hears whole is in the clip's transcript, once,
    in order, timed on the clip; and Whisper heard at least MIN_REUSE seconds less."""
    got = on_clip(heard, *want, language="en", engine="e", model="m")
    names = [w.word for w in got.words()]
    assert len(names) == len(set(names)), ("a word kept twice", context)
    assert names == sorted(names, key=lambda n: int(n[1:])), ("words out of order", context)
    assert set(whole_inside(said, *want)) <= set(names), (want, context, plan)
    assert all(0.0 <= w.start <= w.end <= want[1] - want[0] + 1e-3 for w in got.words())
    if plan is not None:
        new = sum(w.end - w.start for w in plan.new)
        assert new <= want[1] - want[0] - MIN_REUSE + 1e-6


@settings(max_examples=300, deadline=None)
# A word said whole inside the span, which the earlier transcription timed a little past its end.
@example(seed=741, first=(4.0, 34.0), shift=0.0, length=33.78125)
@given(seed=st.integers(0, 10**6), first=st.tuples(st.floats(0, 120), st.floats(20, 80)),
       shift=st.floats(-60, 60), length=st.floats(20, 100))
def test_every_word_heard_whole_is_kept_once(seed, first, shift, length):
    said, rng = speech(seed), random.Random(seed)
    earlier = Heard(first[0], first[0] + first[1], hear(said, first[0], first[0] + first[1], rng))
    a = max(0.0, first[0] + shift)
    want = (a, a + length)
    plan, heard = transcribe_reusing(said, want, [earlier], rng)
    check_kept_once(said, want, plan, heard, (first, shift))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10**6),
       spans=st.lists(st.tuples(st.floats(0, 150), st.floats(10, 80)), min_size=2, max_size=4),
       start=st.floats(0, 120), length=st.floats(20, 100))
def test_several_earlier_transcriptions_keep_every_word_once(seed, spans, start, length):
    """Neighbouring clips' transcriptions, overlapping each other or not, pieced together with
    the parts none of them was sure of."""
    said, rng = speech(seed), random.Random(seed)
    earlier = [Heard(a, a + n, hear(said, a, a + n, rng)) for a, n in spans]
    want = (start, start + length)
    plan, heard = transcribe_reusing(said, want, earlier, rng)
    check_kept_once(said, want, plan, heard, spans)


def test_a_clip_between_two_earlier_ones_hears_only_the_seam():
    said, rng = speech(5), random.Random(5)
    left, right = (Heard(a, b, hear(said, a, b, rng)) for a, b in ((20.0, 80.0), (80.0, 140.0)))
    want = (50.0, 110.0)
    plan = plan_reuse(want, [left, right])
    assert plan is not None and [k.base for k in plan.kept] == [left, right]
    (seam,) = plan.new
    assert (seam.keep_from, seam.keep_to) == (80.0 - EDGE_MARGIN, 80.0 + EDGE_MARGIN)
    assert (seam.start, seam.end) == (79.0 - CONTEXT, 81.0 + CONTEXT)
    heard = combine(plan, [hear(said, seam.start, seam.end, rng)])
    check_kept_once(said, want, plan, heard)


def test_overlapping_earlier_ones_hand_over_where_the_first_stops_being_sure():
    a, b, c = Heard(0.0, 60.0, ()), Heard(40.0, 100.0, ()), Heard(50.0, 70.0, ())
    plan = plan_reuse((10.0, 90.0), [c, b, a])
    assert plan is not None and plan.new == ()
    assert plan.kept == (Kept(a, 10.0, 59.0), Kept(b, 59.0, 90.0))


def test_a_widened_clip_hears_only_its_new_ends():
    said, rng = speech(3), random.Random(3)
    earlier = Heard(50.0, 110.0, hear(said, 50.0, 110.0, rng))
    plan = plan_reuse((40.0, 125.0), [earlier])
    assert plan is not None
    assert plan.kept == (Kept(earlier, 50.0 + EDGE_MARGIN, 110.0 - EDGE_MARGIN),)
    before, after = plan.new
    assert (before.start, before.end) == (40.0, 51.0 + CONTEXT)
    assert (after.start, after.end) == (109.0 - CONTEXT, 125.0)


def test_a_narrowed_clip_needs_no_whisper_at_all():
    said, rng = speech(4), random.Random(4)
    earlier = Heard(50.0, 110.0, hear(said, 50.0, 110.0, rng))
    plan = plan_reuse((60.0, 100.0), [earlier])
    assert plan is not None and plan.new == ()
    heard = combine(plan, [])
    words = [w.word for w in on_clip(heard, 60.0, 100.0, language="en", engine="e",
                                     model="m").words()]
    assert set(whole_inside(said, 60.0, 100.0)) <= set(words)


def test_too_little_in_common_is_transcribed_whole():
    earlier = Heard(0.0, 30.0, ())
    assert plan_reuse((25.0, 85.0), [earlier]) is None  # 5 s shared: not worth a seam
    assert trusted_part((40.0, 60.0), Heard(0.0, 30.0, ())) is None  # nothing shared
    # Two that each share too little are not pieced together either.
    assert plan_reuse((0.0, 60.0), [Heard(-10.0, 8.0, ()), Heard(52.0, 90.0, ())]) is None


def test_the_earlier_transcription_saving_most_is_chosen():
    small, big = Heard(0.0, 40.0, ()), Heard(20.0, 100.0, ())
    plan = plan_reuse((30.0, 90.0), [small, big])
    assert plan is not None and [k.base for k in plan.kept] == [big]


def test_segments_move_between_timelines():
    t = Transcript("a b", "en", "e", "m", (Segment(1.0, 2.0, "a b",
                                                   (Word(1.0, 1.4, "a"), Word(1.5, 2.0, "b"))),))
    heard = Heard(100.0, 110.0, heard_from(t, 100.0))
    assert heard.segments[0][3][0] == (101.0, 101.4, "a")
    back = on_clip(heard, 100.0, 110.0, language="en", engine="e", model="m")
    assert back.segments[0].words == t.segments[0].words and back.text == "a b"
