"""Corrected transcript text keeps the old word timings."""

from __future__ import annotations

import pytest

from clipper.domain import Segment, Transcript, Word
from clipper.transcribe.correction import align_edit, apply_correction, regroup_segments


def words_of(spec: str) -> list[Word]:
    """'hello@1.0-1.4 world@1.5-2.0' -> Words."""
    out = []
    for item in spec.split():
        token, times = item.split("@")
        start, end = times.split("-")
        out.append(Word(float(start), float(end), token))
    return out


OLD = words_of("The@0.0-0.2 city@0.2-0.5 council@0.5-1.0 voted@1.0-1.4 12@1.4-1.8 to@1.8-1.9 "
               "free.@1.9-2.4 Police@4.0-4.5 said@4.5-4.9")


def check_invariants(words: list[Word]) -> None:
    for w in words:
        assert w.end > w.start, w
    for a, b in zip(words, words[1:], strict=False):
        assert a.end <= b.start + 1e-9, (a, b)


def test_unchanged_text_keeps_every_time() -> None:
    new = align_edit(OLD, " ".join(w.word for w in OLD))
    assert new == OLD


def test_case_and_punctuation_changes_keep_times_and_take_new_spelling() -> None:
    new = align_edit(OLD, "the City council voted 12 to free! police said")
    assert [(w.start, w.end) for w in new] == [(w.start, w.end) for w in OLD]
    assert new[1].word == "City" and new[6].word == "free!"


def test_replaced_word_keeps_its_span() -> None:
    new = align_edit(OLD, "The city council voted 12 to 3. Police said")
    assert new[6] == Word(1.9, 2.4, "3.")
    assert new[:6] == OLD[:6] and new[7:] == OLD[7:]


def test_replaced_run_shares_span_in_proportion() -> None:
    new = align_edit(OLD, "The city council voted twelve to three. Police said")
    # "12 to free." (1.4-2.4) became "twelve to three." -> split by length (7, 3, 7 weights)
    assert [w.word for w in new[4:7]] == ["twelve", "to", "three."]
    assert new[4].start == 1.4 and new[6].end == 2.4
    assert new[4].end - new[4].start > new[5].end - new[5].start
    check_invariants(new)


def test_deleted_words_vanish_and_others_keep_times() -> None:
    new = align_edit(OLD, "The council voted 12 to free. Police said")
    assert ([w.word for w in new]
            == ["The", "council", "voted", "12", "to", "free.", "Police", "said"])
    assert new[1] == OLD[2] and new[-1] == OLD[-1]


def test_insert_into_a_pause_uses_the_pause() -> None:
    new = align_edit(OLD, "The city council voted 12 to free. Today, Police said")
    today = new[7]
    assert today.word == "Today," and 2.4 <= today.start < today.end <= 4.0
    assert today.end - today.start == pytest.approx(0.35)
    assert new[8] == OLD[7]
    check_invariants(new)


def test_insert_between_touching_words_borrows_from_the_left_neighbour() -> None:
    new = align_edit(OLD, "The big city council voted 12 to free. Police said")
    assert new[0].start == 0.0 and new[1].word == "big" and new[2] == OLD[1]
    assert new[1].start >= new[0].end and new[1].end <= 0.2 + 1e-9
    check_invariants(new)


def test_insert_at_the_very_start_and_end() -> None:
    new = align_edit(OLD[:3], "Well, The city council tonight")
    assert new[0].word == "Well," and new[-1].word == "tonight"
    assert new[-1].start >= 1.0
    check_invariants(new)
    starts_at_zero = align_edit(words_of("hello@0.0-0.5"), "oh hello")
    assert starts_at_zero[0].word == "oh"
    check_invariants(starts_at_zero)


@pytest.mark.parametrize(("old", "text"), [
    ("a@1.0-1.0 b@1.0-1.0 c@1.0-1.0", "a x b y c z"),  # zero-length words, no pauses
    ("a@0.0-0.1 b@0.1-0.2", "completely different words entirely"),
    ("a@0.0-0.1 b@0.1-0.2 c@0.2-0.3", "c b a"),
    ("a@0.0-0.5", "a a a a a a a a a a"),
])
def test_awkward_edits_stay_ordered_with_positive_durations(old: str, text: str) -> None:
    new = align_edit(words_of(old), text)
    assert [w.word for w in new] == text.split()
    check_invariants(new)


def test_empty_cases() -> None:
    assert align_edit(OLD, "   ") == []
    fresh = align_edit([], "new words")
    assert [w.word for w in fresh] == ["new", "words"]
    check_invariants(fresh)


def test_regroup_by_time() -> None:
    segs = [Segment(0.0, 2.4, "The city council voted 12 to free.", tuple(OLD[:7])),
            Segment(4.0, 4.9, "Police said", tuple(OLD[7:]))]
    words = align_edit(OLD, "The council voted 12 to free. Today, police said")
    regrouped = regroup_segments(words, segs)
    # "Today," was typed into the pause after a sentence end: it joins the next segment.
    assert [s.text for s in regrouped] == ["The council voted 12 to free.", "Today, police said"]
    assert regrouped[1].start == words[6].start and regrouped[1].end == 4.9
    assert regroup_segments([], segs) == []
    only = regroup_segments(words, [])
    assert len(only) == 1 and only[0].words == tuple(words)


def test_regroup_drops_emptied_segments() -> None:
    segs = [Segment(0.0, 2.4, "x", tuple(OLD[:7])), Segment(4.0, 4.9, "y", tuple(OLD[7:]))]
    regrouped = regroup_segments(align_edit(OLD, "Police said"), segs)
    assert [s.text for s in regrouped] == ["Police said"]


def test_edit_transcript() -> None:
    t = Transcript(text="...", language="en", engine="faster-whisper", model="tiny.en",
                   segments=(Segment(0.0, 2.4, "a", tuple(OLD[:7])),
                             Segment(4.0, 4.9, "b", tuple(OLD[7:]))))
    edited = apply_correction(t, "The city council voted 12 to 3.\nPolice said")
    assert edited.text == "The city council voted 12 to 3. Police said"
    assert edited.words()[6] == Word(1.9, 2.4, "3.") and len(edited.segments) == 2
    assert edited.engine == "faster-whisper"
