"""Download just a section of a broadcast with yt-dlp (never the whole programme); errors typed.

A plain file on a server that ignores Range cannot be seeked in: there it is read from its start
through the guard like everything else, only up to the section's end where the container allows
(all of it for an MP4 whose index comes last), into the fetch's scratch folder, which goes with
the fetch; the section is cut from that copy (`_sequential_section`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import json
import logging
import math
import os
import re
import shutil
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import certifi
import yt_dlp
from yt_dlp.postprocessor.ffmpeg import EXT_TO_OUT_FORMATS
from yt_dlp.utils import DownloadError, download_range_func

from clipper.domain import FetchedSection, MediaInfo
from clipper.errors import ClipperError, InvalidInput, PermanentError, TransientError
from clipper.media import ffrun
from clipper.media.fmp4 import FragmentPlan, Piece, fragment_plan
from clipper.media.probe import edit_list_lag, probe_media, stream_span, video_frames
from clipper.media.spans import SpanPlan, span_plan

log = logging.getLogger(__name__)

# The guard proxy's side of this lives in clipper.net.guard, which media code may not import
# (sibling layers); tests pin the two together.
GUARDED_PROTOCOLS = "http,tcp,crypto"
"""ffmpeg's protocols behind the guard: plain http (always sent to the guard), the tcp under it,
crypto for AES-128 HLS. No https/tls/httpproxy: through a proxy ffmpeg reaches TLS only via
`httpproxy`, and a playlist naming `httpproxy://HOST/` connects straight to HOST. So every
source, https included, is read through the guard's relay (`relay_url`)."""
DIRECT_PROTOCOLS = "http,https,tcp,tls,crypto"
"""Without a guard (tests, trusted setups) ffmpeg connects itself; still no file:, httpproxy:."""
RELAY_PREFIX = "/relay/"
PROXY_BYPASS_VARS = ("no_proxy", "NO_PROXY")
BACKOFF = (0.5, 1.0, 2.0)
SOCKET_TIMEOUT = 20.0
"""Seconds any fetch waits on a silent server (yt-dlp's socket_timeout, ffmpeg's -rw_timeout)."""
SEQUENTIAL_MARGIN = 2.0
"""Seconds a sequential read goes past the section's end: a stream copy stopped by time can
end a little early (trailing B-frames), and the section must still be whole."""
_CHUNK = 1 << 20
_PEEK_LIMIT = 8 << 20
"""Most bytes held in memory while looking for an MP4's index (moov) at the start of a file."""
_LEADING_BOXES = frozenset({b"ftyp", b"free", b"skip", b"wide", b"pdin", b"uuid"})
"""Top-level MP4 boxes that may come before the index (moov) or the media (mdat)."""
_PERMANENT = (r"HTTP Error (?:4\d\d)", r"Unsupported URL", r"is not a valid URL",
              r"Unable to download webpage: HTTP Error 4", r"Invalid data found",
              r"no (?:video )?formats? found", r"Requested format is not available")
_TRANSIENT = (r"HTTP Error 5\d\d", r"Connection refused", r"Connection reset", r"timed out",
              r"[Tt]imeout",
              r"Temporary failure in name resolution", r"Remote end closed", r"IncompleteRead",
              r"Network is unreachable", r"Server returned 5\d\d")


_CERTIFICATE = re.compile(r"certificate verify failed: ([^(;]+?)\s*(?:\(|;|$)")


def classify_error(text: str) -> ClipperError:
    """Pure: yt-dlp/ffmpeg error text -> PermanentError or TransientError with a readable
    message."""
    untrusted = _CERTIFICATE.search(text)
    if untrusted:
        return PermanentError(f"The source's TLS certificate is not trusted ({untrusted[1]}).",
                              "Check that the link is the site you meant; official sites have "
                              "valid certificates.")
    clean = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("ERROR: ", "").strip()
    clean = re.sub(r"^\[[^\]]+\] ", "", clean.splitlines()[-1] if clean else "unknown error")
    clean = re.sub(r"^[\w-]+: ", "", clean)  # yt-dlp's "<video id>: " prefix
    clean = re.sub(r";? *please report this issue on .*", "", clean)  # not a yt-dlp bug report
    if any(re.search(p, text) for p in _TRANSIENT):
        return TransientError(f"Could not reach the source: {clean}", "It will be retried.")
    if any(re.search(p, text) for p in _PERMANENT):
        return PermanentError(f"The source cannot be fetched: {clean}", "Check the link.")
    return PermanentError(f"The source cannot be fetched: {clean}", "Check the link.")


#: Less free space than this where a fetch writes counts as a full disk.
DISK_FULL_BYTES = 8 * 2**20


def disk_full_error(folder: Path, *, free: int | None = None) -> TransientError | None:
    """A TransientError when `folder`'s disk is (nearly) full, else None."""
    free = shutil.disk_usage(folder).free if free is None else free
    if free >= DISK_FULL_BYTES:
        return None
    return TransientError(f"The disk is full ({free / 2**20:.1f} MB free): the section could not "
                          "be saved.", "Free some space; the fetch is tried again by itself.")


