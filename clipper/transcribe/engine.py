"""The speech-to-text engine interface and the per-process, fork-aware model and engine cache."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from clipper.domain import Transcript

Progress = Callable[[float], None]


class Engine(Protocol):
    """Turns a media file into a Transcript whose times lie on the media's timeline."""

    name: str
    model_name: str

    def transcribe(self, media: Path, *, progress: Progress | None = None,
                   batched: bool = True, span: tuple[float, float] | None = None) -> Transcript:
        """`batched`: decode speech chunks together where the engine can (a clip); a live
        window (≤ 30 s, one chunk) passes False and is heard one pass at a time. `span`:
        (start, seconds) of the media to hear (`load_audio`), times then counted from start."""
        ...


_lock = threading.Lock()
_owner_pid = os.getpid()
_models: dict[tuple, Any] = {}
_engines: dict[tuple, Engine] = {}
# Objects a parent process loaded. A forked child must neither use them (ctranslate2's
# threads did not survive the fork: calls hang) nor free them (destructors may wait on
# those threads), so they are parked here for the life of the child.
_inherited: list[Any] = []
_loads: Counter[str] = Counter()


def _forget_parent_models() -> None:
    global _lock, _owner_pid
    _lock = threading.Lock()  # another thread may have held the old one at fork time
    _inherited.extend([*_models.values(), *_engines.values()])
    _models.clear()
    _engines.clear()
    _owner_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_parent_models)


def cached_model(key: tuple, load: Callable[[], Any]) -> Any:
    """The model for `key`, loaded at most once in this process (callers hold no lock)."""
    model = _models.get(key)
    if model is None:
        model = load()
        _models[key] = model
        _loads[key[0]] += 1
    return model


def load_count(engine: str | None = None) -> int:
    """How many models this process has loaded (for one engine, or all)."""
    return _loads[engine] if engine else sum(_loads.values())


def cached_engine(key: tuple, build: Callable[[], Engine]) -> Engine:
    """The engine for `key`, built at most once per process; thread-safe and fork-aware."""
    with _lock:
        if _owner_pid != os.getpid():  # forked by means that skipped the at-fork hook
            _forget_parent_models()
        engine = _engines.get(key)
        if engine is None:
            engine = build()
            _engines[key] = engine
        return engine
