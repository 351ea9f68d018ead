"""A loopback live-channel server for tests and benches: sliding HLS windows and TS streams.

`make_live_media()` generates (once, cached under the temp folder) a short loop of frame-numbered
testsrc2 video with a tone, cut into equal MPEG-TS segments. `LiveServer` serves any number of
channels made from it on 127.0.0.1, each a live timeline that never ends: segment k of a run airs
over [epoch + k*seg, epoch + (k+1)*seg), is published in the playlist once it has aired, and
carries the loop's segment k mod M with its timestamps rewritten so that PTS and PCR run on
continuously (from `pts_start`, wrapping at 2^33 if it starts near there).

Per channel (`server.channel(name)`):
- `/<name>/index.m3u8`: the sliding window (with or without EXT-X-PROGRAM-DATE-TIME);
  `/<name>/master.m3u8` a master playlist naming it; `/<name>/page.html` an HTML page with a
  <video> whose source is the playlist (for yt-dlp); `/<name>/stream.ts` a continuous HTTP
  MPEG-TS stream paced in real time (starting with the segment airing now).
- `restart()`: the source restarts (media sequence from 0, EXT-X-DISCONTINUITY, PTS reset).
- `dropout(seconds, mode)`: nothing is produced for that long; the playlist answers 503
  (mode "503") or stays unchanged (mode "stall"); TS streams are cut, or go silent.
- `drop_connections()`: cut open TS streams (a TCP reset, as a tuner box restarting does).
- `aired` (every published segment: seq, wall start, first PTS...), `wall_at(pts)` and
  `frame_at(wall)` tell tests what aired when.
- `subtitles=[(start, end, text), ...]` (seconds into the media loop, repeated every loop): the
  master playlist also names a WebVTT subtitle rendition, `/<name>/subs.m3u8`, whose segments
  `/<name>/<run>/<seq>.vtt` are aligned with the video's and hold every cue overlapping them
  (a cue across a boundary is in both). Cue times run from the run's start, with
  `X-TIMESTAMP-MAP=MPEGTS:<the run's first PTS>,LOCAL:00:00:00.000`; `subtitle_timing="segment"`
  leaves the map out and times cues from their own segment's program-date-time instead.
  `cues_between(lo, hi)` says which cues aired when.
- `make_live_media(captions="cea608" | "teletext")`: a loop carrying in-band captions (A/53
  CEA-608 in the H.264 SEI, or a DVB teletext subtitle page) at the times `CEA608_CUES` and
  `TELETEXT_CUES` give; `server.add(name, media=...)` makes a channel of it, and
  `airings(t, lo, hi)` says when loop time t aired.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PTS_HZ = 90_000
PTS_WRAP = 1 << 33
TS_PACKET = 188
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
_NO_HEADER_STREAMS = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
_MEDIA_VERSION = 2  # bump when the generated files change
_KEPT_SEGMENTS = 256  # produced segments a channel remembers (playlist window + lookups)


# ---------------------------------------------------------------- media

@dataclass(frozen=True)
class LiveMedia:
    """A loop of equal TS segments: `segments[i]` holds frames from `i * seg_seconds` on; its
    earliest PTS (audio may lead video a little) is `seg_pts[i]`; the loop's first video frame
    has PTS `video_pts`, its earliest sample `first_pts`."""

    folder: Path
    segments: tuple[bytes, ...]
    seg_pts: tuple[int, ...]
    seg_seconds: float
    rate: int
    video_pts: int

    @property
    def first_pts(self) -> int:
        return self.seg_pts[0]

    @property
    def source(self) -> Path:
        """The whole loop as one TS file (decode it to match frames)."""
        return self.folder / "source.ts"

    @property
    def loop_seconds(self) -> float:
        return len(self.segments) * self.seg_seconds

    @property
    def loop_frames(self) -> int:
        return round(self.loop_seconds * self.rate)


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "clipper-testmedia-live"


def make_live_media(cache: Path | None = None, *, seconds: float = 24, seg_seconds: float = 2,
                    size: str = "320x180", rate: int = 25, video_bitrate: str = "",
                    captions: str = "") -> LiveMedia:
    """Generate (or reuse from `cache`) the loop: `seconds` long, in `seg_seconds` segments,
    one keyframe per segment, the frame number drawn on each frame when fonts allow.

    `captions`: "cea608" puts `CEA608_CUES` in the video as ATSC A/53 CEA-608 (CC1) in H.264
    SEI, one byte pair per frame; "teletext" adds a DVB teletext stream (PID 0x200, subtitle
    page 888) carrying `TELETEXT_CUES`. Cue times are seconds from the loop's first frame."""
    if captions not in ("", "cea608", "teletext"):
        raise ValueError(f"unknown captions {captions!r}")
    params = json.dumps([_MEDIA_VERSION, seconds, seg_seconds, size, rate, video_bitrate]
                        + ([captions, _CAPTIONS_VERSION] if captions else []))
    folder = (cache or default_cache()) / hashlib.sha256(params.encode()).hexdigest()[:12]
    if not (folder / "media.json").exists():
        _generate(folder, seconds, seg_seconds, size, rate, video_bitrate, captions)
    info = json.loads((folder / "media.json").read_text())
    segments = tuple((folder / name).read_bytes() for name in info["segments"])
    return LiveMedia(folder, segments, tuple(_first_pts(s) for s in segments), seg_seconds, rate,
                     info["video_pts"])


