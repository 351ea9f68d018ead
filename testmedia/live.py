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
from collections.abc import Callable
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
                    size: str = "320x180", rate: int = 25, video_bitrate: str = "") -> LiveMedia:
    """Generate (or reuse from `cache`) the loop: `seconds` long, in `seg_seconds` segments,
    one keyframe per segment, the frame number drawn on each frame when fonts allow."""
    params = json.dumps([_MEDIA_VERSION, seconds, seg_seconds, size, rate, video_bitrate])
    folder = (cache or default_cache()) / hashlib.sha256(params.encode()).hexdigest()[:12]
    if not (folder / "media.json").exists():
        _generate(folder, seconds, seg_seconds, size, rate, video_bitrate)
    info = json.loads((folder / "media.json").read_text())
    segments = tuple((folder / name).read_bytes() for name in info["segments"])
    return LiveMedia(folder, segments, tuple(_first_pts(s) for s in segments), seg_seconds, rate,
                     info["video_pts"])


def _generate(folder: Path, seconds: float, seg_seconds: float, size: str, rate: int,
              video_bitrate: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".gen-"))
    try:
        gop = round(seg_seconds * rate)
        src = f"testsrc2=size={size}:rate={rate}:duration={seconds}"
        label = ",drawtext=text='%{frame_num}':x=8:y=8:fontsize=h/8:fontcolor=white:box=1"
        rate_args = (["-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
                     if video_bitrate else [])
        for video in (src + label, src):  # drawtext needs a font; without one, plain testsrc2
            args = [*FFMPEG, "-f", "lavfi", "-i", video, "-f", "lavfi", "-i",
                    f"sine=frequency=440:beep_factor=4:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *rate_args,
                    "-c:a", "aac", "-ar", "48000", "-ac", "1", "-t", str(seconds),
                    "-f", "hls", "-hls_time", str(seg_seconds), "-hls_playlist_type", "vod",
                    "-hls_segment_filename", str(work / "seg%04d.ts"), str(work / "index.m3u8")]
            if subprocess.run(args, capture_output=True, check=False).returncode == 0:
                break
        else:
            raise RuntimeError(f"ffmpeg could not make live test media: {' '.join(args)}")
        names = sorted(p.name for p in work.glob("seg*.ts"))
        with (work / "source.ts").open("wb") as out:
            for name in names:
                out.write((work / name).read_bytes())
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                "stream=start_pts", "-of", "csv=p=0", str(work / names[0])],
                               capture_output=True, text=True, check=True)
        info = {"segments": names, "video_pts": int(probe.stdout.split()[0])}
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
                 pts_start: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.name, self.media, self.pdt, self.window, self.clock = name, media, pdt, window, clock
        self.lock = threading.Lock()
        self.runs = [_Run(clock() - window * media.seg_seconds,
                          media.first_pts if pts_start is None else pts_start % PTS_WRAP)]
        self.aired: list[Aired] = []
        self.holes: list[tuple[float, float, str]] = []  # (from, to, mode)
        self.requests = 0
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
            body = (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=320x180\n"
                    b"index.m3u8\n")
            return self._send(200, body, "application/vnd.apple.mpegurl")
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

    def add(self, name: str, **options: object) -> LiveChannel:
        """A new channel (`pdt`, `window`, `pts_start`, `clock`: see LiveChannel)."""
        channel = LiveChannel(name, self.media, **options)  # type: ignore[arg-type]
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
