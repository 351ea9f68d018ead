"""Live-source parsing: HLS media playlists, MPEG-TS timestamps and chopping a TS byte stream.

Pure helpers for the channel recorder (no network, no subprocess; cheap enough for dozens of
channels per core):

- `parse_playlist` reads a live HLS playlist with the `m3u8` package: each segment's absolute
  URI, media sequence number, duration, EXT-X-PROGRAM-DATE-TIME (Unix seconds, or None),
  whether an EXT-X-DISCONTINUITY precedes it and its init segment (EXT-X-MAP: fragmented MP4);
  a master playlist yields its variants instead.
- `first_pts` reads the earliest presentation timestamp (90 kHz) of a TS segment's audio and
  video streams from its first packets: what `ffprobe` reports as the format's start_time.
- `pts_delta` subtracts two timestamps across the 33-bit wrap.
- `TsChopper` cuts a continuous MPEG-TS stream (a tuner box's HTTP stream) into segments of
  about `target` seconds at 188-byte packet boundaries, each starting at a video keyframe and
  with the PAT and PMT in front, so that every piece plays (and concatenates) on its own.
"""

from __future__ import annotations

import bisect
from calendar import timegm
from dataclasses import dataclass, field
from datetime import datetime

import m3u8

PTS_HZ = 90_000
"""MPEG timestamps tick at 90 kHz."""

PTS_WRAP = 1 << 33
"""PTS and DTS are 33-bit counters: they wrap about every 26.5 hours."""

TS_PACKET = 188
SYNC_BYTE = 0x47

_HALF_WRAP = 1 << 32
_PAT_PID = 0
_NO_HEADER_STREAMS = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
# PMT stream_type values (ISO 13818-1, ATSC, DVB) whose PES carry pictures or sound.
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x1F, 0x20, 0x24, 0x33, 0x42, 0xD1,
                                0xEA})
AUDIO_STREAM_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x1C, 0x2D, 0x81, 0x82, 0x83, 0x84,
                                0x85, 0x86, 0x87})
_AUDIO_DESCRIPTORS = frozenset({0x6A, 0x7A, 0x7B, 0x7C})  # AC-3, E-AC-3, DTS, AAC in type 0x06
_EARLY_CUT = 0.9  # a chopped segment may end at a keyframe from 90% of its target length
_VIDEO_PES_SAMPLES = 3  # open-GOP leading B-frames may precede the first keyframe in time
_MAX_SPAN = 60.0  # a chopped piece's media longer than this (s) is a timestamp jump, not a burst


# ---------------------------------------------------------------- timestamps

def pts_delta(a: int, b: int) -> int:
    """`b - a` in 90 kHz ticks, across the 33-bit wrap (the shorter way round).

    >>> pts_delta(PTS_WRAP - 90_000, 90_000)
    180000
    """
    d = (b - a) % PTS_WRAP
    return d - PTS_WRAP if d >= _HALF_WRAP else d


def _read_timestamp(buf: bytes | bytearray, i: int) -> int:
    """A 33-bit PTS/DTS in the 5-byte PES layout (marker bits skipped)."""
    return (((buf[i] >> 1) & 0x07) << 30 | buf[i + 1] << 22 | (buf[i + 2] >> 1) << 15
            | buf[i + 3] << 7 | buf[i + 4] >> 1)


def earliest(values: list[int]) -> int | None:
    """The earliest of some timestamps that lie within half a wrap of each other."""
    if not values:
        return None
    ref = values[0]
    return min(values, key=lambda v: pts_delta(ref, v))


