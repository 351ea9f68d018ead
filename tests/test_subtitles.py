"""Subtitle cues from word timings: limits, breaks, timing rules, and the pysubs2 writers."""

from __future__ import annotations

import pysubs2
import pytest

from clipper.domain import Word
from clipper.subtitles import Cue, build_cues, layout_lines, write_srt, write_vtt


def words_at(text: str, start: float = 0.0, step: float = 0.3, dur: float = 0.25) -> list[Word]:
    """Evenly timed words: word i starts at start + i*step and lasts `dur`."""
    return [Word(start + i * step, start + i * step + dur, w) for i, w in enumerate(text.split())]


def check_invariants(cues: list[Cue], *, max_chars: int = 42, max_lines: int = 2,
                     max_duration: float = 6.0) -> None:
    for cue in cues:
        assert cue.end >= cue.start
        assert cue.end - cue.start <= max_duration + 1e-6
        assert 1 <= len(cue.lines) <= max_lines
        for line in cue.lines:
            assert len(line) <= max_chars or " " not in line, line
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start + 1e-9, (a, b)
        assert a.start <= b.start


LONG = "Supercalifragilisticexpialidocious-and-then-some-more-letters"
CASES = [
    # name, words, expected number of cues (None: only invariants), expected first cue text
    ("empty", [], 0, None),
    ("one word", [Word(1.0, 1.2, " Hello.")], 1, "Hello."),
    ("one long word", [Word(0.0, 1.0, LONG)], 1, LONG),
    ("long word mid-sentence", words_at(f"a {LONG} b"), 3, "a"),
    ("sentence punctuation", words_at("Good evening. The news tonight."), 2, "Good evening."),
    ("question and exclamation", words_at("Really? Yes! Fine."), 3, "Really?"),
    ("long pause", words_at("before the pause") + words_at("after it", start=5.0), 2,
     "before the pause"),
    ("short pause below threshold",
     words_at("no real", step=0.3) + words_at("break here", start=0.9), 1, "no real break here"),
    ("fast speech", words_at(" ".join(["word"] * 60), step=0.05, dur=0.04), None, None),
    ("zero duration words", [Word(t / 4, t / 4, f"w{t}") for t in range(12)], None, None),
    ("all words at one instant", [Word(2.0, 2.0, w) for w in "a b c".split()], 1, "a b c"),
    ("whitespace words skipped", [Word(0, 0.2, " "), Word(0.2, 0.4, "hi")], 1, "hi"),
    ("slow long sentence", words_at(" ".join(["go"] * 30), step=0.5), None, None),
]


@pytest.mark.parametrize(("name", "words", "n_cues", "first"), CASES, ids=[c[0] for c in CASES])
def test_build_cues_table(name: str, words: list[Word], n_cues: int | None,
                          first: str | None) -> None:
    cues = build_cues(words)
    check_invariants(cues)
    if n_cues is not None:
        assert len(cues) == n_cues
    if first is not None:
        assert cues[0].text.replace("\n", " ") == first
    # Every word appears exactly once, in order.
    expected = [w.word.strip() for w in sorted(words, key=lambda w: w.start) if w.word.strip()]
    assert " ".join(c.text.replace("\n", " ") for c in cues).split() == expected


def test_min_duration_extends_into_gap_but_not_past_next_cue() -> None:
    words = [Word(0.0, 0.2, "One."), Word(0.5, 0.6, "Two."), Word(3.0, 3.1, "Three.")]
    cues = build_cues(words)
    assert [c.start for c in cues] == [0.0, 0.5, 3.0]
    assert cues[0].end == 0.5  # wanted 0.8, stopped at the next cue
    assert cues[1].end == pytest.approx(1.3)  # 0.8 s, the gap allowed it
    assert cues[2].end == pytest.approx(3.8)


def test_max_duration_splits_slow_speech() -> None:
    cues = build_cues(words_at(" ".join(["go"] * 30), step=0.5), max_duration=3.0)
    check_invariants(cues, max_duration=3.0)
    assert len(cues) >= 5


def test_one_very_long_word_is_capped_at_max_duration() -> None:
    cues = build_cues([Word(0.0, 20.0, "Hmmm")])
    assert cues == [Cue(0.0, 6.0, ("Hmmm",))]


def test_lines_are_balanced_and_within_limits() -> None:
    text = "the council voted forty two to seven to approve the new budget on Tuesday"
    cues = build_cues(words_at(text, step=0.2))
    check_invariants(cues)
    two_line = [c for c in cues if len(c.lines) == 2]
    assert two_line
    for cue in two_line:
        a, b = (len(x) for x in cue.lines)
        assert abs(a - b) <= 12, cue.lines


@pytest.mark.parametrize(("tokens", "max_chars", "max_lines", "expected"), [
    ([], 42, 2, ()),
    (["short", "line"], 42, 2, ("short line",)),
    (["aaaa", "bbbb", "cccc", "dddd"], 10, 2, ("aaaa bbbb", "cccc dddd")),
    (["aaaa", "bbbb", "cccc", "dddd"], 10, 1, None),
    (["x" * 50], 42, 2, ("x" * 50,)),
    (["aa", "bb", "cc", "dd", "ee", "ff"], 5, 3, ("aa bb", "cc dd", "ee ff")),
])
def test_layout_lines(tokens: list[str], max_chars: int, max_lines: int,
                      expected: tuple | None) -> None:
    assert layout_lines(tokens, max_chars, max_lines) == expected


def test_clause_break_when_cue_already_holds_a_line() -> None:
    text = "when the committee met on Monday morning in the hall, members agreed to wait"
    cues = build_cues(words_at(text, step=0.2))
    assert cues[0].text.replace("\n", " ").endswith("hall,")


def test_srt_and_vtt_round_trip(tmp_path) -> None:
    cues = build_cues(words_at("Good evening. Tonight the mayor said {nothing} about the bridge.",
                               start=1.0))
    srt = write_srt(cues, tmp_path / "clip.srt")
    vtt = write_vtt(cues, tmp_path / "clip.vtt")
    assert srt.read_text(encoding="utf-8").startswith("1\n00:00:01,000 --> ")
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    for path in (srt, vtt):
        back = pysubs2.load(str(path))
        assert len(back.events) == len(cues)
        assert [e.start for e in back.events] == [round(c.start * 1000) for c in cues]
        assert ([e.plaintext for e in back.events]
                == [c.text.replace("{", "(").replace("}", ")") for c in cues])
    assert not list(tmp_path.glob(".*.tmp"))
