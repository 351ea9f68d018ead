"""clipper.net.guard: the guarding forward proxy, driven by urllib, raw sockets, yt-dlp and ffmpeg.

Two real servers share one port: 127.0.0.1 (allowlisted, "the newsroom") and 127.0.0.2 (not
allowlisted, standing in for any internal address). The forbidden server counts every TCP
connection it accepts, so "refused" means it was never even contacted.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yt_dlp
from yt_dlp.utils import DownloadError, download_range_func

from clipper.errors import UnsafeURL
from clipper.media.fetch import _no_proxy_bypass
from clipper.media.ffrun import probe
from clipper.net.guard import (
    FFMPEG_NET_PROTOCOLS,
    GuardProxy,
    ffmpeg_input_args,
    guarded_env,
    ytdlp_params,
)

pytestmark = pytest.mark.services

ALLOW = ["127.0.0.1"]


# ---------------------------------------------------------------- servers and media

class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files plus /redirect?to=URL, /echo (request headers as JSON), /stream (2 parts)."""

    def log_message(self, format, *args):  # noqa: A002 - quiet test servers
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/echo":
            self._send(json.dumps(dict(self.headers.items())).encode())
        elif url.path == "/stream":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"first\n")
            self.wfile.flush()
            self.server.release.wait(10)  # type: ignore[attr-defined]
            self.wfile.write(b"second\n")
        else:
            super().do_GET()

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CountingServer(http.server.ThreadingHTTPServer):
    """Serves a directory and counts the connections it accepted."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], directory: Path) -> None:
        self.connections = 0
        self.release = threading.Event()

        def handler(*args):
            return _Handler(*args, directory=str(directory))

        super().__init__(address, handler)

    def process_request(self, request, client_address):
        self.connections += 1
        super().process_request(request, client_address)


def _ffmpeg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", *args],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A 2 s 160x90 MP4 and the same as 1 s HLS segments."""
    root = tmp_path_factory.mktemp("guard-media")
    src = ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=2", "-f", "lavfi", "-i", "sine=d=2",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac", "-shortest"]
    assert _ffmpeg(*src, str(root / "small.mp4")).returncode == 0
    hls = _ffmpeg(*src, "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
                  "-hls_segment_filename", str(root / "seg%d.ts"), str(root / "x.m3u8"))
    assert hls.returncode == 0 and (root / "seg1.ts").exists()
    return root


@pytest.fixture(scope="module")
def servers(media: Path) -> Iterator[tuple[CountingServer, CountingServer]]:
    allowed = CountingServer(("127.0.0.1", 0), media)
    port = allowed.server_address[1]
    forbidden = CountingServer(("127.0.0.2", port), media)
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
               for s in (allowed, forbidden)]
    for t in threads:
        t.start()
    _write_playlists(media, port)
    yield allowed, forbidden
    for s in (allowed, forbidden):
        s.shutdown()
        s.server_close()


def _write_playlists(media: Path, port: int) -> None:
    head = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
    seg = "#EXTINF:1.0,\n{}\n"
    end = "#EXT-X-ENDLIST\n"
    bad = f"http://127.0.0.2:{port}/seg0.ts"
    (media / "evil.m3u8").write_text(head + seg.format(bad) + end)
    (media / "mixed.m3u8").write_text(head + seg.format(bad) + seg.format("seg1.ts") + end)
    for name, uri in SNEAKY.items():
        (media / f"{name}.m3u8").write_text(head + seg.format(uri.format(port=port)) + end)


# Segment URIs that would open a connection of ffmpeg's own, not a request to the guard.
SNEAKY = {
    "hp": "httpproxy://127.0.0.2:{port}/seg0.ts",
    "crypto-hp": "crypto+httpproxy://127.0.0.2:{port}/seg0.ts",
    "https": "https://127.0.0.2:{port}/seg0.ts",
    "tls": "tls://127.0.0.2:{port}/seg0.ts",
    "tcp": "tcp://127.0.0.2:{port}/seg0.ts",
}


@pytest.fixture()
def srv(servers) -> tuple[str, CountingServer, CountingServer]:
    """(port, allowed, forbidden) with the connection counters reset."""
    allowed, forbidden = servers
    allowed.connections = forbidden.connections = 0
    return str(allowed.server_address[1]), allowed, forbidden


@pytest.fixture()
def proxy() -> Iterator[GuardProxy]:
    with GuardProxy(ALLOW) as guard:
        yield guard


def opener(proxy: GuardProxy) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy.url, "https": proxy.url}))


def raw_request(proxy: GuardProxy, data: bytes) -> tuple[socket.socket, bytes]:
    """Send raw bytes to the proxy; returns the socket and the first reply line."""
    sock = socket.create_connection(proxy.address, timeout=10)
    sock.sendall(data)
    reply = sock.makefile("rb").readline()
    return sock, reply


