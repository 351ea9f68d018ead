"""Pure planning for transcribing a span of a source that was partly transcribed before.

When flags of one moment merge, the clip widens and is transcribed again; when volunteers flag
overlapping moments, neighbouring clips share audio. Whisper need not hear what it has already
heard: the words of earlier transcriptions of the same source are kept where they were sure of
them (away from their edges), one after another where several cover parts of the span, and only
the parts between and around them are transcribed, each hearing a little of the kept parts so
words at a seam are heard whole. Seams are joined with the live transcript's rule
(`windows.stitch`): every word kept once.
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
class Kept:
    """A part of the wanted span whose words come from an earlier transcription: those with
    their midpoint in [lo, hi)."""

    base: Heard
    lo: float
    hi: float


@dataclass(frozen=True)
class ReusePlan:
    """What to keep of earlier transcriptions, and the parts Whisper must hear, in order along
    the wanted span: `Kept` parts, and new parts as `windows.Window`s (audio [start, end] to
    transcribe, keeping words with midpoint in [keep_from, keep_to))."""

    want: Interval
    pieces: tuple[Kept | Window, ...]

    @property
    def new(self) -> tuple[Window, ...]:
        """The parts Whisper must hear, in order (`combine` takes their segments in this order)."""
        return tuple(p for p in self.pieces if isinstance(p, Window))

    @property
    def kept(self) -> tuple[Kept, ...]:
        return tuple(p for p in self.pieces if isinstance(p, Kept))


def trusted_part(want: Interval, heard: Heard) -> Interval | None:
    """Pure: the part of `want` whose words `heard` can give (None when nothing useful). An edge
    of `heard` inside `want` was cut mid-speech: its last EDGE_MARGIN seconds are not trusted;
    an edge at or beyond `want`'s is as good as a new transcription's own edge."""
    a, b = want
    lo = a if heard.start <= a + _EPS else heard.start + EDGE_MARGIN
    hi = b if heard.end >= b - _EPS else heard.end - EDGE_MARGIN
    return (lo, hi) if hi - lo > _EPS else None


def _chain(parts: Sequence[tuple[Interval, Heard]]) -> list[Kept]:
    """Pure: earlier transcriptions covering as much of the union of their trusted parts as they
    can, each taking over where the one before it ends (greedy: at each point the one reaching
    furthest; across a gap, the one starting first)."""
    chain: list[Kept] = []
    pos = -float("inf")
    while True:
        here = [(hi, -lo, i) for i, ((lo, hi), _) in enumerate(parts) if lo <= pos + _EPS < hi]
        if here:
            hi, _, i = max(here)
            chain.append(Kept(parts[i][1], pos, hi))
        else:
            later = [(lo, -hi, i) for i, ((lo, hi), _) in enumerate(parts) if lo > pos + _EPS]
            if not later:
                return chain
            lo, neg_hi, i = min(later)
            chain.append(Kept(parts[i][1], lo, -neg_hi))
        pos = chain[-1].hi


def plan_reuse(want: Interval, earlier: Sequence[Heard]) -> ReusePlan | None:
    """Pure: the earlier transcriptions to keep words from (several where neighbouring clips
    each heard a part: a new clip between two ready ones hears only the seam between them) and
    the parts Whisper must still hear, each with CONTEXT seconds of a kept part either side so
    a word at a seam is heard whole; None when reuse saves less than MIN_REUSE seconds (then
    transcribe `want` whole). An earlier transcription sharing less than MIN_REUSE seconds with
    `want` is not worth its seams."""
    a, b = want
    parts = [(p, h) for h in earlier
             if (p := trusted_part(want, h)) is not None and p[1] - p[0] >= MIN_REUSE]
    chain = _chain(parts)
    if not chain:
        return None
    pieces: list[Kept | Window] = []
    pos = a
    for kept in [*chain, None]:
        gap_end = kept.lo if kept else b
        if gap_end > pos + _EPS:  # a part no earlier transcription is sure of: heard anew
            pieces.append(Window(max(a, pos - CONTEXT) if pieces else a,
                                 min(b, gap_end + CONTEXT) if kept else b, pos, gap_end))
        if kept:
            pieces.append(kept)
            pos = kept.hi
    plan = ReusePlan(want, tuple(pieces))
    heard_anew = sum(w.end - w.start for w in plan.new)
    return plan if (b - a) - heard_anew >= MIN_REUSE else None


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


def combine(plan: ReusePlan, parts: Sequence[Sequence[HeardSegment]]) -> Heard:
    """Pure: the transcription of the wanted span from the new parts' segments (source
    timeline; one sequence per `plan.new` window, in order) and the earlier ones' trusted words,
    every word once, in order."""
    if len(parts) != len(plan.new):
        raise ValueError(f"{len(parts)} parts heard for {len(plan.new)} planned")
    a, b = plan.want
    heard = iter(parts)
    out: list[HeardSegment] = []
    for i, piece in enumerate(plan.pieces):
        if isinstance(piece, Window):
            segments, win = next(heard), piece
        else:
            # An earlier transcription as a window keeping its trusted words; at a seam with
            # the part before it stitch() settles which of the two keeps a word both heard.
            # Where it reaches past an edge of the wanted span, a word that edge cuts is left
            # to `on_clip`'s own slack, as a fresh transcription's would be: a word said whole
            # inside, timed a little past the edge, was lost here (found by
            # tests/transcribe/test_reuse.py's property test).
            lo, hi = piece.lo, piece.hi
            if i == 0:
                lo = max(piece.base.start, lo - EDGE_SLACK)
            if i == len(plan.pieces) - 1:
                hi = min(piece.base.end, hi + EDGE_SLACK)
            segments, win = piece.base.segments, Window(piece.base.start, piece.base.end, lo, hi)
        out += _kept(segments, win, [w for s in out for w in s[3]])
    return Heard(a, b, tuple(out), plan.kept[0].base.language)


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
