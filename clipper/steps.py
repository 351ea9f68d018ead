"""Per-step timing inside a stage (the profile of a clip): seconds per named step, kept with
the stage's run so the benchmark and an operator can see where a cut or a transcription spent
its time."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_steps: contextvars.ContextVar[_Steps | None] = contextvars.ContextVar("clipper_steps",
                                                                        default=None)


class _Steps:
    """Seconds per step name (steps run side by side in threads add up independently)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Collect the `step`s run inside (this thread, and threads started with `in_context`);
    the dict yielded fills in as they end, rounded to milliseconds on the way out."""
    steps = _Steps()
    token = _steps.set(steps)
    try:
        yield steps.seconds
    finally:
        _steps.reset(token)
        for name, value in steps.seconds.items():
            steps.seconds[name] = round(value, 3)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Time the block as `name` when a `recording` is on; nothing otherwise."""
    steps = _steps.get()
    if steps is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        steps.add(name, time.perf_counter() - started)


def in_context(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn` bound to the caller's recording, for running in a pool thread."""
    ctx = contextvars.copy_context()
    return lambda: ctx.run(fn)