# ---------------------------------------------------------------- plain HTTP with urllib

def test_fetch_through_proxy_returns_the_file(proxy, srv, media) -> None:
    port, allowed, forbidden = srv
    body = opener(proxy).open(f"http://127.0.0.1:{port}/small.mp4", timeout=10).read()
    assert body == (media / "small.mp4").read_bytes()
    assert allowed.connections == 1 and proxy.refused == []


def test_headers_pass_through_except_hop_by_hop(proxy, srv) -> None:
    port, *_ = srv
    req = urllib.request.Request(f"http://127.0.0.1:{port}/echo", headers={
        "Range": "bytes=0-9", "X-Clip": "1", "Proxy-Authorization": "secret"})
    seen = json.loads(opener(proxy).open(req, timeout=10).read())
    assert seen["Range"] == "bytes=0-9" and seen["X-Clip"] == "1"
    assert seen["Host"] == f"127.0.0.1:{port}"
    assert "Proxy-Authorization" not in seen and seen["Connection"] == "close"


def test_head_request(proxy, srv, media) -> None:
    port, *_ = srv
    req = urllib.request.Request(f"http://127.0.0.1:{port}/small.mp4", method="HEAD")
    with opener(proxy).open(req, timeout=10) as resp:
        assert int(resp.headers["Content-Length"]) == (media / "small.mp4").stat().st_size
        assert resp.read() == b""


def test_bodies_are_streamed_not_buffered(proxy, srv) -> None:
    port, allowed, _ = srv
    allowed.release.clear()
    with opener(proxy).open(f"http://127.0.0.1:{port}/stream", timeout=10) as resp:
        # the server is still holding back its second part: only streaming can deliver this
        assert resp.readline() == b"first\n"
        allowed.release.set()
        assert resp.read() == b"second\n"


def test_direct_request_to_forbidden_address_is_refused(proxy, srv) -> None:
    port, _, forbidden = srv
    url = f"http://127.0.0.2:{port}/small.mp4"
    with pytest.raises(urllib.error.HTTPError) as info:
        opener(proxy).open(url, timeout=10)
    assert info.value.code == 403
    assert "loopback address (127.0.0.2)" in info.value.read().decode()
    assert forbidden.connections == 0
    assert [r.target for r in proxy.refused] == [url]


def test_redirect_to_forbidden_address_is_refused(proxy, srv) -> None:
    port, allowed, forbidden = srv
    target = f"http://127.0.0.2:{port}/small.mp4"
    with pytest.raises(urllib.error.HTTPError) as info:
        opener(proxy).open(f"http://127.0.0.1:{port}/redirect?to={target}", timeout=10)
    assert info.value.code == 403
    assert allowed.connections == 1 and forbidden.connections == 0
    assert proxy.refused[-1].target == target
    error = proxy.unsafe_error()
    assert isinstance(error, UnsafeURL) and "127.0.0.2" in error.message


def test_odd_spelling_of_forbidden_address_is_refused(srv) -> None:
    port, _, forbidden = srv
    with GuardProxy([]) as guard, pytest.raises(urllib.error.HTTPError) as info:
        opener(guard).open(f"http://0x7f.2:{port}/small.mp4", timeout=10)
    assert info.value.code == 403 and forbidden.connections == 0
    assert "0x7f.2 means 127.0.0.2" in guard.refused[0].reason


def test_request_to_the_proxy_itself_is_refused(proxy) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        opener(proxy).open(proxy.url + "/loop", timeout=10)
    assert info.value.code == 403 and "fetch guard itself" in proxy.refused[0].reason


