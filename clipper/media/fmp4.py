"""Fragmented MP4 in HLS (EXT-X-MAP), pure: which pieces of a playlist hold a section, and the
first PTS of a live segment stored with its init segment.

ffmpeg 5.1's HLS demuxer reads no packet of such a playlist after `-ss` (measured: every section
came out empty), so fetch reads these pieces itself: the init segment, the segments that cover
the section, and the first segment, whose earliest timestamp (as that demuxer reads it) is the
programme's time 0.
"""

from __future__ import annotations

import dataclasses

import m3u8

from clipper.media.mp4box import boxes, child

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


# ---------------------------------------------------------------- a stored live segment

_PTS_HZ = 90_000
_PTS_WRAP = 1 << 33


def looks_like_fmp4(data: bytes) -> bool:
    """Whether `data` begins as an MP4 (an fMP4 segment stored with its init segment does)."""
    return data[4:8] in (b"ftyp", b"moov", b"styp", b"moof")


def _movie_timescale(data: bytes, moov: tuple[int, int]) -> int:
    mvhd = child(data, *moov, "mvhd")
    if mvhd is None:
        return 1000
    wide = 8 if data[mvhd[0]] == 1 else 0
    return int.from_bytes(data[mvhd[0] + 12 + wide:mvhd[0] + 16 + wide], "big") or 1000


def _edit_shift(data: bytes, trak: tuple[int, int], scale: int, movie_scale: int) -> int:
    """Ticks (track timescale) the track's edit list moves its media by: empty edits first
    delay it, the first real edit's media time starts it later (ffmpeg writes both: the
    B-frame delay and the sound's lead over the picture)."""
    edts = child(data, *trak, "edts")
    elst = child(data, *edts, "elst") if edts else None
    if elst is None:
        return 0
    a = elst[0]
    wide = data[a] == 1
    size = 20 if wide else 12
    shift = 0
    for i in range(int.from_bytes(data[a + 4:a + 8], "big")):
        at = a + 8 + i * size
        half = 8 if wide else 4
        duration = int.from_bytes(data[at:at + half], "big")
        media_time = int.from_bytes(data[at + half:at + 2 * half], "big", signed=True)
        if media_time == -1:
            shift += round(duration * scale / movie_scale)
        else:
            return shift - media_time
    return shift


def _timescales(data: bytes) -> dict[int, tuple[int, int]]:
    """track_ID -> (its media timescale, its edit list's shift), from the init segment."""
    tracks: dict[int, tuple[int, int]] = {}
    for kind, a, b in boxes(data):
        if kind != "moov":
            continue
        movie_scale = _movie_timescale(data, (a, b))
        for trak_kind, ta, tb in boxes(data, a, b):
            tkhd, mdia = child(data, ta, tb, "tkhd"), child(data, ta, tb, "mdia")
            mdhd = child(data, *mdia, "mdhd") if mdia else None
            if trak_kind != "trak" or tkhd is None or mdhd is None:
                continue
            wide = 8 if data[tkhd[0]] == 1 else 0
            track = int.from_bytes(data[tkhd[0] + 12 + wide:tkhd[0] + 16 + wide], "big")
            wide = 8 if data[mdhd[0]] == 1 else 0
            scale = int.from_bytes(data[mdhd[0] + 12 + wide:mdhd[0] + 16 + wide], "big")
            tracks[track] = (scale, _edit_shift(data, (ta, tb), scale, movie_scale))
    return tracks


def _first_composition_offset(data: bytes, trun: tuple[int, int]) -> int:
    """The first sample's composition offset in a trun (0 when it carries none)."""
    a = trun[0]
    version, flags = data[a], int.from_bytes(data[a + 1:a + 4], "big")
    if not flags & 0x800:
        return 0
    pos = a + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    pos += sum(4 for bit in (0x100, 0x200, 0x400) if flags & bit)
    return int.from_bytes(data[pos:pos + 4], "big", signed=version == 1)


def first_pts(data: bytes) -> int | None:
    """The earliest presentation time (90 kHz, wrapped at 2^33, as MPEG-TS counts) of the
    first fragment's tracks in `data`: an init segment followed by a media segment. None when
    it cannot be read."""
    scales = _timescales(data)
    found = []
    for kind, a, b in boxes(data):
        if kind != "moof":
            continue
        for traf_kind, ta, tb in boxes(data, a, b):
            tfhd, tfdt = child(data, ta, tb, "tfhd"), child(data, ta, tb, "tfdt")
            if traf_kind != "traf" or tfhd is None or tfdt is None:
                continue
            scale, shift = scales.get(int.from_bytes(data[tfhd[0] + 4:tfhd[0] + 8], "big"),
                                      (0, 0))
            wide = data[tfdt[0]] == 1
            base = int.from_bytes(data[tfdt[0] + 4:tfdt[0] + (12 if wide else 8)], "big")
            trun = child(data, ta, tb, "trun")
            if scale:
                time = base + (_first_composition_offset(data, trun) if trun else 0) + shift
                found.append(round(time * _PTS_HZ / scale))
        break  # the first fragment's
    return min(found) % _PTS_WRAP if found else None
