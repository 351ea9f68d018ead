"""The guard's relay: ffmpeg reads http and https sources as plain http from the guard, which
rewrites every HLS playlist on every read, so a playlist that changes between reads cannot send
ffmpeg past the guard (httpproxy:, tls:, tcp:, crypto+… URIs, private addresses).

The refused target is a bare listening socket on 127.0.0.2 (not allowlisted; 127.0.0.1 is):
"refused" means it accepted no connection at all, counted after ffmpeg has exited.
"""

from __future__ import annotations

import http.server
import os
import re
import selectors
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import pytest

from clipper.errors import PermanentError, UnsafeURL
from clipper.media import fetch
from clipper.media.fetch import fetch_section
from clipper.media.ffrun import probe
from clipper.net.guard import (
    FFMPEG_NET_PROTOCOLS,
    PROXY_BYPASS_VARS,
    RELAY_PREFIX,
    GuardProxy,
    ffmpeg_input_args,
    guarded_env,
    relay_url,
    rewrite_playlist,
)
from testmedia.mediagen import make_hls, make_video, serve_dir

pytestmark = pytest.mark.services

ALLOW = ["127.0.0.1"]
PLAYLIST = "/hls/index.m3u8"

# What a hostile server adds to a playlist ({t}: the forbidden host:port). Each is a way to
# name a connection ffmpeg might open itself, or an address the guard must refuse.
HOSTILE = {
    "httpproxy": "#EXTINF:1.0,\nhttpproxy://{t}/seg.ts\n",
    "httpproxy-opaque": "#EXTINF:1.0,\nhttpproxy:{t}/seg.ts\n",
    "crypto+httpproxy": "#EXTINF:1.0,\ncrypto+httpproxy://{t}/seg.ts\n",
    "crypto:httpproxy": "#EXTINF:1.0,\ncrypto:httpproxy://{t}/seg.ts\n",
    "tls": "#EXTINF:1.0,\ntls://{t}/seg.ts\n",
    "tcp": "#EXTINF:1.0,\ntcp://{t}/seg.ts\n",
    "http-address": "#EXTINF:1.0,\nhttp://{t}/seg.ts\n",
    "https-address": "#EXTINF:1.0,\nhttps://{t}/seg.ts\n",
    "scheme-relative": "#EXTINF:1.0,\n//{t}/seg.ts\n",
    "map-unquoted": "#EXT-X-MAP:URI=httpproxy://{t}/init.mp4\n#EXTINF:1.0,\nseg0000.ts\n",
    "key": '#EXT-X-KEY:METHOD=AES-128,URI="httpproxy://{t}/k"\n#EXTINF:1.0,\nseg0000.ts\n',
    "bare-cr": "#EXTINF:1.0,\rhttpproxy://{t}/seg.ts\r",
}
FEW = ["httpproxy", "crypto+httpproxy", "tls", "http-address", "map-unquoted"]


# ---------------------------------------------------------------- servers, certificates, media