def _generate(folder: Path, seconds: float, seg_seconds: float, size: str, rate: int,
              video_bitrate: str, captions: str = "") -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".gen-"))
    try:
        gop = round(seg_seconds * rate)
        src = f"testsrc2=size={size}:rate={rate}:duration={seconds}"
        label = ",drawtext=text='%{frame_num}':x=8:y=8:fontsize=h/8:fontcolor=white:box=1"
        rate_args = (["-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
                     if video_bitrate else [])
        hls = ["-f", "hls", "-hls_time", str(seg_seconds), "-hls_playlist_type", "vod",
               "-hls_segment_filename", str(work / "seg%04d.ts"), str(work / "index.m3u8")]
        # CEA-608 goes into the encoded video: encode to one TS, add the SEI, then segment.
        out = ["-f", "mpegts", str(work / "plain.ts")] if captions == "cea608" else hls
        for video in (src + label, src):  # drawtext needs a font; without one, plain testsrc2
            args = [*FFMPEG, "-f", "lavfi", "-i", video, "-f", "lavfi", "-i",
                    f"sine=frequency=440:beep_factor=4:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *rate_args,
                    "-c:a", "aac", "-ar", "48000", "-ac", "1", "-t", str(seconds), *out]
            if subprocess.run(args, capture_output=True, check=False).returncode == 0:
                break
        else:
            raise RuntimeError(f"ffmpeg could not make live test media: {' '.join(args)}")
        if captions == "cea608":
            add_cea608(work / "plain.ts", work / "cc.ts", CEA608_CUES, rate)
            subprocess.run([*FFMPEG, "-i", str(work / "cc.ts"), "-map", "0", "-c", "copy", *hls],
                           capture_output=True, check=True)
        names = sorted(p.name for p in work.glob("seg*.ts"))
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                "stream=start_pts", "-of", "csv=p=0", str(work / names[0])],
                               capture_output=True, text=True, check=True)
        info = {"segments": names, "video_pts": int(probe.stdout.split()[0])}
        if captions == "teletext":
            add_teletext([work / name for name in names], TELETEXT_CUES, info["video_pts"])
        with (work / "source.ts").open("wb") as source:
            for name in names:
                source.write((work / name).read_bytes())
        (work / "media.json").write_text(json.dumps(info))
        os.replace(work, folder)
    except OSError:
        if folder.exists():  # another process made it first
            shutil.rmtree(work, ignore_errors=True)
            return
        raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _first_pts(data: bytes) -> int:
    from clipper.media.live import first_pts

    pts = first_pts(data)
    if pts is None:
        raise RuntimeError("generated segment has no timestamps")
    return pts


# ---------------------------------------------------------------- broadcast captions

_CAPTIONS_VERSION = 1  # bump when the caption streams below change

CEA608_CUES: tuple[tuple[str, float, float, str], ...] = (
    ("popon", 2.0, 4.5, "GOOD EVENING"),
    ("rollup", 6.0, 0.0, "THE MINISTER SAID"),
    ("rollup", 9.0, 0.0, "WAITING LISTS WILL FALL"),
    ("popon", 13.0, 16.0, "FLOODING CLOSES THE ROAD"),
    ("popon", 18.0, 20.0, "RAIN CLEARS BY MORNING"),
)
"""(style, start, end, text): pop-on captions shown at `start` (EOC) and erased at `end`
(EDM); roll-up lines (RU2) whose first character comes at `start`, two characters a frame."""

