"""Long engine segments (batched Whisper gives one per ≤ 30 s chunk) become sentences (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clipper.domain import Word
from clipper.transcribe.speech import sentence_segments


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