class Forbidden:
    """A listening socket on 127.0.0.2 that hangs up on every connection (so a client that got
    there fails fast instead of waiting) and counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.2", 0))
        self.sock.setblocking(False)
        self.target = f"127.0.0.2:{self.sock.getsockname()[1]}"
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                if sel.select(timeout=0.05):
                    self._accept_all()

    def _accept_all(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return
            conn.close()
            self._count += 1

    def connections(self) -> int:
        """Every connection made so far: the kernel queues them even if not yet accepted."""
        self._stop.set()
        self._thread.join()
        self._accept_all()
        return self._count

    def close(self) -> None:
        self.connections()
        self.sock.close()


@pytest.fixture
def forbidden() -> Iterator[Forbidden]:
    target = Forbidden()
    yield target
    target.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8 s video as 1 s HLS segments (short reload interval for live playlists)."""
    root = tmp_path_factory.mktemp("relay-site")
    make_hls(make_video(root / "v.mp4", 8, size="160x90", gop=25), root / "hls", hls_time=1)
    return root


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 (certificate made here) and a CA bundle trusting it."""
    folder = tmp_path_factory.mktemp("relay-tls")
    cert, key, bundle = folder / "cert.pem", folder / "key.pem", folder / "bundle.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    bundle.write_text(Path(certifi.where()).read_text() + cert.read_text())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, bundle


@pytest.fixture
def trust(tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """yt-dlp and the guard's relay both read certifi's bundle."""
    monkeypatch.setattr(certifi, "where", lambda: str(tls[1]))


def _send(handler: http.server.BaseHTTPRequestHandler, body: str) -> None:
    data = body.encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/vnd.apple.mpegurl")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _origin(site: Path, scheme: str, tls: tuple[ssl.SSLContext, Path],
            answer: Callable[[http.server.BaseHTTPRequestHandler], str | None]):  # noqa: ANN202
    """serve_dir over http or https; `answer(handler)` may return a playlist to send instead."""
    def hook(handler: http.server.BaseHTTPRequestHandler) -> bool:
        body = answer(handler)
        if body is not None:
            _send(handler, body)
        return body is not None
    return serve_dir(site, hook=hook, tls=tls[0] if scheme == "https" else None)


def _ffmpeg(guard: GuardProxy, url: str, out: Path) -> subprocess.CompletedProcess:
    """ffmpeg as fetch runs it behind the guard: guarded options, relay URL, guarded env."""
    env = guarded_env({**os.environ, "no_proxy": "*"}, guard.url)
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
                           *ffmpeg_input_args(guard.url), "-i", relay_url(guard.url, url),
                           "-c", "copy", "-f", "mpegts", "-y", str(out)],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


# ---------------------------------------------------------------- pure: URLs and playlists

def test_fetch_and_guard_agree_on_the_relay_and_ffmpeg_options() -> None:
    """fetch may not import the guard (sibling layers): its copies must match."""
    proxy, url = "http://127.0.0.1:3128", "https://cdn.example:8443/live/a.m3u8?t=1&u=2"
    assert fetch.relay_url(proxy, url) == relay_url(proxy, url)
    assert relay_url(proxy, url) == (
        f"{proxy}{RELAY_PREFIX}https/cdn.example:8443/live/a.m3u8?t=1&u=2")
    assert fetch.ffmpeg_net_args(url, proxy) == ffmpeg_input_args(proxy)
    assert (fetch.GUARDED_PROTOCOLS, fetch.RELAY_PREFIX) == (FFMPEG_NET_PROTOCOLS, RELAY_PREFIX)
    assert fetch.PROXY_BYPASS_VARS == PROXY_BYPASS_VARS
    assert set(FFMPEG_NET_PROTOCOLS.split(",")) == {"http", "tcp", "crypto"}


def test_rewrite_points_every_uri_at_the_relay() -> None:
    proxy = "http://127.0.0.1:5000"
    playlist = (b'#EXTM3U\r#EXT-X-KEY:METHOD=AES-128, URI="k e y.bin",IV=0x1\n'
                b"#EXT-X-MAP:URI=init.mp4\n#EXTINF:1,caf\xc3\xa9\n  seg0.ts \r\n"
                b"https://cdn.example/s/seg1.ts?t=1#frag\n//other.example/seg2.ts\n#EXT-X-ENDLIST")
    out = rewrite_playlist(playlist, "https://src.example:8443/live/index.m3u8", proxy)
    relay = f"{proxy}{RELAY_PREFIX}"
    assert out.decode().splitlines() == [
        "#EXTM3U",
        f'#EXT-X-KEY:METHOD=AES-128,URI="{relay}https/src.example:8443/live/k%20e%20y.bin",IV=0x1',
        f'#EXT-X-MAP:URI="{relay}https/src.example:8443/live/init.mp4"',
        "#EXTINF:1,café",
        f"{relay}https/src.example:8443/live/seg0.ts",
        f"{relay}https/cdn.example/s/seg1.ts?t=1",
        f"{relay}https/other.example/seg2.ts",
        "#EXT-X-ENDLIST",
    ]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_rewrite_refuses_uris_that_are_not_http(name: str) -> None:
    playlist = ("#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + HOSTILE[name].format(t="10.0.0.5:80"))
    if name.endswith("address") or name == "scheme-relative":
        rewritten = rewrite_playlist(playlist.encode(), "https://a.example/x.m3u8", "http://g")
        assert "10.0.0.5" in rewritten.decode() and "://10.0.0.5" not in rewritten.decode()
        return  # an http(s) address is relayed; the guard vets it when ffmpeg asks for it
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.5:80.*which is not an http\(s\) address"):
        rewrite_playlist(playlist.encode(), "https://a.example/x.m3u8", "http://g")


# ---------------------------------------------------------------- the relay over real sockets

@pytest.mark.parametrize("scheme", ["http", "https"])
def test_relay_fetches_and_rewrites_playlists(scheme: str, site: Path, tls, trust) -> None:
    with _origin(site, scheme, tls, lambda h: None) as (base, requested), \
            GuardProxy(ALLOW) as guard:
        text = urllib.request.urlopen(relay_url(guard.url, base + PLAYLIST), timeout=10).read()
        segment = urllib.request.urlopen(relay_url(guard.url, f"{base}/hls/seg0003.ts"),
                                         timeout=10).read()
        relay = f"{guard.url}{RELAY_PREFIX}{scheme}/127.0.0.1:"
    uris = [line for line in text.decode().splitlines() if not line.startswith("#")]
    assert uris and all(u.startswith(relay) for u in uris)
    assert segment == (site / "hls" / "seg0003.ts").read_bytes()
    assert requested == [PLAYLIST, "/hls/seg0003.ts"] and guard.refused == []


def test_relay_reads_a_playlist_behind_id3_tags(site: Path, tls) -> None:
    """ffmpeg skips ID3v2 tags before its input, so the relay must see through them too."""
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x03abc"
    hostile = id3 + b"#EXTM3U\n#EXTINF:1.0,\nhttpproxy://127.0.0.2:9/seg.ts\n"

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(hostile)))
        handler.end_headers()
        handler.wfile.write(hostile)

    with serve_dir(site, hook=lambda h: answer(h) is None) as (base, _), \
            GuardProxy(ALLOW) as guard, pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(relay_url(guard.url, base + PLAYLIST), timeout=10)
    assert info.value.code == 403 and "httpproxy://127.0.0.2:9/seg.ts" in guard.refused[0].reason


def test_relay_keeps_redirects_on_the_relay(site: Path, tls) -> None:
    def redirect(handler: http.server.BaseHTTPRequestHandler) -> bool:
        if handler.path in ("/go", "/go-bad"):
            handler.send_response(302)
            to = "/hls/seg0001.ts" if handler.path == "/go" else "httpproxy://127.0.0.2:9/x"
            handler.send_header("Location", to)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        return False

    with serve_dir(site, hook=redirect) as (base, requested), GuardProxy(ALLOW) as guard:
        body = urllib.request.urlopen(relay_url(guard.url, f"{base}/go"), timeout=10).read()
        assert body == (site / "hls" / "seg0001.ts").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(relay_url(guard.url, f"{base}/go-bad"), timeout=10)
    assert info.value.code == 403 and "redirects to httpproxy://127.0.0.2:9/x" in (
        guard.refused[0].reason)
    assert requested == ["/go", "/hls/seg0001.ts", "/go-bad"]


def test_relay_refuses_an_untrusted_certificate(site: Path, tls) -> None:
    with _origin(site, "https", tls, lambda h: None) as (base, requested), \
            GuardProxy(ALLOW) as guard, pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(relay_url(guard.url, base + PLAYLIST), timeout=10)
    assert info.value.code == 502 and requested == []
    error = guard.unsafe_error()
    assert error is not None
    assert error.message == (
        "The TLS certificate of 127.0.0.1 is not trusted (self-signed certificate).")


# ---------------------------------------------------------------- ffmpeg: a live playlist turns

def _live(site: Path) -> str:
    """The site's playlist as a live one (no end): ffmpeg reads it, then reloads it."""
    text = (site / "hls" / "index.m3u8").read_text()
    return text.replace("#EXT-X-ENDLIST\n", "").replace("#EXT-X-PLAYLIST-TYPE:VOD\n", "")