@contextlib.contextmanager
def _no_proxy_bypass(active: bool) -> Iterator[None]:
    """Hide no_proxy/NO_PROXY while a proxied fetch runs: yt-dlp's ffmpeg honours them and would
    go around the proxy. (The one place clipper touches os.environ: it is process state, not
    config.)"""
    saved = {k: os.environ.pop(k) for k in PROXY_BYPASS_VARS if active and k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class Guard(Protocol):
    """What fetch needs of a running guard proxy (clipper.net.guard.GuardProxy)."""

    @property
    def url(self) -> str: ...

    def unsafe_error(self) -> ClipperError | None: ...


def relay_url(proxy: str, url: str) -> str:
    """The guard's plain-http URL for the http(s) `url`: the guard fetches it (certificate
    checked, address vetted) and rewrites HLS playlists so ffmpeg keeps asking the guard."""
    scheme, _, rest = url.partition("://")
    return f"{proxy.rstrip('/')}{RELAY_PREFIX}{scheme.lower()}/{rest}"


def ffmpeg_net_args(url: str, proxy: str | None) -> list[str]:
    """ffmpeg's options for a network input `url` (put before `-i`)."""
    if proxy:
        return ["-http_proxy", proxy, "-protocol_whitelist", GUARDED_PROTOCOLS]
    args = ["-protocol_whitelist", DIRECT_PROTOCOLS]
    if url.lower().startswith("https:"):  # ffmpeg checks no certificate unless told to
        args += ["-tls_verify", "1", "-ca_file", certifi.where()]
    return args


def ydl_options(section: tuple[float, float], workdir: Path, proxy: str | None,
                url: str = "") -> dict[str, Any]:
    """yt-dlp options for one section download into workdir (quiet, single item, no retries).

    With a guard proxy, all of yt-dlp's traffic goes to it; its ffmpeg speaks plain http to the
    guard only (its inputs become relay URLs, see `_through_relay`), and a fragment the guard
    refuses fails the download instead of being skipped.
    """
    opts: dict[str, Any] = {
        "quiet": True, "no_warnings": True, "noprogress": True, "noplaylist": True,
        "outtmpl": str(workdir / "section.%(ext)s"), "paths": {"home": str(workdir)},
        "download_ranges": download_range_func(None, [section]),
        "retries": 0, "fragment_retries": 0, "extractor_retries": 0,
        "socket_timeout": SOCKET_TIMEOUT,
        "external_downloader_args": {"ffmpeg_i": ffmpeg_net_args(url, proxy)},
        "overwrites": True, "cachedir": False, "logger": _QuietLogger(),
    }
    return opts | ({"proxy": proxy, "skip_unavailable_fragments": False} if proxy else {})


class _QuietLogger:
    """yt-dlp logger that swallows output; errors reach us as DownloadError anyway."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


def _ffmpeg_env(proxy: str | None) -> dict[str, str] | None:
    """The environment of an ffmpeg/ffprobe reading the network: with a guard, its proxy set
    (the variable too: ffmpeg falls back on it where an option does not reach) and no bypass."""
    if not proxy:
        return None
    env = {k: v for k, v in os.environ.items() if k not in PROXY_BYPASS_VARS}
    env["http_proxy"] = proxy
    return env


def _remote_probe(url: str, proxy: str | None, entries: str) -> dict[str, Any]:
    """ffprobe's `-show_entries` of a network source (same protocol rules as the download);
    {} when it cannot be read."""
    args = ["ffprobe", "-v", "error", *ffmpeg_net_args(url, proxy), "-show_entries",
            entries, "-of", "json", relay_url(proxy, url) if proxy else url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                          env=_ffmpeg_env(proxy))
    with contextlib.suppress(ValueError):
        found = json.loads(proc.stdout or "{}")
        return found if isinstance(found, dict) else {}
    return {}


def remote_duration(url: str, proxy: str | None) -> float | None:
    """Duration of a network source by ffprobe, if known."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return float(_remote_probe(url, proxy, "format=duration")["format"]["duration"])
    return None


def remote_has_video(url: str, proxy: str | None) -> bool:
    """Whether a network source has a picture (a still attached to sound does not count)."""
    streams = _remote_probe(url, proxy, "stream=codec_type:stream_disposition=attached_pic")
    return any(s.get("codec_type") == "video"
               and not (s.get("disposition") or {}).get("attached_pic")
               for s in streams.get("streams") or [])


def _through_relay(info: dict[str, Any], proxy: str) -> None:
    """Point the formats' URLs (what yt-dlp hands ffmpeg) at the guard's relay: ffmpeg then
    reads every playlist, segment and redirect through the guard, which checks each one as
    ffmpeg reads it (a one-time scan cannot: the server may answer ffmpeg differently)."""
    on_relay = _relay_prefix(proxy)
    for fmt in [info, *(info.get("formats") or []), *(info.get("requested_formats") or [])]:
        url = fmt.get("url")
        # Not twice: requested_formats holds some of the same dicts as formats (DASH's picture
        # and sound), and a relay URL relayed is a request to the guard itself, refused.
        if (isinstance(url, str) and re.match(r"https?://", url, re.I)
                and not url.startswith(on_relay)):
            fmt["url"] = relay_url(proxy, url)


def _check_guard(guard: Guard | None) -> None:
    """Raise what the guard refused during this fetch: ffmpeg skips a refused HLS segment and
    may still exit 0, and otherwise reports only that it failed."""
    unsafe = guard.unsafe_error() if guard is not None else None
    if unsafe is not None:
        raise PermanentError(unsafe.message, unsafe.hint) from None


def _beyond_end(begin: float, duration: float) -> PermanentError:
    return PermanentError(f"The section starts at {begin:.1f} s but the media lasts only "
                          f"{duration:.1f} s.",
                          "Check the start time.")


class _Download(NamedTuple):
    path: Path
    title: str
    unindexed: bool = False
    """From a plain file whose container has no keyframe index (`UNINDEXED`)."""
    starts_at: float | None = None
    """The source time of the file's time 0, when it was not cut at the section's start (with
    `-ss`, whose first shown frame lags it: `edit_list_lag`)."""


def _download(url: str, section: tuple[float, float], workdir: Path, proxy: str | None,
              guard: Guard | None) -> _Download:
    try:
        found = _ytdlp_download(url, section, workdir, proxy)
    except ClipperError:
        _check_guard(guard)
        raise
    _check_guard(guard)
    return found


@functools.cache
def _default_extractors() -> tuple[type, ...]:
    """The extractor classes a default YoutubeDL loads, found once per process: YoutubeDL finds
    them anew for every instance, ~60 ms of CPU (a de-duplication by list over ~1,750 names),
    a tenth of a fetch's."""
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(ie for ie in gen_extractor_classes() if ie._ENABLED)


def warm_up() -> None:
    """Compile yt-dlp's URL patterns now: a link matches only the generic extractor after every
    other has compiled its pattern and said no (~1,750 regexes, ~0.45 CPU s), which a worker's
    first fetch did, on some volunteer's flag. Each class keeps its compiled pattern."""
    for ie in _default_extractors():
        ie.suitable("https://warm-up.invalid/programme.m3u8")


def youtube_dl(options: dict[str, Any]) -> yt_dlp.YoutubeDL:
    """A YoutubeDL with yt-dlp's default extractors in its order, as `YoutubeDL(options)`
    gives, without deriving the list again."""
    ydl = yt_dlp.YoutubeDL(options, auto_init=False)
    for ie in _default_extractors():
        ydl.add_info_extractor(ie)
    return ydl


def _ytdlp_download(url: str, section: tuple[float, float], workdir: Path,
                    proxy: str | None) -> _Download:
    options = ydl_options(section, workdir, proxy, url)
    with _no_proxy_bypass(bool(proxy)), youtube_dl(options) as ydl:
        try:
            info = ydl.extract_info(url, download=False)
            if info.get("_type") in ("playlist", "multi_video"):
                raise PermanentError("The link is a playlist, not a single programme.",
                                     "Link one item.")
            if info.get("duration") and section[0] >= float(info["duration"]):
                raise _beyond_end(section[0], float(info["duration"]))
            if info.get("ext") == "unknown_video":
                _name_the_container(info, proxy)
            if proxy:
                _through_relay(info, proxy)
            title, unindexed = str(info.get("title") or ""), _unindexed(info)
            answer = _whole_file_answer(info, proxy)
            if answer is not None:
                log.info("%s ignores Range: reading it sequentially", url)
                path = _sequential_section(answer, info, section, workdir, proxy)
                return _Download(path, title, unindexed)
            playlists = _hls_playlists(info, proxy)
            if playlists is not None and _fragmented(playlists, section):
                path = _fragmented_section(playlists, info, section, workdir, proxy)
                return _Download(path, title)
            spans = span_plan(*playlists[0], section) if playlists and len(playlists) == 1 \
                else None
            if spans is not None:
                path, begins = _spanned_section(spans, info, workdir, proxy)
                return _Download(path, title, starts_at=begins)
            if unindexed:
                _section_as_mp4(ydl, info)
            info = ydl.process_ie_result(info, download=True)
        except DownloadError as exc:
            # yt-dlp reports a download that met a full disk only as "ffmpeg exited with code
            # 1": look at the disk, so that is retried rather than blamed on the link.
            raise disk_full_error(workdir) or classify_error(str(exc)) from None
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or []
             if d.get("filepath")]
    if not files or not files[0].exists():
        raise PermanentError("The download produced no file.", "Check the link.")
    return _Download(files[0], str(info.get("title") or ""), unindexed)