TELETEXT_CUES: tuple[tuple[float, float, tuple[str, ...]], ...] = (
    (3.0, 5.5, ("GOOD EVENING FROM THE NEWSROOM",)),
    (8.0, 10.5, ("THE MINISTER SAID", "WAITING LISTS WILL FALL")),
    (14.0, 16.0, ("FLOODING CLOSES THE ROAD",)),
)
"""(shown, erased, rows) of teletext subtitle page 888; each page is sent again a second
later, unchanged, as broadcasters repeat them."""

TELETEXT_PID, TELETEXT_PAGE = 0x200, 0x888


def _odd(b: int) -> int:
    """A 7-bit value with its odd-parity bit set."""
    return b | 0x80 if bin(b).count("1") % 2 == 0 else b


def cea608_pairs(cues: Sequence[tuple[str, float, float, str]], rate: int,
                 frames: int) -> list[tuple[int, int]]:
    """The CC1 byte pair (parity set) of every frame of a loop of `frames` frames."""
    pad = (0x80, 0x80)
    pairs = [pad] * frames
    rcl, eoc, edm, enm, ru2, cr = ((0x14, b) for b in (0x20, 0x2F, 0x2C, 0x2E, 0x25, 0x2D))
    pac = (0x14, 0x60)  # row 15, white, column 0

    def put(frame: int, seq: Sequence[tuple[int, int]]) -> None:
        for i, (a, b) in enumerate(seq):
            pairs[(frame + i) % frames] = (_odd(a), _odd(b))

    for style, start, end, text in cues:
        codes = [ord(c) for c in text] + ([0] if len(text) % 2 else [])
        chars = list(zip(codes[::2], codes[1::2], strict=True))
        first = round(start * rate)
        if style == "popon":
            load = [rcl, rcl, enm, enm, pac, pac, *chars]
            put(first - len(load), load)
            put(first, [eoc, eoc])
            put(round(end * rate), [edm, edm])
        else:
            put(first - 6, [ru2, ru2, cr, cr, pac, pac])
            put(first, chars)
    return pairs


def _escape(rbsp: bytes) -> bytes:
    """H.264 emulation prevention: 00 00 0x (x <= 3) becomes 00 00 03 0x."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def cc_sei(b1: int, b2: int) -> bytes:
    """An H.264 SEI NAL unit (with its start code) carrying one CEA-608 field-1 byte pair as
    ATSC A/53 user data (user_data_registered_itu_t_t35, "GA94", cc_data)."""
    cc_data = bytes([0x40 | 1, 0xFF, 0xFC, b1, b2, 0xFF])  # process_cc_data, 1 triplet, marker
    body = b"\xb5\x00\x31GA94\x03" + cc_data
    return b"\x00\x00\x00\x01\x06" + _escape(bytes([4, len(body)]) + body + b"\x80")


def add_cea608(src: Path, dst: Path, cues: Sequence[tuple[str, float, float, str]],
               rate: int) -> None:
    """Copy a TS (H.264 + audio), putting each frame's caption byte pair in an SEI after its
    access unit delimiter; frames are counted in presentation order (B-frames come out of
    order), timestamps are kept."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout, aout = out.add_stream_from_template(vin), out.add_stream_from_template(ain)
        packets = [pkt for pkt in inp.demux(vin, ain) if pkt.dts is not None]
        video = [pkt for pkt in packets if pkt.stream is vin]
        first = min(pkt.pts for pkt in video)
        frames = len(video)
        pairs = cea608_pairs(cues, rate, frames)
        for pkt in packets:
            data = bytes(pkt)
            if pkt.stream is vin:
                index = round((pkt.pts - first) * pkt.time_base * rate)
                sei = cc_sei(*pairs[index % frames])
                cut = 6 if data.startswith(b"\x00\x00\x00\x01\x09") else 0  # after the AUD
                data = data[:cut] + sei + data[cut:]
            new = av.Packet(data)
            new.pts, new.dts, new.time_base = pkt.pts, pkt.dts, pkt.time_base
            new.is_keyframe = pkt.is_keyframe
            new.stream = vout if pkt.stream is vin else aout
            out.mux(new)


def _hamm84(value: int) -> int:
    return (0x15, 0x02, 0x49, 0x5E, 0x64, 0x73, 0x38, 0x2F,
            0xD0, 0xC7, 0x8C, 0x9B, 0xA1, 0xB6, 0xFD, 0xEA)[value & 0x0F]


_REVERSE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _teletext_unit(line: int, magazine: int, row: int, data: bytes) -> bytes:
    """One EBU teletext data unit (EN 300 472): id 0x03 (subtitle), 44 bytes: field and line,
    framing code, then the packet address and 40 data bytes, sent least significant bit first."""
    address = bytes([_hamm84((magazine & 7) | (row & 1) << 3), _hamm84(row >> 1)])
    body = bytes(_REVERSE[b] for b in address + data)
    return bytes([0x03, 0x2C, 0xE0 | line, 0xE4]) + body


