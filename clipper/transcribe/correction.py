"""Corrected transcript text mapped back onto the old word timings (a word-level diff)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import replace

from clipper.domain import Segment, Transcript, Word

MIN_WORD = 0.05
"""Shortest time (s) a new word may get; also the nudge used to keep words in order."""
TYPICAL_WORD = 0.35
"""How long an inserted word lasts when a pause leaves room for it."""

_Slot = list  # [token, start | None, end | None, kept]; kept = times copied from an old word


def normalise_token(token: str) -> str:
    """What a word is compared by: lowercase, letters/digits/apostrophes only."""
    key = re.sub(r"[^\w']+", "", token.lower()).strip("'")
    return key or token


def align_edit(old_words: Sequence[Word], new_text: str) -> list[Word]:
    """Words of `new_text` with times carried over from `old_words`.

    Equal words keep their times; a replaced run shares the old run's span in proportion
    to word length; inserted words take time from the pause beside them or, if there is
    none, from their neighbour; deleted words vanish. Result: ordered, no overlaps, every
    word lasting more than zero.
    """
    tokens = new_text.split()
    if not tokens:
        return []
    if not old_words:
        return [Word(round(i * TYPICAL_WORD, 3), round((i + 1) * TYPICAL_WORD, 3), t)
                for i, t in enumerate(tokens)]
    matcher = difflib.SequenceMatcher(None, [normalise_token(w.word) for w in old_words],
                                      [normalise_token(t) for t in tokens], autojunk=False)
    slots: list[_Slot] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            slots += [[t, w.start, w.end, True]
                      for t, w in zip(tokens[j1:j2], old_words[i1:i2], strict=True)]
        elif op == "replace":
            slots += _share(tokens[j1:j2], old_words[i1].start, old_words[i2 - 1].end)
        elif op == "insert":
            slots += [[t, None, None, False] for t in tokens[j1:j2]]
    _fill_inserts(slots)
    return _tidy(slots)


def _share(tokens: Sequence[str], start: float, end: float) -> list[_Slot]:
    """Split [start, end] among tokens in proportion to their length."""
    weights = [len(t) + 1 for t in tokens]
    total, at, out = sum(weights), start, []
    for token, weight in zip(tokens, weights, strict=True):
        step = (end - start) * weight / total
        out.append([token, at, at + step, False])
        at += step
    return out


def _fill_inserts(slots: list[_Slot]) -> None:
    """Give each run of untimed slots time from the pause it sits in, or from a neighbour."""
    i = 0
    while i < len(slots):
        if slots[i][1] is not None:
            i += 1
            continue
        j = i
        while j < len(slots) and slots[j][1] is None:
            j += 1
        _fill_run(slots, i, j)
        i = j


def _fill_run(slots: list[_Slot], i: int, j: int) -> None:
    left = slots[i - 1] if i > 0 else None
    right = slots[j] if j < len(slots) else None
    n = j - i
    gap_start = left[2] if left else max(0.0, right[1] - n * TYPICAL_WORD)
    gap_end = right[1] if right else left[2] + n * TYPICAL_WORD
    if gap_end - gap_start >= n * MIN_WORD:
        step = min((gap_end - gap_start) / n, TYPICAL_WORD)
        # Hug the word it belongs with: the next one after a sentence end, else the previous.
        hug_right = right is not None and (left is None or left[0].endswith((".", "?", "!")))
        at = gap_end - n * step if hug_right else gap_start
        for k in range(i, j):
            slots[k][1:3] = [at, at + step]
            at += step
        return
    # No pause: share the neighbour's time (the left one, else the right one).
    if left:
        lo, hi, span = i - 1, j, (left[1], gap_end)
    else:
        lo, hi, span = i, j + 1, (gap_start, right[2])
    shared = _share([s[0] for s in slots[lo:hi]], *span)
    for k, piece in zip(range(lo, hi), shared, strict=True):
        slots[k][1:4] = [piece[1], piece[2], False]


def _tidy(slots: list[_Slot]) -> list[Word]:
    """Rounded words in order; new words at least MIN_WORD long (nudging later ones on)."""
    out: list[Word] = []
    prev_end = 0.0
    for token, start, end, kept in slots:
        start = max(start, prev_end) if out else start
        # Old times are kept as they are, unless they collapsed to nothing.
        end = end if kept and end > start else max(end, start + MIN_WORD)
        out.append(Word(round(start, 3), round(end, 3), token))
        prev_end = end
    return out


def regroup_segments(words: Sequence[Word], old_segments: Sequence[Segment]) -> list[Segment]:
    """Put words back into the old segments by time (nearest segment to each word's middle).

    Segments left without words are dropped; each segment spans its words.
    """
    if not words:
        return []
    if not old_segments:
        return [_segment(list(words))]
    groups: list[list[Word]] = [[] for _ in old_segments]
    index = 0
    for w in words:
        middle = (w.start + w.end) / 2
        nearest = min(range(len(old_segments)), key=lambda k: _distance(old_segments[k], middle))
        index = max(index, nearest)  # words are in order, so segments are too
        groups[index].append(w)
    return [_segment(g) for g in groups if g]


def _distance(seg: Segment, t: float) -> float:
    return 0.0 if seg.start <= t <= seg.end else min(abs(seg.start - t), abs(seg.end - t))


def _segment(words: list[Word]) -> Segment:
    return Segment(start=words[0].start, end=words[-1].end, text=" ".join(w.word for w in words),
                   words=tuple(words))


def apply_correction(transcript: Transcript, new_text: str) -> Transcript:
    """The transcript with corrected text: words re-timed, segments regrouped."""
    words = align_edit(transcript.words(), new_text)
    return replace(transcript, text=" ".join(new_text.split()),
                   segments=tuple(regroup_segments(words, transcript.segments)))
