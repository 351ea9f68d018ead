"""Fault injection for the fault suite (tests/faults) and bench/faults.py.

- `TcpProxy`: a loopback TCP proxy that can be `cut()` (every connection dropped, new ones
  refused) and `restore()`d, to take PostgreSQL or Redis away from Clipper's processes for a
  while without stopping the machine's shared servers.
- `RedisServer`: a private `redis-server` on a free port, no persistence, that can be killed -9
  and started again empty.
- `ClipperUp`: the real stack, `python -m clipper.cli up --no-dashboard`, on a home of its own,
  pointed at a database and a Redis (directly or through a proxy); interrupted (Ctrl-C),
  killed -9 whole (every process of it at once), or stopped.
- `check_invariants(ctx)`: what every case checks afterwards (flags without a clip, moments
  with two clips, duplicate results, clips not done, failed clips, open runs, temporary files).
- `run_surge(...)`: many flags from many concurrent clients (service layer threads and CLI
  subprocesses) with a reviewer claiming and approving clips meanwhile; what was accepted,
  how fast, and what went wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipper.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Call `check` until it returns something truthy and return that; TimeoutError after
    `timeout` s (tests/polling.py's `poll`, for code outside the tests)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a proxy that can be cut -------------------------------------------------------------------

class TcpProxy:
    """127.0.0.1:`port` forwarded to `target`, a thread per direction of each connection.

    `cut()` drops every connection (both ends shut down: clients see the server hang up) and
    closes the listening socket, so new connections are refused, as if the server had gone;
    `restore()` listens again on the same port. The real server never notices anything but
    clients hanging up."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.connections = 0  # accepted so far, for tests that check traffic went through

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"proxy-{self.port}").start()
        return self

    restore = start

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = list(self._conns), set()
        if listener is not None:
            _shut(listener)  # wakes the accept() blocked on it
        for sock in conns:
            _shut(sock)

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while this one connected
                    live = False
                else:
                    live = True
                    self._conns.update((client, upstream))
                    self.connections += 1
            if not live:
                _shut(client)
                _shut(upstream)
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._conns.discard(src)
            self._conns.discard(dst)
        _shut(src)
        _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def via_proxy(url: str, proxy: TcpProxy) -> str:
    """`url` (a SQLAlchemy or Redis URL) with its host and port replaced by the proxy's."""
    from sqlalchemy.engine import make_url

    if url.startswith(("redis://", "rediss://")):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = (auth + "@" if auth else "") + f"127.0.0.1:{proxy.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)


def url_target(url: str) -> tuple[str, int]:
    """(host, port) a SQLAlchemy or Redis URL points at."""
    if url.startswith(("redis://", "rediss://")):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 6379
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


# ---- a private Redis -----------------------------------------------------------------------

class RedisServer:
    """`redis-server --port P --save "" --appendonly no` of our own: kill -9 it, start it again
    empty on the same port."""

    #: How it keeps its data (a subclass with an append-only file replays it on a start).
    PERSISTENCE: tuple[str, ...] = ("--appendonly", "no")

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="clipper-redis-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *self.PERSISTENCE, "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(self.answers, timeout, f"redis-server on port {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def answers(self) -> bool:
        import redis

        conn = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(conn.ping())
        except redis.RedisError:
            return False
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: whatever it held is gone (it never saved any)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> RedisServer:
        """Killed (-9) if running, then started again: empty, on the same port."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the real stack ------------------------------------------------------------------------

def stack_env(home: Path, *, database_url: str = "", redis_url: str, lease_seconds: float = 3,
              reconcile_seconds: float = 2, **extra: str) -> dict[str, str]:
    """The environment of a `clipper up` on `home`: this machine's, less any CLIPPER_* and the
    developer's DATABASE_URL / REDIS_URL, plus what the case sets."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLIPPER_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(CLIPPER_HOME=str(home), REDIS_URL=redis_url, HF_HUB_OFFLINE="1",
               CLIPPER_URL_ALLOWLIST="127.0.0.1", CLIPPER_LEASE_SECONDS=str(lease_seconds),
               CLIPPER_RECONCILE_SECONDS=str(reconcile_seconds))
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