_CONTAINER_EXT = {"mov": "mp4", "matroska": "mkv", "mpegts": "ts", "mpeg": "mpg", "flv": "flv",
                  "mp3": "mp3", "ogg": "ogg", "wav": "wav", "aac": "aac", "avi": "avi"}
"""ffprobe's first format name -> the extension (so the muxer) a section of it is written as."""


def _name_container(format_name: str) -> str | None:
    """Pure: the section's extension for ffprobe's `format_name` ("mov,mp4,m4a,..." -> "mp4");
    None when unknown."""
    return _CONTAINER_EXT.get(format_name.split(",")[0])


def _name_the_container(info: dict[str, Any], proxy: str | None) -> None:
    """A plain file yt-dlp could not name (no extension, a generic Content-Type such as
    application/octet-stream: ext "unknown_video", which ffmpeg cannot write): its container,
    read by ffprobe from its first bytes, names the section's."""
    url = info.get("url")
    if not isinstance(url, str):
        return
    found = _remote_probe(url, proxy, "format=format_name").get("format") or {}
    ext = _name_container(str(found.get("format_name") or ""))
    if ext is None:
        raise PermanentError("The source's file is of no kind Clipper can cut.",
                             "Link a video or audio file (MP4, WebM, MPEG-TS, MP3...).")
    for fmt in [info, *(info.get("formats") or [])]:
        if fmt.get("ext") == "unknown_video":
            fmt["ext"] = ext


