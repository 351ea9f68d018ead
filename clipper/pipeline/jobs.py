"""The RQ job function (takes ids, hands them to the runner) and each worker process's Context."""

from __future__ import annotations

import math
import os
import time

from rq import Retry

from clipper.context import Context
from clipper.settings import Settings

_context: tuple[int, Context] | None = None


def context() -> Context:
    """This process's Context, built once from the environment (rebuilt after a fork)."""
    global _context
    if _context is None or _context[0] != os.getpid():
        _context = (os.getpid(), Context.build(Settings.from_env()))
    return _context[1]


def use_context(ctx: Context) -> None:
    """Let an in-process worker (tests, `clipper worker`) share a Context it already built."""
    global _context
    _context = (os.getpid(), ctx)


#: A deferred stage may come back this many times (each a short database check); the stage's
#: own grace ends the waiting long before.
MAX_DEFERRALS = 100_000


def run_stage_job(stage: str, clip_id: int, version: int) -> str | Retry:
    """What RQ runs: one stage of one clip version, in this process's Context.

    A deferred stage returns RQ's `Retry` with the wait as its interval: RQ then schedules this
    same job (same deterministic id, status SCHEDULED, which the reconciler counts as alive) and
    the worker is free meanwhile. Workers run RQ's scheduler (`clipper up`).
    """
    # The runner imports the queueing code, which imports this module.
    from clipper.pipeline.runner import Deferred, run_stage

    outcome = run_stage(context(), stage, clip_id, version)
    if isinstance(outcome, Deferred):
        return Retry(max=MAX_DEFERRALS, interval=retry_interval(outcome.until, time.time()))
    return outcome


def retry_interval(until: float, now: float) -> int:
    """Pure: whole seconds from `now` to `until`, at least 1 (RQ's 0 means "at once")."""
    return max(1, math.ceil(until - now))
