"""Download just a section of a broadcast with yt-dlp (never the whole programme); errors typed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import certifi
import yt_dlp
from yt_dlp.utils import DownloadError, download_range_func

from clipper.domain import FetchedSection
from clipper.errors import ClipperError, InvalidInput, PermanentError, TransientError
from clipper.media.probe import edit_list_lag, probe_media

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
        "retries": 0, "fragment_retries": 0, "extractor_retries": 0, "socket_timeout": 20,
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


def remote_duration(url: str, proxy: str | None) -> float | None:
    """Duration of a network source by ffprobe (same protocol rules as the download), if known."""
    env = None
    if proxy:  # the variable too: ffmpeg falls back on it where an option does not reach
        env = {k: v for k, v in os.environ.items() if k not in PROXY_BYPASS_VARS}
        env["http_proxy"] = proxy
    args = ["ffprobe", "-v", "error", *ffmpeg_net_args(url, proxy), "-show_entries",
            "format=duration", "-of", "json", relay_url(proxy, url) if proxy else url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return float(json.loads(proc.stdout)["format"]["duration"])
    return None


def _through_relay(info: dict[str, Any], proxy: str) -> None:
    """Point the formats' URLs (what yt-dlp hands ffmpeg) at the guard's relay: ffmpeg then
    reads every playlist, segment and redirect through the guard, which checks each one as
    ffmpeg reads it (a one-time scan cannot: the server may answer ffmpeg differently)."""
    for fmt in [info, *(info.get("formats") or []), *(info.get("requested_formats") or [])]:
        url = fmt.get("url")
        if isinstance(url, str) and re.match(r"https?://", url, re.I):
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


def _download(url: str, section: tuple[float, float], workdir: Path, proxy: str | None,
              guard: Guard | None) -> tuple[Path, str]:
    try:
        found = _ytdlp_download(url, section, workdir, proxy)
    except ClipperError:
        _check_guard(guard)
        raise
    _check_guard(guard)
    return found


def _ytdlp_download(url: str, section: tuple[float, float], workdir: Path,
                    proxy: str | None) -> tuple[Path, str]:
    options = ydl_options(section, workdir, proxy, url)
    with _no_proxy_bypass(bool(proxy)), yt_dlp.YoutubeDL(options) as ydl:
        try:
            info = ydl.extract_info(url, download=False)
            if info.get("_type") in ("playlist", "multi_video"):
                raise PermanentError("The link is a playlist, not a single programme.",
                                     "Link one item.")
            if info.get("duration") and section[0] >= float(info["duration"]):
                raise _beyond_end(section[0], float(info["duration"]))
            if proxy:
                _through_relay(info, proxy)
            info = ydl.process_ie_result(info, download=True)
        except DownloadError as exc:
            raise classify_error(str(exc)) from None
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or []
             if d.get("filepath")]
    if not files or not files[0].exists():
        raise PermanentError("The download produced no file.", "Check the link.")
    return files[0], str(info.get("title") or "")


def _fetch_once(url: str, section: tuple[float, float], dest_dir: Path, proxy: str | None,
                guard: Guard | None) -> FetchedSection:
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as work:
        path, title = _download(url, section, Path(work), proxy, guard)
        try:
            info = probe_media(path)
        except InvalidInput:
            total = remote_duration(url, proxy)
            if total is not None and section[0] >= total:
                raise _beyond_end(section[0], total) from None
            raise PermanentError("The source sent no playable media for this section.",
                                 "Check the link and the times.") from None
        final = dest_dir / f"section-{uuid.uuid4().hex}{path.suffix}"
        lag = edit_list_lag(path)
        shutil.move(path, final)
    return FetchedSection(final, section[0] + lag, info.duration, title)


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
    section = (max(0.0, start - pad), end + pad)
    guard: Guard | None = None
    if proxy is not None and not isinstance(proxy, str):
        guard, proxy = proxy, proxy.url
    for attempt in range(max(1, tries)):
        try:
            return _fetch_once(url, section, dest_dir, proxy, guard)
        except TransientError:
            if attempt + 1 >= max(1, tries):
                raise
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    raise AssertionError("unreachable")


def local_section(path: Path) -> FetchedSection:
    """A local file as a 'section' covering the whole file (offset 0)."""
    info = probe_media(Path(path))
    return FetchedSection(Path(path), 0.0, info.duration, Path(path).stem)