def _teletext_header(page: int, *, erase: bool) -> bytes:
    """The 40 data bytes of a page header (packet X/0): page number, subcode 0, C4 (erase) as
    asked, C6 (subtitle) set, then 32 spaces."""
    units, tens = page & 0x0F, (page >> 4) & 0x0F
    control = [units, tens, 0, 0x08 if erase else 0, 0, 0x08, 0, 0]
    return bytes(_hamm84(v) for v in control) + bytes([_odd(0x20)] * 32)


def _teletext_row(text: str) -> bytes:
    """A row's 40 bytes: white, boxed text (start box twice, end box twice), spaces."""
    codes = [0x07, 0x0B, 0x0B, *[ord(c) for c in text[:33]], 0x0A, 0x0A]
    codes += [0x20] * (40 - len(codes))
    return bytes(_odd(c) for c in codes)


def teletext_pes(pts: int, page: int, rows: Sequence[str]) -> bytes:
    """A teletext PES (EN 300 472: header data length 0x24, a whole number of TS packets) that
    shows `rows` on `page` (none: erases it), ended by a filler header (page xFF) of the same
    magazine so decoders know the page is complete."""
    magazine = page >> 8
    units = [_teletext_unit(7, magazine, 0, _teletext_header(page, erase=True))]
    units += [_teletext_unit(8 + i, magazine, 22 - len(rows) + 1 + i, _teletext_row(text))
              for i, text in enumerate(rows)]
    units.append(_teletext_unit(8 + len(rows), magazine, 0,
                                _teletext_header((magazine << 8) | 0xFF, erase=False)))
    while (1 + 46 * len(units) + 45) % 184:
        units.append(bytes([0xFF, 0x2C]) + b"\xff" * 44)  # stuffing units
    payload = b"\x10" + b"".join(units)
    v = pts % PTS_WRAP
    stamp = bytes([0x21 | ((v >> 29) & 0x0E), (v >> 22) & 0xFF, ((v >> 14) & 0xFE) | 1,
                   (v >> 7) & 0xFF, ((v << 1) & 0xFE) | 1])
    header = b"\x84\x80\x24" + stamp + b"\xff" * 31
    length = len(header) + len(payload)
    return b"\x00\x00\x01\xbd" + bytes([length >> 8, length & 0xFF]) + header + payload


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _pmt_with_teletext(packet: bytes, pid: int, page: int) -> bytes:
    """A one-packet PMT with a teletext stream (type 6, teletext descriptor for `page`)."""
    p = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    start = p + 1 + packet[p]
    length = ((packet[start + 1] & 0x0F) << 8) | packet[start + 2]
    body = packet[start:start + 3 + length - 4]  # without the CRC
    descriptor = bytes([0x56, 5]) + b"eng" + bytes([0x02 << 3 | (page >> 8) & 7, page & 0xFF])
    entry = bytes([0x06, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, len(descriptor)]) + descriptor
    new_length = length + len(entry)
    section = bytes([body[0], (body[1] & 0xF0) | new_length >> 8, new_length & 0xFF]) + \
        body[3:] + entry
    section += _crc32_mpeg(section).to_bytes(4, "big")
    out = packet[:start] + section
    return out + b"\xff" * (TS_PACKET - len(out))


def _ts_packets(pid: int, pes: bytes, counter: int) -> tuple[bytes, int]:
    """A PES (a whole number of 184-byte payloads) in TS packets, and the next counter."""
    out = bytearray()
    for i in range(0, len(pes), 184):
        out += bytes([0x47, (0x40 if i == 0 else 0) | pid >> 8, pid & 0xFF, 0x10 | counter])
        out += pes[i:i + 184]
        counter = (counter + 1) % 16
    return bytes(out), counter


