"""Caption layout per shape and the ASS file: sizes in output pixels, safe areas,
timing, highlight."""

from __future__ import annotations

import pytest

from clipper.domain import Word
from clipper.media.captions_ass import build_ass, layout_for, shift_words

WORDS = [Word(1.0 + 0.5 * i, 1.4 + 0.5 * i, w) for i, w in enumerate("we {will} act now".split())]


@pytest.mark.parametrize(("size", "max_chars", "bottom"), [
    ((1080, 1920), 24, 384), ((1080, 1080), 32, 108), ((1920, 1080), 42, 76),
])
def test_layout_keeps_captions_in_the_safe_area(size, max_chars, bottom) -> None:
    layout = layout_for(*size)
    assert (layout.max_chars, layout.margin_bottom) == (max_chars, bottom)
    # The longest allowed line fits between the side margins at the chosen size.
    assert layout.max_chars * layout.font_size * 0.62 <= size[0] - 2 * layout.margin_side
    assert layout.font_size >= 0.025 * size[1]  # readable on a phone


def test_ass_file_uses_output_pixels_and_cue_times() -> None:
    subs = build_ass(layout_for(1080, 1920), words=WORDS, duration=10.0,
                     attribution="BBC News · 23 Nov 2026")
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == ("1080", "1920")
    assert subs.styles["Caption"].fontname == "DejaVu Sans"
    caption, credit = subs.events
    assert (caption.start, caption.end) == (1000, 2900)
    assert caption.text == "we (will) act now"  # braces would be read as override tags
    assert (credit.style, credit.text) == ("Attribution", "BBC News · 23 Nov 2026")


def test_highlight_colours_one_word_at_a_time() -> None:
    subs = build_ass(layout_for(1280, 720), words=WORDS, duration=10.0, highlight=True)
    assert [e.start for e in subs.events] == [1000, 1500, 2000, 2500]
    assert all(e.text.count(r"\c&H") == 1 for e in subs.events)
    assert subs.events[2].text.startswith("we (will) {")


def test_shift_words_moves_and_clips_to_the_trim_window() -> None:
    shifted = shift_words(WORDS, 1.7, 2.6)
    assert [(w.word, round(w.start, 2), round(w.end, 2)) for w in shifted] == [
        ("{will}", 0.0, 0.2), ("act", 0.3, 0.7), ("now", 0.8, 0.9)]