@dataclass
class ArrivalClock:
    """Wall-clock times for a stream that carries none: arrival times smoothed by its PTS.

    `place(pts, arrived)` takes the earliest moment the segment can have started (when its
    first byte arrived, or for HLS when it appeared in the playlist less its duration) and
    returns its start: the stream's own timestamps carried on from an anchor, so consecutive
    segments are exactly as far apart as their media. Arrivals are never early, only late, so an
    arrival earlier than the prediction moves the anchor back; one later than `tolerance`
    (a gap the PTS does not show), a discontinuity or a missing PTS re-anchors on the arrival.
    """

    tolerance: float = 2.0
    _wall: float | None = None
    _pts: int | None = None

    def place(self, pts: int | None, arrived: float, *, discontinuity: bool = False) -> float:
        if pts is None:
            self._wall = self._pts = None
            return arrived
        if self._wall is None or self._pts is None or discontinuity:
            wall = arrived
        else:
            wall = self._wall + pts_delta(self._pts, pts) / PTS_HZ
            if arrived < wall or arrived - wall > self.tolerance:
                wall = arrived
        self._wall, self._pts = wall, pts  # a moving anchor: never half a wrap away
        return wall


# ---------------------------------------------------------------- HLS playlists

@dataclass(frozen=True)
class LiveSegment:
    """One segment of a live HLS media playlist."""

    uri: str  # absolute
    seq: int  # media sequence number
    duration: float
    program_date_time: float | None  # Unix seconds of the first sample, or None
    discontinuity: bool  # EXT-X-DISCONTINUITY before it
    init_uri: str | None = None  # absolute: its EXT-X-MAP (fragmented MP4), stored in front


@dataclass(frozen=True)
class LivePlaylist:
    """A parsed playlist: a media playlist's segments, or a master playlist's variants."""

    segments: tuple[LiveSegment, ...] = ()
    media_sequence: int = 0
    target_duration: float = 0.0
    endlist: bool = False
    variants: tuple[tuple[int, str], ...] = ()  # (bandwidth, absolute URI), best first

    @property
    def is_master(self) -> bool:
        return bool(self.variants)

    @property
    def has_program_date_time(self) -> bool:
        return any(s.program_date_time is not None for s in self.segments)

    def pick_variant(self) -> str | None:
        """The variant to record: the highest bandwidth (broadcast quality is the point)."""
        return self.variants[0][1] if self.variants else None


