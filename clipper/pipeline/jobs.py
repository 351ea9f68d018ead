"""The RQ job function (takes ids, hands them to the runner) and each worker process's Context."""

from __future__ import annotations

import os

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


def run_stage_job(stage: str, clip_id: int, version: int) -> str:
    """What RQ runs: one stage of one clip version, in this process's Context."""
    from clipper.pipeline.runner import run_stage as run  # the runner imports the queueing code

    return run(context(), stage, clip_id, version)