UNINDEXED = ("ts", "mts", "m2ts", "mpg", "mpeg", "vob")
"""MPEG transport and program streams: no keyframe index. ffmpeg's `-ss` lands where the time
is and a stream copy drops the picture up to the next keyframe; and its MPEG-TS muxer moves a
section's timestamps (0.2-0.4 s seen), where its MP4 muxer keeps them: such sections are
written as MP4."""


def _unindexed(info: dict[str, Any]) -> bool:
    """yt-dlp chose one plain file (no playlist) in a container without a keyframe index."""
    return (info.get("protocol") in ("http", "https") and not info.get("requested_formats")
            and str(info.get("ext") or "").lower() in UNINDEXED)


def _section_as_mp4(ydl: yt_dlp.YoutubeDL, info: dict[str, Any]) -> None:
    """Have yt-dlp's ffmpeg write the section as MP4 (the format chosen again from `formats`
    keeps this), without subtitle streams (teletext would not go into MP4)."""
    for fmt in [info, *(info.get("formats") or [])]:
        if str(fmt.get("ext") or "").lower() in UNINDEXED:
            fmt["ext"] = "mp4"
    args = ydl.params["external_downloader_args"]
    args["ffmpeg_i"] = [*args["ffmpeg_i"], "-sn"]


# --- servers that ignore Range: a sequential read, then a local cut ----------------------------

class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only, and behind a guard only to its relay (where the guard
    puts every redirect it passes on); any other answers as the 3xx it is."""

    def __init__(self, relay_prefix: str) -> None:
        self.relay_prefix = relay_prefix

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if (urlsplit(newurl).scheme.lower() not in ("http", "https")
                or not newurl.startswith(self.relay_prefix)):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _relay_prefix(proxy: str | None) -> str:
    return f"{proxy.rstrip('/')}{RELAY_PREFIX}" if proxy else ""


def _http_get(url: str, headers: Mapping[str, str], proxy: str | None,
              byte_range: str | None = None) -> http.client.HTTPResponse:
    """Open a GET of `url` (an http.client.HTTPResponse). Behind a guard `url` is a relay URL on
    it: the guard makes the real request (address vetted, certificate checked); without one,
    directly, the certificate checked against certifi's roots as yt-dlp does."""
    if not url.startswith(_relay_prefix(proxy)):
        raise PermanentError("The source cannot be fetched: its address is not on the guard.")
    sent = {k: v for k, v in headers.items()
            if k.lower() not in ("range", "accept-encoding", "connection", "host")}
    if byte_range:
        sent["Range"] = byte_range
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),  # never an environment proxy: the guard, or nothing
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=certifi.where())),
        _WebRedirects(_relay_prefix(proxy)))
    answer: http.client.HTTPResponse = opener.open(urllib.request.Request(url, headers=sent),
                                                   timeout=SOCKET_TIMEOUT)
    return answer


_NET_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


@contextlib.contextmanager
def _net_errors() -> Iterator[None]:
    """Network failures of our own requests, in the words yt-dlp's would get (classify_error)."""
    try:
        yield
    except ClipperError:
        raise
    except _NET_ERRORS as exc:
        raise classify_error(str(exc) or type(exc).__name__) from None


