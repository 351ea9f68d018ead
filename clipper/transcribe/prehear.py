"""Speech a batched Whisper pass may jump over, heard beforehand while a core is idle.

tiny.en, decoding a chunk of up to 30 s of speech in faster-whisper's batched pass, now and
then ends the chunk with only the start time of its last sentence: in the one-window decoder
the next window would begin there, but a batched chunk has no next window, so the sentence is
lost, and the engine hears that speech region again by itself afterwards (~0.5 CPU s: a whole
encoder pass). On the demo programme that happened in three of five one-minute clips, always
to the last sentence of a chunk that is not the clip's last. So while the batched pass runs,
those regions are heard in a second thread, once a core is idle (a clip alone on the machine,
after its cut): the result is the same computation, done sooner. On a busy machine (a burst)
nothing starts, so no CPU is spent on a guess.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

Region = tuple[float, float]

POLL = 0.03
"""Seconds between looks at the run queue while waiting for an idle core."""


def at_risk_regions(chunks: Sequence[Sequence[Region]], regions: Sequence[Region],
                    shortest: float = 1.5) -> list[Region]:
    """Pure: for each chunk but the last (its VAD segments, seconds), the speech region (of
    `regions`, the engine's own, at least `shortest` s) that overlaps its last segment most."""
    out: list[Region] = []
    for segments in chunks[:-1]:
        if not segments:
            continue
        lo, hi = segments[-1]
        overlap = {r: min(hi, r[1]) - max(lo, r[0]) for r in regions if r[1] - r[0] >= shortest}
        best = max(overlap, key=overlap.__getitem__, default=None)
        if best is not None and overlap[best] > 0 and best not in out:
            out.append(best)
    return out


def idle_core() -> bool:
    """Whether a core is free: the kernel's runnable threads (this one and the batched pass
    among them) fit in the cores, twice a moment apart. False when that cannot be read."""
    # The CPUs this process may run on (a container's share), not all the machine has.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for attempt in range(2):
        if attempt:
            time.sleep(0.01)
        try:
            with open("/proc/stat", "rb") as f:
                line = next((ln for ln in f if ln.startswith(b"procs_running ")), b"")
            running = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if running > (cores or 1):
            return False
    return True


class PreHearing:
    """Hears the given regions one by one in a thread, each once `idle` says a core is free,
    until `finish`; `result` gives what was heard (waiting for one under way), or None for a
    region not heard (it is then never started). `close` when done with it."""

    def __init__(self, hear: Callable[[Region], list], idle: Callable[[], bool] = idle_core,
                 poll: float = POLL) -> None:
        self._hear, self._idle, self._poll = hear, idle, poll
        self._lock = threading.Lock()
        self._futures: dict[Region, Future] = {}
        self._queue: list[Region] = []
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, regions: Sequence[Region]) -> None:
        """Hear these too (those not already heard or waiting), in the order given."""
        with self._lock:
            self._queue += [r for r in regions if r not in self._futures and r not in self._queue]
            if self._queue and (self._thread is None or not self._thread.is_alive()):
                # In the caller's context: its steps (clipper.steps) count this thread's too.
                self._thread = threading.Thread(target=contextvars.copy_context().run,
                                                args=(self._run,), name="prehear", daemon=True)
                self._thread.start()

    def _next(self) -> tuple[Region, Future] | None:
        with self._lock:
            if self._done.is_set() or not self._queue:
                return None
            region = self._queue.pop(0)
            future: Future = Future()
            future.set_running_or_notify_cancel()
            self._futures[region] = future
            return region, future

    def _run(self) -> None:
        while not self._done.is_set():
            if not self._idle():
                self._done.wait(self._poll)
                continue
            job = self._next()
            if job is None:
                return
            region, future = job
            try:
                future.set_result(self._hear(region))
            except Exception as exc:  # noqa: BLE001 - handed to whoever asks for the region
                future.set_exception(exc)

    def finish(self) -> None:
        """No more regions start (one under way ends)."""
        self._done.set()

    def close(self) -> None:
        """`finish`, and wait for a hearing under way: none outlives the transcription (a
        ctranslate2 call still running when the process exits aborts it)."""
        self.finish()
        if self._thread is not None:
            self._thread.join()

    def result(self, region: Region) -> list | None:
        """What was heard of `region` (after the hearing under way, if it is that one); None
        when it was not heard, or the hearing failed (the caller hears it the usual way)."""
        with self._lock:
            future = self._futures.get(region)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # noqa: BLE001 - the caller hears it again the usual way
            return None