def add_teletext(paths: Sequence[Path], cues: Sequence[tuple[float, float, tuple[str, ...]]],
                 video_pts: int) -> None:
    """Add a teletext stream to consecutive TS segments (rewritten in place): each segment's PMT
    names it, and the pages of the cues falling in it follow its PMT, timed from the loop's
    first frame (`video_pts`). Segments are taken as equally long."""
    from clipper.media.live import first_pts, parse_pat

    starts = [first_pts(path.read_bytes()) or 0 for path in paths]
    events = [(start, rows) for start, _, rows in cues]
    events += [(start + 1.0, rows) for start, end, rows in cues if start + 1.0 < end]
    events += [(end, ()) for _, end, _ in cues]
    counter = 0
    for i, path in enumerate(paths):
        data = bytearray(path.read_bytes())
        lo = (starts[i] - video_pts) / PTS_HZ if i else float("-inf")
        hi = (starts[i + 1] - video_pts) / PTS_HZ if i + 1 < len(paths) else float("inf")
        mine = sorted((t, rows) for t, rows in events if lo <= t < hi)
        inserted = bytearray()
        for t, rows in mine:
            packets, counter = _ts_packets(TELETEXT_PID, teletext_pes(
                video_pts + round(t * PTS_HZ), TELETEXT_PAGE, rows), counter)
            inserted += packets
        out, done = bytearray(), False
        pmt_pid = next(parse_pat(data, off) for off in range(0, len(data), TS_PACKET)
                       if data[off + 1] & 0x40 and not (data[off + 1] & 0x1F or data[off + 2]))
        for off in range(0, len(data), TS_PACKET):
            packet = bytes(data[off:off + TS_PACKET])
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            if pid == pmt_pid and packet[1] & 0x40:
                packet = _pmt_with_teletext(packet, TELETEXT_PID, TELETEXT_PAGE)
                out += packet
                if not done:
                    out += inserted
                    done = True
                continue
            out += packet
        path.write_bytes(bytes(out))


# ---------------------------------------------------------------- rewriting timestamps

def _shift_pes_ts(buf: bytearray, i: int, ticks: int) -> None:
    v = (((buf[i] >> 1) & 0x07) << 30 | buf[i + 1] << 22 | (buf[i + 2] >> 1) << 15
         | buf[i + 3] << 7 | buf[i + 4] >> 1)
    v = (v + ticks) % PTS_WRAP
    buf[i] = (buf[i] & 0xF1) | ((v >> 29) & 0x0E)
    buf[i + 1] = (v >> 22) & 0xFF
    buf[i + 2] = ((v >> 14) & 0xFE) | 1
    buf[i + 3] = (v >> 7) & 0xFF
    buf[i + 4] = ((v << 1) & 0xFE) | 1


def _shift_pcr(buf: bytearray, i: int, ticks: int) -> None:
    base = buf[i] << 25 | buf[i + 1] << 17 | buf[i + 2] << 9 | buf[i + 3] << 1 | buf[i + 4] >> 7
    base = (base + ticks) % PTS_WRAP
    buf[i], buf[i + 1], buf[i + 2], buf[i + 3] = (base >> 25, (base >> 17) & 0xFF,
                                                  (base >> 9) & 0xFF, (base >> 1) & 0xFF)
    buf[i + 4] = ((base & 1) << 7) | (buf[i + 4] & 0x7F)


def shift_timestamps(data: bytes, ticks: int) -> bytes:
    """A TS segment with every PTS, DTS and PCR moved by `ticks` (modulo 2^33)."""
    if ticks % PTS_WRAP == 0:
        return data
    buf = bytearray(data)
    for off in range(0, len(buf) - TS_PACKET + 1, TS_PACKET):
        control = (buf[off + 3] >> 4) & 0x3
        p = off + 4
        if control & 0x2:
            if buf[off + 4] and buf[off + 5] & 0x10:
                _shift_pcr(buf, off + 6, ticks)
            p += 1 + buf[off + 4]
        if not (buf[off + 1] & 0x40 and control & 0x1) or p + 14 > off + TS_PACKET:
            continue
        if buf[p:p + 3] != b"\x00\x00\x01" or buf[p + 3] in _NO_HEADER_STREAMS:
            continue
        flags = buf[p + 7] >> 6
        if flags & 0x2:
            _shift_pes_ts(buf, p + 9, ticks)
        if flags == 0x3:
            _shift_pes_ts(buf, p + 14, ticks)
    return bytes(buf)


# ---------------------------------------------------------------- one channel

@dataclass(frozen=True)
class Aired:
    """One published segment: what a recorder should find."""

    run: int
    seq: int
    k: int  # index on the run's timeline
    wall: float  # when its earliest sample aired (its EXT-X-PROGRAM-DATE-TIME)
    pts: int  # its first PTS as served
    discontinuity: bool


@dataclass
class _Run:
    epoch: float
    pts_start: int  # PTS of the run's first sample (k = 0)
    first_seq: int = 0