def _whole_file_answer(info: dict[str, Any],
                       proxy: str | None) -> http.client.HTTPResponse | None:
    """When yt-dlp chose one plain file (not HLS/DASH, not separate video and audio) on a
    server that ignores Range: the server's 200 answer to a one-byte request, i.e. the whole
    file from its first byte. None otherwise: the section download seeks as usual.

    ffmpeg cannot seek in such a file: a section in a faststart MP4's first GOP came out empty,
    an MP4 with its index at the end never worked (FACTS.md, "yt-dlp over loopback")."""
    url = info.get("url")
    if (info.get("protocol") not in ("http", "https") or info.get("requested_formats")
            or not isinstance(url, str) or not url.startswith(_relay_prefix(proxy))):
        return None
    try:
        answer = _http_get(url, info.get("http_headers") or {}, proxy, "bytes=0-0")
    except _NET_ERRORS:
        return None  # the section download meets the same problem and reports it as usual
    if answer.status == 200:
        return answer
    answer.close()  # 206: Range works
    return None


class _Body(Protocol):
    """What is read of an HTTP answer (http.client.HTTPResponse)."""

    def read(self, amt: int | None = None, /) -> bytes: ...


def _read_until(answer: _Body, data: bytes, size: int) -> bytes:
    while len(data) < size and (chunk := answer.read(size - len(data))):
        data += chunk
    return data


def _mp4_layout(answer: _Body) -> tuple[bytes, str]:
    """Read the top-level boxes a body starts with, up to its first moov or mdat: the bytes
    read and "moov-first" (faststart: readable as a stream), "index-last" (mdat before moov:
    ffmpeg needs the whole file) or "other" (not MP4, or too odd to tell)."""
    data, pos = b"", 0
    while True:
        data = _read_until(answer, data, pos + 16)
        if len(data) < pos + 8:
            return data, "other"
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"moov":
            return data, "moov-first"
        if kind == b"mdat":
            return data, "index-last"
        if size == 1 and len(data) >= pos + 16:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        if kind not in _LEADING_BOXES or size < 8 or pos + size > _PEEK_LIMIT:
            return data, "other"
        pos += size
        data = _read_until(answer, data, pos)


def _save(answer: http.client.HTTPResponse, head: bytes, path: Path) -> None:
    """`head` and then the rest of an HTTP answer into `path`, streamed (never the whole
    programme in memory); a body shorter than announced is a TransientError."""
    with path.open("wb") as out, _net_errors():
        out.write(head)
        shutil.copyfileobj(answer, out, _CHUNK)
        size = out.tell()
    announced = answer.headers.get("Content-Length") or ""
    if announced.isdigit() and size < int(announced):
        raise TransientError(f"Could not reach the source: the connection closed after {size} "
                             f"of {announced} bytes.", "It will be retried.")


def _stream_prefix(url: str, headers: Mapping[str, str], proxy: str | None, seconds: float,
                   out: Path, fmt: str) -> bool:
    """ffmpeg reads the source forward only from its first byte (never asking to seek) and
    copies its first `seconds` to `out`, timestamps kept; False when that did not work."""
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            *ffmpeg_net_args(url, proxy), "-seekable", "0",
            "-rw_timeout", str(int(SOCKET_TIMEOUT * 1_000_000))]
    if headers:
        args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
    args += ["-t", f"{seconds:.3f}", "-i", url, "-c", "copy", "-f", fmt, str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False,
                          env=_ffmpeg_env(proxy))
    try:
        got = probe_media(out).duration if proc.returncode == 0 else 0.0
    except InvalidInput:
        got = 0.0
    # ffmpeg exits 0 with a short file when the connection drops ("Stream ends prematurely"):
    # short is fine only where the source itself ended, i.e. without a word of error.
    if got >= seconds - 1.0 or (got > 0 and not proc.stderr.strip()):
        return True
    log.info("sequential read of %s failed: %s", url, ffrun.last_error_line(proc.stderr))
    return False


def _cut_local(source: Path, section: tuple[float, float], out: Path, fmt: str,
               extra: list[str] | None = None) -> Path:
    """The section from a local copy, the way yt-dlp's ffmpeg takes it from the network
    (`-ss start -t length -i … -c copy`): the same file, so the same exact offset."""
    try:
        total = probe_media(source).duration
    except InvalidInput:
        raise PermanentError("The source sent no playable media.", "Check the link.") from None
    lo, hi = section
    if lo >= total:
        raise _beyond_end(lo, total)
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-protocol_whitelist", ffrun.LOCAL_PROTOCOLS]
    args += (["-ss", str(lo)] if lo else []) + ["-t", str(hi - lo), "-i", str(source)]
    ffrun.run([*args, *(extra or []), "-c", "copy", "-f", fmt, str(out)],
              what="cut the section from the source")
    return out


