"""Engine segments made readable and whole (pure): long ones split into sentences, speech
Whisper jumped over found and its words replaced by a second hearing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clipper.domain import Word
from clipper.transcribe.speech import replace_region, sentence_segments, skipped_speech


def said(*tokens: str, step: float = 0.5) -> list[Word]:
    return [Word(i * step, i * step + 0.4, f" {t}") for i, t in enumerate(tokens)]


def test_a_chunk_splits_after_each_sentence() -> None:
    words = said("Good", "evening.", "Here", "is", "the", "news?", "Yes", "it", "is")
    (a, b, c) = sentence_segments([(0.0, 30.0, "ignored", words)], longest=2.0)
    assert [s[2] for s in (a, b, c)] == ["Good evening.", "Here is the news?", "Yes it is"]
    assert (a[0], a[1], c[0], c[1]) == (0.0, 0.9, 3.0, 4.4)


def test_short_segments_and_wordless_ones_stay_as_they_are() -> None:
    short = (1.0, 3.0, "Hello there. Bye.", said("Hello", "there.", "Bye."))
    empty = (0.0, 40.0, "music", ())
    assert sentence_segments([short, empty], longest=12.0) == [short, empty]


def test_a_sentence_that_runs_on_is_cut_before_it_grows_too_long() -> None:
    words = said(*[f"w{i}" for i in range(40)])  # 20 s, no full stop
    pieces = sentence_segments([(0.0, 20.0, "", words)], longest=6.0)
    assert all(end - start <= 6.0 for start, end, _, _ in pieces)
    assert len(pieces) == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 3.0), st.floats(0.0, 2.0), st.booleans()),
                min_size=1, max_size=80),
       st.floats(1.0, 15.0))
def test_every_word_kept_once_in_order(spec: list[tuple[float, float, bool]],
                                       longest: float) -> None:
    t, words = 0.0, []
    for i, (length, pause, stop) in enumerate(spec):
        words.append(Word(t, t + length, f" w{i}{'.' if stop else ''}"))
        t += length + pause
    text = "".join(w.word for w in words).strip()
    pieces = sentence_segments([(0.0, words[-1].end, text, words)], longest=longest)
    assert [w for *_, ws in pieces for w in ws] == words
    for start, end, text, ws in pieces:
        assert (start, end) == (ws[0].start, ws[-1].end)
        assert text == "".join(w.word for w in ws).strip()
        # Longer than `longest` only when a single word is.
        assert end - start <= longest or len(ws) == 1


def test_speech_whisper_jumped_over_is_found() -> None:
    """A region its words cover end to end was heard; one with a stray word in it was not."""
    heard = said("Good", "evening.")  # 0.0-0.9
    stray = [Word(8.3, 8.6, " The")]
    regions = [(0.0, 0.9), (4.6, 8.7), (10.0, 10.8)]
    assert skipped_speech(regions, heard + stray) == [(4.6, 8.7)]
    # Too short to say (a cough, a breath) is left alone.
    assert skipped_speech([(10.0, 10.8)], []) == []


def test_a_region_heard_again_replaces_its_words_only() -> None:
    first = (0.0, 0.9, "Good evening.", said("Good", "evening."))
    stray = (4.0, 8.6, "the The", [Word(4.0, 4.1, " the"), Word(8.3, 8.6, " The")])
    again = [(4.6, 8.7, " Our reporter spoke.", [Word(4.6, 5.0, " Our"),
                                                 Word(5.0, 5.4, " reporter"),
                                                 Word(5.4, 8.7, " spoke.")])]
    out = replace_region([first, stray], (4.6, 8.7), again)
    # "the" at 4.0 lies before the region: kept, in a segment of its own words.
    assert [seg[2] for seg in out] == ["Good evening.", "the", " Our reporter spoke."]
    assert [w.word for *_, ws in out for w in ws] == [" Good", " evening.", " the", " Our",
                                                       " reporter", " spoke."]
    # Heard again as nothing (it was noise): nothing changes.
    assert replace_region([first, stray], (4.6, 8.7), [(4.6, 8.7, "", [])]) == [first, stray]