class LiveChannel:
    """One live source on the server; every method is thread-safe."""

    def __init__(self, name: str, media: LiveMedia, *, pdt: bool = True, window: int = 6,
                 pts_start: int | None = None, clock: Callable[[], float] = time.time,
                 subtitles: Sequence[tuple[float, float, str]] | None = None,
                 subtitle_timing: str = "map") -> None:
        self.name, self.media, self.pdt, self.window, self.clock = name, media, pdt, window, clock
        self.subtitles = tuple(subtitles) if subtitles is not None else None
        self.subtitle_timing = subtitle_timing
        self.lock = threading.Lock()
        self.runs = [_Run(clock() - window * media.seg_seconds,
                          media.first_pts if pts_start is None else pts_start % PTS_WRAP)]
        self.aired: list[Aired] = []
        self.holes: list[tuple[float, float, str]] = []  # (from, to, mode)
        self.requests = 0
        self.subtitle_requests = 0  # of those, for the subtitle playlist and segments
        self._next_k = 0
        self._next_seq = 0
        self._disc_pending = False
        self._cache: dict[tuple[int, int], bytes] = {}
        self._streams: set[socket.socket] = set()

    # ------------------------------------------------------------ controls

    def restart(self) -> float:
        """Restart the source now: sequence from 0, a discontinuity, PTS back to the media's."""
        with self.lock:
            self._produce()
            now = self.clock()
            self.runs.append(_Run(now, self.media.first_pts))
            self._next_k = self._next_seq = 0
            self._disc_pending = True
            return now

    def dropout(self, seconds: float, mode: str = "503") -> tuple[float, float]:
        """Produce nothing for `seconds` from now; "503": the playlist and streams answer
        503 meanwhile, "stall": the playlist stays as it was and streams go silent."""
        with self.lock:
            self._produce()
            now = self.clock()
            self.holes.append((now, now + seconds, mode))
            return now, now + seconds

    def drop_connections(self) -> int:
        """Cut every open TS stream (the recorder sees a TCP reset or EOF)."""
        with self.lock:
            socks = list(self._streams)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks)

    # ------------------------------------------------------------ what aired

    def wall_at(self, pts: int, run: int = -1) -> float:
        """When the sample with presentation time `pts` aired (on run `run`, default the last)."""
        r = self.runs[run]
        d = (pts - r.pts_start) % PTS_WRAP
        d = d - PTS_WRAP if d >= PTS_WRAP // 2 else d
        return r.epoch + d / PTS_HZ

    def frame_at(self, wall: float, run: int = -1) -> int:
        """The loop frame (index into `media.source`'s frames) that was on air at `wall`.

        A time up to 2 ms before a frame counts as that frame: program-date-times carry
        milliseconds, so a time computed from one may fall that far short of the frame's."""
        r = self.runs[run]
        lead = (self.media.video_pts - self.media.first_pts) / PTS_HZ  # audio starts first
        return math.floor((wall - r.epoch - lead + 0.002) * self.media.rate) % \
            self.media.loop_frames

    def airings(self, t: float, lo: float, hi: float, run: int = -1) -> list[float]:
        """Wall times in [lo, hi) at which the loop's time `t` (seconds from its first frame,
        as the caption cues of `make_live_media` count) aired on run `run`."""
        r, loop = self.runs[run], self.media.loop_seconds
        zero = r.epoch + (self.media.video_pts - self.media.first_pts) / PTS_HZ + t
        return [zero + n * loop for n in range(math.floor((lo - zero) / loop),
                                                math.ceil((hi - zero) / loop) + 1)
                if lo <= zero + n * loop < hi]

    def published(self) -> list[Aired]:
        with self.lock:
            self._produce()
            return list(self.aired)

    # ------------------------------------------------------------ timeline

    def _in_hole(self, start: float, end: float) -> tuple[float, float, str] | None:
        return next((h for h in self.holes if start < h[1] and end > h[0]), None)

    def _shift(self, run: _Run, k: int) -> tuple[int, int]:
        """(media segment index, timestamp shift) for segment k of `run`."""
        m = len(self.media.segments)
        ticks = round(self.media.seg_seconds * PTS_HZ)
        return k % m, run.pts_start - self.media.first_pts + (k - k % m) * ticks

    def _produce(self) -> None:
        """Publish every segment that has aired by now (caller holds the lock)."""
        run, seg, now = self.runs[-1], self.media.seg_seconds, self.clock()
        while run.epoch + (self._next_k + 1) * seg <= now:
            k, self._next_k = self._next_k, self._next_k + 1
            start = run.epoch + k * seg
            if self._in_hole(start, start + seg):
                continue
            index, shift = self._shift(run, k)
            pts = (self.media.seg_pts[index] + shift) % PTS_WRAP
            wall = run.epoch + (self.media.seg_pts[index] + shift - run.pts_start) / PTS_HZ
            self.aired.append(Aired(len(self.runs) - 1, self._next_seq, k, wall, pts,
                                    self._disc_pending))
            self._next_seq += 1
            self._disc_pending = False
        del self.aired[:-_KEPT_SEGMENTS]

    def hole_now(self) -> str | None:
        now = self.clock()
        with self.lock:
            hole = next((h for h in self.holes if h[0] <= now < h[1]), None)
        return hole[2] if hole else None

    def playlist(self) -> str:
        with self.lock:
            self._produce()
            run = len(self.runs) - 1
            shown = [a for a in self.aired if a.run == run][-self.window:]
        seg = self.media.seg_seconds
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(seg)}",
                 f"#EXT-X-MEDIA-SEQUENCE:{shown[0].seq if shown else 0}"]
        for a in shown:
            if a.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if self.pdt:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(a.wall)}")
            lines += [f"#EXTINF:{seg:.3f},", f"{a.run}/{a.seq}.ts"]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ subtitles

    def master(self) -> str:
        """The master playlist: the one variant, and the subtitle rendition if there is one."""
        lines = ["#EXTM3U"]
        group = ""
        if self.subtitles is not None:
            lines.append('#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",'
                         'LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="subs.m3u8"')
            group = ',SUBTITLES="subs"'
        lines += [f"#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=320x180{group}", "index.m3u8"]
        return "\n".join(lines) + "\n"

    def subtitle_playlist(self) -> str:
        """The subtitle media playlist: the video's window, one .vtt per video segment."""
        with self.lock:
            self._produce()
            run = len(self.runs) - 1
            shown = [a for a in self.aired if a.run == run][-self.window:]
            epoch = self.runs[run].epoch
        seg = self.media.seg_seconds
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(seg)}",
                 f"#EXT-X-MEDIA-SEQUENCE:{shown[0].seq if shown else 0}"]
        for a in shown:
            if a.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if self.pdt:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(epoch + a.k * seg)}")
            lines += [f"#EXTINF:{seg:.3f},", f"{a.run}/{a.seq}.vtt"]
        return "\n".join(lines) + "\n"

    def _cues_on_run(self, lo: float, hi: float) -> list[tuple[float, float, str]]:
        """Cues overlapping [lo, hi) in seconds from the run's start (the loop repeats)."""
        loop, out = self.media.loop_seconds, []
        for n in range(math.floor(lo / loop) - 1, math.floor(hi / loop) + 1):
            for start, end, text in self.subtitles or ():
                a, b = n * loop + start, n * loop + end
                if a < hi and b > lo:
                    out.append((a, b, text))
        return sorted(out)

    def vtt(self, run: int, seq: int) -> str | None:
        """WebVTT segment `seq` of `run`: every cue overlapping its time."""
        with self.lock:
            self._produce()
            aired = next((a for a in self.aired if a.run == run and a.seq == seq), None)
            if aired is None or self.subtitles is None:
                return None
            pts_start = self.runs[run].pts_start
        seg = self.media.seg_seconds
        lo, hi = aired.k * seg, (aired.k + 1) * seg
        shift = lo if self.subtitle_timing == "segment" else 0.0
        lines = ["WEBVTT"]
        if self.subtitle_timing == "map":
            lines.append(f"X-TIMESTAMP-MAP=MPEGTS:{pts_start},LOCAL:00:00:00.000")
        lines.append("")
        for a, b, text in self._cues_on_run(lo, hi):
            lines += [f"{_vtt_time(a - shift)} --> {_vtt_time(b - shift)}", text, ""]
        return "\n".join(lines)

    def cues_between(self, lo: float, hi: float, run: int = -1) -> list[tuple[float, float, str]]:
        """(wall start, wall end, text) of the cues starting in [lo, hi) on run `run`."""
        epoch = self.runs[run].epoch
        return [(epoch + a, epoch + b, text)
                for a, b, text in self._cues_on_run(lo - epoch, hi - epoch)
                if lo <= epoch + a < hi]

    def segment(self, run: int, seq: int) -> bytes | None:
        with self.lock:
            self._produce()
            aired = next((a for a in self.aired if a.run == run and a.seq == seq), None)
            if aired is None:
                return None
            return self._bytes(self.runs[run], aired.k)

    def _bytes(self, run: _Run, k: int) -> bytes:
        index, shift = self._shift(run, k)
        key = (index, shift)
        if key not in self._cache:
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = shift_timestamps(self.media.segments[index], shift)
        return self._cache[key]

    def stream_piece(self, after: float) -> tuple[float, bytes] | None:
        """The segment of the current run airing at or after `after`: (air time, bytes)."""
        with self.lock:
            run, seg = self.runs[-1], self.media.seg_seconds
            k = max(0, math.floor((after - run.epoch) / seg + 1e-9))
            while (hole := self._in_hole(run.epoch + k * seg, run.epoch + (k + 1) * seg)):
                k = max(k + 1, math.ceil((hole[1] - run.epoch) / seg - 1e-9))
            return run.epoch + k * seg, self._bytes(run, k)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self.lock:
            (self._streams.add if add else self._streams.discard)(sock)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _vtt_time(t: float) -> str:
    ms = max(0, round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# ---------------------------------------------------------------- the server

class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = self.path.split("?")[0].strip("/").split("/")
        channel = self.server.live.channels.get(parts[0])
        if channel is None:
            return self._send(404, b"no such channel\n", "text/plain")
        channel.requests += 1
        rest = "/".join(parts[1:])
        if channel.hole_now() == "503":
            return self._send(503, b"source down\n", "text/plain")
        if rest == "index.m3u8":
            return self._send(200, channel.playlist().encode(), "application/vnd.apple.mpegurl")
        if rest == "master.m3u8":
            return self._send(200, channel.master().encode(), "application/vnd.apple.mpegurl")
        if rest == "subs.m3u8" or rest.endswith(".vtt"):
            channel.subtitle_requests += 1
        if rest == "subs.m3u8" and channel.subtitles is not None:
            return self._send(200, channel.subtitle_playlist().encode(),
                              "application/vnd.apple.mpegurl")
        if rest == "page.html":
            body = (f"<!doctype html><html><head><title>{channel.name} live</title></head><body>"
                    f"<video controls><source src=\"index.m3u8\" "
                    f"type=\"application/x-mpegURL\"></video></body></html>").encode()
            return self._send(200, body, "text/html; charset=utf-8")
        if rest == "stream.ts":
            return self._stream(channel)
        if len(parts) == 3 and parts[2].endswith(".ts"):
            data = channel.segment(int(parts[1]), int(parts[2][:-3]))
            if data is not None:
                return self._send(200, data, "video/mp2t")
        if len(parts) == 3 and parts[2].endswith(".vtt"):
            text = channel.vtt(int(parts[1]), int(parts[2][:-4]))
            if text is not None:
                return self._send(200, text.encode(), "text/vtt; charset=utf-8")
        return self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, channel: LiveChannel) -> None:
        """Send the channel as one endless TS body, each segment spread over its air time."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Connection", "close")
        self.end_headers()
        channel.track(self.connection, True)
        try:
            self._pace(channel)
        except OSError:
            pass  # the client left, or drop_connections() cut it
        finally:
            channel.track(self.connection, False)

    def _pace(self, channel: LiveChannel) -> None:
        seg, after, stop = channel.media.seg_seconds, channel.clock(), self.server.live.stopping
        while not stop.is_set():
            if channel.hole_now() == "503":
                return
            piece = channel.stream_piece(after)
            if piece is None:
                return
            start, data = piece
            parts = 10
            size = math.ceil(len(data) / TS_PACKET / parts) * TS_PACKET
            for i in range(parts):
                wait = start + i * seg / parts - channel.clock()
                if wait > 0 and stop.wait(wait):
                    return
                if chunk := data[i * size:(i + 1) * size]:
                    self.wfile.write(chunk)
            self.wfile.flush()
            after = start + seg + 1e-6


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        super().__init__((live.host, 0), _Handler)


@dataclass
class LiveServer:
    """Channels made from one `LiveMedia`, served on loopback: `with LiveServer(media) as s:`."""

    media: LiveMedia
    host: str = "127.0.0.1"
    channels: dict[str, LiveChannel] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def add(self, name: str, *, media: LiveMedia | None = None,
            **options: object) -> LiveChannel:
        """A new channel (`pdt`, `window`, `pts_start`, `clock`, `subtitles`,
        `subtitle_timing`: see LiveChannel), made from the server's media or `media` (one with
        captions in it, say)."""
        channel = LiveChannel(name, media or self.media, **options)  # type: ignore[arg-type]
        self.channels[name] = channel
        return channel

    def start(self) -> LiveServer:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        daemon=True, name="live-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for channel in self.channels.values():
            channel.drop_connections()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def url(self, name: str, what: str = "index.m3u8") -> str:
        """`what`: index.m3u8 (default), master.m3u8, stream.ts or page.html."""
        return f"{self.base_url}/{name}/{what}"