def _sequential_section(answer: http.client.HTTPResponse, info: dict[str, Any],
                        section: tuple[float, float], workdir: Path, proxy: str | None) -> Path:
    """The section, from a server that ignores Range (`answer`: its whole file from byte 0).

    A faststart MP4 (or another container) is read by ffmpeg as a stream up to the section's
    end only; an MP4 whose index comes last cannot be read before all of it is here, so the
    whole file is saved (the same answer, read on). Either copy lies in `workdir`, which goes
    with the fetch, and the section is cut from it as yt-dlp would cut it.
    """
    ext = str(info.get("ext") or "mp4")
    fmt = EXT_TO_OUT_FORMATS.get(ext, ext)
    url, headers = str(info["url"]), dict(info.get("http_headers") or {})
    local = workdir / f"source.{ext}"
    with contextlib.closing(answer), _net_errors():
        head, layout = _mp4_layout(answer)
        if layout == "index-last":
            _save(answer, head, local)
    if layout != "index-last" and not _stream_prefix(url, headers, proxy,
                                                     section[1] + SEQUENTIAL_MARGIN, local, fmt):
        # Not readable as a stream after all (an odd layout): every byte, then.
        with _net_errors(), contextlib.closing(_http_get(url, headers, proxy)) as again:
            _save(again, b"", local)
    if ext.lower() in UNINDEXED:  # as yt-dlp's section would be (see UNINDEXED)
        return _cut_local(local, section, workdir / "section.mp4", "mp4", ["-sn"])
    return _cut_local(local, section, workdir / f"section.{ext}", fmt)


# --- HLS of fragmented MP4: its pieces read here, the section cut from them --------------------

_PLAYLIST_MAX = 8 << 20
_PIECE_THREADS = 4
WIDEN = (0, 2, 8)
"""Segments added on each side when the pieces did not cover the section (rounded EXTINFs)."""


def _hls_playlists(info: dict[str, Any], proxy: str | None) -> list[tuple[str, str]] | None:
    """(text, URL) of each HLS media playlist yt-dlp chose (one, or a video and an audio
    rendition), read through the guard; None when it chose anything else, or a read failed
    (the section download then meets the same problem and reports it as usual)."""
    chosen = info.get("requested_formats") or [info]
    if any(f.get("protocol") not in ("m3u8", "m3u8_native") or not isinstance(f.get("url"), str)
           or not f["url"].startswith(_relay_prefix(proxy)) for f in chosen):
        return None
    found = []
    for fmt in chosen:
        try:
            with contextlib.closing(_http_get(fmt["url"], fmt.get("http_headers") or {},
                                              proxy)) as answer:
                body, final = answer.read(_PLAYLIST_MAX + 1), answer.geturl()
        except (*_NET_ERRORS, ClipperError):
            return None
        if len(body) > _PLAYLIST_MAX:
            return None
        found.append((body.decode("utf-8", "replace"), final))
    return found


def _fragmented(playlists: list[tuple[str, str]], section: tuple[float, float]) -> bool:
    """Whether every playlist is fragmented MP4 that `fragment_plan` reads. ffmpeg 5.1's HLS
    demuxer reads no packet of fMP4 segments after `-ss`: the section came out empty."""
    return all("#EXT-X-MAP" in text and fragment_plan(text, url, section) is not None
               for text, url in playlists)


def _spanned_section(plan: SpanPlan, info: dict[str, Any], workdir: Path,
                     proxy: str | None) -> tuple[Path, float]:
    """A section after a discontinuity (`span_plan`): its span's segments joined here and
    written as MP4 from their first frame on; and the playlist time of the file's time 0 (the
    span's first timestamp lies at `plan.start`)."""
    headers = dict(info.get("http_headers") or {})
    wanted = list(dict.fromkeys([plan.first, *plan.pieces]))
    files = dict(zip(wanted, _read_pieces(wanted, workdir, headers, proxy), strict=True))
    local = _join_files(workdir / "span.ts", [files[p] for p in plan.pieces])
    origin = _format_start(files[plan.first])
    for path in files.values():
        path.unlink()
    begins = plan.start + _format_start(local) - origin
    out = workdir / "section.mp4"
    ffrun.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-protocol_whitelist", ffrun.LOCAL_PROTOCOLS, "-i", str(local), "-sn", "-dn",
               "-c", "copy", "-f", "mp4", str(out)], what="join the section's segments")
    local.unlink()
    return out, begins


def _format_start(path: Path) -> float:
    """A local file's earliest timestamp (ffprobe's format start_time), as ffmpeg counts."""
    try:
        return float((ffrun.probe(str(path)).get("format") or {}).get("start_time") or 0.0)
    except PermanentError:
        raise PermanentError("The source sent no playable media.", "Check the link.") from None


