"""The channel recorder: a thread per live channel storing its segments unchanged, indexed by time.

One process (`clipper record`, or the `recorder` child of `clipper up`) records every channel
that is not paused. It re-reads the channels table every few seconds, so channels added, paused,
resumed or removed take effect while it runs; one stop event, set by SIGTERM/SIGINT, ends every
loop. Each channel gets a thread (the work is waiting on the network; bytes are stored as they
come, never re-encoded), and every request goes through the process's one GuardProxy.

What a channel's URL is decides how it is recorded:
- an HLS playlist: polled about every half target duration; new segments are fetched by media
  sequence (at first only the newest few: the live edge) and stored unchanged (fragmented MP4
  with its init segment in front, as `.mp4`). A sequence that goes backwards, an
  EXT-X-DISCONTINUITY or a PTS jump marks the segment `discontinuity`;
- an HTTP MPEG-TS stream (Content-Type video/mp2t, sync bytes, or a .ts URL): read continuously
  and cut into ~4 s segments at keyframes (`TsChopper`); reconnected when it drops;
- anything else: a page yt-dlp resolves to a live stream; the manifest it names is recorded,
  and resolved again when it fails (403/404/410) or its `expire=` time comes.

Clock: a playlist with EXT-X-PROGRAM-DATE-TIME gives each segment's wall-clock start (channel
clock "program-date-time"); otherwise arrival times smoothed by the stream's PTS (`ArrivalClock`,
clock "arrival"). A segment's file is written under a temporary name and renamed into
`media_dir/channels/<name>/<YYYY-MM-DD>/<HH>/<seq>-<wall ms>.ts` before its row is inserted;
a segment already indexed is never fetched or stored twice (a restarted recorder resumes after
the newest stored sequence). Errors back off (0.5 s doubling to 5 s) and never end a channel's
thread; a channel with nothing stored for `stall_seconds` becomes "stalled" and the webhook is
told once. Retention (`clipper.pipeline.retention`) runs in its own thread every 30 s.

Captions (a channel whose `transcribe` is "captions" or "auto"): when the master playlist names a
WebVTT subtitle rendition, its media playlist is polled with the video's (after each round of
video segments, so the newest video timestamps place the cues), each new .vtt segment is
fetched through the guard, and its new cues are stored at once as `LiveSegment` rows (source
"captions"; `clipper.media.captions_live` parses, places and de-duplicates them); the channel's
`transcript_source` says "captions", and `on_caption_segments(channel_id, ids)` is called with
the new rows. Without a subtitle rendition the stored TS segments are read for CEA-608 and
teletext subtitles; "auto" settles on "whisper" when none showed in the first
`AUTO_DETECT_SECONDS`. `LiveAsrState` (source "captions") says how far the captions got.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import certifi
from sqlalchemy import select, update

from clipper.context import Context
from clipper.media.captions_live import (
    CaptionDeduper,
    Cue,
    PtsAnchor,
    SubtitleRendition,
    TsCaptions,
    VttSegment,
    cue_text,
    cue_words,
    parse_vtt,
    place_vtt,
    subtitle_rendition,
)
from clipper.media.fmp4 import first_pts as fmp4_first_pts
from clipper.media.fmp4 import looks_like_fmp4
from clipper.media.live import (
    ArrivalClock,
    LivePlaylist,
    LiveSegment,
    TsChopper,
    first_pts,
    looks_like_playlist,
    looks_like_ts,
    parse_playlist,
    pts_delta,
)
from clipper.net.guard import GuardProxy
from clipper.storage.tables import Channel, ChannelSegment, LiveAsrState, utcnow
from clipper.storage.tables import LiveSegment as LiveSegmentRow

log = logging.getLogger(__name__)

Clock = Callable[[], float]
OnCaptions = Callable[[int, list[int]], None]
"""Called with a channel's id and the ids of the caption rows just stored."""

REFRESH_SECONDS = 3.0
"""How often the channels table is re-read (added, paused, resumed, removed channels)."""

RETENTION_SECONDS = 30.0
"""How often retention runs."""

EDGE_SEGMENTS = 3
"""Segments taken from a playlist when recording starts or the source restarts: the live edge."""

MAX_CATCH_UP = 30
"""Most new segments taken from one playlist (after an outage, of a long DVR window)."""

TS_SEGMENT_SECONDS = 4.0
"""Length of the segments a continuous TS stream is cut into."""

READ_TIMEOUT = 15.0
"""Seconds without a byte after which a connection counts as dead."""

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 5.0
"""Wait after a failure: doubling from the first to the most."""

RESOLVE_RETRY = 60.0
"""Wait after yt-dlp found no live stream on a channel's page."""

RESOLVE_EVERY = 30.0
"""Least time between two resolutions of one page (a failing stream is not a yt-dlp loop)."""

AUTO_DETECT_SECONDS = 30.0
"""Media an "auto" channel without a subtitle rendition is read for in-band captions before it
settles on Whisper (when it carries caption data or a teletext stream, but no text yet)."""

NO_CARRIAGE_SECONDS = 4.0
"""Media after which an "auto" channel with no caption data and no teletext stream at all
settles on Whisper."""

