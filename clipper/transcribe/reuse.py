"""Pure planning for transcribing a span of a source that was partly transcribed before.

When flags of one moment merge, the clip widens and is transcribed again; when volunteers flag
overlapping moments, neighbouring clips share audio. Whisper need not hear what it has already
heard: the words of an earlier transcription of the same source are kept where that
transcription was sure of them (away from its edges), and only the parts around them are
transcribed, each hearing a little of the kept part so words at a seam are heard whole. Seams
are joined with the live transcript's rule (`windows.stitch`): every word kept once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clipper.domain import Segment, Transcript, Word
from clipper.transcribe.windows import SEAM_SLACK, Said, Window, stitch

#: Words this close to an edge of an earlier transcription where it was cut off mid-speech are
#: not trusted: Whisper hears a word cut by the edge badly, and the one before it sometimes too.
EDGE_MARGIN = 1.0
#: Seconds of the kept part a new part also hears, so a word at the seam is heard whole.
CONTEXT = 2.0
#: An earlier transcription is worth reusing only if it saves at least this much audio.
MIN_REUSE = 8.0
_EPS = 1e-6
#: `on_clip`'s default slack at a clip's edges.
EDGE_SLACK = SEAM_SLACK / 2

Interval = tuple[float, float]
#: A segment on the source's timeline: (start, end, text, words).
HeardSegment = tuple[float, float, str, tuple[Said, ...]]


@dataclass(frozen=True)
class Heard:
    """A transcription of [start, end] of a source, on the source's timeline."""

    start: float
    end: float
    segments: tuple[HeardSegment, ...]
    language: str = ""


@dataclass(frozen=True)
class ReusePlan:
    """What to keep of an earlier transcription, and the parts Whisper must hear."""

    base: Heard
    trusted: Interval
    """The part of the wanted span whose words come from `base`."""
    before: Window | None
    after: Window | None
    """New parts: audio [start, end] to transcribe, keeping words with midpoint in
    [keep_from, keep_to) (windows.Window)."""


def trusted_part(want: Interval, heard: Heard) -> Interval | None:
    """Pure: the part of `want` whose words `heard` can give (None when nothing useful). An edge
    of `heard` inside `want` was cut mid-speech: its last EDGE_MARGIN seconds are not trusted;
    an edge at or beyond `want`'s is as good as a new transcription's own edge."""
    a, b = want
    lo = a if heard.start <= a + _EPS else heard.start + EDGE_MARGIN
    hi = b if heard.end >= b - _EPS else heard.end - EDGE_MARGIN
    return (lo, hi) if hi - lo > _EPS else None


def plan_reuse(want: Interval, earlier: Sequence[Heard]) -> ReusePlan | None:
    """Pure: the earlier transcription that leaves Whisper least to hear, and the parts it must
    still hear; None when none saves MIN_REUSE seconds (then transcribe `want` whole)."""
    a, b = want
    best: tuple[float, Heard, Interval] | None = None
    for heard in earlier:
        part = trusted_part(want, heard)
        if part is None:
            continue
        lo, hi = part
        before = min(b, lo + CONTEXT) - a if lo > a + _EPS else 0.0
        after = b - max(a, hi - CONTEXT) if hi < b - _EPS else 0.0
        saved = (b - a) - before - after
        if saved >= MIN_REUSE and (best is None or saved > best[0]):
            best = (saved, heard, part)
    if best is None:
        return None
    _, heard, (lo, hi) = best
    before = Window(a, min(b, lo + CONTEXT), a, lo) if lo > a + _EPS else None
    after = Window(max(a, hi - CONTEXT), b, hi, b) if hi < b - _EPS else None
    return ReusePlan(heard, (lo, hi), before, after)


def _said(segments: Sequence[HeardSegment]) -> list[tuple[Said, int]]:
    return [(w, i) for i, seg in enumerate(segments) for w in seg[3]]


def _kept(segments: Sequence[HeardSegment], win: Window,
          stored: Sequence[Said]) -> list[HeardSegment]:
    """The segments of one part, cut down to the words `stitch` keeps of it."""
    pairs = _said(segments)
    keep = set(map(id, stitch([w for w, _ in pairs], win, stored)))
    out = []
    for i, seg in enumerate(segments):
        words = tuple(w for w, j in pairs if j == i and id(w) in keep)
        if words:
            text = seg[2] if len(words) == len(seg[3]) else " ".join(w[2] for w in words)
            out.append((words[0][0], words[-1][1], text, words))
    return out


def combine(plan: ReusePlan, before: Sequence[HeardSegment],
            after: Sequence[HeardSegment]) -> Heard:
    """Pure: the transcription of the wanted span from the new parts' segments (source
    timeline) and the earlier one's trusted words, every word once, in order."""
    a = plan.before.start if plan.before else plan.trusted[0]
    b = plan.after.end if plan.after else plan.trusted[1]
    first = _kept(before, plan.before, []) if plan.before else []
    # The earlier transcription as a window keeping its trusted words; at a seam with a new
    # part stitch() settles which of the two keeps a word both heard. Where it reaches past an
    # edge of the wanted span, a word that edge cuts is left to `on_clip`'s own slack, as a
    # fresh transcription's would be: a word said whole inside, timed a little past the edge,
    # was lost here (found by tests/transcribe/test_reuse.py's property test).
    lo, hi = plan.trusted
    if plan.before is None:
        lo = max(plan.base.start, lo - EDGE_SLACK)
    if plan.after is None:
        hi = min(plan.base.end, hi + EDGE_SLACK)
    base = Window(plan.base.start, plan.base.end, lo, hi)
    middle = _kept(plan.base.segments, base, [w for s in first for w in s[3]])
    stored = [w for s in [*first, *middle] for w in s[3]]
    last = _kept(after, plan.after, stored) if plan.after else []
    return Heard(a, b, tuple([*first, *middle, *last]), plan.base.language)


def heard_from(transcript: Transcript, at: float) -> tuple[HeardSegment, ...]:
    """Pure: a transcript's segments moved onto the source's timeline (its 0 at `at`)."""
    return tuple((s.start + at, s.end + at, s.text,
                  tuple((w.start + at, w.end + at, w.word) for w in s.words))
                 for s in transcript.segments)


def on_clip(heard: Heard, start: float, end: float, *, language: str, engine: str,
            model: str, slack: float = EDGE_SLACK) -> Transcript:
    """Pure: the transcript of [start, end] on the clip's timeline (0 at `start`), each word
    whose midpoint lies in the span (give or take `slack`: by default the half SEAM_SLACK by
    which two transcriptions time a word differently), its times clamped to the clip."""
    length = end - start
    segments = []
    for _s, _e, text, words in heard.segments:
        kept = tuple(Word(round(min(max(w[0] - start, 0.0), length), 3),
                          round(min(max(w[1] - start, 0.0), length), 3), w[2])
                     for w in words if start - slack <= (w[0] + w[1]) / 2 < end + slack)
        if kept:  # Whisper's own text ("40%") unless the segment lost words
            segments.append(Segment(kept[0].start, kept[-1].end, text if len(kept) == len(words)
                                    else " ".join(w.word for w in kept), kept))
    return Transcript(" ".join(s.text for s in segments), language, engine, model,
                      tuple(segments))
