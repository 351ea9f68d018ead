"""Slack-compatible webhook posts (one bounded attempt, or retried, never raising) and the message
bodies Clipper sends.

Every attempt has one wall-clock deadline for the whole exchange: name lookup, connect, TLS
handshake, sending and reading the answer. A socket timeout alone bounds each read, not the
sum, so a server answering one byte a second would keep an attempt alive for ever; here every
read is given only the time left.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clipper.net.urls import is_allowed_address

log = logging.getLogger(__name__)

USER_AGENT = "clipper-webhook/1"

ATTEMPT_SECONDS = 10.0
"""Default wall-clock limit of one attempt (connect, send and read together)."""

# Name lookups cannot be given a timeout: they run here, so an attempt can stop waiting for one.
# Two threads at most, whatever the resolver does (a stuck lookup makes later ones time out).
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=2,
                                                  thread_name_prefix="webhook-dns")


@dataclass(frozen=True)
class PostResult:
    """What one attempt came to. `status` is None when no HTTP answer arrived; `permanent`
    says trying again cannot help (a refused request, a bad URL or payload)."""

    ok: bool
    status: int | None = None
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {self.seconds:g} s")
        return left


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side where each read may take only the attempt's time left."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """The part of a socket http.client uses (sendall, makefile, close), bounded by a deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock, self._deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        # Since Python 3.5 a socket timeout bounds the whole sendall, not each send.
        self._sock.settimeout(self._deadline.left())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        # http.client closes its socket as soon as the status line says "Connection: close",
        # before the body is read; a real socket lives on while a file made from it is open,
        # this one until the attempt is over (_Connection.shut).
        pass


def _resolve(host: str, port: int, deadline: _Deadline) -> list[tuple[Any, ...]]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            return future.result(timeout=deadline.left())
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"looking up {host} took over {deadline.seconds:g} s") from None
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class RefusedAddress(OSError):
    """The hook's host resolves to an address Clipper must not post to."""


def _connect(host: str, port: int, deadline: _Deadline,
             allowlist: Sequence[str] | None = None) -> socket.socket:
    error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _name, address in _resolve(host, port, deadline):
        # Checked at connect time, on the very address connected to: a name that resolved
        # to a public address when the hook was saved cannot be pointed inside later.
        if allowlist is not None and not is_allowed_address(address[0], allowlist):
            error = RefusedAddress(f"{host} resolves to {address[0]}, which Clipper does not "
                                   "post to (private or reserved)")
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _Connection(http.client.HTTPConnection):
    """HTTP or HTTPS whose every step counts against one deadline."""

    def __init__(self, host: str, port: int, *, tls: bool, deadline: _Deadline,
                 allowlist: Sequence[str] | None = None) -> None:
        super().__init__(host, port)
        self.default_port = 443 if tls else 80  # so the Host header leaves the port out
        self._tls, self._deadline, self._allowlist = tls, deadline, allowlist
        self._raw: socket.socket | None = None

    def connect(self) -> None:
        sock = _connect(self.host, self.port, self._deadline, self._allowlist)
        if self._tls:
            try:
                # The ssl module bounds a whole handshake by the socket timeout.
                sock.settimeout(self._deadline.left())
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            except (OSError, ValueError):
                sock.close()
                raise
        self._raw = sock
        self.sock = _DeadlineSocket(sock, self._deadline)

    def shut(self) -> None:
        """Close everything, the socket included."""
        self.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare for webhooks; the usual backoff then
        return None


def retryable(status: int) -> bool:
    """Whether an HTTP answer may come out differently later: server errors, 408 and 429."""
    return status >= 500 or status in (408, 429)


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=str).encode()


