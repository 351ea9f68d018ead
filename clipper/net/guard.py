"""GuardProxy: a local forward proxy through which yt-dlp and ffmpeg reach only public addresses.

Checking a URL before a fetch is not enough: redirects, per-segment hosts in HLS playlists and
DNS answers that change between check and fetch all lead elsewhere. So every connection the
tools make goes through this proxy, which resolves the host itself, applies `clipper.net.urls`'
address rules, and connects to the very address it checked.

Port policy: ports in `allowed_ports` (default 80, 443, 8080, 8443 — web ports only, so a
source cannot make Clipper talk to mail, SSH or database ports of public hosts); any port for
hosts that are allowlisted by name or whose every address is allowlisted.

Plain-HTTP requests (absolute URI, GET/HEAD; Range and other end-to-end headers pass through,
bodies are streamed) and CONNECT tunnels (https, for yt-dlp) are supported; one upstream request
per client connection.

ffmpeg gets neither https nor a tunnel: any protocol that lets it open TLS through a proxy
(`httpproxy`) also lets a playlist name `httpproxy://HOST/` and connect to HOST directly, on any
request, playlist reloads included. So ffmpeg speaks only plain http, always to this proxy, and
reads every source through the relay (`relay_url`): the proxy makes the real request itself
(for https with the certificate verified; the address vetted as always) and rewrites every URI in
an HLS playlist into a relay URL, refusing playlists that name anything but http(s).
"""

from __future__ import annotations

import functools
import http.client
import http.server
import ipaddress
import logging
import re
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urldefrag, urljoin, urlsplit

import certifi

from clipper.errors import InvalidInput, UnsafeURL
from clipper.net.urls import (
    ALLOWED_SCHEMES,
    ALLOWLIST_HINT,
    DEFAULT_PORTS,
    Resolver,
    VettedHost,
    vet_host,
)

log = logging.getLogger(__name__)

DEFAULT_ALLOWED_PORTS = (80, 443, 8080, 8443)
"""Ports any public host may be fetched on; allowlisted hosts may use any port."""

FFMPEG_NET_PROTOCOLS = "http,tcp,crypto"
"""ffmpeg's protocols for network inputs: plain http, which always goes to this proxy
(`-http_proxy` and the `http_proxy` variable), the `tcp` under it and `crypto` for AES-128 HLS.
Never add `httpproxy` (a playlist's `httpproxy://HOST/` connects straight to HOST), nor `https` or
`tls` (ffmpeg only reaches TLS hosts through a proxy via `httpproxy`, and directly without one):
https sources go through `relay_url`. HLS and DASH only open http* (and file, data) URIs, so
nothing in a source can make ffmpeg open `tcp://` itself."""

RELAY_PREFIX = "/relay/"
"""Path under which the proxy serves `relay_url`s: /relay/<scheme>/<host[:port]>/<path?query>."""

MAX_PLAYLIST_BYTES = 8 << 20
"""A relayed HLS playlist is read whole to be rewritten; bigger ones are refused."""

PROXY_BYPASS_VARS = ("no_proxy", "NO_PROXY")
"""Environment variables that make yt-dlp's ffmpeg and ffmpeg itself skip the proxy."""

MAX_REFUSALS_KEPT = 1000
_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
    "te", "trailer", "transfer-encoding", "upgrade",
})
_REFUSED_REASON = "Refused by Clipper fetch guard"
_UNTRUSTED_HINT = ("Check that the link is the site you meant; official sites have valid "
                   "certificates.")


@dataclass(frozen=True)
class Refusal:
    """One request the proxy refused: what was asked for and why (user-readable)."""

    target: str
    reason: str
    at: float