def _fragmented_section(playlists: list[tuple[str, str]], info: dict[str, Any],
                        section: tuple[float, float], workdir: Path, proxy: str | None) -> Path:
    """The section of fMP4 playlists (a rendition each): init + the segments covering it in one
    local file per rendition, cut there by the programme's own timestamps and joined.

    Time 0 is where ffmpeg (so yt-dlp's sections of other HLS, and players) starts the
    programme: its earliest stream's first timestamp, over the renditions, which share a clock.
    """
    headers = dict(info.get("http_headers") or {})
    renditions = [_Rendition(text, url, workdir / f"rendition{n}")
                  for n, (text, url) in enumerate(playlists)]
    with ThreadPoolExecutor(len(renditions)) as side:
        firsts = list(side.map(lambda r: r.read(section, 0, headers, proxy), renditions))
    origin = min(firsts)
    inputs: list[str] = []
    for rendition in renditions:
        for widen in WIDEN[1:]:
            if rendition.covers(section, origin):
                break
            log.info("%s: its segments did not cover the section; widening", rendition.url)
            rendition.read(section, widen, headers, proxy)
        inputs += ["-seek_timestamp", "1", "-ss", f"{origin + section[0]:.6f}",
                   "-t", f"{section[1] - section[0]:.6f}", "-i", str(rendition.local)]
    out = workdir / ("section.m4a" if info.get("ext") == "m4a" else "section.mp4")
    ffrun.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-protocol_whitelist", ffrun.LOCAL_PROTOCOLS, *inputs,
               *(x for n in range(len(renditions)) for x in ("-map", str(n))),
               "-c", "copy", "-f", "mp4", str(out)], what="cut the section from its segments")
    return out


@dataclasses.dataclass
class _Rendition:
    """One fMP4 media playlist and what was read of it: `local`, init + the segments covering
    the section, in `folder`."""

    text: str
    url: str
    folder: Path
    plan: FragmentPlan | None = None

    @property
    def local(self) -> Path:
        return self.folder / "pieces.mp4"

    def read(self, section: tuple[float, float], widen: int, headers: Mapping[str, str],
             proxy: str | None) -> float:
        """Download init, the first segment (the first time) and the segments covering
        `section` (`widen` more each side) side by side; the first segment's earliest
        timestamp (the programme's time 0 on this rendition), once read, else +inf."""
        plan = fragment_plan(self.text, self.url, section, widen)
        assert plan is not None  # _fragmented read it
        if section[0] >= plan.duration:
            raise _beyond_end(section[0], plan.duration)
        first = self.plan is None
        self.plan = plan
        self.folder.mkdir(exist_ok=True)
        wanted = list(dict.fromkeys([plan.init, *([plan.first] if first else []),
                                     *plan.pieces]))
        files = dict(zip(wanted, _read_pieces(wanted, self.folder, headers, proxy),
                         strict=True))
        _join_files(self.local, [files[plan.init], *(files[p] for p in plan.pieces)])
        start = _hls_start(self.folder, files[plan.init], files[plan.first]) if first else math.inf
        for path in files.values():
            path.unlink(missing_ok=True)
        return start

    def covers(self, section: tuple[float, float], origin: float) -> bool:
        """Whether `local` holds every stream from the section's start to its end (or the
        playlist's first or last segment: nothing more to read there)."""
        assert self.plan is not None
        start, end = _span(self.local)
        lo, hi = origin + section[0], origin + min(section[1], self.plan.duration)
        return ((self.plan.from_start or start <= lo + 1e-3)
                and (self.plan.to_end or end >= hi - 0.05))


def _hls_start(folder: Path, init: Path, first: Path) -> float:
    """Where ffmpeg's HLS reader starts a programme whose init and first segments these are:
    its earliest stream's first timestamp as that reader sees it (it leaves out the sound's
    priming that the MP4 reader of the same bytes counts: 23 ms earlier at 44.1 kHz), read
    from a playlist of the two, here. The two files are moved to names that reader accepts."""
    names = (folder / "init.mp4", folder / "first.m4s")
    init.replace(names[0])
    first.replace(names[1])
    playlist = folder / "first.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:3600\n"
                        f'#EXT-X-MAP:URI="{names[0].name}"\n#EXTINF:3600,\n{names[1].name}\n'
                        "#EXT-X-ENDLIST\n")
    try:
        return _format_start(playlist)
    finally:
        for path in (*names, playlist):
            path.unlink(missing_ok=True)


def _span(path: Path) -> tuple[float, float]:
    try:
        return stream_span(path)
    except InvalidInput:
        raise PermanentError("The source sent no playable media.", "Check the link.") from None


def _read_pieces(pieces: list[Piece], folder: Path, headers: Mapping[str, str],
                 proxy: str | None) -> list[Path]:
    """Download `pieces` side by side into `folder`, one file each, streamed to disk (never
    held whole); the files in the same order."""
    files = [folder / f"piece-{i:05d}" for i in range(len(pieces))]
    with ThreadPoolExecutor(_PIECE_THREADS) as pool:
        done = [pool.submit(_save_piece, piece, path, headers, proxy)
                for piece, path in zip(pieces, files, strict=True)]
        try:
            for future in done:
                future.result()
        except ClipperError as exc:
            for future in done:
                future.cancel()
            raise (disk_full_error(folder) or exc) from None
    return files