def _unix(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # a date-time without zone: HLS servers mean UTC
        return timegm(moment.timetuple()) + moment.microsecond / 1e6
    return moment.timestamp()


def looks_like_playlist(head: bytes) -> bool:
    """Whether a response body starting with `head` is an HLS playlist."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U")


def parse_playlist(text: str, url: str) -> LivePlaylist:
    """Parse an HLS playlist fetched from `url` (relative URIs resolve against it).

    Program-date-times given on one segment carry forward to the next ones by their durations
    (as the HLS spec says); segments before the first one have none.
    """
    pl = m3u8.loads(text, uri=url)
    if pl.is_variant:
        variants = sorted(((v.stream_info.bandwidth or 0, v.absolute_uri) for v in pl.playlists),
                          key=lambda v: -v[0])
        return LivePlaylist(variants=tuple(variants))
    base_seq = pl.media_sequence or 0
    segments = tuple(
        LiveSegment(uri=s.absolute_uri, seq=base_seq + i, duration=float(s.duration or 0.0),
                    program_date_time=_unix(s.current_program_date_time),
                    discontinuity=bool(s.discontinuity),
                    init_uri=s.init_section.absolute_uri if s.init_section else None)
        for i, s in enumerate(pl.segments))
    return LivePlaylist(segments=segments, media_sequence=base_seq,
                        target_duration=float(pl.target_duration or 0.0),
                        endlist=bool(pl.is_endlist))


# ---------------------------------------------------------------- MPEG-TS packets

def looks_like_ts(head: bytes) -> bool:
    """Whether `head` (the first bytes of a body) is MPEG-TS: sync bytes 188 bytes apart."""
    if not head or head[0] != SYNC_BYTE:
        return False
    return all(head[i] == SYNC_BYTE for i in range(TS_PACKET, min(len(head), 4 * TS_PACKET),
                                                     TS_PACKET))


def sync_offset(data: bytes | bytearray, start: int = 0) -> int | None:
    """The first offset from `start` where three sync bytes stand 188 bytes apart (or, near the
    end of `data`, as many as fit), i.e. where whole packets begin; None if there is none."""
    pos = data.find(SYNC_BYTE, start)
    while pos >= 0:
        ahead = range(pos + TS_PACKET, min(len(data), pos + 3 * TS_PACKET), TS_PACKET)
        if all(data[i] == SYNC_BYTE for i in ahead) and pos + TS_PACKET <= len(data):
            return pos
        pos = data.find(SYNC_BYTE, pos + 1)
    return None


def _pid(buf: bytes | bytearray, off: int) -> int:
    return ((buf[off + 1] & 0x1F) << 8) | buf[off + 2]


def _payload_start(buf: bytes | bytearray, off: int) -> int | None:
    """Offset of a packet's payload, or None when it carries none."""
    control = (buf[off + 3] >> 4) & 0x3
    if not control & 0x1:
        return None
    start = off + 4
    if control & 0x2:
        start += 1 + buf[off + 4]
    return start if start < off + TS_PACKET else None


def _random_access(buf: bytes | bytearray, off: int) -> bool:
    """The adaptation field's random_access_indicator (set by most muxers on keyframes)."""
    return bool((buf[off + 3] & 0x20) and buf[off + 4] > 0 and buf[off + 5] & 0x40)


def _pes_pts(buf: bytes | bytearray, start: int, end: int) -> int | None:
    """The PTS of a PES header beginning at `start`, if it has one."""
    if end - start < 14 or buf[start:start + 3] != b"\x00\x00\x01":
        return None
    if buf[start + 3] in _NO_HEADER_STREAMS or not buf[start + 7] & 0x80:
        return None
    return _read_timestamp(buf, start + 9)


def _section(buf: bytes | bytearray, off: int) -> tuple[int, int] | None:
    """(start, end) of the PSI section a PUSI packet begins (end excludes the CRC)."""
    p = _payload_start(buf, off)
    if p is None:
        return None
    start = p + 1 + buf[p]  # pointer_field
    if start + 3 > off + TS_PACKET:
        return None
    length = ((buf[start + 1] & 0x0F) << 8) | buf[start + 2]
    return start, min(start + 3 + length - 4, off + TS_PACKET)


def parse_pat(buf: bytes | bytearray, off: int) -> int | None:
    """The PID of the first program's PMT, from a PAT packet at `off`."""
    sec = _section(buf, off)
    if sec is None or buf[sec[0]] != 0x00:
        return None
    for i in range(sec[0] + 8, sec[1] - 3, 4):
        if (buf[i] << 8 | buf[i + 1]) != 0:  # program 0 is the network PID
            return ((buf[i + 2] & 0x1F) << 8) | buf[i + 3]
    return None


def parse_pmt(buf: bytes | bytearray, off: int) -> dict[int, tuple[str, int]] | None:
    """{PID: ("video" | "audio" | "other", stream_type)} from a PMT packet at `off`."""
    sec = _section(buf, off)
    if sec is None or buf[sec[0]] != 0x02:
        return None
    s, end = sec
    i = s + 12 + (((buf[s + 10] & 0x0F) << 8) | buf[s + 11])
    streams: dict[int, tuple[str, int]] = {}
    while i + 5 <= end:
        kind, pid = buf[i], ((buf[i + 1] & 0x1F) << 8) | buf[i + 2]
        info_len = ((buf[i + 3] & 0x0F) << 8) | buf[i + 4]
        descriptors = _descriptor_tags(buf, i + 5, min(i + 5 + info_len, end))
        streams[pid] = (_stream_class(kind, descriptors), kind)
        i += 5 + info_len
    return streams


def _descriptor_tags(buf: bytes | bytearray, i: int, end: int) -> set[int]:
    tags = set()
    while i + 2 <= end:
        tags.add(buf[i])
        i += 2 + buf[i + 1]
    return tags


def _stream_class(stream_type: int, descriptors: set[int]) -> str:
    if stream_type in VIDEO_STREAM_TYPES:
        return "video"
    if stream_type in AUDIO_STREAM_TYPES or (stream_type == 0x06
                                             and descriptors & _AUDIO_DESCRIPTORS):
        return "audio"
    return "other"


def first_pts(data: bytes | bytearray) -> int | None:
    """The earliest PTS (90 kHz, as in the stream) of a TS segment's audio and video.

    Reads the PAT and PMT, then the first PES header of each audio stream and the first few of
    each video stream (open-GOP B-frames can be earlier than the keyframe before them), and
    stops once it has them all: usually a few hundred packets. Without a PMT, every PES with an
    audio or video stream id counts. None when no timestamp is found.
    """
    off = sync_offset(data)
    pmt_pid: int | None = None
    streams: dict[int, tuple[str, int]] | None = None
    found: dict[int, list[int]] = {}
    while off is not None and off + TS_PACKET <= len(data):
        if data[off] != SYNC_BYTE:
            off = sync_offset(data, off)
            continue
        if data[off + 1] & 0x40:  # payload_unit_start_indicator
            pid = _pid(data, off)
            if pid == _PAT_PID:
                pmt_pid = parse_pat(data, off) if pmt_pid is None else pmt_pid
            elif pid == pmt_pid and streams is None:
                streams = {p: s for p, s in (parse_pmt(data, off) or {}).items()
                           if s[0] != "other"}
            else:
                _note_pts(data, off, pid, streams, found)
                if streams and _enough(streams, found):
                    break
        off += TS_PACKET
    return earliest([v for values in found.values() for v in values])


def _note_pts(data: bytes | bytearray, off: int, pid: int,
              streams: dict[int, tuple[str, int]] | None, found: dict[int, list[int]]) -> None:
    if streams is not None and pid not in streams:
        return
    start = _payload_start(data, off)
    if start is None or start + 4 > off + TS_PACKET:
        return
    if streams is None and not 0xC0 <= data[start + 3] <= 0xEF:  # no PMT: audio/video ids
        return
    pts = _pes_pts(data, start, off + TS_PACKET)
    if pts is not None:
        found.setdefault(pid, []).append(pts)


def _enough(streams: dict[int, tuple[str, int]], found: dict[int, list[int]]) -> bool:
    return all(len(found.get(pid, ())) >= (_VIDEO_PES_SAMPLES if kind == "video" else 1)
               for pid, (kind, _) in streams.items())


_H264_KEY_NALS = frozenset({5, 7})  # IDR slice, sequence parameter set
_HEVC_KEY_NALS = frozenset(range(16, 24)) | {32, 33}  # IRAP slices, VPS, SPS


def _keyframe_start(buf: bytes | bytearray, off: int, stream_type: int) -> bool:
    """Whether a video PUSI packet starts a keyframe: the random-access flag, or a key NAL
    unit / MPEG-2 sequence header in its first bytes (for muxers that do not set the flag)."""
    if _random_access(buf, off):
        return True
    start = _payload_start(buf, off)
    if start is None:
        return False
    payload = bytes(buf[start:off + TS_PACKET])
    i = payload.find(b"\x00\x00\x01", 9)  # after the PES header's own start code
    while 0 <= i < len(payload) - 4:
        unit = payload[i + 3]
        if stream_type == 0x1B and unit & 0x1F in _H264_KEY_NALS:
            return True
        if stream_type == 0x24 and (unit >> 1) & 0x3F in _HEVC_KEY_NALS:
            return True
        if stream_type in (0x01, 0x02) and unit == 0xB3:
            return True
        i = payload.find(b"\x00\x00\x01", i + 3)
    return False


# ---------------------------------------------------------------- chopping a TS stream

@dataclass(frozen=True)
class ChoppedSegment:
    """A piece of a TS stream: its bytes and when its first packet arrived (clock seconds)."""

    data: bytes
    arrived_at: float
    # Arrival time of the next piece minus this one's (for the last: so far), or its video's
    # length by its timestamps when that is longer (a burst; arrived_at is then moved back).
    duration: float


@dataclass
class TsChopper:
    """Cuts a continuous MPEG-TS byte stream into ~`target`-second segments.

    `feed(chunk, now)` with each chunk read (any size; `now` = when it arrived) returns the
    segments completed by it. A cut falls at a packet that starts a video keyframe once the
    segment has lasted `target` seconds (by arrival); with no keyframe after 2 x target, at
    the next start of any audio/video PES; with no PMT known, at a packet boundary. Bytes
    before the stream's first keyframe are dropped (they cannot be decoded), and the PAT and
    PMT are put in front of each segment that does not start with them. `flush(now)` returns
    what is left when the stream ends.
    """

    target: float = 4.0
    _buf: bytearray = field(default_factory=bytearray)
    _tail: bytes = b""
    _marks: list[tuple[int, float]] = field(default_factory=list)  # (offset in _buf, arrival)
    _scan: int = 0
    _leading: bool = True
    _pat: bytes = b""
    _pmt: bytes = b""
    _pmt_pid: int | None = None
    _streams: dict[int, tuple[str, int]] = field(default_factory=dict)
    _video: tuple[int, int] | None = None  # (PID, stream_type) of the first video stream

    def feed(self, chunk: bytes, now: float) -> list[ChoppedSegment]:
        """Add bytes that arrived at `now`; return the segments they completed."""
        packets = self._align(self._tail + chunk)
        if packets:
            self._marks.append((len(self._buf), now))
            self._buf += packets
            if not self._streams:
                self._learn_psi(len(self._buf) - len(packets))
        out: list[ChoppedSegment] = []
        while (seg := self._next_cut(now)) is not None:
            if seg.data:
                out.append(seg)
        return out

    def flush(self, now: float) -> ChoppedSegment | None:
        """The partial segment left when the stream ended (None if nothing decodable)."""
        if self._leading or not self._buf:
            self._reset()
            return None
        start = self._marks[0][1]
        seg = ChoppedSegment(self._with_psi(self._buf, len(self._buf)), start,
                             max(0.0, now - start))
        self._reset()
        return seg

    def _reset(self) -> None:
        self._buf, self._tail, self._marks = bytearray(), b"", []
        self._scan, self._leading = 0, True

    def _align(self, data: bytes) -> bytes:
        """Whole packets from `data` (keeping a partial one for later); skips garbage."""
        start = 0 if data[:1] == bytes([SYNC_BYTE]) else sync_offset(data)
        if start is None:
            self._tail = data[-(TS_PACKET - 1):]
            return b""
        data = data[start:]
        whole = len(data) - len(data) % TS_PACKET
        self._tail = data[whole:]
        data = data[:whole]
        if data[::TS_PACKET].count(SYNC_BYTE) != whole // TS_PACKET:  # lost sync mid-chunk
            return self._resync(data)
        return data

    def _resync(self, data: bytes) -> bytes:
        good = bytearray()
        off: int | None = 0
        while off is not None and off + TS_PACKET <= len(data):
            if data[off] == SYNC_BYTE:
                good += data[off:off + TS_PACKET]
                off += TS_PACKET
            else:
                off = sync_offset(data, off)
        return bytes(good)

    def _learn_psi(self, start: int) -> None:
        buf = self._buf
        for off in range(start, len(buf), TS_PACKET):
            if not buf[off + 1] & 0x40:
                continue
            pid = _pid(buf, off)
            if pid == _PAT_PID and self._pmt_pid is None:
                self._pmt_pid = parse_pat(buf, off)
                self._pat = bytes(buf[off:off + TS_PACKET])
            elif pid == self._pmt_pid and self._pmt_pid is not None:
                self._streams = {p: s for p, s in (parse_pmt(buf, off) or {}).items()
                                 if s[0] != "other"}
                self._pmt = bytes(buf[off:off + TS_PACKET])
                self._video = next(((p, t) for p, (k, t) in self._streams.items()
                                    if k == "video"), None)
                return

    def _arrival(self, offset: int) -> float:
        i = bisect.bisect_right(self._marks, (offset, float("inf"))) - 1
        return self._marks[max(0, i)][1]

    def _due_offset(self, at: float) -> int:
        """The first offset of data that arrived at or after `at`."""
        for off, t in self._marks:
            if t >= at:
                return off
        return len(self._buf)

    def _next_cut(self, now: float) -> ChoppedSegment | None:
        if not self._marks:
            return None
        started = self._marks[0][1]
        # Wait for a keyframe (or for the PMT that says where they are) up to twice the target.
        patient = now - started < 2 * self.target and (not self._streams or
                                                       self._video is not None)
        if self._leading:
            cut = self._find(0, keyframe=patient)
        else:
            if now - started < self.target * _EARLY_CUT:
                return None
            # A keyframe a little early is as good: keyframe spacing rarely divides exactly.
            due = self._due_offset(started + self.target * _EARLY_CUT)
            cut = self._find(max(self._scan, due, TS_PACKET), keyframe=patient)
        if cut is None:
            return None
        return self._split(cut)

    def _find(self, begin: int, *, keyframe: bool) -> int | None:
        """The offset of the first packet from `begin` where a segment may start."""
        buf, video = self._buf, self._video
        if not self._streams:
            if keyframe or begin >= len(buf):
                return None
            return begin - begin % TS_PACKET
        for off in range(begin - begin % TS_PACKET, len(buf), TS_PACKET):
            if not buf[off + 1] & 0x40:
                continue
            pid = _pid(buf, off)
            if keyframe:
                if video is not None and pid == video[0] and _keyframe_start(buf, off, video[1]):
                    return off
            elif pid in self._streams and (video is None or pid == video[0]):
                return off
        self._scan = len(buf)
        return None

    def _split(self, cut: int) -> ChoppedSegment:
        start_time = self._marks[0][1]
        next_time = self._arrival(cut)
        span = None if self._leading else self._media_span(cut)
        data = b"" if self._leading else self._with_psi(self._buf, cut)
        del self._buf[:cut]
        self._marks = [(0, next_time)] + [(o - cut, t) for o, t in self._marks if o > cut]
        self._scan = 0
        if self._leading:
            self._leading = False
            return ChoppedSegment(b"", start_time, 0.0)
        took = max(0.0, next_time - start_time)
        if span is not None and span > took:
            # What aired before it arrived (a server's burst on connecting, or after a stall)
            # came faster than it aired: the piece lasts as long as its media, and began no
            # later than the next piece arrived less that. By arrival alone a burst piece is
            # stored short and late, its media overlapping the next piece's time.
            return ChoppedSegment(data, next_time - span, span)
        return ChoppedSegment(data, start_time, took)

    def _video_pts(self, off: int) -> int | None:
        """The PTS of the video PES the packet at `off` begins, if it begins one."""
        buf = self._buf
        if (self._video is None or off + TS_PACKET > len(buf) or not buf[off + 1] & 0x40
                or _pid(buf, off) != self._video[0]):
            return None
        start = _payload_start(buf, off)
        return None if start is None else _pes_pts(buf, start, off + TS_PACKET)

    def _media_span(self, cut: int) -> float | None:
        """Seconds of video from the piece's first packet to `cut`, by their timestamps (both
        keyframes, or video PES starts); None when unknown or not believable (a timestamp
        jump: negative, or longer than any burst)."""
        first, last = self._video_pts(0), self._video_pts(cut)
        if first is None or last is None:
            return None
        span = pts_delta(first, last) / PTS_HZ
        return span if 0 < span <= _MAX_SPAN else None

    def _with_psi(self, buf: bytearray, end: int) -> bytes:
        """`buf[:end]` as bytes, the PAT and PMT in front unless it starts with them (one
        copy: a segment of a busy channel is megabytes)."""
        with memoryview(buf) as view:
            if not self._pat or not self._pmt or _pid(buf, 0) == _PAT_PID:
                return bytes(view[:end])
            return b"".join((self._pat, self._pmt, view[:end]))