class _Refused(Exception):
    def __init__(self, status: int, reason: str, *, record: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.record = record


class GuardProxy:
    """A forward proxy on 127.0.0.1 that only lets connections to permitted addresses through.

    `with GuardProxy(settings.url_allowlist) as proxy:` then give `proxy.url` to yt-dlp
    (`proxy=`) and ffmpeg (`ffmpeg_input_args`, inputs as `relay_url`s). `proxy.refused` lists
    what it refused; `proxy.untrusted` the https hosts whose certificate the relay rejected.
    `cafile`: the CA bundle the relay trusts (default: certifi's, as yt-dlp).
    """

    def __init__(self, allowlist: Sequence[str] = (), *,
                 allowed_ports: Sequence[int] = DEFAULT_ALLOWED_PORTS,
                 resolve: Resolver = socket.getaddrinfo, listen_host: str = "127.0.0.1",
                 max_connections: int = 64, connect_timeout: float = 10.0,
                 idle_timeout: float = 60.0, cafile: str | None = None) -> None:
        self.allowlist = tuple(allowlist)
        self.allowed_ports = frozenset(allowed_ports)
        self.resolve = resolve
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.cafile = cafile
        self.refused: list[Refusal] = []
        self.untrusted: list[Refusal] = []
        self._listen_host = listen_host
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> GuardProxy:
        """Bind a free port and serve in a background thread."""
        if self._server is not None:
            return self
        self._server = _Server((self._listen_host, 0), self, self._max_connections)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="guardproxy-accept", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, cut every open connection and join every thread the proxy started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()
        server.abort_connections()
        server.join_handlers(timeout=self.connect_timeout + 5)
        self._server = self._thread = None

    def __enter__(self) -> GuardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("GuardProxy is not running; use it as a context manager.")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, for yt-dlp's `proxy` and ffmpeg's `-http_proxy`."""
        host, port = self.address
        return f"http://{host}:{port}"

    def unsafe_error(self) -> UnsafeURL | None:
        """The first refusal as an UnsafeURL (raise it when a fetch failed), or None. A
        certificate the relay would not trust counts too: ffmpeg cannot say why it failed."""
        with self._lock:
            first = self.refused[0] if self.refused else None
            untrusted = self.untrusted[0] if self.untrusted else None
        if first is not None:
            return UnsafeURL(f"The source led Clipper somewhere it must not go: {first.reason}",
                             ALLOWLIST_HINT)
        if untrusted is not None:
            return UnsafeURL(untrusted.reason, _UNTRUSTED_HINT)
        return None

    # ------------------------------------------------------------ decisions

    def vet(self, host: str, port: int, target: str) -> VettedHost:
        """Resolve and check one destination; raises _Refused with the HTTP status to answer."""
        try:
            vetted = vet_host(host, port, self.allowlist, target=target, resolve=self.resolve)
        except UnsafeURL as exc:
            raise _Refused(403, exc.message) from exc
        except InvalidInput as exc:
            raise _Refused(502, exc.message, record=False) from exc
        if self._is_self(vetted, port):
            raise _Refused(403, f"{target} is Clipper's fetch guard itself.")
        if port not in self.allowed_ports and not vetted.allowlisted:
            ports = ", ".join(str(p) for p in sorted(self.allowed_ports))
            raise _Refused(403, f"{target} uses port {port}; Clipper only fetches from web "
                                f"ports ({ports}) unless the host is allowlisted.")
        return vetted

    def _is_self(self, vetted: VettedHost, port: int) -> bool:
        own_host, own_port = self.address
        own = ipaddress.ip_address(own_host)
        return port == own_port and any(a == own or a.is_unspecified for a in vetted.addresses)

    def record(self, target: str, reason: str) -> None:
        log.warning("fetch guard refused %s: %s", target, reason)
        with self._lock:
            self.refused.append(Refusal(target=target, reason=reason, at=time.time()))
            del self.refused[:-MAX_REFUSALS_KEPT]

    def secure(self, sock: socket.socket, host: str, target: str) -> ssl.SSLSocket:
        """TLS over a vetted connection, the certificate checked for `host` (relayed https)."""
        context = _tls_context(self.cafile or certifi.where())
        sock.settimeout(self.connect_timeout)
        try:
            tls = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            log.warning("fetch guard: untrusted certificate at %s: %s", target, exc)
            reason = (f"The TLS certificate of {host} is not trusted "
                      f"({exc.verify_message or exc.reason}).")
            with self._lock:
                self.untrusted.append(Refusal(target=target, reason=reason, at=time.time()))
                del self.untrusted[:-MAX_REFUSALS_KEPT]
            raise _Refused(502, f"{target[:200]}: {exc}", record=False) from exc
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            raise _Refused(502, f"{target[:200]}: TLS failed ({exc}).", record=False) from exc
        tls.settimeout(self.idle_timeout)
        return tls

    def connect(self, vetted: VettedHost, port: int, target: str) -> socket.socket:
        """Open a TCP connection to one of the checked addresses (never resolving again)."""
        errors = []
        for addr in vetted.addresses:
            try:
                sock = socket.create_connection((str(addr), port), timeout=self.connect_timeout)
            except OSError as exc:
                errors.append(f"{addr}: {exc}")
                continue
            sock.settimeout(self.idle_timeout)
            return sock
        raise _Refused(502, f"{target}: could not connect ({'; '.join(errors)}).", record=False)


class _Server(socketserver.TCPServer):
    """Accepts connections and runs each in its own thread, at most `max_connections` at once."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], guard: GuardProxy, max_connections: int) -> None:
        self.guard = guard
        self._slots = threading.BoundedSemaphore(max_connections)
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._closing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _send_plain(request, 503, "Fetch guard busy", "Too many connections at once.\n")
            self.shutdown_request(request)
            return
        with self._lock:
            self._count += 1
            thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                      name=f"guardproxy-conn-{self._count}", daemon=True)
            self._threads.add(thread)
        self.track(request)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError as exc:  # client went away, or close() cut the connection
            log.debug("fetch guard connection ended: %s", exc)
        finally:
            self.untrack(request)
            self.shutdown_request(request)
            self._slots.release()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("fetch guard: error while serving %s", client_address)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
            closing = self._closing
        if closing:  # opened while close() was cutting connections: cut this one too
            _shut(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def abort_connections(self) -> None:
        """Wake every handler blocked on a socket, so that it ends promptly."""
        with self._lock:
            self._closing = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("fetch guard: %s did not stop within %.0f s", thread.name, timeout)


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection: a plain-HTTP request or a CONNECT tunnel, then close."""

    server: _Server
    target = ""
    protocol_version = "HTTP/1.1"
    # Unbuffered: bytes a client sends right after CONNECT must not be stuck in our buffer.
    rbufsize = 0

    def setup(self) -> None:
        self.timeout = self.server.guard.idle_timeout
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fetch guard: " + format, *args)

    def do_GET(self) -> None:
        self._guarded(self._forward)

    def do_HEAD(self) -> None:
        self._guarded(self._forward)

    def do_CONNECT(self) -> None:
        self._guarded(self._tunnel)

    def _guarded(self, action: Any) -> None:
        self.close_connection = True
        self.target = self.path  # what a refusal names: the source's URL, also when relayed
        try:
            action()
        except _Refused as exc:
            if exc.record:
                self.server.guard.record(self.target, exc.reason)
            phrase = _REFUSED_REASON if exc.status == 403 else http.client.responses[exc.status]
            self._reply(exc.status, phrase, exc.reason + "\n")

    def _reply(self, status: int, phrase: str, body: str) -> None:
        self.close_connection = True
        _send_plain(self.connection, status, phrase, body)

    # ------------------------------------------------------------ plain HTTP

    def _forward(self) -> None:
        guard = self.server.guard
        relayed = _relay_target(self.path, guard.address)
        url = self.target = relayed or self.path
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in (ALLOWED_SCHEMES if relayed else ("http",)) or not parts.hostname:
            raise _Refused(400, f"{url[:200]}: send an absolute http:// URL, or CONNECT for "
                                "https.", record=False)
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise _Refused(400, f"{url[:200]}: invalid port.", record=False) from exc
        vetted = guard.vet(parts.hostname, port, url)
        upstream: socket.socket = guard.connect(vetted, port, url)
        if scheme == "https":
            upstream = guard.secure(upstream, parts.hostname, url)
        self.server.track(upstream)
        rest = url.split("://", 1)[1][len(parts.netloc):]
        path = rest if rest.startswith("/") else "/" + rest
        try:
            self._relay_response(upstream, parts.netloc.rpartition("@")[2], path, relayed)
        finally:
            self.server.untrack(upstream)
            upstream.close()

    def _relay_response(self, upstream: socket.socket, host_header: str, path: str,
                        relayed: str | None) -> None:
        conn = http.client.HTTPConnection(host_header, timeout=self.server.guard.idle_timeout)
        conn.sock = upstream
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host_header)
            for name, value in _end_to_end(self.headers.items(), self.headers.get("Connection")):
                if name.lower() != "host" and not (relayed and name.lower() == "accept-encoding"):
                    conn.putheader(name, value)
            if relayed:  # a compressed playlist could not be read (ffmpeg would inflate it)
                conn.putheader("Accept-Encoding", "identity")
            conn.putheader("Connection", "close")
            conn.endheaders()
            resp = conn.getresponse()
        except TimeoutError as exc:
            raise _Refused(504, f"{self.path[:200]}: the server did not answer.",
                           record=False) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _Refused(502, f"{self.path[:200]}: bad answer from the server ({exc!r}).",
                           record=False) from exc
        headers = _end_to_end(resp.msg.items(), resp.getheader("Connection"))
        first = b""
        if relayed:
            headers = self._relayed_headers(headers, relayed)
            if self.command == "GET" and resp.status in (200, 206):
                first, playlist = _read_if_playlist(resp)
                if playlist is not None:
                    self._send_playlist(headers, playlist, relayed)
                    return
        head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
        head += [f"{k}: {v}" for k, v in headers]
        head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.wfile.write(first)
        while chunk := resp.read1(_CHUNK):
            self.wfile.write(chunk)

    # ------------------------------------------------------------ relay

    def _relayed_headers(self, headers: list[tuple[str, str]],
                         url: str) -> list[tuple[str, str]]:
        """Redirects stay on the relay (ffmpeg follows them itself); encodings are refused."""
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower == "content-encoding" and value.strip().lower() not in ("", "identity"):
                raise _Refused(502, f"{url[:200]}: the server compressed its answer though "
                                    "Clipper asked it not to.", record=False)
            if lower == "location":
                try:
                    value = relay_url(self.server.guard.url, _absolute(value.strip(), url))
                except UnsafeURL as exc:
                    raise _Refused(403, f"{url[:200]} redirects to {exc.message}") from exc
            out.append((name, value))
        return out

    def _send_playlist(self, headers: list[tuple[str, str]], playlist: bytes, url: str) -> None:
        try:
            body = rewrite_playlist(playlist, url, self.server.guard.url)
        except UnsafeURL as exc:
            raise _Refused(403, f"The playlist {url[:200]} names {exc.message}") from exc
        dropped = {"content-length", "content-range", "accept-ranges"}
        head = ["HTTP/1.1 200 OK"] + [f"{k}: {v}" for k, v in headers if k.lower() not in dropped]
        head += [f"Content-Length: {len(body)}", "Connection: close"]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    # ------------------------------------------------------------ CONNECT

    def _tunnel(self) -> None:
        authority = urlsplit("//" + self.path)
        try:
            host, port = authority.hostname, authority.port
        except ValueError:
            host, port = None, None
        if not host or not port:
            raise _Refused(400, f"CONNECT {self.path[:200]}: expected host:port.", record=False)
        guard = self.server.guard
        vetted = guard.vet(host, port, f"{host}:{port}")
        upstream = guard.connect(vetted, port, f"{host}:{port}")
        self.server.track(upstream)
        try:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pump(self.connection, upstream, guard.idle_timeout)
        finally:
            self.server.untrack(upstream)
            upstream.close()


def _end_to_end(headers: Any, connection: str | None) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones (including those the Connection header names)."""
    named = {t.strip().lower() for t in (connection or "").split(",")}
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() not in named]