def _save_piece(piece: Piece, path: Path, headers: Mapping[str, str], proxy: str | None) -> None:
    with _net_errors(), contextlib.closing(_http_get(piece.url, headers, proxy,
                                                     piece.byte_range)) as answer:
        if piece.byte_range and answer.status != 206:
            raise PermanentError("The source ignores the byte ranges its playlist names "
                                 f"({piece.byte_range} of {piece.url}).", "Check the link.")
        _save(answer, b"", path)


def _join_files(out: Path, parts: list[Path]) -> Path:
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, sink, _CHUNK)
    return out


LEADS = (2.5, 10.0, 30.0, 90.0)
"""Seconds read before a section from an `UNINDEXED` container, in turn, when its picture
began late (broadcast GOPs last 0.5-2 s, some 10 s)."""


def _picture_late(path: Path, info: MediaInfo, needed: float, url: str,
                  proxy: str | None) -> bool:
    """Whether a section lacks the frame its clip starts with: the first at or after `needed`
    seconds into it. One with no picture at all asks the source whether it has one (radio
    has none)."""
    if not info.has_video:
        return remote_has_video(url, proxy)
    frames = video_frames(path, info.start_time)
    frame = 1.0 / info.fps if info.fps > 0 else 0.04
    return not frames or frames[0].pts > needed + 0.9 * frame


def _fetch_once(url: str, section: tuple[float, float], dest_dir: Path, proxy: str | None,
                guard: Guard | None, clip_start: float) -> FetchedSection:
    for lead in (0.0, *LEADS):
        wanted = (max(0.0, section[0] - lead), section[1])
        found = _fetch_file(url, wanted, dest_dir, proxy, guard, clip_start - wanted[0],
                            last=wanted[0] == 0 or lead == LEADS[-1])
        if found is not None:
            return found
        log.info("%s: the picture of %.2f s began late; reading from %.0f s earlier", url,
                 clip_start, LEADS[LEADS.index(lead) + 1] if lead else LEADS[0])
    raise AssertionError("unreachable: the last lead is kept")


def _fetch_file(url: str, section: tuple[float, float], dest_dir: Path, proxy: str | None,
                guard: Guard | None, needed: float, *, last: bool) -> FetchedSection | None:
    """One section download, probed and moved into `dest_dir`; None (nothing kept) when its
    picture began late (`_picture_late`: after `needed` s into it, where the clip starts) and
    an earlier start is still to be tried."""
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as work:
        path, title, unindexed, starts_at = _download(url, section, Path(work), proxy, guard)
        # The two ffprobe runs side by side (each ~0.1 s, mostly its start-up).
        with ThreadPoolExecutor(1) as side:
            lag_read = side.submit(edit_list_lag, path)
            try:
                info = probe_media(path)
            except InvalidInput:
                total = remote_duration(url, proxy)
                if total is not None and section[0] >= total:
                    raise _beyond_end(section[0], total) from None
                raise PermanentError("The source sent no playable media for this section.",
                                     "Check the link and the times.") from None
            lag = lag_read.result()
        if unindexed and not last and _picture_late(path, info, needed, url, proxy):
            return None
        final = dest_dir / f"section-{uuid.uuid4().hex}{path.suffix}"
        shutil.move(path, final)
    offset = section[0] + lag if starts_at is None else starts_at
    return FetchedSection(final, offset, info.duration, title,
                          dataclasses.replace(info, path=final))


FROM_THE_START = 0.25
"""A section starting earlier than this (s) is read from the programme's start."""


def fetch_section(url: str, start: float, end: float, *, dest_dir: Path, pad: float,
                  proxy: str | Guard | None = None, tries: int = 3) -> FetchedSection:
    """Download [start - pad, end + pad] of `url`; source time = result.offset + file time.

    The offset is exact to the frame: yt-dlp's ffmpeg starts the file's edit at start - pad,
    and the first shown frame is the first source frame at or after it (edit_list_lag).
    TransientError is retried `tries` times with backoff 0.5, 1, 2 s; PermanentError is not.
    `proxy`: the guard proxy, or just its URL (then the caller must ask the guard what it
    refused: a refused HLS segment can leave a shorter file and no error).
    """
    if not 0 <= start < end:
        raise InvalidInput(f"Bad section {start}–{end} s.", "The start must come before the end.")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Near the start, from the start: ffmpeg's HLS reader seeking into a programme's first
    # 0.08 s (before its first frame's decode time) dropped the whole picture of the section.
    section = (0.0 if start - pad < FROM_THE_START else start - pad, end + pad)
    guard: Guard | None = None
    if proxy is not None and not isinstance(proxy, str):
        guard, proxy = proxy, proxy.url
    for attempt in range(max(1, tries)):
        try:
            return _fetch_once(url, section, dest_dir, proxy, guard, start)
        except TransientError:
            if attempt + 1 >= max(1, tries):
                raise
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    raise AssertionError("unreachable")


def local_section(path: Path) -> FetchedSection:
    """A local file as a 'section' covering the whole file (offset 0)."""
    info = probe_media(Path(path))
    return FetchedSection(Path(path), 0.0, info.duration, Path(path).stem, info)