class ClipperUp:
    """`python -m clipper.cli up --no-dashboard --workers N` in its own session (as a terminal
    starts it), with its output in `home/up.out`."""

    def __init__(self, env: dict[str, str], *, workers: int = 2) -> None:
        self.env, self.workers = env, workers
        self.home = Path(env["CLIPPER_HOME"])
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def settings(self) -> Settings:
        from clipper.settings import Settings

        return Settings.from_env(self.env)

    def start(self, timeout: float = 60.0) -> ClipperUp:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "up.out", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clipper.cli", "up", "--no-dashboard", "--workers",
                 str(self.workers)], cwd=ROOT, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1
        wait_for(self._workers_up, timeout, "clipper up and its workers")
        return self

    def state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.settings.run_dir / "up.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if self.proc is not None and state.get("pid") == self.proc.pid else None

    def _workers_up(self) -> bool:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"clipper up exited (rc {self.proc and self.proc.returncode}); "
                               f"see {self.home / 'up.out'}")
        pids = self.worker_pids()
        return len(pids) == self.workers and all(psutil.pid_exists(p) for p in pids)

    def worker_pids(self) -> list[int]:
        state = self.state() or {}
        return [pid for name, pid in (state.get("children") or {}).items()
                if name.startswith("worker")]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tree(self) -> list[Any]:
        """The supervisor and every process below it (workers, recorder, schedulers,
        ffmpeg)."""
        import psutil

        if not self.alive():
            return []
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C in its terminal (SIGINT to the supervisor, whose children run in sessions of
        their own); returns its exit status once every process has stopped."""
        assert self.proc is not None
        procs = self.tree()
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout)
        _wait_gone(procs, timeout)
        return rc

    def kill_all(self) -> int:
        """The host dies: SIGKILL to the supervisor and every process of it at the same
        moment; returns how many were killed."""
        import psutil

        procs = self.tree()
        # Deepest first, the supervisor last: its children must not be told of its death
        # (they would hand their work back) before their own SIGKILL.
        for p in reversed(procs):
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.proc is not None:
            self.proc.wait(10)
        _wait_gone(procs, 10)
        return len(procs)

    def kill_worker(self, pid: int) -> None:
        """kill -9 one worker and everything in its process group (its ffmpeg, scheduler)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Whatever state a case left it in: Ctrl-C, then -9 to anything still running, then
        what `clipper up` itself clears of a killed run (its up.json's processes)."""
        from clipper.cli.supervisor import clean_leftovers

        if self.alive():
            try:
                self.interrupt(30)
            except (subprocess.TimeoutExpired, TimeoutError):
                self.kill_all()
        with contextlib.suppress(Exception):
            clean_leftovers(self.settings)

    def log(self) -> str:
        parts = [(self.home / "up.out")] + sorted((self.home / "logs").glob("*.log"))
        out = []
        for path in parts:
            with contextlib.suppress(OSError):
                out.append(f"==> {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


def _wait_gone(procs: Sequence[Any], timeout: float) -> None:
    import psutil

    def gone() -> bool:
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.Error:
                continue
        return True
    wait_for(gone, timeout, "every process of clipper up to exit")


# ---- what every case checks afterwards -----------------------------------------------------

#: Clip statuses a case may end in (ready, or past review).
DONE = ("ready",)


def check_invariants(ctx: Any, *, done: Sequence[str] | None = DONE) -> dict[str, Any]:
    """Everything that must hold once a case has recovered; each entry empty when it holds.

    - flags_without_clip: flags whose clip row is missing;
    - moments_with_two_clips: groups of open clips of one source that are the same moment
      (dedupe.same_moment), which a flag should have merged;
    - duplicate_results: (clip, version, stage) whose result was written more than once (two
      `stage.<name>.done` events);
    - duplicate_renders: (clip, format, fit, captions) with more than one render row;
    - not_done: {clip id: status} of clips not in `done` (None: not checked);
    - failed: {clip id: error} of failed clips;
    - open_runs: stage runs never closed;
    - temp_files: scratch folders left under media/tmp, and hidden, .part or .tmp files under
      the media and exports folders.
    """
    from sqlalchemy import select

    from clipper import dedupe
    from clipper.storage.tables import Clip, Event, Flag, RenderRow, StageRun

    with ctx.db.read() as s:
        clips = {c.id: _ClipRow(c.id, c.source_id, c.start, c.end, c.status, c.error)
                 for c in s.scalars(select(Clip)).unique()}
        flags = list(s.execute(select(Flag.id, Flag.clip_id)))
        done_events = list(s.execute(select(Event.clip_id, Event.action, Event.details)
                                     .where(Event.action.like("stage.%.done"))))
        renders = list(s.execute(select(RenderRow.clip_id, RenderRow.format, RenderRow.fit,
                                        RenderRow.captions)))
        open_runs = list(s.scalars(select(StageRun.id).where(StageRun.ended_at.is_(None))))
    results = Counter((cid, (d or {}).get("version"), action) for cid, action, d in done_events)
    by_source: dict[int, list[Any]] = defaultdict(list)
    for c in clips.values():
        if c.status not in dedupe.CLOSED_STATES:
            by_source[c.source_id].append(c)
    twins = []
    for group in by_source.values():
        group.sort(key=lambda c: c.id)
        for i, a in enumerate(group):
            same = [b.id for b in group[i + 1:]
                    if dedupe.same_moment((a.start, a.end), (b.start, b.end))]
            if same:
                twins.append([a.id, *same])
    return {
        "flags_without_clip": [fid for fid, cid in flags if cid not in clips],
        "moments_with_two_clips": twins,
        "duplicate_results": sorted(k for k, n in results.items() if n > 1),
        "duplicate_renders": sorted(k for k, n in Counter(renders).items() if n > 1),
        "not_done": {} if done is None else {
            c.id: c.status for c in clips.values() if c.status not in done},
        "failed": {c.id: c.error for c in clips.values() if c.status == "failed"},
        "open_runs": open_runs,
        "temp_files": temp_files(ctx.settings),
    }


@dataclass(frozen=True)
class _ClipRow:
    id: int
    source_id: int
    start: float
    end: float
    status: str
    error: str | None


def temp_files(settings: Any) -> list[str]:
    """Scratch folders under media/tmp and half-written files (hidden, .part, .tmp) anywhere
    under the media and exports folders."""
    found = []
    tmp = settings.media_dir / "tmp"
    with contextlib.suppress(FileNotFoundError):
        found += [str(tmp / name) for name in os.listdir(tmp)]
    for root in (settings.media_dir, settings.exports_dir):
        # os.walk skips what vanishes while it looks (a run ending meanwhile).
        for folder, dirs, files in os.walk(root):
            if Path(folder) == tmp.parent:
                dirs[:] = [d for d in dirs if d != tmp.name]
            found += [str(Path(folder) / name) for name in dirs + files
                      if name.startswith(".") or ".part" in name or name.endswith(".tmp")]
    return sorted(found)


def problems(inv: dict[str, Any], *, ignore: Sequence[str] = ()) -> dict[str, Any]:
    """The entries of `check_invariants` that do not hold (less those in `ignore`)."""
    return {k: v for k, v in inv.items() if v and k not in ignore}


def statuses(ctx: Any) -> dict[int, str]:
    from sqlalchemy import select

    from clipper.storage.tables import Clip

    with ctx.db.read() as s:
        return dict(s.execute(select(Clip.id, Clip.status)).all())


def all_done(ctx: Any, expected: int, done: Sequence[str] = DONE) -> bool:
    """`expected` clips exist and every one is in `done` (a failed one raises at once)."""
    now = statuses(ctx)
    failed = [cid for cid, st in now.items() if st == "failed"]
    if failed:
        raise AssertionError(f"clips failed: {failed}: {check_invariants(ctx)['failed']}")
    return len(now) == expected and all(st in done for st in now.values())


def open_stages(ctx: Any) -> list[str]:
    """The stages running now (open runs), e.g. ["cut", "asr"]."""
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as s:
        return list(s.scalars(select(StageRun.stage).where(StageRun.ended_at.is_(None))))


def stage_errors(ctx: Any) -> list[str]:
    """Errors of closed stage runs (temporary failures retried, lost workers)."""
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as s:
        return [e for e in s.scalars(select(StageRun.error).where(StageRun.error.is_not(None)))]


# ---- the surge -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Moment:
    """One newsworthy moment: the sources' timeline interval flags of it fall in."""

    source: str
    start: float
    length: float
    jitter: float

    def flag_interval(self, rng: random.Random) -> tuple[float, float]:
        """A flag of this moment: [start + j, start + j + length], j in [0, jitter]; any two
        overlap by at least length - jitter, so they are one moment (>= half) if jitter is
        under half the length."""
        j = round(rng.uniform(0, self.jitter), 2)
        return self.start + j, self.start + j + self.length


def spread_moments(sources: Sequence[str], count: int, *, gap: float = 100.0,
                   length: float = 20.0, jitter: float = 5.0, first: float = 10.0
                   ) -> list[Moment]:
    """`count` moments round-robin over `sources`, `gap` s apart on each (never overlapping)."""
    return [Moment(sources[i % len(sources)], first + gap * (i // len(sources)), length, jitter)
            for i in range(count)]


@dataclass
class Accepted:
    """One accepted flag: who, which moment, what came back, and how long it took."""

    by: str
    moment: int
    flag_id: int
    clip_id: int
    seconds: float
    via: str  # "service" or "cli"


@dataclass
class SurgeResult:
    accepted: list[Accepted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reviewer_errors: list[str] = field(default_factory=list)
    approved: list[int] = field(default_factory=list)
    conflicts: int = 0  # a claim or approve that lost a race (expected, counted)
    wall: float = 0.0


def run_surge(ctx: Any, env: dict[str, str], moments: Sequence[Moment], *, flags: int,
              clients: int, seconds: float, cli_share: float = 0.1, cluster: float = 1.5,
              seed: int = 7,
              reviewer: bool = True, volunteer: bool = True,
              operator_sources: Sequence[str] = ()) -> SurgeResult:
    """`flags` flags of `moments` from `clients` long-lived clients over about `seconds`.

    Each client is a thread with its own actor name (a dashboard session: volunteers calling
    `file_flag` through the shared Context), except that a `cli_share` of the flags go through
    `python -m clipper.cli flag ... --json` subprocesses (environment `env`), started from the
    same clients. Flags are sent at planned times (a client late on its plan sends at once),
    clustered after each moment airs, not as fast as possible. Sources in `operator_sources`
    (server paths) are flagged as the local operator. With `reviewer`, a thread claims and
    approves every ready clip it sees meanwhile (a Conflict on a race is counted, anything else
    is an error)."""
    from clipper.errors import Conflict
    from clipper.permissions import Actor
    from clipper.services import review
    from clipper.services.flags import file_flag

    rng = random.Random(seed)
    # Each moment airs at its own time in the first 80% of the window; its flags follow it in
    # a cluster (exponential delays, mean `cluster` s), as volunteers react to what they saw,
    # so the first flags of a moment often race each other.
    airs = [seconds * 0.8 * k / len(moments) for k in range(len(moments))]
    rng.shuffle(airs)
    plan = []  # (at seconds, client, moment index, interval, via)
    for i in range(flags):
        m = i if i < len(moments) else rng.randrange(len(moments))
        at = min(seconds, airs[m] + rng.expovariate(1 / cluster))
        via = "cli" if rng.random() < cli_share else "service"
        plan.append((at, rng.randrange(clients), m, moments[m].flag_interval(rng), via))
    plan.sort()
    result = SurgeResult()
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.monotonic()

    def send(client: int, m: int, interval: tuple[float, float], via: str) -> None:
        name = f"client{client:03d}"
        source = moments[m].source
        started = time.perf_counter()
        try:
            if via == "cli":
                res = _cli_flag(env, source, interval, name)
            else:
                role = "operator" if source in operator_sources or not volunteer else "volunteer"
                actor = Actor(name, role)
                r = file_flag(ctx, actor, source, interval[0], interval[1],
                              note=f"moment {m}", tags=["surge"])
                res = {"flag_id": r.flag_id, "clip_id": r.clip_id}
        except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported
            with lock:
                result.errors.append(f"{name} {via} moment {m}: {type(exc).__name__}: {exc}")
            return
        took = time.perf_counter() - started
        with lock:
            result.accepted.append(Accepted(name, m, int(res["flag_id"]), int(res["clip_id"]),
                                            took, via))

    def client(k: int) -> None:
        for at, who, m, interval, via in plan:
            if who != k:
                continue
            delay = at - (time.monotonic() - t0)
            if delay > 0 and stop.wait(delay):  # the client's own schedule, not a sync
                return
            send(k, m, interval, via)

    def review_loop() -> None:
        me = Actor("reviewer", "social")
        while not stop.is_set():
            try:
                queue = review.review_queue(ctx, me)
            except Exception as exc:  # noqa: BLE001 - reported
                result.reviewer_errors.append(f"queue: {type(exc).__name__}: {exc}")
                stop.wait(0.2)
                continue
            for item in queue:
                cid = item["id"]
                try:
                    review.claim(ctx, me, cid)
                    review.approve(ctx, me, cid, formats=("16x9",))
                    result.approved.append(cid)
                except Conflict:
                    result.conflicts += 1
                except Exception as exc:  # noqa: BLE001 - reported
                    result.reviewer_errors.append(f"clip {cid}: {type(exc).__name__}: {exc}")
            stop.wait(0.05)  # a reviewer's refresh

    threads = [threading.Thread(target=client, args=(k,), name=f"client{k}")
               for k in range(clients)]
    rev = threading.Thread(target=review_loop, name="reviewer") if reviewer else None
    for t in threads + ([rev] if rev else []):
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        stop.set()
        if rev:
            rev.join(60)
    result.wall = time.monotonic() - t0
    return result


def _cli_flag(env: dict[str, str], source: str, interval: tuple[float, float],
              by: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "clipper.cli", "flag", source, "--start", f"{interval[0]:.2f}",
         "--end", f"{interval[1]:.2f}", "--by", by, "--note", "cli", "--tag", "surge", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"clipper flag exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def surge_findings(ctx: Any, result: SurgeResult, moments: Sequence[Moment]) -> dict[str, Any]:
    """What a surge must leave: every accepted flag stored and attached to its moment's one
    clip, every flagger credited on it; empty entries when it holds."""
    from sqlalchemy import select

    from clipper.pipeline.lifecycle import REVIEWED
    from clipper.storage.tables import Clip, Flag

    with ctx.db.read() as s:
        stored = {f.id: f for f in s.execute(select(Flag.id, Flag.clip_id, Flag.by, Flag.start,
                                                    Flag.end))}
        clips = {c.id: c for c in s.execute(select(Clip.id, Clip.start, Clip.end, Clip.status))}
    credited: dict[int, set[str]] = defaultdict(set)
    for f in stored.values():
        credited[f.clip_id].add(f.by)
    per_moment: dict[int, set[int]] = defaultdict(set)
    for a in result.accepted:
        per_moment[a.moment].add(a.clip_id)
    lost = [a.flag_id for a in result.accepted if a.flag_id not in stored]
    moved = [a.flag_id for a in result.accepted
             if a.flag_id in stored and stored[a.flag_id].clip_id != a.clip_id]
    split = {m: sorted(ids) for m, ids in per_moment.items() if len(ids) > 1}
    uncredited = [(a.by, a.clip_id) for a in result.accepted
                  if a.by not in credited.get(a.clip_id, set())]
    # A moment's clip covers its flags (the union of what was flagged), unless it was past
    # review when a flag came: that flag is credited, the approved clip is not re-cut.
    outside = []
    for a in result.accepted:
        c = clips.get(a.clip_id)
        f = stored.get(a.flag_id)
        if c is None or f is None or c.status in REVIEWED:
            continue
        if f.start < c.start - 1e-6 or f.end > c.end + 1e-6:
            outside.append(a.flag_id)
    return {"errors": result.errors, "reviewer_errors": result.reviewer_errors,
            "lost": lost, "moved": moved, "moments_split": split,
            "uncredited": uncredited, "flag_outside_clip": outside,
            "extra_flags": sorted(set(stored) - {a.flag_id for a in result.accepted}),
            "unflagged_moments": [m for m in range(len(moments)) if m not in per_moment]}


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "48m") mounted on `path` (needs root), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True, text=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_disk(folder: Path, *, leave: int = 0) -> Path:
    """Fill the filesystem of `folder` with one file until no more than `leave` bytes are free
    (or the disk refuses more); returns the file (delete it to free the space)."""
    import errno

    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for block, margin in ((1 << 20, 1 << 20), (1 << 12, 0)):  # megabytes, then pages
            try:
                while shutil.disk_usage(folder).free > leave + margin:
                    fh.write(b"\0" * block)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
    return filler