def _pump(a: socket.socket, b: socket.socket, idle_timeout: float) -> None:
    """Copy bytes both ways until both sides have finished (or nothing moves for a while)."""
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        open_sides = 2
        while open_sides:
            events = sel.select(idle_timeout)
            if not events:
                return
            for key, _ in events:
                src, dst = key.fileobj, key.data
                data = src.recv(_CHUNK)  # type: ignore[union-attr]
                if data:
                    dst.sendall(data)
                    continue
                sel.unregister(src)
                open_sides -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the other side is gone already


@functools.lru_cache(maxsize=8)
def _tls_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


# ---------------------------------------------------------------- relay: URLs and playlists

_ID3_HEADER = 10
_M3U = b"#EXTM3U"
_LINE_BREAK = re.compile("\r\n|[\r\n\0]")  # where ffmpeg's line reader ends a line
_AV_SPACE = " \t\n\v\f\r"  # av_isspace
_URL_SAFE = "/?&=%:;@!$'()*+,~[]"


def relay_url(proxy_url: str, url: str) -> str:
    """The plain-http URL on the guard at `proxy_url` that fetches the http(s) `url`.

    Raises UnsafeURL (message: the URL, shortened) for any other scheme. Relative references
    resolve on the relay as on the source, so a relayed playlist's relative URIs stay valid.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise UnsafeURL(f"{url[:200]}, which is not an http(s) address.", ALLOWLIST_HINT)
    # Escaped: playlist bytes may hold spaces, quotes or non-ASCII, which must neither break
    # the request line nor end a quoted playlist attribute.
    authority = quote(parts.netloc.rpartition("@")[2], safe="[]:", errors="surrogateescape")
    tail = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    tail = quote(tail, safe=_URL_SAFE, errors="surrogateescape")
    return f"{proxy_url.rstrip('/')}{RELAY_PREFIX}{scheme}/{authority}{tail}"


def _relay_target(request_target: str, own: tuple[str, int]) -> str | None:
    """The upstream URL when a request (origin or absolute form) is for this proxy's relay."""
    if request_target.startswith("/"):
        rest = request_target
    else:
        parts = urlsplit(request_target)
        try:
            port = parts.port or 80
        except ValueError:
            return None
        if parts.scheme.lower() != "http" or (parts.hostname, port) != own:
            return None
        rest = request_target.split("://", 1)[1][len(parts.netloc):]
    if not rest.startswith(RELAY_PREFIX):
        return None
    scheme, _, target = rest[len(RELAY_PREFIX):].partition("/")
    return f"{scheme}://{target}"


