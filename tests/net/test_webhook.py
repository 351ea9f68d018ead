"""Webhook posts against real local HTTP servers: retries on 5xx, gives up quietly when down,
and ends every attempt at its deadline however slowly the server answers."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from clipper.net.webhook import (
    channel_stalled_message,
    clip_ready_message,
    package_exported_message,
    post_json,
    post_webhook,
    slack_escape,
    slack_link,
)


class _Hook(http.server.BaseHTTPRequestHandler):
    """Answers with the next status from the server's script (then 200), recording bodies."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append((self.headers["Content-Type"], json.loads(body)))
        status = self.server.script.pop(0) if self.server.script else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def hook_server(script: list[int]) -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.script, server.bodies = list(script), []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret"


def test_retries_after_two_500s_then_delivers() -> None:
    waits: list[float] = []
    payload = clip_ready_message(7, "https://example.org/live", "budget vote", "http://desk/clip?id=7")
    with hook_server([500, 500]) as server:
        assert post_webhook(url_of(server), payload, backoff=0.1, sleep=waits.append) is True
    assert waits == [0.1, 0.2]  # exponential backoff
    assert len(server.bodies) == 3
    assert server.bodies[-1] == ("application/json", payload)


def test_a_down_hook_returns_false_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    ok = post_webhook(f"http://127.0.0.1:{port}/hook", {"text": "hi"}, tries=3, backoff=0.05,
                      timeout=1.0, sleep=waits.append)
    assert ok is False and waits == [0.05, 0.1]
    assert "gave up after 3" in caplog.text


def test_client_errors_are_not_retried_and_5xx_exhausts_tries() -> None:
    with hook_server([404]) as server:
        assert post_webhook(url_of(server), {"text": "x"}, sleep=lambda _s: None) is False
    assert len(server.bodies) == 1
    with hook_server([503] * 10) as server:
        assert post_webhook(url_of(server), {"text": "x"}, tries=4, sleep=lambda _s: None) is False
    assert len(server.bodies) == 4


def test_a_hook_that_never_answers_times_out() -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never replies
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
        sent = post_webhook(url, {"text": "x"}, tries=2, timeout=0.2, sleep=lambda _s: None)
        assert sent is False


@contextlib.contextmanager
def dripping_server(every: float) -> Iterator[str]:
    """A raw server that reads the request, then answers 200 one byte every `every` seconds:
    each read gets a byte long before any socket timeout, the whole answer takes many seconds."""
    done = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if done.wait(every):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the client gave up, as it should
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        done.set()
        listener.close()
        thread.join(5)


def test_a_dripping_hook_is_cut_off_at_the_deadline() -> None:
    with dripping_server(0.1) as url:
        started = time.monotonic()
        result = post_json(url, {"text": "x"}, timeout=0.5)
        took = time.monotonic() - started
    assert result.ok is False and result.status is None and not result.permanent
    assert "timed out" in result.error
    assert 0.4 <= took < 1.5, took  # the answer would have taken 4 s


def test_one_attempt_says_what_happened() -> None:
    with hook_server([400, 429, 408, 503]) as server:
        url = url_of(server)
        refused, busy, slow, down = (post_json(url, {"text": "x"}) for _ in range(4))
        ok = post_json(url, {"text": "x"})
    assert (refused.status, refused.permanent, refused.error) == (400, True, "HTTP 400: ok")
    assert [(r.status, r.permanent) for r in (busy, slow, down)] == [
        (429, False), (408, False), (503, False)]
    assert ok.ok and ok.status == 200 and ok.error == ""
    assert post_json("ftp://example.org/x", {"text": "x"}).permanent


def test_408_and_429_are_retried() -> None:
    with hook_server([408, 429]) as server:
        assert post_webhook(url_of(server), {"text": "x"}, sleep=lambda _s: None) is True
    assert len(server.bodies) == 3


def test_bad_url_or_payload_is_refused_quietly() -> None:
    assert post_webhook("file:///etc/passwd", {"text": "x"}) is False
    assert post_webhook("http://127.0.0.1:1/", {"text": {1, 2}}, sleep=lambda _s: None) is False


def test_message_bodies_are_slack_text_plus_fields() -> None:
    ready = clip_ready_message(7, "BBC <live>", "PM & budget", "https://desk.example/clip?id=7",
                               start=12.0, end=40.5, urgency="high")
    assert ready["text"] == ("Clip 7 is ready for review: BBC &lt;live&gt; 12.0–40.5 s — "
                             "PM &amp; budget (<https://desk.example/clip?id=7|open>)")
    assert (ready["event"], ready["clip_id"], ready["urgency"]) == ("clip.ready", 7, "high")
    done = package_exported_message(7, "https://bbc.example/live", "/exports/7-budget", "budget",
                                    formats=["16x9", "9x16"])
    assert done["text"] == ("Package for clip 7 is exported: /exports/7-budget "
                            "(source https://bbc.example/live) — 16x9, 9x16 — budget")
    assert (done["event"], done["path"]) == ("package.exported", "/exports/7-budget")
    assert slack_escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_links_and_user_text_cannot_break_out_of_slack_markup() -> None:
    assert slack_link("https://x.example/a?b=1&c=<2>|3", "a <b>") == (
        "<https://x.example/a?b=1&amp;c=&lt;2&gt;%7C3|a &lt;b&gt;>")
    assert slack_link("/exports/<b>&", "ignored") == "/exports/&lt;b&gt;&amp;"
    done = package_exported_message(7, "src", "/x", formats=["<b>"])
    assert done["text"].endswith(" — &lt;b&gt;")
    stalled = channel_stalled_message("<!channel>", "2026-01-01T00:00:00+00:00",
                                      "2026-01-01 00:00:00 UTC", "HTTP <500>")
    assert stalled["text"] == ("Channel &lt;!channel&gt; has recorded nothing since "
                               "2026-01-01 00:00:00 UTC: recording stalled (HTTP &lt;500&gt;)")
    assert stalled["channel"] == "<!channel>"  # the fields keep what was typed


def test_a_users_hook_reaches_only_public_or_allowlisted_addresses() -> None:
    with hook_server([]) as server:
        url = url_of(server)
        refused = post_json(url, {"text": "x"}, allowlist=())
        allowed = post_json(url, {"text": "x"}, allowlist=("127.0.0.1",))
        trusted = post_json(url, {"text": "x"})  # the admin's team hook: as configured
    assert refused.permanent and not refused.ok and "127.0.0.1" in refused.error
    assert allowed.ok and trusted.ok
    assert len(server.bodies) == 2  # the refused one never connected
