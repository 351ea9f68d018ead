"""Webhook posts against real local HTTP servers: retries on 5xx, gives up quietly when down."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from clipper.net.webhook import (
    clip_ready_message,
    package_exported_message,
    post_webhook,
    slack_escape,
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
