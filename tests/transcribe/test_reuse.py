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
    parts = [hear(said, w.start, w.end, rng) if w else () for w in (plan.before, plan.after)]
    return plan, combine(plan, *parts)


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
    got = on_clip(heard, *want, language="en", engine="e", model="m")
    names = [w.word for w in got.words()]
    assert len(names) == len(set(names)), "a word kept twice"
    assert names == sorted(names, key=lambda n: int(n[1:])), "words out of order"
    # Everything a fresh transcription of the span would hear whole is there.
    assert set(whole_inside(said, *want)) <= set(names), (want, first, shift, plan)
    assert all(0.0 <= w.start <= w.end <= length + 1e-3 for w in got.words())  # ms rounding
    if plan is not None:  # and Whisper heard less than the whole span
        new = sum(w.end - w.start for w in (plan.before, plan.after) if w)
        assert new <= length - MIN_REUSE + 1e-6


def test_a_widened_clip_hears_only_its_new_ends():
    said, rng = speech(3), random.Random(3)
    earlier = Heard(50.0, 110.0, hear(said, 50.0, 110.0, rng))
    plan = plan_reuse((40.0, 125.0), [earlier])
    assert plan is not None and plan.trusted == (50.0 + EDGE_MARGIN, 110.0 - EDGE_MARGIN)
    assert (plan.before.start, plan.before.end) == (40.0, 51.0 + CONTEXT)
    assert (plan.after.start, plan.after.end) == (109.0 - CONTEXT, 125.0)


def test_a_narrowed_clip_needs_no_whisper_at_all():
    said, rng = speech(4), random.Random(4)
    earlier = Heard(50.0, 110.0, hear(said, 50.0, 110.0, rng))
    plan = plan_reuse((60.0, 100.0), [earlier])
    assert plan is not None and plan.before is None and plan.after is None
    heard = combine(plan, (), ())
    words = [w.word for w in on_clip(heard, 60.0, 100.0, language="en", engine="e",
                                     model="m").words()]
    assert set(whole_inside(said, 60.0, 100.0)) <= set(words)


def test_too_little_in_common_is_transcribed_whole():
    earlier = Heard(0.0, 30.0, ())
    assert plan_reuse((25.0, 85.0), [earlier]) is None  # 5 s shared: not worth a seam
    assert trusted_part((40.0, 60.0), Heard(0.0, 30.0, ())) is None  # nothing shared


def test_the_earlier_transcription_saving_most_is_chosen():
    small, big = Heard(0.0, 40.0, ()), Heard(20.0, 100.0, ())
    plan = plan_reuse((30.0, 90.0), [small, big])
    assert plan is not None and plan.base is big


def test_segments_move_between_timelines():
    t = Transcript("a b", "en", "e", "m", (Segment(1.0, 2.0, "a b",
                                                   (Word(1.0, 1.4, "a"), Word(1.5, 2.0, "b"))),))
    heard = Heard(100.0, 110.0, heard_from(t, 100.0))
    assert heard.segments[0][3][0] == (101.0, 101.4, "a")
    back = on_clip(heard, 100.0, 110.0, language="en", engine="e", model="m")
    assert back.segments[0].words == t.segments[0].words and back.text == "a b"
