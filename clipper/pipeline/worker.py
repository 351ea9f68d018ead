"""Starting an RQ worker on Clipper's queues.

Workers are non-forking (`SimpleWorker`): the Whisper model and database pool stay loaded
between jobs, and ctranslate2's threads never meet a fork (see FACTS: that deadlocks).
A crashed worker is restarted by `clipper up`; its lost job is re-queued by the reconciler once
its lease passes. A stopped worker hands its running stage back (see pipeline.shutdown).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job

from clipper.context import Context
from clipper.errors import ClipperError, InvalidInput, StageInterrupted
from clipper.pipeline import jobs, shutdown
from clipper.pipeline.stages import LATER, QUEUES, STAGES, WORKER_ORDER, with_later
from clipper.storage.broker import watch_parent

log = logging.getLogger(__name__)

#: Seconds after a re-cut's first job was queued during which a worker that takes it waits for
#: new work filed with it: a burst's flags are stored within ~0.1 s of each other, and an idle
#: worker takes whichever job is queued first, so two re-cut fetches went ahead of the burst's
#: new moments (bench/time_to_clip.py: their fetches were taken 0.5 s after the flags). Only a
#: just-queued first stage waits: a re-cut that waited its turn, or a follower, has no flags
#: racing it, and waiting there only left a core idle (the burst's busy share 1.9 -> 1.65).
LATER_GRACE = 0.25
#: The stage a flag queues (the others follow it).
FIRST_STAGE = next(iter(STAGES))


def later_grace(stage: str, waited: float) -> float:
    """Pure: how long a worker that took a `-later` job of `stage`, queued `waited` seconds ago,
    waits for new work to take first (0: none)."""
    if stage != FIRST_STAGE:
        return 0.0
    return round(min(LATER_GRACE, max(0.0, LATER_GRACE - waited)), 3)


class ClipperWorker(SimpleWorker):
    """RQ's non-forking worker, except that a stop (SIGTERM, Ctrl-C) hands the running stage
    back at once instead of waiting for it — or failing it when its ffmpeg dies of the same
    signal — and the worker then exits; and that a re-cut's just-queued first job it has taken
    makes way for new work queued with it (`later_grace`)."""

    #: Called once, before the worker first waits for a job (see `warm_up`).
    before_work: Callable[[], None] | None = None

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        if self.before_work is not None:
            # Not before `work()`: RQ forks its scheduler process there, and a fork of a worker
            # holding the model counted ~120 MB more resident memory (and ctranslate2's threads
            # would meet a fork).
            before, self.before_work = self.before_work, None
            before()
        taken = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if taken is None or not taken[1].name.endswith(LATER):
            return taken
        job = taken[0]
        queued = job.enqueued_at.replace(tzinfo=UTC) if job.enqueued_at else None
        grace = later_grace(str(job.args[0]) if job.args else "",
                            (datetime.now(UTC) - queued).total_seconds() if queued else 0.0)
        first = [q for q in self.queues if not q.name.endswith(LATER)]
        if grace <= 0 or not first:
            return taken
        try:
            sooner = Queue.dequeue_any(first, grace, connection=self.connection,
                                       job_class=self.job_class, serializer=self.serializer)
        except (DequeueTimeout, redis.RedisError):  # nothing new came (or Redis is away)
            return taken
        if sooner is None:
            return taken
        queue = taken[1]
        # Back at the front of its queue, still "queued": the next free worker takes it (and
        # were this worker killed right here, the reconciler re-queues a job no queue holds).
        queue.push_job_id(job.id, at_front=True)
        return sooner

    def request_stop(self, signum: int, frame: object) -> None:
        running = shutdown.request_stop()
        super().request_stop(signum, frame)  # RQ's warm stop: exit after the current job
        if running:
            # Raised in the main thread, inside the stage's work; the runner catches it.
            raise StageInterrupted("the worker is stopping")


def worker_name() -> str:
    """"<host>.<pid>.<random>": lets the reconciler see that a worker on this host died."""
    return f"{socket.gethostname().split('.')[0]}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def parse_queues(text: str | Sequence[str] | None) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text or []
    names = [q.strip() for q in items if q.strip()]
    names = names or list(WORKER_ORDER)
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        raise InvalidInput(f"Unknown queue(s): {', '.join(unknown)}.",
                           f"Queues are {', '.join(QUEUES)}.")
    return names


def make_worker(ctx: Context, names: Sequence[str],
                conn: redis.Redis | None = None) -> SimpleWorker:
    conn = conn or ctx.redis
    jobs.use_context(ctx)
    return ClipperWorker([Queue(n, connection=conn) for n in with_later(names)], connection=conn,
                         name=worker_name())


#: How much less CPU priority the background work (workers, the live transcriber) takes: on two
#: cores a surge of flags must be accepted at once even while ffmpeg and Whisper run.
BACKGROUND_NICE = 5


def lower_priority(step: int = BACKGROUND_NICE) -> None:
    """Make this process (and the ffmpeg it starts) yield the CPU to flags, pages and the API."""
    try:
        os.nice(step)
    except OSError:  # not permitted here: run at the normal priority
        pass
    if os.getsid(0) == os.getpid():
        _lower_autogroup(step)


#: Linux's autogroup scheduling (on by default on desktops and most servers) shares the CPU
#: between sessions first and applies nice only within one: a worker that leads its own session
#: (as `clipper up` starts each child) competes with the dashboard and the database as an equal
#: however niced it is. Only a session leader lowers its group: otherwise it would be the
#: terminal's whole session.
AUTOGROUP = Path("/proc/self/autogroup")


def _lower_autogroup(step: int, path: Path = AUTOGROUP) -> None:
    try:
        path.write_text(f"{step}\n")
    except OSError:  # no autogroup in this kernel, or not permitted: nice alone it is
        pass


def warm_up(ctx: Context, names: Sequence[str]) -> None:
    """Do now what a worker's first job of each kind did on some volunteer's flag: load the
    Whisper model (~0.4 s) and compile yt-dlp's URL patterns (~0.45 CPU s: a worker's first
    fetch took 0.9 s, later ones 0.3 s). A model that will not load is left to the job to
    report."""
    if "fetch" in names:
        from clipper.media.fetch import warm_up as compile_url_patterns

        compile_url_patterns()
    if "asr" in names:
        from clipper.transcribe import get_engine

        try:
            get_engine(ctx.settings)
        except ClipperError as exc:
            log.warning("Whisper model not loaded ahead of work: %s", exc.message)


def run_worker(ctx: Context, names: Sequence[str], *, burst: bool = False) -> bool:
    watch_parent()  # under `clipper up`: stop, then kill our group (scheduler, ffmpeg) if it dies
    lower_priority()
    worker = make_worker(ctx, names)
    worker.before_work = lambda: warm_up(ctx, names)
    return worker.work(burst=burst, logging_level=ctx.settings.log_level, with_scheduler=not burst)