@pytest.mark.parametrize(("scheme", "name"), [("https", n) for n in sorted(HOSTILE)]
                         + [("http", n) for n in FEW])
def test_ffmpeg_reload_of_a_live_playlist_stays_behind_the_guard(
        scheme: str, name: str, site: Path, tls, trust, forbidden: Forbidden,
        tmp_path: Path) -> None:
    """ffmpeg's first read is clean; the reload adds a hostile entry (and ends the stream)."""
    live = _live(site)
    grown = live + HOSTILE[name].format(t=forbidden.target) + "#EXT-X-ENDLIST\n"
    reads: list[str] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> str | None:
        if handler.path != PLAYLIST:
            return None
        reads.append(handler.path)
        return live if len(reads) == 1 else grown

    with _origin(site, scheme, tls, answer) as (base, _), GuardProxy(ALLOW) as guard:
        result = _ffmpeg(guard, base + PLAYLIST, tmp_path / "out.ts")
    assert len(reads) >= 2, result.stderr  # ffmpeg did reload
    assert forbidden.connections() == 0
    assert guard.refused and forbidden.target in guard.refused[0].reason, result.stderr
    assert float(probe(str(tmp_path / "out.ts"))["format"]["duration"]) > 1.5  # it did read


# ---------------------------------------------------- fetch: its own ffprobe, and end to end

