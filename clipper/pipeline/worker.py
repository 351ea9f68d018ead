"""Starting an RQ worker on Clipper's queues.

Workers are non-forking (`SimpleWorker`): the Whisper model and database pool stay loaded
between jobs, and ctranslate2's threads never meet a fork (see FACTS: that deadlocks).
A crashed worker is restarted by `clipper up`; its lost job is re-queued by the reconciler.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

import redis
from rq import Queue, SimpleWorker

from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.pipeline import jobs
from clipper.pipeline.stages import QUEUES, WORKER_ORDER


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
    return SimpleWorker([Queue(n, connection=conn) for n in names], connection=conn,
                        name=worker_name())


def run_worker(ctx: Context, names: Sequence[str], *, burst: bool = False) -> bool:
    worker = make_worker(ctx, names)
    return worker.work(burst=burst, logging_level=ctx.settings.log_level, with_scheduler=not burst)
