"""Fault injectors of the newer fault cases, shared by tests/faults and bench/faults.py.

- `WebHook`: the team's webhook on a loopback port of its own that can be down (nothing
  listens), answer 500, drip its answer one byte a second, or work; it records what it was sent.
- `AofRedis`: the compose layout's Redis (`--appendonly yes --appendfsync everysec`), killed -9
  and started again from its append-only file.
- What a case reads of a running stack: `recorder_pid`, `waiting_jobs`, `stage_jobs`,
  `job_known`, `up_log_size`, `requeued` and `unqueued` (from its logs), `outbox_rows`,
  `channel_segments`, `channel_gaps`.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testmedia.faults import ClipperUp, RedisServer, free_port

#: Seconds between the bytes of a dripping hook's answer (the issue's "one byte a second").
DRIP_EVERY = 1.0


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        hook = self.server.hook
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        mode = hook.mode
        with hook.lock:
            hook.attempts.append((mode, body))
        if mode == "drip":
            self._drip(hook.closing)
            return
        status = int(mode)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"no")
        self.wfile.flush()
        if 200 <= status < 300:  # answered in full: the sender has its 2xx
            with hook.lock:
                hook.delivered.append(body)

    def _drip(self, closing: threading.Event) -> None:
        """A 200 answer that would take 40 s: every read is quick, the whole is not."""
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            if closing.wait(DRIP_EVERY):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the sender gave up at its deadline: what a case wants
                return
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _HookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hook: WebHook) -> None:
        self.hook = hook
        super().__init__(("127.0.0.1", hook.port), _HookHandler)


class WebHook:
    """A webhook on 127.0.0.1:`port` (a free one by default) in `mode`: "down" (nothing
    listens: connections are refused), "drip" (a 200 answer sent one byte a second, which no
    sender's deadline outlasts), or an HTTP status ("500", "200"). `attempts` holds (mode, body)
    of every request read; `delivered` the bodies answered 2xx in full."""

    def __init__(self, mode: str = "down", *, port: int = 0) -> None:
        self.port = port or free_port()
        self.mode = "down"
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.attempts: list[tuple[str, dict[str, Any]]] = []
        self.delivered: list[dict[str, Any]] = []
        self._server: _HookServer | None = None
        self.set(mode)

    def __enter__(self) -> WebHook:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0/B0/secret"

    def set(self, mode: str) -> None:
        """Behave as `mode` from now on (requests under way finish as they began)."""
        if mode == "down":
            self._stop_listening()
        elif self._server is None:
            self._server = _HookServer(self)
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True, name=f"hook-{self.port}").start()
        self.mode = mode

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.closing.set()  # ends drips under way
        self._stop_listening()

    def tried(self, mode: str) -> list[dict[str, Any]]:
        """Bodies of the requests read while in `mode`."""
        with self.lock:
            return [body for m, body in self.attempts if m == mode]


class AofRedis(RedisServer):
    """The compose layout's Redis: `redis-server --appendonly yes --appendfsync everysec` on a
    free port, its files in a folder of its own. `restart()` is kill -9 and a start on the same
    port and folder: Redis replays its append-only file, as a container restarting does."""

    PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec")

    def start(self, timeout: float = 30.0) -> AofRedis:
        # A longer wait: answers() is False while Redis replays the file (LOADING).
        super().start(timeout)
        return self

    def aof_bytes(self) -> int:
        """Size of the append-only file(s) so far (Redis 7 keeps them in appendonlydir)."""
        return sum(p.stat().st_size for p in Path(self.dir).rglob("appendonly*") if p.is_file())


def recorder_pid(stack: ClipperUp) -> int | None:
    """The pid of the stack's recorder child, as its up.json says now."""
    return ((stack.state() or {}).get("children") or {}).get("recorder")


def waiting_jobs(conn: Any) -> set[str]:
    """Ids of the jobs waiting in the stage queues of this Redis."""
    from rq import Queue

    from clipper.pipeline.stages import QUEUES, with_later

    return {jid for name in with_later(QUEUES) for jid in Queue(name, connection=conn).job_ids}


def job_known(conn: Any, jid: str) -> bool:
    """Whether Redis still holds this job (waiting, running or finished)."""
    return bool(conn.exists(f"rq:job:{jid}"))


_REQUEUED = re.compile(r"re-queued lost work for clips \[([0-9, ]*)\]")
_UNQUEUED = re.compile(r"could not queue \w+ for clip (\d+)|clip (\d+) stored but not queued")


def up_log_size(stack: ClipperUp) -> int:
    """How many bytes the stack's output holds so far (for `requeued(stack, after=)`)."""
    try:
        return (stack.home / "up.out").stat().st_size
    except FileNotFoundError:
        return 0


def requeued(stack: ClipperUp, *, after: int = 0) -> list[int]:
    """Clips the stack's reconciler found lost work of and queued again (from its output, from
    byte `after` on: a pass can also queue a clip just filed, before its flag's own enqueue)."""
    try:
        with open(stack.home / "up.out", "rb") as out:
            out.seek(after)
            text = out.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [int(c) for found in _REQUEUED.findall(text) for c in found.split(",") if c.strip()]


def unqueued(stack: ClipperUp) -> set[int]:
    """Clips whose next stage a worker (or a flag) could not queue because Redis was away: the
    reconciler's to queue, by design (from the stack's logs)."""
    found: set[int] = set()
    for log in sorted((stack.home / "logs").glob("*.log")) + [stack.home / "up.out"]:
        try:
            text = log.read_text(errors="replace")
        except FileNotFoundError:
            continue
        found |= {int(a or b) for a, b in _UNQUEUED.findall(text)}
    return found


def stage_jobs(conn: Any) -> list[str]:
    """Ids of every stage job this Redis holds (`<stage>-<clip>-v<version>`)."""
    keys = (k.decode().removeprefix("rq:job:") for k in conn.scan_iter(match="rq:job:*"))
    return [k for k in keys if ":" not in k]


def outbox_rows(ctx: Any) -> list[Any]:
    """The outbox's rows, oldest first, as plain rows (readable after their session ended)."""
    from sqlalchemy import select

    from clipper.storage.tables import OutboxMessage

    m = OutboxMessage
    with ctx.db.read() as session:
        return list(session.execute(
            select(m.id, m.event, m.payload, m.state, m.attempts, m.last_error,
                   m.last_attempt_at, m.next_attempt_at, m.delivered_at).order_by(m.id)))


def unix(t: datetime) -> float:
    """A stored time (naive: UTC, as SQLite gives it back) as Unix seconds."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def channel_segments(ctx: Any, name: str) -> list[Any]:
    """A channel's stored segments by wall-clock start, as plain rows."""
    from sqlalchemy import select

    from clipper.storage.tables import Channel, ChannelSegment

    s = ChannelSegment
    with ctx.db.read() as session:
        return list(session.execute(
            select(s.seq, s.wall_start, s.duration, s.first_pts, s.bytes, s.path, s.arrived_at)
            .join(Channel).where(Channel.name == name).order_by(s.wall_start, s.id)))


def channel_gaps(ctx: Any, name: str, window: float = 3600.0) -> list[tuple[float, float]]:
    """A channel's gaps over the last `window` seconds, as its channel list computes them."""
    from sqlalchemy import select

    from clipper.services.channels import recent_gaps
    from clipper.storage.tables import Channel

    with ctx.db.read() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.name == name))
        return recent_gaps(session, channel_id, time.time() - window)
