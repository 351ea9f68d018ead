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

from clipper.context import Context
from clipper.errors import Conflict
from clipper.permissions import Actor
from clipper.settings import Settings
from clipper.storage import broker
from clipper.storage.database import Database

log = logging.getLogger("clipper.cli.supervisor")


REMINDER_SECONDS = 30.0
"""How often `clipper up` sends due rota reminders and marks missed shifts."""

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
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

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


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    redis: broker.EmbeddedRedis | None = None
    demo_server: object | None = None

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in reversed(self.children):
            child.stop()
        if self.demo_server is not None:
            self.demo_server.stop()  # type: ignore[attr-defined]
        if self.redis is not None:
            self.redis.stop()
        (self.settings.run_dir / "up.json").unlink(missing_ok=True)


def _children(env: dict[str, str], workers: int, dashboard: bool, port: int,
              address: str) -> list[Child]:
    py = sys.executable
    kids = [Child(f"worker-{i + 1}", [py, "-m", "clipper.cli", "worker"], env)
            for i in range(workers)]
    # Always: it idles without channels; a dead one is back within 5 s (the delay cap + tick).
    kids.append(Child("recorder", [py, "-m", "clipper.cli", "record"], env, max_delay=4.0))
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
        broker.connect(settings).ping()
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
    _already_running(settings)
    Database(settings.database_url).dispose()  # migrate once, before any worker starts
    stack = Stack(settings)
    env = settings.child_env()
    try:
        if not settings.redis_url:
            stack.redis = broker.EmbeddedRedis(settings)
        if demo:
            stack.demo_server = _start_demo(settings, env)
        stack.children = _children(env, workers, dashboard, port, address)
        for child in stack.children:
            child.start(settings.home / "logs")
        _write_state(stack, port if dashboard else None)
        _first_admin(settings)
    except BaseException:
        stack.stop()
        raise
    return stack


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


def _write_state(stack: Stack, port: int | None) -> None:
    state = {"pid": os.getpid(), "redis_pid": stack.redis.pid if stack.redis else None,
             "children": {c.name: c.proc.pid for c in stack.children if c.proc},
             "dashboard": f"http://127.0.0.1:{port}" if port else None,
             "demo": getattr(stack.demo_server, "base_url", None)}
    (stack.settings.run_dir / "up.json").write_text(json.dumps(state, indent=1))


def supervise(stack: Stack, stop_flag: list[bool]) -> None:
    """Restart dead children (with backoff) and re-queue lost work until asked to stop."""
    logs = stack.settings.home / "logs"
    next_reconcile = 0.0
    next_reminders = 0.0
    ctx = Context.build(stack.settings)
    try:
        while not stop_flag[0]:
            now = time.monotonic()
            for child in stack.children:
                if not child.alive() and now >= child.next_start:
                    if child.proc is not None:
                        child.count_exit(now)
                        log.warning("%s exited (rc %s); restarting", child.name,
                                    child.proc.returncode)
                    child.next_start = now + child.restart_delay()
                    child.start(logs)
            if now >= next_reconcile:
                _reconcile(ctx)
                next_reconcile = now + stack.settings.reconcile_seconds
            if now >= next_reminders:
                _reminders(ctx)
                next_reminders = now + REMINDER_SECONDS
            time.sleep(0.5)
    finally:
        ctx.close()


def _reconcile(ctx: Context) -> None:
    from clipper.pipeline.reconciler import reconcile

    try:
        requeued = reconcile(ctx)
        if requeued:
            log.warning("re-queued lost work for clips %s", requeued)
    except Exception as exc:  # noqa: BLE001 - the supervisor must keep running
        log.warning("reconcile failed: %s", exc)


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

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = start_stack(settings, demo=demo, dashboard=dashboard, workers=max(0, workers),
                        port=port, address=address)
    try:
        _banner(stack, port, dashboard)
        supervise(stack, stop_flag)
    finally:
        print("Stopping Clipper...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return 0