@pytest.mark.parametrize("scheme", ["http", "https"])
def test_remote_duration_reads_through_the_relay(scheme: str, site: Path, tls, trust) -> None:
    with _origin(site, scheme, tls, lambda h: None) as (base, requested), \
            GuardProxy(ALLOW) as guard:
        duration = fetch.remote_duration(base + PLAYLIST, guard.url)
    assert duration is not None and abs(duration - 8) < 0.5
    assert PLAYLIST in requested and guard.refused == []

@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("name", FEW)
def test_fetch_fails_clearly_when_ffmpegs_read_differs_from_yt_dlps(
        scheme: str, name: str, site: Path, tls, trust, forbidden: Forbidden,
        tmp_path: Path) -> None:
    """yt-dlp's reads of the playlist get the clean one; ffmpeg's (it sends Icy-MetaData, as
    any server could tell) get one with a hostile entry in the section."""
    clean = (site / "hls" / "index.m3u8").read_text()
    hostile = re.sub(r"#EXTINF:[^\n]*\nseg0000\.ts\n",
                     HOSTILE[name].format(t=forbidden.target).replace("\\", "\\\\"), clean)
    assert hostile != clean
    reads: list[str] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> str | None:
        if handler.path != PLAYLIST:
            return None
        ffmpeg = "Icy-MetaData" in handler.headers
        reads.append("ffmpeg" if ffmpeg else "yt-dlp")
        return hostile if ffmpeg else clean

    error: PermanentError | None = None
    with _origin(site, scheme, tls, answer) as (base, _), GuardProxy(ALLOW) as guard:
        try:
            fetch_section(base + PLAYLIST, 0.2, 1.5, dest_dir=tmp_path, pad=0, proxy=guard,
                          tries=1)
        except PermanentError as exc:
            error = exc
    assert forbidden.connections() == 0
    assert reads[0] == "yt-dlp" and "ffmpeg" in reads
    assert error is not None, "the fetch should have failed"
    assert error.message.startswith("The source led Clipper somewhere it must not go:")
    assert forbidden.target in error.message
    assert not list(tmp_path.glob("section-*"))  # no partial section is kept
