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
from typing import Any

import certifi
import yt_dlp
from yt_dlp.utils import DownloadError, download_range_func

from clipper.domain import FetchedSection
from clipper.errors import ClipperError, InvalidInput, PermanentError, TransientError
from clipper.media.probe import edit_list_lag, probe_media

# ffmpeg (run by yt-dlp for sections) may open network inputs only: no file://, no httpproxy://
# (a playlist segment "httpproxy://HOST/" would connect straight to HOST, bypassing the proxy).
NETWORK_PROTOCOLS = "http,https,tcp,tls,crypto"
BACKOFF = (0.5, 1.0, 2.0)
_PERMANENT = (r"HTTP Error (?:4\d\d)", r"Unsupported URL", r"is not a valid URL", r"Unable to download webpage: HTTP Error 4",
              r"Invalid data found", r"no (?:video )?formats? found", r"Requested format is not available")
_TRANSIENT = (r"HTTP Error 5\d\d", r"Connection refused", r"Connection reset", r"timed out", r"[Tt]imeout",
              r"Temporary failure in name resolution", r"Remote end closed", r"IncompleteRead",
              r"Network is unreachable", r"Server returned 5\d\d")


_CERTIFICATE = re.compile(r"certificate verify failed: ([^(;]+?)\s*(?:\(|;|$)")


def classify_error(text: str) -> ClipperError:
    """Pure: yt-dlp/ffmpeg error text -> PermanentError or TransientError with a readable message."""
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
    go around the proxy. (The one place clipper touches os.environ: it is process state, not config.)"""
    saved = {k: os.environ.pop(k) for k in ("no_proxy", "NO_PROXY") if active and k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def network_protocols(url: str, proxy: str | None) -> str:
    """ffmpeg's whitelist for `url`. https through the guard proxy needs ffmpeg's CONNECT tunnel
    (`httpproxy`); a playlist could name that protocol to skip the proxy, so playlists are
    scanned first (`check_playlists`) and refused if any URI is not plain http(s)."""
    tunnel = proxy and url.lower().startswith("https:")
    return NETWORK_PROTOCOLS + (",httpproxy" if tunnel else "")


def ydl_options(section: tuple[float, float], workdir: Path, proxy: str | None,
                url: str = "") -> dict[str, Any]:
    """yt-dlp options for one section download into workdir (quiet, single item, no retries)."""
    ffmpeg_in = ["-protocol_whitelist", network_protocols(url, proxy)] + (["-http_proxy", proxy] if proxy else [])
    if url.lower().startswith("https:"):  # ffmpeg checks no certificate unless told to
        ffmpeg_in += ["-tls_verify", "1", "-ca_file", certifi.where()]
    opts: dict[str, Any] = {
        "quiet": True, "no_warnings": True, "noprogress": True, "noplaylist": True,
        "outtmpl": str(workdir / "section.%(ext)s"), "paths": {"home": str(workdir)},
        "download_ranges": download_range_func(None, [section]),
        "retries": 0, "fragment_retries": 0, "extractor_retries": 0, "socket_timeout": 20,
        "external_downloader_args": {"ffmpeg_i": ffmpeg_in},
        "overwrites": True, "cachedir": False, "logger": _QuietLogger(),
    }
    return opts | ({"proxy": proxy} if proxy else {})


class _QuietLogger:
    """yt-dlp logger that swallows output; errors reach us as DownloadError anyway."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


