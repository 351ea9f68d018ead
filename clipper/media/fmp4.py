"""HLS playlists of fragmented-MP4 segments (EXT-X-MAP): which pieces hold a section (pure).

ffmpeg 5.1's HLS demuxer reads no packet of such a playlist after `-ss` (FACTS.md: the section
came out empty), so fetch reads these pieces itself: the init segment, the segments that cover
the section, and the first segment, whose first frame is the programme's time 0.
"""

from __future__ import annotations

import dataclasses

import m3u8

SLACK = 0.5
"""Seconds of EXTINF rounding allowed for: a segment is taken if it may hold any of the
section (or the keyframe the section's first frame needs) within this much."""


@dataclasses.dataclass(frozen=True)
class Piece:
    """One GET: a URL and, for EXT-X-BYTERANGE, its byte range ("bytes=a-b")."""

    url: str
    byte_range: str | None = None


@dataclasses.dataclass(frozen=True)
class FragmentPlan:
    """What to read of an fMP4 playlist for one section."""

    init: Piece
    first: Piece
    """The playlist's first segment: its earliest frame is the programme's time 0."""
    pieces: tuple[Piece, ...]
    """The segments that cover the section, in order (`first` among them when it does)."""
    duration: float
    """The playlist's length by its EXTINFs."""
    from_start: bool
    """`pieces` begin with the playlist's first segment: nothing earlier to widen to."""
    to_end: bool
    """`pieces` end with its last segment."""


def _ranges(segments: list[m3u8.Segment]) -> list[str | None]:
    """Each segment's "bytes=a-b" (None when it has no EXT-X-BYTERANGE). A range without an
    offset starts where the one before it in the same resource ended (RFC 8216, 4.3.2.2)."""
    ends: dict[str, int] = {}
    out: list[str | None] = []
    for seg in segments:
        out.append(_range_of(seg.byterange, seg.absolute_uri, ends))
    return out


def _range_of(byterange: str | None, url: str, ends: dict[str, int]) -> str | None:
    if not byterange:
        return None
    length, _, offset = str(byterange).partition("@")
    start = int(offset) if offset else ends.get(url, 0)
    ends[url] = start + int(length)
    return f"bytes={start}-{start + int(length) - 1}"


def fragment_plan(text: str, url: str, section: tuple[float, float],
                  widen: int = 0) -> FragmentPlan | None:
    """The pieces of media playlist `text` (fetched from `url`) that hold `section` (seconds
    from the programme's start), `widen` more segments on each side, or None when the playlist
    is not one this reads: not fragmented MP4, a master playlist, encrypted, or with more than
    one init segment. (EXTINFs may be rounded, even to whole seconds: the caller checks what
    the pieces cover and widens.)"""
    playlist = m3u8.loads(text, uri=url)
    segments = list(playlist.segments)
    inits = {(s.init_section.absolute_uri, s.init_section.byterange)
             for s in segments if s.init_section is not None}
    if (playlist.is_variant or not segments or len(inits) != 1
            or any(s.init_section is None for s in segments)
            or any(k is not None and (k.method or "NONE").upper() != "NONE"
                   for k in playlist.keys)):
        return None
    init_url, init_range = next(iter(inits))
    ranges = _ranges(segments)
    starts, t = [], 0.0
    for seg in segments:
        starts.append(t)
        t += float(seg.duration or 0.0)
    lo, hi = section
    first = max([i for i, s in enumerate(starts) if s <= lo - SLACK] or [0])
    last = max([i for i, s in enumerate(starts) if s < hi + SLACK] or [0])
    span = range(max(0, first - widen), min(len(segments), last + 1 + widen))
    return FragmentPlan(Piece(init_url, _range_of(init_range, init_url, {})),
                        Piece(segments[0].absolute_uri, ranges[0]),
                        tuple(Piece(segments[i].absolute_uri, ranges[i]) for i in span), t,
                        span.start == 0, span.stop == len(segments))
