"""Burned-caption layout per output shape and the ASS file libass draws (pysubs2).

Sizes are in output pixels: PlayResX/PlayResY equal the output size, so a FontSize of 60 is
60 pixels tall whatever libass's default 288-line canvas would have made of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pysubs2

from clipper.domain import Word
from clipper.subtitles import Cue, build_cues

FONT = "DejaVu Sans"  # the only family installed on the workers (FACTS.md)
# DejaVu Sans Bold's average advance for mixed-case news text, as a fraction of the font size.
CHAR_WIDTH = 0.62
HIGHLIGHT = pysubs2.Color(255, 214, 0)  # the word being spoken, when highlighting


@dataclass(frozen=True)
class CaptionLayout:
    """Where and how large captions are drawn on one output size (all in output pixels)."""

    width: int
    height: int
    max_chars: int      # per caption line
    font_size: int
    margin_bottom: int  # clear of the platform's own buttons and text
    margin_side: int
    margin_top: int     # attribution line and logo sit below this
    outline: float

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


def layout_for(width: int, height: int) -> CaptionLayout:
    """Caption layout for an output size: vertical, square or wide rules (pure).

    Vertical (9x16): lines of <= 24 characters, bottom 20% left free for Reels/TikTok captions
    and buttons, side margins clear of TikTok's right-hand icons. Square: 32 characters,
    10% bottom. Wide: 42 characters, 7% bottom. The font is as large as the line length allows.
    """
    aspect = width / height
    if aspect < 0.8:
        max_chars, bottom, side, top = 24, 0.20, 0.10, 0.10
    elif aspect <= 1.25:
        max_chars, bottom, side, top = 32, 0.10, 0.07, 0.05
    else:
        max_chars, bottom, side, top = 42, 0.07, 0.06, 0.05
    side_px = round(side * width)
    font = int((width - 2 * side_px) / (max_chars * CHAR_WIDTH))
    font = min(font, round(0.08 * height))
    return CaptionLayout(width, height, max_chars, font, round(bottom * height), side_px,
                         round(top * height), outline=round(max(2.0, 0.08 * font), 1))


def shift_words(words: Sequence[Word], start: float, end: float | None) -> list[Word]:
    """Words overlapping [start, end), moved so that `start` becomes 0 and clipped to the window."""
    out = []
    for w in words:
        if w.end <= start or (end is not None and w.start >= end):
            continue
        w_end = w.end if end is None else min(w.end, end)
        out.append(Word(start=max(0.0, w.start - start), end=max(0.0, w_end - start), word=w.word))
    return out


def _styles(layout: CaptionLayout) -> dict[str, pysubs2.SSAStyle]:
    caption = pysubs2.SSAStyle(
        fontname=FONT, fontsize=layout.font_size, bold=True,
        primarycolor=pysubs2.Color(255, 255, 255), outlinecolor=pysubs2.Color(0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 96), borderstyle=1, outline=layout.outline,
        shadow=round(layout.outline / 2, 1), alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=layout.margin_side, marginr=layout.margin_side, marginv=layout.margin_bottom)
    credit = pysubs2.SSAStyle(
        fontname=FONT, fontsize=max(14, round(layout.font_size * 0.55)), bold=False,
        primarycolor=pysubs2.Color(255, 255, 255), outlinecolor=pysubs2.Color(0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 128), borderstyle=1,
        outline=max(1.5, round(layout.outline * 0.6, 1)), shadow=1,
        alignment=pysubs2.Alignment.TOP_LEFT, marginl=layout.margin_side,
        marginr=layout.margin_side, marginv=layout.margin_top)
    return {"Caption": caption, "Attribution": credit}


def _escape(text: str) -> str:
    # Braces and backslashes would be read as ASS override tags.
    return text.replace("\\", "/").replace("{", "(").replace("}", ")")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _cue_words(cue: Cue, words: Sequence[Word]) -> list[Word]:
    """The words spoken during a cue, when they spell exactly the cue's tokens (else [])."""
    tokens = " ".join(cue.lines).split()
    inside = [w for w in words if cue.start - 0.01 <= w.start < cue.end and w.word.strip()]
    return inside if [w.word.strip() for w in inside] == tokens else []


def _highlighted(cue: Cue, words: Sequence[Word]) -> list[tuple[float, float, str]]:
    """(start, end, ASS text) pieces of a cue with the current word coloured."""
    spoken = _cue_words(cue, words)
    if not spoken:
        return [(cue.start, cue.end, r"\N".join(_escape(ln) for ln in cue.lines))]
    colour = f"&H{HIGHLIGHT.b:02X}{HIGHLIGHT.g:02X}{HIGHLIGHT.r:02X}&"
    pieces = []
    for i, w in enumerate(spoken):
        start = cue.start if i == 0 else w.start
        end = spoken[i + 1].start if i + 1 < len(spoken) else cue.end
        k, lines = 0, []
        for line in cue.lines:
            toks = []
            for tok in line.split():
                toks.append(rf"{{\c{colour}}}{_escape(tok)}{{\r}}" if k == i else _escape(tok))
                k += 1
            lines.append(" ".join(toks))
        if end > start:
            pieces.append((start, end, r"\N".join(lines)))
    return pieces


def build_ass(layout: CaptionLayout, *, words: Sequence[Word] = (), duration: float,
              attribution: str | None = None, highlight: bool = False) -> pysubs2.SSAFile:
    """An ASS file for one output: caption cues from `words` (already on the output timeline)."""
    subs = pysubs2.SSAFile()
    subs.info.update({"PlayResX": str(layout.width), "PlayResY": str(layout.height),
                      "WrapStyle": "0", "ScaledBorderAndShadow": "yes"})
    subs.styles.clear()
    subs.styles.update(_styles(layout))
    for cue in build_cues(words, max_chars=layout.max_chars, max_lines=2):
        if cue.start >= duration:
            continue
        parts = _highlighted(cue, words) if highlight else [
            (cue.start, cue.end, r"\N".join(_escape(ln) for ln in cue.lines))]
        for start, end, text in parts:
            subs.events.append(pysubs2.SSAEvent(start=_ms(start), end=_ms(min(end, duration)),
                                                text=text, style="Caption"))
    if attribution:
        subs.events.append(pysubs2.SSAEvent(start=0, end=_ms(duration) + 1000,
                                            text=_escape(attribution), style="Attribution"))
    return subs


def write_ass(subs: pysubs2.SSAFile, path: Path) -> Path:
    """Save an ASS file (the caller picks a path free of `:` and quotes: ffmpeg-python escaping)."""
    subs.save(str(path), format_="ass", encoding="utf-8")
    return path