def remote_duration(url: str, proxy: str | None) -> float | None:
    """Duration of a network source by ffprobe (same protocol rules as the download), if known."""
    args = ["ffprobe", "-v", "error", "-protocol_whitelist", NETWORK_PROTOCOLS,
            *(["-http_proxy", proxy] if proxy else []), "-show_entries", "format=duration",
            "-of", "json", url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return float(json.loads(proc.stdout)["format"]["duration"])
    return None


_URI_ATTR = re.compile(r'URI="([^"]*)"')
_SAFE_URI = re.compile(r"^(?:https?://|[^:/?#]*(?:[/?#]|$))", re.I)  # http(s) or a relative path


def playlist_uris(text: str) -> list[str]:
    """Every URI an HLS playlist names: segment/variant lines and URI="..." attributes (pure)."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            uris.append(line)
        uris += _URI_ATTR.findall(line)
    return uris


def unsafe_uris(text: str) -> list[str]:
    """URIs in a playlist that are not plain http(s) or relative (e.g. httpproxy://, file:, data:)."""
    return [u for u in playlist_uris(text) if not _SAFE_URI.match(u)]


def _manifest_urls(info: dict[str, Any]) -> list[str]:
    formats = info.get("requested_formats") or [info]
    return [f["url"] for f in formats if str(f.get("protocol", "")).startswith("m3u8") and f.get("url")]


def check_playlists(urls: list[str], proxy: str | None, *, limit: int = 8) -> None:
    """Fetch the HLS playlists ffmpeg will read (through the proxy) and refuse unsafe URIs."""
    import urllib.parse
    import urllib.request

    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    todo, seen = list(urls), set()
    while todo and len(seen) < limit:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        try:
            with opener.open(url, timeout=20) as resp:
                text = resp.read(4 << 20).decode("utf-8", "replace")
        except OSError as exc:
            raise classify_error(f"Unable to download playlist: {exc}") from None
        bad = unsafe_uris(text)
        if bad:
            raise PermanentError(f"The playlist names a URI Clipper will not fetch: {bad[0][:80]}",
                                 "Only http(s) segments are allowed.")
        todo += [urllib.parse.urljoin(url, u) for u in playlist_uris(text) if ".m3u8" in u.lower()]


def _beyond_end(begin: float, duration: float) -> PermanentError:
    return PermanentError(f"The section starts at {begin:.1f} s but the media lasts only {duration:.1f} s.",
                          "Check the start time.")


def _download(url: str, section: tuple[float, float], workdir: Path, proxy: str | None) -> tuple[Path, str]:
    with _no_proxy_bypass(bool(proxy)), yt_dlp.YoutubeDL(ydl_options(section, workdir, proxy, url)) as ydl:
        try:
            info = ydl.extract_info(url, download=False)
            check_playlists(_manifest_urls(info), proxy)
            if info.get("_type") in ("playlist", "multi_video"):
                raise PermanentError("The link is a playlist, not a single programme.", "Link one item.")
            if info.get("duration") and section[0] >= float(info["duration"]):
                raise _beyond_end(section[0], float(info["duration"]))
            info = ydl.process_ie_result(info, download=True)
        except DownloadError as exc:
            raise classify_error(str(exc)) from None
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    if not files or not files[0].exists():
        raise PermanentError("The download produced no file.", "Check the link.")
    return files[0], str(info.get("title") or "")


def _fetch_once(url: str, section: tuple[float, float], dest_dir: Path, proxy: str | None) -> FetchedSection:
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as work:
        path, title = _download(url, section, Path(work), proxy)
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
                  proxy: str | None = None, tries: int = 3) -> FetchedSection:
    """Download [start - pad, end + pad] of `url`; source time = result.offset + file time.

    The offset is exact to the frame: yt-dlp's ffmpeg starts the file's edit at start - pad,
    and the first shown frame is the first source frame at or after it (edit_list_lag).
    TransientError is retried `tries` times with backoff 0.5, 1, 2 s; PermanentError is not.
    """
    if not 0 <= start < end:
        raise InvalidInput(f"Bad section {start}–{end} s.", "The start must come before the end.")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    section = (max(0.0, start - pad), end + pad)
    for attempt in range(max(1, tries)):
        try:
            return _fetch_once(url, section, dest_dir, proxy)
        except TransientError:
            if attempt + 1 >= max(1, tries):
                raise
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    raise AssertionError("unreachable")


def local_section(path: Path) -> FetchedSection:
    """A local file as a 'section' covering the whole file (offset 0)."""
    info = probe_media(Path(path))
    return FetchedSection(Path(path), 0.0, info.duration, Path(path).stem)