def _absolute(uri: str, base: str) -> str:
    """`uri` resolved against `base`, without fragment; UnsafeURL unless it is http(s)."""
    url = urldefrag(urljoin(base, uri)).url
    if urlsplit(url).scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"{uri[:200]}, which is not an http(s) address.", ALLOWLIST_HINT)
    return url


def _playlist_start(data: bytes) -> int | None:
    """Where an HLS playlist starts in a body beginning with `data`: after any ID3v2 tags
    (ffmpeg skips those at the start of its input), -1 if the body is no playlist, None if
    more bytes are needed to tell."""
    pos = 0
    while True:
        head = data[pos:pos + _ID3_HEADER]
        if head.startswith(_M3U):
            return pos
        if len(head) < len(_M3U) and _M3U.startswith(head):
            return None
        if not head.startswith(b"ID3"[:len(head)]):
            return -1
        if len(head) < _ID3_HEADER:
            return None
        if head[3] == 0xFF or head[4] == 0xFF or any(b & 0x80 for b in head[6:10]):
            return -1  # not an ID3v2 header to ffmpeg either
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        pos += _ID3_HEADER + size + (_ID3_HEADER if head[5] & 0x10 else 0)
        if pos > MAX_PLAYLIST_BYTES:
            return -1


def _read_if_playlist(resp: http.client.HTTPResponse) -> tuple[bytes, bytes | None]:
    """Read enough of a body to tell whether ffmpeg would take it as an HLS playlist.

    Returns (bytes read, None) for anything else, whose rest is still to stream, or
    (whole body, the playlist from `#EXTM3U` on).
    """
    data = b""
    while (start := _playlist_start(data)) is None:
        chunk = resp.read1(_CHUNK)
        if not chunk:
            return data, None
        data += chunk
    if start < 0:
        return data, None
    while chunk := resp.read1(_CHUNK):
        data += chunk
        if len(data) > MAX_PLAYLIST_BYTES:
            raise _Refused(502, f"playlist over {MAX_PLAYLIST_BYTES >> 20} MiB.", record=False)
    return data, data[start:]


