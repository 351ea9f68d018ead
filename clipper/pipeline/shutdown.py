"""The worker's stop request, as the stage running in it sees it: hand the work back, not fail it.

`clipper up` stops a worker with SIGTERM to its process group, so the stage's ffmpeg dies at
the same moment. The worker marks the stop here; the runner then treats whatever the stage
raises as a hand-back, and a stage between ffmpeg runs (Whisper) is interrupted at its next
progress report.
"""

from __future__ import annotations

import threading

from clipper.errors import StageInterrupted

_stopping = threading.Event()
_in_stage = threading.Event()


def request_stop() -> bool:
    """Mark the stop; True when a stage is running (the caller may interrupt it)."""
    _stopping.set()
    return _in_stage.is_set()


def stopping() -> bool:
    return _stopping.is_set()


def check() -> None:
    """Raise StageInterrupted when a stop was asked for (called from progress reports)."""
    if _stopping.is_set() and _in_stage.is_set():
        raise StageInterrupted("the worker is stopping")


class running_stage:  # noqa: N801 - used as a context manager, reads like one
    """Marks the stage's work as under way, so a stop request knows it may interrupt it."""

    def __enter__(self) -> None:
        _in_stage.set()

    def __exit__(self, *_exc: object) -> None:
        _in_stage.clear()


def reset() -> None:
    """Forget a stop request (tests run many stages in one process)."""
    _stopping.clear()
    _in_stage.clear()
