"""RQ job functions: take ids, hand them to `clipper.pipeline`. Nothing else lives here."""

from __future__ import annotations

import os

from clipper.config import Settings
from clipper.context import Context

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


def run_stage(stage: str, clip_id: int, version: int) -> str:
    from clipper.pipeline import run_stage as run

    return run(context(), stage, clip_id, version)
