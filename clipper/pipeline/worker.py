"""Starting an RQ worker on Clipper's queues.

Workers are non-forking (`SimpleWorker`): the Whisper model and database pool stay loaded
between jobs, and ctranslate2's threads never meet a fork (see FACTS: that deadlocks).
A crashed worker is restarted by `clipper up`; its lost job is re-queued by the reconciler once
its lease passes. A stopped worker hands its running stage back (see pipeline.shutdown).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

import redis
from rq import Queue, SimpleWorker

from clipper.context import Context
from clipper.errors import InvalidInput, StageInterrupted
from clipper.pipeline import jobs, shutdown
from clipper.pipeline.stages import QUEUES, WORKER_ORDER, with_later
from clipper.storage.broker import watch_parent


class ClipperWorker(SimpleWorker):
    """RQ's non-forking worker, except that a stop (SIGTERM, Ctrl-C) hands the running stage
    back at once instead of waiting for it — or failing it when its ffmpeg dies of the same
    signal — and the worker then exits."""

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


def run_worker(ctx: Context, names: Sequence[str], *, burst: bool = False) -> bool:
    watch_parent()  # under `clipper up`: stop, then kill our group (scheduler, ffmpeg) if it dies
    lower_priority()
    worker = make_worker(ctx, names)
    return worker.work(burst=burst, logging_level=ctx.settings.log_level, with_scheduler=not burst)
