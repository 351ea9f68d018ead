"""Subtitle cues built from word timings, and thin SRT/VTT writers (via pysubs2)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipper.domain import Word

if TYPE_CHECKING:
    import pysubs2

SENTENCE_END = (".", "?", "!", "…", '."', '?"', '!"')
CLAUSE_END = (",", ";", ":", "—")


@dataclass(frozen=True)
class Cue:
    """One subtitle on the clip's timeline (seconds); `lines` are already wrapped."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def layout_lines(tokens: Sequence[str], max_chars: int, max_lines: int) -> tuple[str, ...] | None:
    """Fewest lines (then the most balanced) holding `tokens`, or None when they do not fit.

    A line may exceed `max_chars` only when it is a single word (nothing else can be done).
    """
    n = len(tokens)
    if n == 0:
        return ()
    for k in range(1, min(max_lines, n) + 1):
        best: tuple[int, int, tuple[str, ...]] | None = None
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = (0, *cuts, n)
            lines = tuple(" ".join(tokens[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
            if any(len(ln) > max_chars and " " in ln for ln in lines):
                continue
            # Most balanced first; on a tie prefer the shorter top line (a "pyramid").
            key = (max(len(ln) for ln in lines), len(lines[0]), lines)
            if best is None or key[:2] < best[:2]:
                best = key
        if best is not None:
            return best[2]
    return None


def _chunk_words(words: Sequence[Word], max_chars: int, max_lines: int,
                 max_duration: float, pause: float) -> list[list[Word]]:
    """Split words into cue-sized runs: sentence ends, pauses, size and duration limits."""
    chunks: list[list[Word]] = []
    current: list[Word] = []
    for w in words:
        if current and _must_break(current, w, max_chars, max_lines, max_duration, pause):
            chunks.append(current)
            current = []
        if len(w.word) > max_chars:
            # An over-long word is shown alone, on its own line.
            if current:
                chunks.append(current)
            chunks.append([w])
            current = []
            continue
        current.append(w)
    if current:
        chunks.append(current)
    return chunks


def _must_break(current: list[Word], nxt: Word, max_chars: int, max_lines: int,
                max_duration: float, pause: float) -> bool:
    last = current[-1]
    if last.word.endswith(SENTENCE_END) or nxt.start - last.end >= pause:
        return True
    if nxt.end - current[0].start > max_duration:
        return True
    text_len = len(" ".join(w.word for w in current))
    if last.word.endswith(CLAUSE_END) and text_len >= max_chars:
        return True
    tokens = [w.word for w in current] + [nxt.word]
    return layout_lines(tokens, max_chars, max_lines) is None


def _clean(words: Sequence[Word]) -> list[Word]:
    """Stripped, non-empty words sorted by start, each with end >= start."""
    out = [Word(start=max(0.0, w.start), end=max(w.start, w.end, 0.0), word=w.word.strip())
           for w in words if w.word.strip()]
    return sorted(out, key=lambda w: w.start)


def _timed(chunks: list[list[Word]], min_duration: float,
           max_duration: float) -> list[tuple[float, float]]:
    """Cue (start, end) per chunk: at least min_duration where the gap allows, never overlapping."""
    spans: list[tuple[float, float]] = []
    for i, chunk in enumerate(chunks):
        start = chunk[0].start
        if spans:
            start = max(start, spans[-1][1])
        end = max(start, max(w.end for w in chunk))
        end = min(max(end, start + min_duration), start + max_duration)
        if i + 1 < len(chunks):
            end = min(end, max(start, chunks[i + 1][0].start))
        spans.append((round(start, 3), round(end, 3)))
    return spans


def build_cues(words: Sequence[Word], *, max_chars: int = 42, max_lines: int = 2,
               min_duration: float = 0.8, max_duration: float = 6.0,
               pause: float = 0.6) -> list[Cue]:
    """Subtitle cues from word timings.

    Cues break after sentence punctuation, at pauses of `pause` seconds or more, and when
    the next word would not fit in `max_lines` lines of `max_chars` or would make the cue
    longer than `max_duration`. Each cue is shown at least `min_duration` unless the next
    cue starts sooner (very fast speech); cues never overlap and are in time order.
    """
    clean = _clean(words)
    chunks = _chunk_words(clean, max_chars, max_lines, max_duration, pause)
    spans = _timed(chunks, min_duration, max_duration)
    cues = []
    for chunk, (start, end) in zip(chunks, spans, strict=True):
        tokens = [w.word for w in chunk]
        lines = layout_lines(tokens, max_chars, max_lines) or (" ".join(tokens),)
        cues.append(Cue(start=start, end=end, lines=lines))
    return cues


def cues_to_ssafile(cues: Sequence[Cue]) -> pysubs2.SSAFile:
    """A pysubs2 file holding the cues (times in ms, lines joined with \\N)."""
    import pysubs2  # here, not at the top: `clipper status` reaches this module, not the writer

    subs = pysubs2.SSAFile()
    for cue in cues:
        event = pysubs2.SSAEvent(start=pysubs2.make_time(s=cue.start),
                                 end=pysubs2.make_time(s=cue.end))
        # Braces would be read as ASS override tags and vanish from the output.
        event.plaintext = cue.text.replace("{", "(").replace("}", ")")
        subs.events.append(event)
    return subs


def _save(cues: Sequence[Cue], path: Path, fmt: str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    cues_to_ssafile(cues).save(str(tmp), format_=fmt, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_srt(cues: Sequence[Cue], path: Path) -> Path:
    """Write cues as SubRip; the file appears atomically at `path`."""
    return _save(cues, path, "srt")


def write_vtt(cues: Sequence[Cue], path: Path) -> Path:
    """Write cues as WebVTT; the file appears atomically at `path`."""
    return _save(cues, path, "vtt")
