"""HLS playlists whose timestamps restart (EXT-X-DISCONTINUITY): the span a section lies in (pure).

A programme stitched from parts (ad breaks, a recording resumed) restarts its timestamps at each
discontinuity. ffmpeg's HLS reader finds a section's segment by playlist time, then drops every
packet as earlier than the target (measured: "no playable media" for any section after the
first discontinuity). Players place each span at its playlist time (the EXTINFs before it) and
its frames by their timestamps from the span's first one on, and so does fetch: it reads the
span's first segment and the ones that hold the section itself.
"""

from __future__ import annotations

import dataclasses

import m3u8

from clipper.media.fmp4 import SLACK, Piece


@dataclasses.dataclass(frozen=True)
class SpanPlan:
    """What to read for a section after a discontinuity."""

    pieces: tuple[Piece, ...]
    """The span's segments holding the section, in order."""
    first: Piece
    """The span's first segment: its earliest timestamp is at `start` in playlist time."""
    start: float
    """The span's playlist time (the sum of the EXTINFs before it)."""


def span_plan(text: str, url: str, section: tuple[float, float]) -> SpanPlan | None:
    """The segments of media playlist `text` (from `url`) holding `section`, when it touches a
    span after a discontinuity; None otherwise (ffmpeg's reader handles the first span), and
    for encrypted, fragmented-MP4 or byte-range playlists. A section across a discontinuity
    (a pad reaching over it) is read from the span that holds more of it."""
    playlist = m3u8.loads(text, uri=url)
    segments = list(playlist.segments)
    if (playlist.is_variant or not any(s.discontinuity for s in segments[1:])
            or any(s.init_section is not None or s.byterange for s in segments)
            or any(k is not None and (k.method or "NONE").upper() != "NONE"
                   for k in playlist.keys)):
        return None
    starts, spans, t, span = [], [], 0.0, 0
    for i, seg in enumerate(segments):
        span += 1 if i and seg.discontinuity else 0
        starts.append(t)
        spans.append(span)
        t += float(seg.duration or 0.0)
    ends = [*starts[1:], t]
    lo, hi = section
    held: dict[int, float] = {}
    for i in range(len(segments)):
        held[spans[i]] = held.get(spans[i], 0.0) + max(0.0, min(hi, ends[i]) - max(lo, starts[i]))
    if not held or max(held.values()) <= 0.0:
        return None
    chosen_span = max(held, key=lambda k: (held[k], -k))
    if chosen_span == 0 and len([k for k, v in held.items() if v > 0]) == 1:
        return None
    chosen = [i for i in range(len(segments)) if spans[i] == chosen_span
              and ends[i] > lo - SLACK and starts[i] < hi + SLACK]
    begins = spans.index(chosen_span)
    return SpanPlan(tuple(Piece(segments[i].absolute_uri) for i in chosen),
                    Piece(segments[begins].absolute_uri), starts[begins])