def _attributes(text: str) -> list[tuple[str, str, bool]]:
    """A tag's `KEY=value` list as ffmpeg's ff_parse_key_value reads it: (key with its '=',
    value, quoted?). Read the same way so that no URI ffmpeg would see escapes the rewrite."""
    pairs: list[tuple[str, str, bool]] = []
    i, n = 0, len(text)
    while True:
        while i < n and (text[i] in _AV_SPACE or text[i] == ","):
            i += 1
        eq = text.find("=", i)
        if i >= n or eq < 0:
            return pairs
        key, i = text[i:eq + 1], eq + 1
        if i < n and text[i] == '"':
            i += 1
            value = []
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    if i + 1 >= n:
                        break
                    value.append(text[i + 1])
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
            if i < n and text[i] == '"':
                i += 1
            pairs.append((key, "".join(value), True))
        else:
            start = i
            while i < n and not (text[i] in _AV_SPACE or text[i] == ","):
                i += 1
            pairs.append((key, text[start:i], False))


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rewrite_playlist(playlist: bytes, url: str, proxy_url: str) -> bytes:
    """An HLS playlist (fetched from `url`) with every URI it names, on its own line or in a
    `URI=` attribute, replaced by the `relay_url` of its absolute form.

    Raises UnsafeURL naming the first URI that is not http(s) (httpproxy:, tcp:, file:, data:…).
    Lines are split where ffmpeg splits them and written back trimmed, so what ffmpeg reads is
    exactly what was checked.
    """
    text = playlist.decode("utf-8", "surrogateescape")
    out = []
    for raw in _LINE_BREAK.split(text):
        line = raw.strip(_AV_SPACE)
        if not line:
            continue
        if not line.startswith("#"):
            out.append(relay_url(proxy_url, _absolute(line, url)))
            continue
        tag, colon, rest = line.partition(":")
        pairs = _attributes(rest) if colon else []
        if any(key == "URI=" for key, _, _ in pairs):
            line = tag + colon + ",".join(
                key + _quoted(relay_url(proxy_url, _absolute(value.strip(_AV_SPACE), url)))
                if key == "URI=" else key + (_quoted(value) if quoted else value)
                for key, value, quoted in pairs)
        out.append(line)
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _send_plain(sock: socket.socket, status: int, phrase: str, body: str) -> None:
    data = body.encode("utf-8")
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    try:
        sock.sendall(head.encode("latin-1") + data)
    except OSError:
        pass  # the client left; nothing to tell


# ---------------------------------------------------------------- how the fetch code uses it

def ffmpeg_input_args(proxy_url: str) -> list[str]:
    """Options to put before ffmpeg's `-i URL` (give it `relay_url(proxy_url, url)`): plain
    http through the proxy and no protocol that could connect anywhere else."""
    return ["-http_proxy", proxy_url, "-protocol_whitelist", FFMPEG_NET_PROTOCOLS]


def ytdlp_params(proxy_url: str) -> dict[str, Any]:
    """yt-dlp options that send all its traffic (and its ffmpeg's) through the proxy.

    A fragment the proxy refuses fails the download instead of being skipped silently.
    """
    return {
        "proxy": proxy_url,
        "skip_unavailable_fragments": False,
        "external_downloader_args": {"ffmpeg_i": ffmpeg_input_args(proxy_url)},
    }


def guarded_env(env: Mapping[str, str], proxy_url: str) -> dict[str, str]:
    """A child-process environment with the proxy set and every proxy bypass removed."""
    out = {k: v for k, v in env.items() if k not in PROXY_BYPASS_VARS}
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        out[name] = proxy_url
    return out