CAPTION_MODES = frozenset({"captions", "auto"})

MAX_PLAYLIST_BYTES = 8 << 20
MAX_VTT_BYTES = 1 << 20
MAX_SEGMENT_BYTES = 256 << 20
_CHUNK = 64 * 1024
_REDIRECTS = 5
_GONE = (404, 410)
_RESOLVE_AGAIN = (403, 404, 410)
_USER_AGENT = "clipper-recorder/1"


class RecorderError(Exception):
    """A channel could not be recorded this time (retried after a backoff)."""


class HttpStatus(RecorderError):
    """The server (or the guard, for a refused address) answered with an error status."""

    def __init__(self, status: int, url: str, body: str = "", reason: str = "") -> None:
        super().__init__(f"HTTP {status} from {url[:200]}" + (f": {body}" if body else ""))
        self.status = status
        self.refused = status == 403 and "fetch guard" in reason.lower()


class ResolveFailed(RecorderError):
    """yt-dlp found no live stream on the page (tried again after a longer wait)."""


class ChannelGone(RecorderError):
    """The channel was removed while a segment was being stored."""


# ---------------------------------------------------------------- HTTP through the guard

class Fetcher:
    """GET requests through the guard proxy (https as a CONNECT tunnel, certificate checked by
    Python); `cut()` from another thread ends the request in progress at once."""

    def __init__(self, proxy_url: str, timeout: float = READ_TIMEOUT) -> None:
        parts = urlsplit(proxy_url)
        self.proxy = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._cut = False
        self._lock = threading.Lock()

    def open(self, url: str) -> tuple[http.client.HTTPResponse, str]:
        """The response to GET `url` (redirects followed) and the URL that answered."""
        for _ in range(_REDIRECTS + 1):
            resp = self._request(url)
            location = resp.getheader("Location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                resp.close()
                url = urljoin(url, location)
                continue
            if resp.status >= 400:
                body = resp.read(300).decode("utf-8", "replace").strip().splitlines()
                resp.close()
                raise HttpStatus(resp.status, url, body[0] if body else "", resp.reason)
            return resp, url
        raise RecorderError(f"too many redirects from {url[:200]}")

    def get(self, url: str, limit: int) -> tuple[bytes, str]:
        """The whole body of `url` (at most `limit` bytes) and the URL that answered."""
        resp, final = self.open(url)
        with contextlib.closing(resp):
            return _read_all(resp, limit, final), final

    def cut(self) -> None:
        """Shut the connection in progress (a blocked read returns), and any later one."""
        with self._lock:
            self._cut = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def _request(self, url: str) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RecorderError(f"{url[:200]} is not an http(s) address")
        conn = self._connection(parts.scheme, parts.hostname, parts.port)
        with self._lock:
            if self._cut:
                raise RecorderError("stopped")
            if self._conn is not None:
                self._conn.close()
            self._conn = conn
        target = url.split("#")[0] if parts.scheme == "http" else (
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        conn.request("GET", target, headers={"User-Agent": _USER_AGENT, "Host": parts.netloc,
                                             "Accept-Encoding": "identity"})
        return conn.getresponse()

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        if scheme == "http":  # an absolute-URI request to the guard
            return http.client.HTTPConnection(*self.proxy, timeout=self.timeout)
        context = ssl.create_default_context(cafile=certifi.where())
        conn = http.client.HTTPSConnection(*self.proxy, timeout=self.timeout, context=context)
        conn.set_tunnel(host, port or 443)
        return conn


# ---------------------------------------------------------------- storing segments

@dataclass(frozen=True)
class ChannelInfo:
    """What a channel's thread needs of its row."""

    id: int
    name: str
    url: str
    state: str = "recording"
    transcribe: str | None = None  # live transcription asked for: whisper | captions | auto
    transcript_source: str | None = None  # what is used, as the row said when the thread began


@dataclass(frozen=True)
class Recorded:
    """A segment ready to store."""

    seq: int
    wall_start: float
    duration: float
    first_pts: int | None
    discontinuity: bool
    data: bytes
    clock: str  # "program-date-time" | "arrival"
    arrived_at: float


@dataclass(frozen=True)
class LastStored:
    """The newest stored segment of a channel: where a restarted recorder resumes."""

    seq: int
    wall_start: float
    duration: float
    first_pts: int | None


def segment_path(media_dir: Path, name: str, seq: int, wall_start: float,
                 suffix: str = ".ts") -> Path:
    """Where a segment is stored: by the UTC date and hour of its wall-clock start (`.mp4`
    for fragmented MP4, stored with its init segment in front so that it plays alone)."""
    moment = datetime.fromtimestamp(wall_start, UTC)
    return (media_dir / "channels" / name / moment.strftime("%Y-%m-%d") / moment.strftime("%H")
            / f"{seq}-{round(wall_start * 1000)}{suffix}")


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    part.write_bytes(data)
    os.replace(part, path)


def store_segment(ctx: Context, channel: ChannelInfo, rec: Recorded) -> Path | None:
    """Store one segment: the file first, then its row and the channel's state, in one
    transaction. None when it was stored already; ChannelGone (file removed) when the channel
    was removed meanwhile."""
    path = segment_path(ctx.settings.media_dir, channel.name, rec.seq, rec.wall_start,
                        ".mp4" if looks_like_fmp4(rec.data) else ".ts")
    with ctx.db.session() as session:
        if session.scalar(select(ChannelSegment.id).where(
                ChannelSegment.channel_id == channel.id, ChannelSegment.path == str(path))):
            return None
    _write_file(path, rec.data)
    arrived = datetime.fromtimestamp(rec.arrived_at, UTC)
    with ctx.db.session() as session:
        row = session.get(Channel, channel.id)
        if row is None:
            path.unlink(missing_ok=True)
            raise ChannelGone(f"channel {channel.name} was removed")
        session.add(ChannelSegment(
            channel_id=channel.id, seq=rec.seq, wall_start=rec.wall_start,
            duration=rec.duration, first_pts=rec.first_pts, discontinuity=rec.discontinuity,
            bytes=len(rec.data), path=str(path), arrived_at=arrived))
        row.last_segment_at, row.state, row.clock = arrived, "recording", rec.clock
        row.error = None
    return path


def last_stored(ctx: Context, channel_id: int) -> LastStored | None:
    """The channel's newest stored segment (by arrival), if any."""
    with ctx.db.session() as session:
        row = session.execute(
            select(ChannelSegment.seq, ChannelSegment.wall_start, ChannelSegment.duration,
                   ChannelSegment.first_pts)
            .where(ChannelSegment.channel_id == channel_id)
            .order_by(ChannelSegment.id.desc()).limit(1)).first()
    return LastStored(*row) if row else None


def _set_error(ctx: Context, channel_id: int, message: str, state: str | None = None) -> None:
    values: dict[str, object] = {"error": message[:500]}
    if state:
        values["state"] = state
    with ctx.db.session() as session:
        session.execute(update(Channel).where(Channel.id == channel_id).values(**values))


def store_captions(ctx: Context, channel_id: int, cues: Sequence[Cue], *,
                   done_until: float | None, recorded_to: float | None) -> list[int]:
    """Store placed cues as the channel's live transcript (source "captions") and move its
    `LiveAsrState` on to `done_until`, in one transaction; the new rows' ids. ChannelGone when
    the channel was removed."""
    with ctx.db.session() as session:
        if session.get(Channel, channel_id) is None:
            raise ChannelGone(f"channel {channel_id} was removed")
        rows = []
        for cue in cues:
            words = cue_words(cue)
            if words:
                rows.append(LiveSegmentRow(
                    channel_id=channel_id, wall_start=float(words[0][0]),
                    wall_end=max(cue.end, float(words[-1][1])), text=cue_text(cue),
                    words=words, source="captions"))
        session.add_all(rows)
        if done_until is not None:
            state = session.get(LiveAsrState, channel_id)
            if state is None:
                state = LiveAsrState(channel_id=channel_id)
                session.add(state)
            state.done_until = max(done_until, state.done_until or done_until)
            state.lag_seconds = (max(0.0, recorded_to - state.done_until)
                                 if recorded_to is not None else None)
            state.source, state.error, state.updated_at = "captions", None, utcnow()
        session.flush()
        return [r.id for r in rows]


def set_transcript_source(ctx: Context, channel_id: int, source: str | None) -> None:
    """Say what the channel's live transcript comes from (captions | whisper | None)."""
    with ctx.db.session() as session:
        session.execute(update(Channel).where(Channel.id == channel_id)
                        .values(transcript_source=source))


# ---------------------------------------------------------------- a page yt-dlp resolves

_PROXY_BYPASS_VARS = ("no_proxy", "NO_PROXY")


@contextlib.contextmanager
def _no_proxy_bypass() -> Iterator[None]:
    """Hide no_proxy/NO_PROXY while yt-dlp runs: it honours them and would go around the guard
    (process state, not configuration)."""
    saved = {k: os.environ.pop(k) for k in _PROXY_BYPASS_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def resolve_page(url: str, proxy_url: str) -> str:
    """The live manifest URL yt-dlp finds for a page (its requests through the guard)."""
    import yt_dlp

    from clipper.media.fetch import youtube_dl

    options = {"quiet": True, "no_warnings": True, "noplaylist": True, "skip_download": True,
               "proxy": proxy_url, "socket_timeout": 20, "cachedir": False,
               "extractor_retries": 0}
    try:
        with _no_proxy_bypass(), youtube_dl(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except yt_dlp.utils.YoutubeDLError as exc:
        raise ResolveFailed(f"yt-dlp found no live stream at {url[:200]}: {exc}") from exc
    if info and info.get("entries"):
        info = next(iter(info["entries"]), None)
    info = info or {}
    for fmt in [info, *reversed(info.get("formats") or [])]:  # yt-dlp lists the best last
        if found := _stream_url(fmt):
            return found
    raise ResolveFailed(f"yt-dlp found no HLS or TS stream at {url[:200]}")


def _stream_url(fmt: dict[str, object]) -> str | None:
    """The HLS manifest or TS stream URL of one yt-dlp format, if it has one."""
    if fmt.get("manifest_url"):
        return str(fmt["manifest_url"])
    url = str(fmt.get("url") or "")
    if "m3u8" in str(fmt.get("protocol", "")) or urlsplit(url).path.endswith(".ts"):
        return url
    return None


def url_expiry(url: str) -> float | None:
    """The Unix time a signed stream URL says it expires (`expire=`, `expires=`), if any."""
    for key, value in parse_qsl(urlsplit(url).query):
        if key.lower() in ("expire", "expires", "exp") and value.isdigit() and \
                int(value) > 1_000_000_000:
            return float(value)
    return None


# ---------------------------------------------------------------- a subtitle rendition

class SubtitleFollower:
    """A channel's WebVTT subtitle rendition, read beside its video by the channel's thread.

    `poll()` fetches the subtitle media playlist and each new .vtt segment (by media sequence;
    at first, or after the sequence went back, only the live edge), `place()` puts their cues
    on the wall clock through the newest stored video segment and returns those not seen before.
    A segment that cannot be placed yet (no video stored) waits for the next round.
    """

    def __init__(self, rendition: SubtitleRendition) -> None:
        self.rendition = rendition
        self.seq: int | None = None
        self.dedupe = CaptionDeduper()
        self.pending: list[tuple[LiveSegment, float | None, VttSegment]] = []
        self.done_until: float | None = None
        self.problem = ""

    def poll(self, fetcher: Fetcher, edge: float | None) -> None:
        """Fetch what is new. `edge`: wall-clock end of the newest stored video segment (the
        live edge, for segments that carry no program-date-time)."""
        text = fetcher.get(self.rendition.uri, MAX_PLAYLIST_BYTES)[0].decode("utf-8", "replace")
        playlist = parse_playlist(text, self.rendition.uri)
        segments = list(playlist.segments)
        if not segments:
            return
        if self.seq is None or segments[-1].seq < self.seq:
            todo = segments[-EDGE_SEGMENTS:]
        else:
            todo = [s for s in segments if s.seq > self.seq][-MAX_CATCH_UP:]
        ends = _end_offsets(playlist)
        for seg in todo:
            try:
                body = fetcher.get(seg.uri, MAX_VTT_BYTES)[0].decode("utf-8-sig", "replace")
                parsed = parse_vtt(body)
            except HttpStatus as exc:
                if exc.status not in _GONE:
                    raise
            except ValueError as exc:  # a broken segment is skipped, not a broken channel
                self.note(f"subtitle segment {seg.seq} skipped: {exc}")
            else:
                end = (seg.program_date_time + seg.duration if seg.program_date_time is not None
                       else (edge - ends[seg.seq] if edge is not None else None))
                self.pending.append((seg, end, parsed))
            self.seq = seg.seq
        del self.pending[:-MAX_CATCH_UP]  # (only if no video timestamps ever come to place them)

    def place(self, anchor: PtsAnchor | None) -> list[Cue]:
        """The new cues of the fetched segments that can be placed now, in time order."""
        cues: list[Cue] = []
        while self.pending:
            seg, end, parsed = self.pending[0]
            placed = place_vtt(parsed, anchor=anchor, segment_pdt=seg.program_date_time,
                               segment_duration=seg.duration)
            if placed is None:
                break
            self.pending.pop(0)
            cues += self.dedupe.feed(placed)
            if end is not None:
                self.done_until = max(end, self.done_until or end)
        return cues

    def note(self, message: str) -> None:
        """Log a problem once (not on every poll)."""
        if message != self.problem:
            log.warning("subtitles %s: %s", self.rendition.uri[:200], message)
        self.problem = message


# ---------------------------------------------------------------- one channel

class Backoff:
    """Delays after consecutive failures: 0.5, 1, 2, 4, 5, 5, ... seconds."""

    def __init__(self) -> None:
        self.failures = 0

    def next(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))

    def reset(self) -> None:
        """Start over after a success."""
        self.failures = 0


class ChannelRecorder(threading.Thread):
    """Records one channel until `stop()`: HLS, a TS stream, or a page resolved by yt-dlp."""

    def __init__(self, ctx: Context, channel: ChannelInfo, proxy_url: str, *,
                 clock: Clock = time.time, ts_seconds: float = TS_SEGMENT_SECONDS,
                 on_caption_segments: OnCaptions | None = None) -> None:
        super().__init__(name=f"record-{channel.name}", daemon=True)
        self.ctx, self.channel, self.proxy_url, self.clock = ctx, channel, proxy_url, clock
        self.on_caption_segments = on_caption_segments
        self.ts_seconds = ts_seconds
        self.halt = threading.Event()
        self.fetcher = Fetcher(proxy_url)
        self.backoff = Backoff()
        self.last_progress = clock()  # when a segment was last stored (or the thread began)
        self.stalled = channel.state == "stalled"  # told already, by an earlier recorder
        self.resolved: str | None = None
        self._resolved_at = -RESOLVE_EVERY
        self.last_error = ""
        self._last = last_stored(ctx, channel.id)
        self._hls_seq: int | None = self._last.seq if self._last else None
        self._ts_seq = self._last.seq + 1 if self._last else 0
        self._init: tuple[str | None, bytes] = (None, b"")  # an fMP4 playlist's EXT-X-MAP
        self._arrival = ArrivalClock()
        # Captions: the subtitle rendition followed, the in-band reader, what the row says.
        self.subtitles: SubtitleFollower | None = None
        self.inband: TsCaptions | None = None
        self._inband_media = 0.0  # seconds of media read for in-band captions so far
        self._source = channel.transcript_source
        self._anchor: PtsAnchor | None = None  # the newest video stored by this thread
        self._captions_until: float | None = None  # LiveAsrState.done_until as last stored

    def stop(self) -> None:
        """Ask the thread to end; a request in progress is cut."""
        self.halt.set()
        self.fetcher.cut()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self._record_once()
            except ChannelGone:
                return
            except Exception as exc:  # noqa: BLE001 - a channel's thread never gives up
                if self.halt.is_set():
                    return
                self._failed(exc)
                wait = self.backoff.next()
                self.halt.wait(RESOLVE_RETRY if isinstance(exc, ResolveFailed) else wait)

    def _failed(self, exc: Exception) -> None:
        """Log a failure once (not on every retry) and show it on the channel."""
        message = str(exc) or type(exc).__name__
        if message != self.last_error:
            log.warning("channel %s: %s", self.channel.name, message)
        self.last_error = message
        if isinstance(exc, HttpStatus) and exc.status in _RESOLVE_AGAIN:
            self.resolved = None
        hopeless = isinstance(exc, ResolveFailed) or (isinstance(exc, HttpStatus)
                                                       and exc.refused)
        with contextlib.suppress(Exception):  # the database may be what failed
            _set_error(self.ctx, self.channel.id, message, "error" if hopeless else None)

    def _record_once(self) -> None:
        """Open the channel's URL, tell what it serves from its first bytes, and record it."""
        resp, url = self.fetcher.open(self.resolved or self.channel.url)
        with contextlib.closing(resp):
            head = _head(resp)
            ctype = (resp.getheader("Content-Type") or "").lower()
            if looks_like_playlist(head) or "mpegurl" in ctype:
                body = _read_all(resp, MAX_PLAYLIST_BYTES, url, head)
                resp.close()
                return self._record_hls(url, body.decode("utf-8", "replace"))
            if looks_like_ts(head) or "mp2t" in ctype or urlsplit(url).path.endswith(".ts"):
                return self._record_ts(resp, head)
        if self.resolved is not None:
            self.resolved = None
            raise RecorderError(f"{url[:200]} (found by yt-dlp) is neither HLS nor MPEG-TS")
        if self.halt.wait(self._resolved_at + RESOLVE_EVERY - time.monotonic()):
            return
        self._resolved_at = time.monotonic()
        self.resolved = resolve_page(self.channel.url, self.proxy_url)
        log.info("channel %s: recording %s", self.channel.name, self.resolved)

    # ------------------------------------------------------------ HLS

    def _record_hls(self, url: str, text: str) -> None:
        """Poll the playlist and store new segments until an error (raised) or stop."""
        master = False
        while not self.halt.is_set():
            polled = self.clock()
            playlist = parse_playlist(text, url)
            if playlist.is_master:
                master = True
                self._use_subtitles(subtitle_rendition(text, url))
                url = playlist.pick_variant() or url
                text = self._get_text(url)
                continue
            if not playlist.segments and not text.lstrip("\ufeff \t\r\n").startswith("#EXTM3U"):
                raise RecorderError(f"{url[:200]} is not an HLS playlist")
            if not master:
                self._use_subtitles(None)
                master = True  # decided for this playlist
            self.backoff.reset()
            self._take(playlist, polled)
            self._follow_subtitles()
            if self._expired():
                return
            self.halt.wait(_poll_interval(playlist))
            if not self.halt.is_set():
                text = self._get_text(url)

    def _get_text(self, url: str) -> str:
        return self.fetcher.get(url, MAX_PLAYLIST_BYTES)[0].decode("utf-8", "replace")

    def _expired(self) -> bool:
        expires = url_expiry(self.resolved) if self.resolved else None
        if expires is not None and expires - 60 < time.time():
            self.resolved = None
            return True
        return False

    def _new_segments(self, playlist: LivePlaylist) -> tuple[list[LiveSegment], bool]:
        """The segments to fetch, and whether the source restarted (sequence went back)."""
        segments = list(playlist.segments)
        if not segments:
            return [], False
        restarted = self._hls_seq is not None and segments[-1].seq < self._hls_seq
        if self._hls_seq is None or restarted:
            return segments[-EDGE_SEGMENTS:], restarted
        return [s for s in segments if s.seq > self._hls_seq][-MAX_CATCH_UP:], False

    def _take(self, playlist: LivePlaylist, polled: float) -> None:
        todo, restarted = self._new_segments(playlist)
        ends = _end_offsets(playlist)
        for i, seg in enumerate(todo):
            if self.halt.is_set():
                return
            try:
                data, _ = self.fetcher.get(seg.uri, MAX_SEGMENT_BYTES)
                if seg.init_uri is not None:
                    data = self._init_segment(seg.init_uri) + data
            except HttpStatus as exc:
                if exc.status not in _GONE:
                    raise
                log.info("channel %s: segment %d gone (%s)", self.channel.name, seg.seq, exc)
            else:
                estimate = polled - ends[seg.seq] - seg.duration
                self._store_hls(seg, data, estimate, restarted and i == 0,
                                playlist.target_duration)
            self._hls_seq = seg.seq

    def _init_segment(self, uri: str) -> bytes:
        """An fMP4 playlist's init segment (EXT-X-MAP), fetched when it changes."""
        if self._init[0] != uri:
            self._init = (uri, self.fetcher.get(uri, MAX_SEGMENT_BYTES)[0])
        return self._init[1]

    def _store_hls(self, seg: LiveSegment, data: bytes, estimate: float, restarted: bool,
                   target: float) -> None:
        pts = fmp4_first_pts(data) if seg.init_uri is not None else first_pts(data)
        reference = seg.program_date_time if seg.program_date_time is not None else estimate
        jumped = self._pts_jumped(pts, reference, 1.0 if seg.program_date_time else
                                  max(2.0, target))
        disc = seg.discontinuity or restarted or jumped
        if seg.program_date_time is not None:
            wall, clock = seg.program_date_time, "program-date-time"
        else:
            wall, clock = self._arrival.place(pts, estimate, discontinuity=disc), "arrival"
        self._store(Recorded(seg.seq, wall, seg.duration, pts, disc, data, clock, self.clock()))

    def _pts_jumped(self, pts: int | None, wall: float, tolerance: float) -> bool:
        """Whether the PTS moved unlike the wall clock since the last stored segment."""
        last = self._last
        if last is None or last.first_pts is None or pts is None:
            return False
        return abs(pts_delta(last.first_pts, pts) / 90_000 - (wall - last.wall_start)) \
            > tolerance

    def _store(self, rec: Recorded) -> None:
        if store_segment(self.ctx, self.channel, rec) is None:
            return  # stored already (by this recorder before a restart)
        self._last = LastStored(rec.seq, rec.wall_start, rec.duration, rec.first_pts)
        if rec.first_pts is not None:
            self._anchor = PtsAnchor(rec.first_pts, rec.wall_start)
        self.last_progress = self.clock()
        self.stalled = False
        self.last_error = ""
        self.backoff.reset()
        self._read_inband(rec)

    # ------------------------------------------------------------ captions

    def _set_source(self, source: str | None) -> None:
        if source != self._source:
            set_transcript_source(self.ctx, self.channel.id, source)
            self._source = source
            log.info("channel %s: live transcript from %s", self.channel.name, source)

    def _use_subtitles(self, rendition: SubtitleRendition | None) -> None:
        """Decide where the live transcript comes from, once the channel's URL has said whether
        it names a subtitle rendition."""
        mode = self.channel.transcribe
        if mode not in CAPTION_MODES:
            self.subtitles = self.inband = None
            self._set_source("whisper" if mode == "whisper" else None)
            return
        if rendition is not None:
            self.inband = None
            if self.subtitles is None or self.subtitles.rendition.uri != rendition.uri:
                self.subtitles = SubtitleFollower(rendition)
            self._set_source("captions")
            return
        self.subtitles = None
        if self.inband is None:
            self.inband, self._inband_media = TsCaptions(), 0.0

    def _follow_subtitles(self) -> None:
        """Fetch and store new subtitle cues (after the video: its newest timestamps place
        them). A subtitle failure is logged (once) and never stops the video."""
        follower = self.subtitles
        if follower is None or self.halt.is_set():
            return
        edge = self._last.wall_start + self._last.duration if self._last else None
        try:
            follower.poll(self.fetcher, edge)
        except (RecorderError, OSError, http.client.HTTPException, ValueError) as exc:
            if self.halt.is_set():
                return
            follower.note(str(exc) or type(exc).__name__)
        self._store_cues(follower.place(self._anchor), follower.done_until)

    def _read_inband(self, rec: Recorded) -> None:
        """Read a stored TS segment for CEA-608 / teletext captions (no subtitle rendition)."""
        reader = self.inband
        if reader is None:
            return
        try:
            # In-band captions are read from TS packets; fMP4 carries none this reads.
            cues = ([] if looks_like_fmp4(rec.data)
                    else reader.feed(rec.data, rec.first_pts, rec.wall_start))
        except Exception as exc:  # noqa: BLE001 - odd caption data must not stop the recording
            log.warning("channel %s: captions of segment %d unreadable: %s", self.channel.name,
                        rec.seq, exc)
            cues = []
        self._inband_media += rec.duration
        waited = AUTO_DETECT_SECONDS if reader.carriage else NO_CARRIAGE_SECONDS
        if reader.found:
            self._set_source("captions")
        elif self._inband_media >= waited and self.channel.transcribe == "auto":
            self.inband = None  # none in the first seconds: Whisper transcribes this channel
            self._set_source("whisper")
            return
        self._store_cues(cues, rec.wall_start + rec.duration if reader.found else None)

    def _store_cues(self, cues: list[Cue], done_until: float | None) -> None:
        if not cues and (done_until is None or done_until == self._captions_until):
            return  # nothing new: no write
        recorded_to = self._last.wall_start + self._last.duration if self._last else None
        ids = store_captions(self.ctx, self.channel.id, cues, done_until=done_until,
                             recorded_to=recorded_to)
        self._captions_until = done_until
        if ids and self.on_caption_segments is not None:
            try:
                self.on_caption_segments(self.channel.id, ids)
            except Exception as exc:  # noqa: BLE001 - a watcher's failure must not stop recording
                log.warning("channel %s: caption callback failed: %s", self.channel.name, exc)

    # ------------------------------------------------------------ TS stream

    def _record_ts(self, resp: http.client.HTTPResponse, head: bytes) -> None:
        """Read a continuous TS body, storing a segment every few seconds, until it ends."""
        self._use_subtitles(None)
        chopper = TsChopper(target=self.ts_seconds)
        self.backoff.reset()
        chunk = head
        try:
            while not self.halt.is_set():
                if not chunk:
                    raise RecorderError("the TS stream ended")
                for piece in chopper.feed(chunk, self.clock()):
                    self._store_ts(piece.data, piece.arrived_at, piece.duration)
                chunk = resp.read1(_CHUNK)
        finally:
            tail = chopper.flush(self.clock())
            if tail is not None and tail.duration >= 0.5:
                with contextlib.suppress(Exception):  # stopping or failing: keep what came
                    self._store_ts(tail.data, tail.arrived_at, tail.duration)

    def _store_ts(self, data: bytes, arrived: float, duration: float) -> None:
        pts = first_pts(data)
        disc = self._pts_jumped(pts, arrived, max(2.0, 2 * self.ts_seconds))
        wall = self._arrival.place(pts, arrived, discontinuity=disc)
        self._store(Recorded(self._ts_seq, wall, duration, pts, disc, data, "arrival",
                             self.clock()))
        self._ts_seq += 1


def _read_all(resp: http.client.HTTPResponse, limit: int, url: str, head: bytes = b"") -> bytes:
    """The rest of a body after `head`, refusing one over `limit` bytes. (Not `read(limit)`:
    that allocates `limit` bytes up front, on every playlist poll.)"""
    length = resp.getheader("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise RecorderError(f"{url[:200]} is over {limit >> 20} MiB")
    chunks, total = [head], len(head)
    while chunk := resp.read1(4 * _CHUNK):
        total += len(chunk)
        if total > limit:
            raise RecorderError(f"{url[:200]} is over {limit >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _head(resp: http.client.HTTPResponse, size: int = 1024) -> bytes:
    """The first bytes of a body (at least `size` unless it is shorter), to tell its kind."""
    head = b""
    while len(head) < size and (chunk := resp.read1(size)):
        head += chunk
    return head


def _poll_interval(playlist: LivePlaylist) -> float:
    """Half a target duration (RFC 8216 suggests reloading at least that often when unchanged);
    a playlist that says it has ended is re-read every 5 s in case the channel comes back."""
    if playlist.endlist:
        return 5.0
    return max(0.5, min(5.0, (playlist.target_duration or 2.0) / 2))


def _end_offsets(playlist: LivePlaylist) -> dict[int, float]:
    """For each segment: the seconds of media after it in the playlist (for arrival times)."""
    after, total = {}, 0.0
    for seg in reversed(playlist.segments):
        after[seg.seq] = total
        total += seg.duration
    return after


# ---------------------------------------------------------------- the process

class Recorder:
    """Every channel's thread, the stall watch and retention, until `stop` is set.

    `only`: record just these channel names. `clock`: "now" in Unix seconds (tests move it).
    """

    def __init__(self, ctx: Context, *, only: Collection[str] = (), clock: Clock = time.time,
                 stop: threading.Event | None = None, refresh: float = REFRESH_SECONDS,
                 retention_every: float = RETENTION_SECONDS, tick: float = 0.5,
                 ts_seconds: float = TS_SEGMENT_SECONDS,
                 on_caption_segments: OnCaptions | None = None) -> None:
        self.ctx, self.only, self.clock = ctx, frozenset(only), clock
        self.on_caption_segments = on_caption_segments
        self.stop = stop or threading.Event()
        self.refresh, self.retention_every, self.tick = refresh, retention_every, tick
        self.ts_seconds = ts_seconds
        self.threads: dict[str, ChannelRecorder] = {}
        self._stopping: list[ChannelRecorder] = []

    def run(self) -> None:
        """Record until the stop event is set; then stop every thread and return."""
        with GuardProxy(self.ctx.settings.url_allowlist, max_connections=512) as guard:
            sweeper = threading.Thread(target=self._retention_loop, name="retention",
                                       daemon=True)
            sweeper.start()
            next_refresh = 0.0
            try:
                while not self.stop.is_set():
                    if time.monotonic() >= next_refresh:
                        self._refresh_safely(guard.url)
                        next_refresh = time.monotonic() + self.refresh
                    self._watch_stalls()
                    self.stop.wait(self.tick)
            finally:
                self.stop.set()
                self._stop_all()
                sweeper.join(timeout=10)

    def _refresh_safely(self, proxy_url: str) -> None:
        try:
            self._refresh(proxy_url)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while
            log.warning("could not read the channels table: %s", exc)

    def _wanted(self) -> dict[str, ChannelInfo]:
        with self.ctx.db.session() as session:
            rows = session.execute(select(Channel.id, Channel.name, Channel.url, Channel.paused,
                                          Channel.state, Channel.transcribe,
                                          Channel.transcript_source)).all()
        return {r.name: ChannelInfo(r.id, r.name, r.url, r.state, r.transcribe,
                                    r.transcript_source)
                for r in rows if not r.paused and (not self.only or r.name in self.only)}

    def _refresh(self, proxy_url: str) -> None:
        """Start threads for new or resumed channels; stop those paused, removed or changed
        (a new URL, or live transcription asked for differently)."""
        wanted = self._wanted()
        for name, thread in list(self.threads.items()):
            info = wanted.get(name)
            old = thread.channel
            if info is None or (info.id, info.url, info.transcribe) != (
                    old.id, old.url, old.transcribe) or not thread.is_alive():
                log.info("channel %s: recording stops", name)
                thread.stop()
                self._stopping.append(self.threads.pop(name))
        for name, info in wanted.items():
            if name not in self.threads:
                log.info("channel %s: recording %s", name, info.url)
                thread = ChannelRecorder(self.ctx, info, proxy_url, clock=self.clock,
                                         ts_seconds=self.ts_seconds,
                                         on_caption_segments=self.on_caption_segments)
                self.threads[name] = thread
                thread.start()
        self._stopping = [t for t in self._stopping if t.is_alive()]

    def _watch_stalls(self) -> None:
        """Mark channels that stored nothing for `stall_seconds` stalled, and tell the team."""
        now, limit = self.clock(), self.ctx.settings.stall_seconds
        for thread in list(self.threads.values()):
            since = thread.last_progress
            if thread.stalled or now - since < limit:
                continue
            thread.stalled = True
            try:
                if _mark_stalled(self.ctx, thread.channel.id, now - limit):
                    log.warning("channel %s: nothing recorded for %.0f s", thread.channel.name,
                                now - since)
                    from clipper.pipeline.notifications import notify_stalled

                    notify_stalled(self.ctx, thread.channel.name, since,
                                   reason=thread.last_error)
            except Exception as exc:  # noqa: BLE001 - try again on the next tick
                thread.stalled = False
                log.warning("channel %s: could not mark stalled: %s", thread.channel.name, exc)

    def _stop_all(self) -> None:
        threads = [*self.threads.values(), *self._stopping]
        for thread in threads:
            thread.stop()
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.threads.clear()

    def _retention_loop(self) -> None:
        from clipper.pipeline.housekeeping import tidy
        from clipper.pipeline.retention import sweep

        next_tidy = 0.0
        while not self.stop.wait(self.retention_every):
            try:
                sweep(self.ctx, now=self.clock())
                if time.monotonic() >= next_tidy:  # a walk of the media folder: now and then
                    tidy(self.ctx)
                    next_tidy = time.monotonic() + TIDY_EVERY
            except Exception as exc:  # noqa: BLE001 - retention must not stop recording
                log.warning("retention sweep failed: %s", exc)


#: Seconds between housekeeping passes (old clip versions, sections, uploads).
TIDY_EVERY = 600.0


def _mark_stalled(ctx: Context, channel_id: int, cutoff: float) -> bool:
    """Set state "stalled" unless a segment arrived after `cutoff` meanwhile (or the channel
    is in error); True when it changed."""
    moment = datetime.fromtimestamp(cutoff, UTC)
    with ctx.db.session() as session:
        result = session.execute(
            update(Channel).where(Channel.id == channel_id, Channel.state == "recording",
                                  (Channel.last_segment_at.is_(None))
                                  | (Channel.last_segment_at <= moment))
            .values(state="stalled"))
        return bool(result.rowcount)


def run_recorder(ctx: Context, *, only: Collection[str] = (),
                 on_caption_segments: OnCaptions | None = None) -> int:
    """The `clipper record` process: record until SIGTERM or SIGINT (Ctrl-C), then stop."""
    logging.getLogger().setLevel(ctx.settings.log_level)
    _name_process("clipper-recorder")
    recorder = Recorder(ctx, only=only, on_caption_segments=on_caption_segments)

    def on_signal(signum: int, _frame: object) -> None:
        recorder.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recorder.run()
    return 0


def _name_process(title: str) -> None:
    """Show the role in `ps`, if setproctitle happens to be installed (not a dependency)."""
    try:
        from setproctitle import setproctitle  # type: ignore[import-not-found]
    except ImportError:
        return
    setproctitle(title)