def test_https_in_plain_request_and_other_methods_are_rejected(proxy) -> None:
    sock, line = raw_request(proxy, b"GET https://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.close()
    assert line.startswith(b"HTTP/1.1 400")
    sock, line = raw_request(proxy, b"POST http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.close()
    assert b" 501 " in line


# ------------------------------------------------------------ DNS is resolved once, by the proxy

def flipping_dns(first: str, then: str):
    """Resolves media.test to `first` once, then to `then` (a rebinding DNS server)."""
    calls: list[str] = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        ip = first if len(calls) == 1 else then
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_proxy_resolves_itself_and_refuses_a_rebound_name(srv) -> None:
    port, _, forbidden = srv
    dns = flipping_dns("127.0.0.1", "127.0.0.2")
    from clipper.net.urls import check_url

    check_url(f"http://media.test:{port}/small.mp4", ALLOW, resolve=dns)  # passes at flag time
    with GuardProxy(ALLOW, resolve=dns) as guard, pytest.raises(urllib.error.HTTPError) as info:
        opener(guard).open(f"http://media.test:{port}/small.mp4", timeout=10)
    assert info.value.code == 403 and forbidden.connections == 0
    assert "media.test resolves to 127.0.0.2" in guard.refused[0].reason


def test_proxy_connects_to_the_address_it_checked(srv, media) -> None:
    port, allowed, forbidden = srv
    dns = flipping_dns("127.0.0.1", "127.0.0.2")
    with GuardProxy(ALLOW, resolve=dns) as guard:
        body = opener(guard).open(f"http://media.test:{port}/small.mp4", timeout=10).read()
    assert body == (media / "small.mp4").read_bytes()
    assert dns.calls == ["media.test"]
    assert allowed.connections == 1 and forbidden.connections == 0


# ---------------------------------------------------------------- CONNECT tunnels

def test_connect_to_forbidden_address_is_refused(proxy, srv) -> None:
    port, _, forbidden = srv
    sock, line = raw_request(proxy, f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n".encode())
    sock.close()
    assert line.startswith(b"HTTP/1.1 403")
    assert forbidden.connections == 0 and proxy.refused[0].target == f"127.0.0.2:{port}"


def test_connect_tunnel_to_allowed_address_carries_bytes(proxy, srv, media) -> None:
    port, allowed, _ = srv
    sock = socket.create_connection(proxy.address, timeout=10)
    sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"HTTP/1.1 200")
    assert reader.readline() == b"\r\n"
    sock.sendall(b"GET /small.mp4 HTTP/1.0\r\n\r\n")
    reply = reader.read()
    sock.close()
    assert reply.startswith(b"HTTP/1.0 200")
    assert reply.endswith((media / "small.mp4").read_bytes())
    assert allowed.connections == 1


def test_public_host_on_odd_port_is_refused() -> None:
    def dns(host, port, *a, **k):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
    with GuardProxy(ALLOW, resolve=dns) as guard:
        for target in ("public.test:25", "public.test:6379", "93.184.216.34:22"):
            sock, line = raw_request(guard, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            sock.close()
            assert line.startswith(b"HTTP/1.1 403"), target
    assert "port 25" in guard.refused[0].reason and "80, 443, 8080, 8443" in guard.refused[0].reason
    assert len(guard.refused) == 3


# ---------------------------------------------------------------- lifecycle

def _guard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("guardproxy")]


def test_exit_cuts_open_tunnels_and_leaves_no_threads(srv) -> None:
    port, *_ = srv
    with GuardProxy(ALLOW) as guard:
        sock, line = raw_request(guard, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert line.startswith(b"HTTP/1.1 200")
        assert len(_guard_threads()) == 2  # acceptor + one idle tunnel
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert _guard_threads() == []
    assert sock.recv(10) == b""  # the tunnel was closed, not left hanging
    sock.close()


def test_connections_are_bounded(srv) -> None:
    port, *_ = srv
    with GuardProxy(ALLOW, max_connections=1) as guard:
        first, line = raw_request(guard, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert line.startswith(b"HTTP/1.1 200")
        second, line = raw_request(guard, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert line.startswith(b"HTTP/1.1 503")
        first.close()
        second.close()
    assert _guard_threads() == []


def test_guarded_env_drops_proxy_bypasses() -> None:
    env = guarded_env({"PATH": "/bin", "no_proxy": "*", "NO_PROXY": "*"}, "http://127.0.0.1:1")
    assert "no_proxy" not in env and "NO_PROXY" not in env and env["PATH"] == "/bin"
    assert env["http_proxy"] == env["HTTPS_PROXY"] == "http://127.0.0.1:1"


# ---------------------------------------------------------------- yt-dlp

def _ytdlp(proxy: GuardProxy, url: str, out: Path, **extra) -> None:
    params = {**ytdlp_params(proxy.url), "quiet": True, "no_warnings": True, "noprogress": True,
              "outtmpl": str(out / "%(id)s.%(ext)s"), **extra}
    with yt_dlp.YoutubeDL(params) as ydl:
        ydl.download([url])


def test_ytdlp_downloads_through_the_proxy(proxy, srv, media, tmp_path) -> None:
    port, allowed, _ = srv
    _ytdlp(proxy, f"http://127.0.0.1:{port}/small.mp4", tmp_path)
    assert (tmp_path / "small.mp4").read_bytes() == (media / "small.mp4").read_bytes()
    assert allowed.connections >= 1 and proxy.refused == []


def test_ytdlp_redirect_to_forbidden_address_fails(proxy, srv, tmp_path) -> None:
    port, _, forbidden = srv
    with pytest.raises(DownloadError, match="403"):
        _ytdlp(proxy, f"http://127.0.0.1:{port}/redirect?to=http://127.0.0.2:{port}/small.mp4",
               tmp_path)
    assert forbidden.connections == 0 and isinstance(proxy.unsafe_error(), UnsafeURL)


def test_ytdlp_native_hls_fails_on_a_refused_fragment(proxy, srv, tmp_path) -> None:
    """Without `skip_unavailable_fragments: False` yt-dlp would drop the fragment and succeed."""
    port, _, forbidden = srv
    with pytest.raises(DownloadError, match="403"):
        _ytdlp(proxy, f"http://127.0.0.1:{port}/mixed.m3u8", tmp_path)
    assert forbidden.connections == 0 and len(proxy.refused) == 1


def test_ytdlp_section_download_cannot_reach_forbidden_segments(proxy, srv, tmp_path,
                                                                monkeypatch) -> None:
    """yt-dlp hands sections to ffmpeg; both the proxied segment and `httpproxy://` stay out,
    even when the environment carried a no_proxy bypass (scrubbed at the edge)."""
    port, _, forbidden = srv
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    section = {"download_ranges": download_range_func(None, [(0, 1.5)])}
    for playlist in ("evil.m3u8", "hp.m3u8"):
        with _no_proxy_bypass(True), pytest.raises(DownloadError):
            _ytdlp(proxy, f"http://127.0.0.1:{port}/{playlist}", tmp_path, **section)
    assert forbidden.connections == 0
    assert proxy.refused[0].target == f"http://127.0.0.2:{port}/seg0.ts"


# ---------------------------------------------------------------- ffmpeg

def _ffmpeg_fetch(proxy: GuardProxy, url: str, out: Path) -> subprocess.CompletedProcess:
    env = guarded_env({**os.environ, "no_proxy": "*"}, proxy.url)  # the bypass must be dropped
    return _ffmpeg(*ffmpeg_input_args(proxy.url), "-i", url, "-c", "copy", "-y", str(out), env=env)


def test_ffmpeg_args_match_the_documented_form(proxy) -> None:
    assert ffmpeg_input_args(proxy.url) == [
        "-http_proxy", proxy.url, "-protocol_whitelist", "http,tcp,crypto"]
    assert not {"httpproxy", "https", "tls"} & set(FFMPEG_NET_PROTOCOLS.split(","))


def test_ffmpeg_reads_allowed_hls_through_the_proxy(proxy, srv, tmp_path) -> None:
    port, allowed, _ = srv
    result = _ffmpeg_fetch(proxy, f"http://127.0.0.1:{port}/x.m3u8", tmp_path / "ok.ts")
    assert result.returncode == 0, result.stderr
    assert float(probe(str(tmp_path / "ok.ts"))["format"]["duration"]) > 1.8
    assert allowed.connections >= 3  # playlist + two segments, each through the proxy


def test_ffmpeg_cannot_reach_forbidden_playlist(proxy, srv, tmp_path) -> None:
    port, _, forbidden = srv
    result = _ffmpeg_fetch(proxy, f"http://127.0.0.2:{port}/x.m3u8", tmp_path / "no.ts")
    assert result.returncode != 0 and "403" in result.stderr
    assert forbidden.connections == 0 and len(proxy.refused) == 1


def test_ffmpeg_cannot_reach_forbidden_segment(proxy, srv, tmp_path) -> None:
    port, _, forbidden = srv
    result = _ffmpeg_fetch(proxy, f"http://127.0.0.1:{port}/evil.m3u8", tmp_path / "no.ts")
    assert result.returncode != 0
    assert forbidden.connections == 0
    assert proxy.refused[0].target == f"http://127.0.0.2:{port}/seg0.ts"


def test_ffmpeg_skips_a_refused_segment_silently(proxy, srv, tmp_path) -> None:
    """ffmpeg exits 0 without the refused segment: the fetch code must check `proxy.refused`."""
    port, _, forbidden = srv
    out = tmp_path / "partial.ts"
    result = _ffmpeg_fetch(proxy, f"http://127.0.0.1:{port}/mixed.m3u8", out)
    assert result.returncode == 0
    assert float(probe(str(out))["format"]["duration"]) < 1.5
    assert forbidden.connections == 0 and len(proxy.refused) == 1


@pytest.mark.parametrize("name", sorted(SNEAKY))
def test_ffmpeg_sneaky_segment_is_blocked_even_unrelayed(proxy, srv, tmp_path, name) -> None:
    """Without the relay's rewriting, the whitelist alone keeps ffmpeg from opening these."""
    port, _, forbidden = srv
    result = _ffmpeg_fetch(proxy, f"http://127.0.0.1:{port}/{name}.m3u8", tmp_path / "no.ts")
    assert result.returncode != 0
    if name in ("hp", "https"):  # the others fail even before a protocol is looked up
        assert "not on whitelist" in result.stderr
    assert forbidden.connections == 0
