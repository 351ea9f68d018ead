"""The webhook outbox against a real loopback HTTP server, on SQLite and PostgreSQL: stored at
once, delivered by the deliverer, retried with backoff when the hook is down, slow or failing,
given up when refused, nothing lost to a restart, each message posted once by two deliverers.

Time moves by passing `now=` to the deliverer, never by waiting; the one wait on the real clock
(a dripping server cut off at the attempt's deadline) is bounded by that deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from polling import poll
from sqlalchemy import select

from clipper.context import Context
from clipper.errors import PermissionDenied
from clipper.permissions import Actor
from clipper.pipeline.notifications import (
    CLAIM_MARGIN_SECONDS,
    DeliveryLoop,
    _claim,
    deliver_due,
    notify,
    notify_exported,
    notify_ready,
    notify_stalled,
    prune_outbox,
    retry_delay,
)
from clipper.services.outbox import outbox_status
from clipper.storage.tables import Clip, Flag, OutboxMessage, Source

DRIP_EVERY = 0.25  # seconds between the dripping server's bytes: well under any read timeout
NOTHING = {"delivered": 0, "retrying": 0, "given_up": 0}


class _Hook(http.server.BaseHTTPRequestHandler):
    """Answers each POST as the server's script says (then its `mode`): an HTTP status, or
    "drip" (a 200 answer one byte every DRIP_EVERY s). Records every body it read."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            mode = server.script.pop(0) if server.script else server.mode
            server.attempts.append(body)
        if mode == "drip":
            self._drip(server.closing)
            return
        if server.answer_after:  # a slow hook, so that two deliverers overlap
            server.closing.wait(server.answer_after)
        if 200 <= mode < 300:
            with server.lock:
                server.bodies.append(body)
        self.send_response(mode)
        if mode == 429:
            self.send_header("Retry-After", "120")
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b"invalid_text" if mode == 400 else b"ok          ")

    def _drip(self, closing: threading.Event) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            if closing.wait(DRIP_EVERY):
                return
            try:
                self.wfile.write(bytes([byte]))
            except OSError:  # the client gave up: what the test wants
                return

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def hook(mode: int | str = 200, *, script: tuple[int | str, ...] = (), port: int = 0,
         answer_after: float = 0.0) -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Hook)
    server.mode, server.script, server.answer_after = mode, list(script), answer_after
    server.attempts, server.bodies = [], []
    server.lock, server.closing = threading.Lock(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()


def url_of(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret"


def free_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hooked(ctx: Context, url: str, **more: str) -> Context:
    ctx.settings = dataclasses.replace(ctx.settings, webhook_url=url, **more)
    return ctx


def rows(ctx: Context) -> list[OutboxMessage]:
    with ctx.db.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def now() -> datetime:
    return datetime.now(UTC)


def test_retry_delays_grow_by_three_to_ten_minutes() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [5, 15, 45, 135, 405, 600, 600]
    assert retry_delay(1, retry_after=120) == 120
    assert retry_delay(6, retry_after=10**6) == 3600  # a hook's wish, within reason


def test_notify_stores_at_once_and_the_deliverer_posts_it_once(ctx: Context) -> None:
    assert notify(ctx, {"text": "nobody listens", "event": "x"}) is None  # no webhook set
    with hook() as server:
        hooked(ctx, url_of(server))
        payload = {"text": "hello", "event": "test.hello", "when": datetime(2026, 1, 2, tzinfo=UTC)}
        first = notify(ctx, payload)
        assert server.attempts == []  # stored, not posted
        with ctx.db.session() as s:  # inside the caller's transaction
            second = notify(ctx, {"text": "in a transaction", "event": "test.tx"}, session=s)
        with contextlib.suppress(RuntimeError), ctx.db.session() as s:
            notify(ctx, {"text": "rolled back", "event": "test.rolled_back"}, session=s)
            raise RuntimeError("the change failed")  # so its notification is never sent
        assert isinstance(first, int) and isinstance(second, int)
        assert deliver_due(ctx) == {**NOTHING, "delivered": 2}
        assert deliver_due(ctx) == NOTHING
    assert [b["event"] for b in server.bodies] == ["test.hello", "test.tx"]
    assert server.bodies[0]["when"] == "2026-01-02 00:00:00+00:00"  # stored as the JSON sent
    stored = rows(ctx)
    assert [(r.id, r.state, r.attempts, r.event) for r in stored] == [
        (first, "delivered", 1, "test.hello"), (second, "delivered", 1, "test.tx")]
    assert all(r.delivered_at is not None and r.url == url_of(server) for r in stored)


def test_a_down_hook_is_retried_later_with_backoff_not_lost(ctx: Context) -> None:
    port = free_port()
    hooked(ctx, f"http://127.0.0.1:{port}/hook")
    notify(ctx, {"text": "are you there?", "event": "test.down"})
    t = now()
    assert deliver_due(ctx, now=t) == {**NOTHING, "retrying": 1}
    [row] = rows(ctx)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == t + timedelta(seconds=5)
    assert "Connection" in row.last_error or "refused" in row.last_error
    assert deliver_due(ctx, now=t + timedelta(seconds=4)) == NOTHING  # not due yet
    assert deliver_due(ctx, now=t + timedelta(seconds=5)) == {**NOTHING, "retrying": 1}
    [row] = rows(ctx)
    assert row.next_attempt_at == t + timedelta(seconds=5 + 15)
    with hook(port=port) as server:  # the hook is back
        assert deliver_due(ctx, now=t + timedelta(seconds=20)) == {**NOTHING, "delivered": 1}
    assert [b["event"] for b in server.bodies] == ["test.down"]
    assert rows(ctx)[0].attempts == 3


def test_a_dripping_hook_is_cut_off_at_the_deadline_and_retried(ctx: Context) -> None:
    """One byte every quarter second: every read is quick, the answer would take 10 s; the
    attempt ends at its 1 s deadline all the same."""
    with hook("drip") as server:
        hooked(ctx, url_of(server))
        notify(ctx, {"text": "slowly", "event": "test.drip"})
        t = now()
        started = time.monotonic()
        assert deliver_due(ctx, now=t, timeout=1.0) == {**NOTHING, "retrying": 1}
        took = time.monotonic() - started
        assert 0.9 <= took < 2.5, took
        [row] = rows(ctx)
        assert row.state == "pending" and "timed out" in row.last_error
        server.mode = 200
        assert deliver_due(ctx, now=t + timedelta(seconds=5), timeout=1.0)["delivered"] == 1
    assert len(server.attempts) == 2 and len(server.bodies) == 1


def test_server_errors_are_retried_and_refusals_given_up(ctx: Context) -> None:
    with hook(script=(500, 500, 200)) as server:
        hooked(ctx, url_of(server))
        notify(ctx, {"text": "flaky", "event": "test.500"})
        t = now()
        assert deliver_due(ctx, now=t) == {**NOTHING, "retrying": 1}
        assert rows(ctx)[0].last_error.startswith("HTTP 500")
        assert deliver_due(ctx, now=t + timedelta(seconds=5)) == {**NOTHING, "retrying": 1}
        assert rows(ctx)[0].next_attempt_at == t + timedelta(seconds=20)
        assert deliver_due(ctx, now=t + timedelta(seconds=20)) == {**NOTHING, "delivered": 1}

        server.script = [400, 429, 408]
        for event in ("test.400", "test.429", "test.408"):
            notify(ctx, {"text": event, "event": event})
        t = now()
        assert deliver_due(ctx, now=t) == {**NOTHING, "retrying": 2, "given_up": 1}
    refused, busy, slow = rows(ctx)[1:]
    assert (refused.state, refused.attempts) == ("given_up", 1)
    assert refused.last_error == "HTTP 400: invalid_text"  # what the hook said, kept
    assert busy.state == "pending" and busy.next_attempt_at == t + timedelta(seconds=120)
    assert slow.state == "pending" and slow.next_attempt_at == t + timedelta(seconds=5)


def test_a_message_undelivered_for_a_day_is_given_up(ctx: Context) -> None:
    with hook(503) as server:
        hooked(ctx, url_of(server))
        notify(ctx, {"text": "never", "event": "test.503"})
        created = rows(ctx)[0].created_at
        assert deliver_due(ctx, now=created + timedelta(hours=23))["retrying"] == 1
        assert deliver_due(ctx, now=created + timedelta(hours=24))["given_up"] == 1
        assert deliver_due(ctx, now=created + timedelta(days=2)) == NOTHING
    assert [r.state for r in rows(ctx)] == ["given_up"]
    assert len(server.attempts) == 2
    assert prune_outbox(ctx, now=created + timedelta(days=14)) == 0  # kept a fortnight
    assert prune_outbox(ctx, now=created + timedelta(days=15, seconds=1)) == 1
    assert rows(ctx) == []


def test_not_a_web_address_is_given_up_at_once(ctx: Context) -> None:
    hooked(ctx, "file:///etc/passwd")
    notify(ctx, {"text": "x", "event": "test.bad_url"})
    assert deliver_due(ctx) == {**NOTHING, "given_up": 1}
    assert "not an http(s) URL" in rows(ctx)[0].last_error


def test_a_restart_loses_nothing(ctx: Context) -> None:
    """Written, then the process goes (one message claimed by a deliverer that died mid-post):
    a new process delivers all of them, the claimed one once its claim has run out."""
    with hook() as server:
        hooked(ctx, url_of(server))
        ids = [notify(ctx, {"text": f"n{i}", "event": "test.restart", "n": i}) for i in range(3)]
        t = now()
        [dead] = _claim(ctx, "a-deliverer-that-died", t, 1, 10.0)
        ctx.db.dispose()
        again = Context.build(ctx.settings)
        try:
            assert deliver_due(again, now=t) == {**NOTHING, "delivered": 2}
            assert deliver_due(again, now=t + timedelta(seconds=10)) == NOTHING  # still claimed
            after = t + timedelta(seconds=10 + CLAIM_MARGIN_SECONDS)
            assert deliver_due(again, now=after) == {**NOTHING, "delivered": 1}
            assert [r.state for r in rows(again)] == ["delivered"] * 3
        finally:
            again.close()
    assert dead.id == ids[0]
    assert sorted(b["n"] for b in server.bodies) == [0, 1, 2]


def test_two_deliverers_at_once_post_each_message_exactly_once(ctx: Context) -> None:
    with hook(answer_after=0.01) as server:
        hooked(ctx, url_of(server))
        ids = [notify(ctx, {"text": f"n{i}", "event": "test.race", "n": i}) for i in range(40)]
        other = Context.build(ctx.settings)  # its own engine and connections: another process
        start = threading.Barrier(2)
        delivered = {"first": 0, "second": 0}
        errors: list[BaseException] = []

        def deliver(name: str, c: Context) -> None:
            try:
                start.wait(10)
                while True:
                    done = deliver_due(c, limit=3)
                    if done == NOTHING:
                        return
                    delivered[name] += done["delivered"]
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        threads = [threading.Thread(target=deliver, args=("first", ctx)),
                   threading.Thread(target=deliver, args=("second", other))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        other.close()
    assert errors == []
    assert delivered["first"] + delivered["second"] == 40
    assert delivered["first"] and delivered["second"], delivered  # they really overlapped
    assert sorted(b["n"] for b in server.bodies) == list(range(40))  # each once
    assert {(r.state, r.attempts) for r in rows(ctx)} == {("delivered", 1)}
    assert [r.id for r in rows(ctx)] == ids


def test_the_delivery_loop_posts_in_the_background_and_stops(sqlite_ctx: Context) -> None:
    with hook() as server:
        hooked(sqlite_ctx, url_of(server))
        loop = DeliveryLoop(sqlite_ctx, every=0.05)
        loop.start()
        try:
            notify(sqlite_ctx, {"text": "soon", "event": "test.loop"})
            poll(lambda: server.bodies, 10, "the loop to deliver")
        finally:
            loop.stop()
        assert not loop.is_alive()
    assert [b["event"] for b in server.bodies] == ["test.loop"]


def _clip(ctx: Context, note: str, location: str) -> int:
    with ctx.db.session() as s:
        src = Source(kind="url", key="url:escape", location=location)
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, start=12.0, end=40.5, status="ready", urgency="high")
        s.add(clip)
        s.flush()
        s.add(Flag(clip_id=clip.id, source_id=src.id, start=12.0, end=40.5, note=note, by="vera"))
        return clip.id


def test_message_bodies_escape_what_people_typed(ctx: Context) -> None:
    with hook() as server:
        hooked(ctx, url_of(server), base_url="https://desk.example/")
        cid = _clip(ctx, "<b>& budget", "https://news.example/live?a=1&b=<2>")
        notify_ready(ctx, cid)
        notify_exported(ctx, cid, "/exports/7 <b>&")
        notify_stalled(ctx, "<b>&news", 0.0, reason="HTTP 404 <b>&")
        assert deliver_due(ctx)["delivered"] == 3
    ready, exported, stalled = server.bodies
    assert ready["text"] == (
        f"Clip {cid} is ready for review: https://news.example/live?a=1&amp;b=&lt;2&gt; "
        f"12.0–40.5 s — &lt;b&gt;&amp; budget (<https://desk.example/clip?id={cid}|open>)")
    assert (ready["event"], ready["note"]) == ("clip.ready", "<b>& budget")  # fields as typed
    assert ready["urgency"] == "high"
    assert exported["text"] == (
        f"Package for clip {cid} is exported: /exports/7 &lt;b&gt;&amp; "
        "(source https://news.example/live?a=1&amp;b=&lt;2&gt;) — &lt;b&gt;&amp; budget "
        f"(<https://desk.example/clip?id={cid}|open>)")
    assert stalled["text"] == ("Channel &lt;b&gt;&amp;news has recorded nothing since "
                               "1970-01-01 00:00:00 UTC: recording stalled "
                               "(HTTP 404 &lt;b&gt;&amp;)")
    assert (stalled["event"], stalled["channel"]) == ("channel.stalled", "<b>&news")


def test_the_system_page_summary(ctx: Context) -> None:
    with hook(script=(200, 400, 500)) as server:
        hooked(ctx, url_of(server))
        for event in ("test.ok", "test.refused", "test.failing"):
            notify(ctx, {"text": event, "event": event})
        t = now()
        assert deliver_due(ctx, now=t) == {"delivered": 1, "retrying": 1, "given_up": 1}
        notify(ctx, {"text": "waiting", "event": "test.waiting"})
    with pytest.raises(PermissionDenied):
        outbox_status(ctx, Actor("vera", "volunteer"))
    status = outbox_status(ctx, Actor("ann", "admin"), now=t)
    assert (status.pending, status.failing, status.given_up, status.delivered_last_hour) == (
        2, 1, 1, 1)
    assert status.oldest_pending_at == rows(ctx)[2].created_at
    assert {(f["event"], f["state"], f["attempts"], f["last_error"][:8]) for f in status.failures} \
        == {("test.refused", "given_up", 1, "HTTP 400"), ("test.failing", "pending", 1, "HTTP 500")}
    failing = next(f for f in status.failures if f["state"] == "pending")
    assert failing["next_attempt_at"] == t + timedelta(seconds=5)
    later = outbox_status(ctx, Actor.operator(), now=t + timedelta(hours=2))
    assert later.delivered_last_hour == 0