def _post(url: str, body: bytes, seconds: float,
          allowlist: Sequence[str] | None = None) -> PostResult:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return PostResult(False, error=f"not an http(s) URL: {scheme or '?'}://…", permanent=True)
    tls = scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        return PostResult(False, error=f"bad URL: {exc}", permanent=True)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = _Deadline(seconds)
    conn = _Connection(parts.hostname, port, tls=tls, deadline=deadline, allowlist=allowlist)
    try:
        conn.request("POST", target, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "Connection": "close"})
        response = conn.getresponse()
        status = response.status
        if 200 <= status < 300:
            return PostResult(True, status)
        try:  # Slack says why in the body ("invalid_payload", "no_text"): keep a little of it
            said = response.read(200).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            said = ""
        return PostResult(False, status, f"HTTP {status}" + (f": {said}" if said else ""),
                          permanent=not retryable(status),
                          retry_after=_retry_after(response.getheader("Retry-After")))
    except TimeoutError as exc:
        return PostResult(False, error=f"timed out: {exc}")
    except RefusedAddress as exc:
        return PostResult(False, error=str(exc), permanent=True)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return PostResult(False, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.shut()


def post_json(url: str, payload: dict[str, Any], *, timeout: float = ATTEMPT_SECONDS,
              allowlist: Sequence[str] | None = None) -> PostResult:
    """One POST of `payload` as JSON, finished or abandoned within `timeout` seconds of wall
    clock, whatever the server does. Never raises. With `allowlist` (a hook a user gave, not
    the admin's), only public addresses or allowlisted ones are connected to."""
    try:
        body = _body(payload)
    except (TypeError, ValueError) as exc:
        return PostResult(False, error=f"payload is not JSON: {exc}", permanent=True)
    return _post(url, body, timeout, allowlist)


def post_webhook(url: str, payload: dict[str, Any], *, tries: int = 4, backoff: float = 0.5,
                 timeout: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> bool:
    """POST `payload` as JSON now, in this thread; True once the hook answers 2xx.

    Each try is bounded by `timeout` seconds in all. Connection errors, timeouts, 5xx, 408 and
    429 are retried with exponential backoff (backoff, 2*backoff, ...); other 4xx answers are
    final. Never raises: failures are logged and reported as False. (Notifications that must
    not be lost go through the outbox, clipper.pipeline.notifications, not this.)
    """
    attempt = 0
    for attempt in range(max(1, tries)):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        result = post_json(url, payload, timeout=timeout)
        if result.ok:
            return True
        log.info("webhook attempt %d/%d failed: %s", attempt + 1, tries, result.error)
        if result.permanent:
            break
    log.warning("webhook %s gave up after %d attempt(s)", safe_host(url), attempt + 1)
    return False


def safe_host(url: str) -> str:
    """The host of a webhook URL, for logs: Slack hook URLs carry their secret in the path."""
    return url.split("/")[2] if url.count("/") >= 2 else "?"


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (pure)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(target: str, label: str) -> str:
    """`<url|label>` for an http(s) target (a `|` in the URL would end it early: encoded);
    anything else (a folder, a command) as escaped text (pure)."""
    if target.startswith(("http://", "https://")):
        return f"<{slack_escape(target).replace('|', '%7C')}|{slack_escape(label)}>"
    return slack_escape(target)


def clip_ready_message(clip_id: int | str, source: str, note: str = "", link: str = "", *,
                       start: float | None = None, end: float | None = None,
                       urgency: str = "") -> dict[str, Any]:
    """Webhook body for "a clip is ready for review" (pure)."""
    span = f" {start:.1f}–{end:.1f} s" if start is not None and end is not None else ""
    text = f"Clip {clip_id} is ready for review: {slack_escape(source)}{span}"
    if note:
        text += f" — {slack_escape(note)}"
    if link:
        text += f" ({slack_link(link, 'open')})"
    return {"text": text, "event": "clip.ready", "clip_id": clip_id, "source": source,
            "note": note, "link": link, "start": start, "end": end, "urgency": urgency}


def package_exported_message(clip_id: int | str, source: str, path: str, note: str = "",
                             link: str = "", *, formats: list[str] | None = None) -> dict[str, Any]:
    """Webhook body for "a distribution package was exported" (pure)."""
    text = (f"Package for clip {clip_id} is exported: {slack_link(path, path)} "
            f"(source {slack_escape(source)})")
    if formats:
        text += f" — {slack_escape(', '.join(formats))}"
    if note:
        text += f" — {slack_escape(note)}"
    if link:
        text += f" ({slack_link(link, 'open')})"
    return {"text": text, "event": "package.exported", "clip_id": clip_id, "source": source,
            "note": note, "path": path, "link": link, "formats": formats or []}


def channel_stalled_message(channel: str, since: str, at: str, reason: str = "") -> dict[str, Any]:
    """Webhook body for "a channel has recorded nothing since `at`" (pure); `since` is the ISO
    time for machines, `at` the same time as people read it."""
    text = f"Channel {slack_escape(channel)} has recorded nothing since {at}: recording stalled"
    if reason:
        text += f" ({slack_escape(reason)})"
    return {"text": text, "event": "channel.stalled", "channel": channel, "since": since,
            "reason": reason}
