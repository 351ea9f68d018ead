"""`clipper up`: embedded Redis, database, workers and dashboard as one supervised process tree."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

import psutil
import redis

from clipper.context import Context
from clipper.errors import ClipperError, Conflict
from clipper.permissions import Actor
from clipper.pipeline.delivery import PackageDeliveryLoop
from clipper.pipeline.notifications import DeliveryLoop
from clipper.pipeline.stages import worker_queues
from clipper.settings import Settings
from clipper.storage import broker
from clipper.storage.database import Database

log = logging.getLogger("clipper.cli.supervisor")


REMINDER_SECONDS = 30.0
"""How often `clipper up` sends due rota reminders and marks missed shifts."""

SLACK_SECONDS = 2.0
"""How often `clipper up` posts Slack replies for clips that became ready."""

STABLE_SECONDS = 60.0
"""A child that ran this long before it died is restarted as if it had never failed."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    max_delay: float = 30.0  # longest wait before a restart, however often it died
    started_at: float = 0.0
    record: dict[str, Any] | None = None  # who it is, for the next `clipper up` (up.json)

    def count_exit(self, now: float) -> None:
        """A quick death doubles the wait before the next start; a long run resets it."""
        self.restarts = 0 if now - self.started_at >= STABLE_SECONDS else self.restarts + 1

    def restart_delay(self) -> float:
        """Seconds from this start before the child may be started again."""
        return min(self.max_delay, 2.0 ** self.restarts)

    def start(self, logs: Path) -> None:
        self.started_at = time.monotonic()
        out = open(logs / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        # Own session: Ctrl-C reaches only the supervisor, which stops children in order.
        # PDEATHSIG: if the supervisor dies without stopping them (SIGKILL), they stop anyway.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=broker.die_with_parent())
        out.close()
        self.record = _describe(self.proc.pid, self.name)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            _signal_group(self.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM (a worker finishes or abandons its job), then SIGKILL the whole group."""
        if not self.alive():
            return
        assert self.proc is not None
        self.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _describe(pid: int, name: str) -> dict[str, Any] | None:
    """Enough to tell later that a pid is still this very process, not a reuse of the number."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return {"name": name, "pid": pid, "create_time": proc.create_time(),
                    "cmdline": proc.cmdline(), "exe": proc.exe()}
    except psutil.Error:
        return None


def _still(record: Any) -> psutil.Process | None:
    """The live process `record` (from `_describe`) names, or None: one that died, or whose pid
    now belongs to another process (another start time, another command), is never returned."""
    try:
        proc = psutil.Process(int(record["pid"]))
        with proc.oneshot():
            if abs(proc.create_time() - float(record["create_time"])) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            # exe as well: a process may retitle itself (setproctitle) and change its cmdline.
            if proc.cmdline() != record["cmdline"] and proc.exe() != record.get("exe"):
                return None
        return proc
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _end(procs: list[psutil.Process], grace: float) -> None:
    """SIGTERM (and SIGCONT: a stopped process acts on it only once continued), then SIGKILL
    whatever still runs after `grace` s. psutil refuses to signal a pid reused meanwhile."""
    for proc in procs:
        try:
            proc.terminate()
            proc.resume()
        except psutil.Error:
            pass
    deadline = time.monotonic() + grace
    while (alive := [p for p in procs if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


def clean_leftovers(settings: Settings, grace: float = 5.0) -> list[int]:
    """Stop what a `clipper up` that died without clean-up left running on this CLIPPER_HOME,
    as its up.json names it; return those pids. Only processes that are provably the recorded
    ones (same pid, start time and command) and their own process groups are touched."""
    path = settings.run_dir / "up.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return []
    if not isinstance(state, dict) or "supervisor" not in state:
        return []  # not written by this version: nothing in it can be verified
    supervisor = _still(state["supervisor"])
    if supervisor is not None:
        raise Conflict(f"Clipper is already running for CLIPPER_HOME={settings.home} "
                       f"(pid {supervisor.pid}).",
                       "Stop it first (Ctrl-C in its terminal), or use another CLIPPER_HOME.")
    records = [r for r in state.get("processes") or [] if isinstance(r, dict)]
    found = [p for rec in records if (p := _still(rec)) is not None]
    targets = {p.pid: p for p in found}
    # Each child led its own process group: what it started (RQ's scheduler, a job's ffmpeg)
    # is in it, or below it, and goes too.
    leaders = {p.pid for p in found if _pgid(p.pid) == p.pid}
    for proc in psutil.process_iter():
        if proc.pid not in targets and _pgid(proc.pid) in leaders:
            targets[proc.pid] = proc
    for proc in found:
        try:
            targets.update((c.pid, c) for c in proc.children(recursive=True))
        except psutil.Error:
            pass
    targets.pop(os.getpid(), None)
    if targets:
        log.warning("stopping processes a previous clipper up left running: %s",
                    ", ".join(map(str, sorted(targets))))
        # Redis last, as in a normal stop: a worker's warm stop (its scheduler's locks) needs it.
        redis_pids = {r.get("pid") for r in records if r.get("name") == "redis"}
        _end([p for p in targets.values() if p.pid not in redis_pids], grace)
        _end([p for p in targets.values() if p.pid in redis_pids], grace)
    path.unlink(missing_ok=True)
    return sorted(targets)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    redis: broker.EmbeddedRedis | None = None
    redis_next_start: float = 0.0  # monotonic: when a dead embedded Redis may be started again
    demo_server: object | None = None
    port: int | None = None  # the dashboard's, when there is one

    def stop(self) -> None:
        """Workers first (SIGTERM: a warm stop), then the demo server and Redis. Every step runs
        even if one before it failed; up.json stays while anything it names may still run, so
        the next `clipper up` can stop it."""
        for child in self.children:
            _attempt(child.terminate, child.name)
        for child in reversed(self.children):
            _attempt(child.stop, child.name)
        if self.demo_server is not None:
            _attempt(self.demo_server.stop, "demo server")  # type: ignore[attr-defined]
        if self.redis is not None:
            _attempt(self.redis.stop, "redis")
        left = [c.name for c in self.children if c.alive()]
        left += ["redis"] if self.redis is not None and self.redis.alive() else []
        if left:
            log.error("still running after stop: %s (the next clipper up stops them)",
                      ", ".join(left))
        else:
            (self.settings.run_dir / "up.json").unlink(missing_ok=True)


def _attempt(step: Any, what: str) -> None:
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - the remaining steps of a stop must still run
        log.error("stopping %s failed: %s", what, exc)


def _children(env: dict[str, str], workers: int, dashboard: bool, port: int,
              address: str) -> list[Child]:
    py = sys.executable
    # One worker takes every queue (its default); of several, one holds Whisper (worker_queues).
    queues = [["--queues", ",".join(worker_queues(i, workers))] if workers > 1 else []
              for i in range(workers)]
    kids = [Child(f"worker-{i + 1}", [py, "-m", "clipper.cli", "worker", *queues[i]], env)
            for i in range(workers)]
    # Always: it idles without channels; a dead one is back within 5 s (the delay cap + tick).
    kids.append(Child("recorder", [py, "-m", "clipper.cli", "record"], env, max_delay=4.0))
    # Always too: it idles (no model loaded) while no channel is transcribed with Whisper.
    kids.append(Child("live-asr", [py, "-m", "clipper.cli", "live-asr"], env, max_delay=10.0))
    # The HTTP API on CLIPPER_API_PORT, bound like the dashboard.
    kids.append(Child("api", [py, "-m", "clipper.cli", "api", "--host", address], env,
                      max_delay=10.0))
    if dashboard:
        kids.append(Child("dashboard", [py, "-m", app_module("dashboard"),
                                        "--server.port", str(port), "--server.address", address],
                          env))
    return kids


def app_module(name: str) -> str:
    """The module that runs app `name` (`python -m MODULE`), from the `clipper.apps` entry points
    the installed packages declare: the core names no package above it."""
    for ep in entry_points(group="clipper.apps", name=name):
        return ep.value.split(":")[0]
    raise Conflict(f"No {name} is installed (no `clipper.apps` entry point named {name!r}).",
                   "Reinstall Clipper with scripts/setup.sh, or start with --no-dashboard.")


def _already_running(settings: Settings) -> None:
    if settings.redis_url or not settings.redis_socket.exists():
        return
    try:
        broker.connect(settings, timeout=3.0).ping()
    except redis.TimeoutError as exc:  # a stopped (SIGSTOP) or wedged server holds the socket
        raise Conflict(f"A Redis holds {settings.redis_socket} but does not answer.",
                       "Find it with `fuser` on that socket and stop it, then start again.",
                       ) from exc
    except Exception:  # noqa: BLE001 - a stale socket from a crash: safe to replace
        settings.redis_socket.unlink(missing_ok=True)
        return
    raise Conflict(f"Clipper is already running for CLIPPER_HOME={settings.home}.",
                   "Stop it first (Ctrl-C in its terminal), or use another CLIPPER_HOME.")


def start_stack(settings: Settings, *, demo: bool, dashboard: bool, workers: int, port: int,
                address: str = "127.0.0.1") -> Stack:
    for d in (settings.home, settings.media_dir, settings.exports_dir, settings.run_dir,
              settings.home / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    clean_leftovers(settings)  # first: a leftover Redis would otherwise look like a running one
    _already_running(settings)
    Database(settings.database_url).dispose()  # migrate once, before any worker starts
    stack = Stack(settings, port=port if dashboard else None)
    env = settings.child_env()
    env[broker.SUPERVISOR_ENV] = str(os.getpid())  # children watch for our death (watch_parent)
    try:
        if not settings.redis_url:
            stack.redis = broker.EmbeddedRedis(settings)
            _drop_scheduler_locks(stack.redis.client)
        if demo:
            stack.demo_server = _start_demo(settings, env)
        stack.children = _children(env, workers, dashboard, port, address)
        for child in stack.children:
            child.start(settings.home / "logs")
        _write_state(stack)
        _first_admin(settings)
    except BaseException:
        stack.stop()
        raise
    return stack


def _drop_scheduler_locks(conn: redis.Redis) -> None:
    """No worker runs yet on this embedded Redis, so a scheduler lock in it is stale: left by a
    scheduler killed with its Redis. RQ would otherwise run no scheduler (deferred retries)
    until its 10-minute maintenance, and this `clipper up` would not start normally."""
    from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE

    stale = list(conn.scan_iter(match=SCHEDULER_LOCKING_KEY_TEMPLATE % "*"))
    if stale:
        log.info("dropping %d stale RQ scheduler lock(s)", len(stale))
        conn.delete(*stale)


def _start_demo(settings: Settings, env: dict[str, str]) -> object:
    from clipper.cli.demo import DemoServer, make_demo_media

    print("Preparing demo media (first run only: about a minute)...", flush=True)
    server = DemoServer(make_demo_media(settings.home)).start()
    # Workers must be allowed to fetch the demo server on loopback.
    allowed = [env.get("CLIPPER_URL_ALLOWLIST", ""), "127.0.0.1"]
    env["CLIPPER_URL_ALLOWLIST"] = ",".join(filter(None, allowed))
    return server


def _first_admin(settings: Settings) -> None:
    try:
        from clipper.services.users import ensure_first_admin
    except ImportError:
        return
    ctx = Context.build(settings)
    try:
        # Whoever runs `clipper up` is the local operator; the account is made in that name.
        created = ensure_first_admin(ctx, Actor.operator("clipper-up"))
    finally:
        ctx.db.dispose()
    if created:
        name, password = created
        print(f"\nFirst admin account: {name}  password: {password}\n"
              "(shown once; change it or add users from the Team page)\n", flush=True)


def _write_state(stack: Stack) -> None:
    """run_dir/up.json: what runs now, for tools, and for a next `clipper up` to stop if this
    one dies without clean-up (`processes`: each with its start time, see `clean_leftovers`)."""
    records = [c.record for c in stack.children if c.alive() and c.record]
    if stack.redis is not None and (redis_record := _describe(stack.redis.pid, "redis")):
        records.append(redis_record)
    state = {"pid": os.getpid(), "redis_pid": stack.redis.pid if stack.redis else None,
             "children": {c.name: c.proc.pid for c in stack.children if c.proc},
             "dashboard": f"http://127.0.0.1:{stack.port}" if stack.port else None,
             "demo": getattr(stack.demo_server, "base_url", None),
             "supervisor": _describe(os.getpid(), "supervisor"), "processes": records}
    path = stack.settings.run_dir / "up.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)  # readers never see half a file


def supervise(stack: Stack, stop_flag: list[bool]) -> None:
    """Restart dead children (with backoff) and re-queue lost work until asked to stop."""
    logs = stack.settings.home / "logs"
    next_reconcile = 0.0
    next_reminders = 0.0
    next_slack = 0.0
    ctx = Context.build(stack.settings)
    deliverer = DeliveryLoop(ctx)  # the webhook outbox, checked every second
    deliverer.start()
    packages = PackageDeliveryLoop(ctx)  # exported packages to the shared drive (rclone)
    packages.start()
    try:
        while not stop_flag[0]:
            now = time.monotonic()
            restarted = _keep_redis(stack, now)
            for child in stack.children:
                if not child.alive() and now >= child.next_start:
                    if child.proc is not None:
                        child.count_exit(now)
                        log.warning("%s exited (rc %s); restarting", child.name,
                                    child.proc.returncode)
                    child.next_start = now + child.restart_delay()
                    child.start(logs)
                    restarted = True
            if restarted:
                _write_state(stack)
            if now >= next_reconcile:
                _reconcile(ctx)
                next_reconcile = now + stack.settings.reconcile_seconds
            if now >= next_reminders:
                _reminders(ctx)
                next_reminders = now + REMINDER_SECONDS
            if now >= next_slack:
                _slack_replies(ctx)
                next_slack = now + SLACK_SECONDS
            time.sleep(0.5)
    finally:
        packages.stop()
        deliverer.stop()
        ctx.close()


#: Seconds between attempts to start a dead embedded Redis again.
REDIS_RESTART_SECONDS = 2.0


def _keep_redis(stack: Stack, now: float) -> bool:
    """Start the embedded Redis again if it died (True when it was). It replays its AOF, so
    the queued jobs are back; what it lost, the reconciler queues again from the database.
    Until it answers, the workers exit and are restarted with backoff like any child."""
    embedded = stack.redis
    if embedded is None or embedded.alive() or now < stack.redis_next_start:
        return False
    log.warning("the embedded Redis exited (rc %s); starting it again", embedded.proc.returncode)
    stack.redis_next_start = now + REDIS_RESTART_SECONDS
    embedded.stop()  # its socket file and client connections
    try:
        stack.redis = broker.EmbeddedRedis(stack.settings)
    except ClipperError as exc:
        log.warning("the embedded Redis did not start again: %s", exc)
        return False
    _drop_scheduler_locks(stack.redis.client)
    return True


def _reconcile(ctx: Context) -> None:
    from clipper.pipeline.reconciler import reconcile

    try:
        requeued = reconcile(ctx)
        if requeued:
            log.warning("re-queued lost work for clips %s", requeued)
    except Exception as exc:  # noqa: BLE001 - the supervisor must keep running
        log.warning("reconcile failed: %s", exc)


def _slack_replies(ctx: Context) -> None:
    """Clips filed from Slack that are ready (or failed): their replies go to the outbox."""
    from clipper.services.slack import send_slack_replies

    try:
        send_slack_replies(ctx)
    except Exception as exc:  # noqa: BLE001 - the supervisor must keep running
        log.warning("slack replies failed: %s", exc)


def _reminders(ctx: Context) -> None:
    """Rota reminders and alerts due now, and missed shifts; an error never stops `clipper up`."""
    from clipper.pipeline.reminders import run_reminders

    try:
        done = run_reminders(ctx)
        if done["sent"] or done["missed"]:
            log.info("rota: %(sent)d reminder(s) sent, %(missed)d signup(s) missed", done)
    except Exception as exc:  # noqa: BLE001 - the supervisor must keep running
        log.warning("rota reminders failed: %s", exc)


def _banner(stack: Stack, port: int, dashboard: bool) -> None:
    s = stack.settings
    print(f"Clipper is up. Data: {s.home}", flush=True)
    if dashboard:
        print(f"  Dashboard: http://127.0.0.1:{port}")
    print(f"  API: http://127.0.0.1:{s.api_port}/api/docs")
    print(f"  Workers: {sum(c.name.startswith('worker') for c in stack.children)}  "
          f"Redis: {s.redis_url or s.redis_socket}  Logs: {s.home / 'logs'}")
    if stack.demo_server is not None:
        base = stack.demo_server.base_url  # type: ignore[attr-defined]
        env = f"CLIPPER_HOME={s.home} " if "CLIPPER_HOME" in s.env else ""
        print("\nDemo broadcast ready. In another terminal, flag a moment:\n"
              f"  {env}clipper flag {s.home / 'demo' / 'broadcast.mp4'} --start 0:08 --end 0:20 "
              "--note 'waiting lists promise' --tag health --wait\n"
              "or over HLS, as a live source would be:\n"
              f"  {env}CLIPPER_URL_ALLOWLIST=127.0.0.1 clipper flag {base}/broadcast.m3u8 "
              "--start 67.4 --end 101.2 --wait --json")
    print("\nCtrl-C stops everything.", flush=True)


def run_up(settings: Settings, *, demo: bool, dashboard: bool, workers: int, port: int,
           address: str = "127.0.0.1") -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s: %(message)s")
    stop_flag = [False]

    def on_signal(signum: int, _frame: object) -> None:
        stop_flag[0] = True

    # SIGHUP: the terminal closed. Under `nohup` it is ignored on purpose, and stays so.
    hangup = [signal.SIGHUP] if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN else []
    for sig in (signal.SIGINT, signal.SIGTERM, *hangup):
        signal.signal(sig, on_signal)
    stack = start_stack(settings, demo=demo, dashboard=dashboard, workers=max(0, workers),
                        port=port, address=address)
    try:
        try:
            _banner(stack, port, dashboard)
        except OSError:  # nobody reads our output (a closed pipe): keep serving regardless
            _silence(sys.stdout)
        supervise(stack, stop_flag)
    finally:
        _say("Stopping Clipper...")
        stack.stop()
        _say("Stopped.")
        for stream in (sys.stdout, sys.stderr):
            _say("", stream, end="")  # a failed flush at exit would turn rc 0 into 120
    return 0


def _say(text: str, stream: TextIO | None = None, end: str = "\n") -> None:
    """Print, and never fail: after `clipper up | tee` lost its tee, or its terminal closed,
    the clean-up that follows must still run."""
    stream = stream or sys.stdout
    try:
        print(text, file=stream, end=end, flush=True)
    except OSError:
        _silence(stream)


def _silence(stream: TextIO) -> None:
    """Point a stream whose reader is gone at /dev/null: later writes, and the flush at exit,
    then succeed (what is still buffered goes there too)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
