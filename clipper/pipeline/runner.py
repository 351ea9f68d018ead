"""Running one stage of one clip version: begin, work, finish — each stage idempotent.

A stage runs in three steps: `_begin` (in a transaction: is this job still current? mark the
status, open a StageRun), the work itself (outside any transaction: network, ffmpeg, Whisper),
and `_finish` (in a transaction: re-check the version, write results, move to the next status).
A job that finds its clip at another version exits quietly: a newer job owns the clip. What
each stage is — its queue, statuses, successors, progress span — comes from the stage table.

A stage whose work cannot be done yet raises StageDeferred: `_defer` closes its run, puts a
clip it took out of the queue back in (`queued`), and `run_stage` returns a `Deferred`; the RQ
job then asks to be run again at that time (see jobs.run_stage_job), holding no worker. The
same path hands work back when the worker is stopping, and retries a temporary failure (a
database blip, a full disk, a timeout) with backoff; only after `CLIPPER_STAGE_ATTEMPTS` runs
ended that way (or by a lost worker) does the clip fail.

While the work runs, a lease on its StageRun row is renewed; the reconciler re-runs a stage
whose open run's lease has passed (its worker died, on whatever host) and never one whose lease
is alive. Each run works in its own scratch folder (`media/tmp/run-<id>`), removed when it
ends (and by the reconciler after a killed one), and moves finished files into place.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from clipper import steps
from clipper.context import Context
from clipper.errors import (
    ClipperError,
    ProcessingError,
    StageDeferred,
    StageInterrupted,
    TransientError,
)
from clipper.pipeline import jobqueue, shutdown
from clipper.pipeline.lifecycle import lock_clip, log_event, move
from clipper.pipeline.notifications import notify_ready
from clipper.pipeline.stages import STAGES, Stage
from clipper.pipeline.work import StageInput, StageOutput
from clipper.storage.tables import Clip, StageRun, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deferred:
    """What `run_stage` returns for a stage that must run again at `until` (Unix seconds)."""

    until: float


def run_stage(ctx: Context, stage_name: str, clip_id: int, version: int) -> str | Deferred:
    """Run one stage for one clip version; returns "done", "stale", "failed", or a Deferred
    saying when to run it again."""
    stage = STAGES[stage_name]
    inp = _begin(ctx, stage, clip_id, version)
    if inp is None:
        return "stale"
    t0 = time.perf_counter()
    try:
        return _work_and_finish(ctx, stage, inp, t0)
    finally:
        if inp.scratch is not None:
            shutil.rmtree(inp.scratch, ignore_errors=True)


def _cpu_seconds() -> float:
    """This process's CPU time and that of the children it waited for (a worker runs one stage
    at a time, so the difference over a run is the run's)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _work_and_finish(ctx: Context, stage: Stage, inp: StageInput, t0: float) -> str | Deferred:
    try:
        cpu0 = _cpu_seconds()
        with Lease(ctx, inp.run_id), shutdown.running_stage(), steps.recording() as timed:
            shutdown.check()
            out = stage.work(ctx, inp)
        # Where the stage spent its time and the CPU it took, its ffmpeg runs included (the
        # profile bench/time_to_clip.py prints: in a burst, CPU is what the clips queue for).
        out.detail = {**out.detail, "cpu_seconds": round(_cpu_seconds() - cpu0, 3),
                      **({"steps": timed} if timed else {})}
    except StageDeferred as later:
        moved = _defer(ctx, stage, inp, later, time.perf_counter() - t0)
        return Deferred(later.until) if moved else "stale"
    except StageInterrupted:
        return _hand_back(ctx, stage, inp, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - the job boundary: every failure is sorted here
        return _failed(ctx, stage, inp, exc, time.perf_counter() - t0)
    moved = _finish(ctx, stage, inp, out, time.perf_counter() - t0)
    if moved is None:
        return "stale"
    for follower in stage.then:
        queue_next(ctx, inp.clip_id, inp.version, follower)
    if moved == "ready":
        notify_ready(ctx, inp.clip_id)
    if moved != "" and out.after:
        _run_after(ctx, stage, inp.clip_id, out.after)
    return "done"


def _failed(ctx: Context, stage: Stage, inp: StageInput, exc: Exception,
            seconds: float) -> str | Deferred:
    """A stage raised: hand it back (the worker is stopping), retry it later (a temporary
    failure), or fail the clip with a readable message."""
    if shutdown.stopping():  # its ffmpeg died of the same SIGTERM: not the clip's fault
        return _hand_back(ctx, stage, inp, seconds)
    if is_transient(exc):
        log.warning("%s for clip %s hit a temporary failure: %s", stage.name, inp.clip_id, exc)
        return _retry_later(ctx, stage, inp, _message(exc), seconds)
    if not isinstance(exc, ClipperError):
        log.error("%s failed for clip %s", stage.name, inp.clip_id, exc_info=exc)
        exc = ProcessingError(f"Internal error while {stage.status}: {exc}")
    _fail(ctx, stage, inp, exc, seconds)
    return "failed"


def is_transient(exc: BaseException) -> bool:
    """Pure: whether a stage's failure is worth running again (the database or Redis away for
    a moment, a full disk, the job timeout) rather than the clip's own fault."""
    from rq.timeouts import JobTimeoutException

    if isinstance(exc, TransientError | JobTimeoutException | OperationalError
                  | redis.ConnectionError | redis.TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "The disk is full."
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:500]


def retry_delay(attempt: int) -> float:
    """Pure: seconds before the next run after `attempt` temporary failures (5, 15, 45 … 300)."""
    return float(min(300, 5 * 3 ** max(0, attempt - 1)))


class Lease:
    """Renews a run's lease while its work runs, so the reconciler can tell it is alive.

    A thread, not the job's own code: Whisper and ffmpeg hold the main thread for minutes."""

    def __init__(self, ctx: Context, run_id: int) -> None:
        self.ctx, self.run_id = ctx, run_id
        self.seconds = ctx.settings.lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease")

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                with self.ctx.db.session() as session:
                    session.execute(update(StageRun).where(
                        StageRun.id == self.run_id, StageRun.ended_at.is_(None)).values(
                        lease_until=utcnow() + timedelta(seconds=self.seconds)))
            except Exception as exc:  # noqa: BLE001 - a blip; the next renewal tries again
                log.warning("could not renew the lease of run %s: %s", self.run_id, exc)


def _run_after(ctx: Context, stage: Stage, clip_id: int, after: Callable[[], None]) -> None:
    try:
        after()
    except ClipperError as exc:
        log.warning("after %s for clip %s: %s", stage.name, clip_id, exc)
        with ctx.db.session() as session:
            clip = session.get(Clip, clip_id)
            clip.error, clip.error_stage = str(exc), stage.name


def queue_next(ctx: Context, clip_id: int, version: int, stage_name: str) -> None:
    """Queue a follower; a lost enqueue is not lost work (the reconciler re-queues it)."""
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        place = jobqueue.placing(clip)
    try:
        jobqueue.enqueue_stage(ctx.redis, jobqueue.StageJob(stage_name, clip_id, version),
                               timeout=ctx.settings.job_timeout, **place)
    except Exception as exc:  # noqa: BLE001 - the reconciler re-queues from the clip's status
        log.warning("could not queue %s for clip %s: %s", stage_name, clip_id, exc)


#: What a run closed because its worker stopped renewing its lease records as its error.
LOST = "The worker running this stage stopped (killed, crashed or cut off)."


def worker_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _begin(ctx: Context, stage: Stage, clip_id: int, version: int) -> StageInput | None:
    now = utcnow()
    with ctx.db.session() as session:
        clip = lock_clip(session, clip_id)
        if clip is None or clip.version != version or clip.status not in stage.starts_in:
            return None
        if _other_run_alive(session, stage, clip, now):
            return None  # a second copy of a running stage: the first one's result is kept
        attempts = _failed_attempts(session, stage, clip)
        if attempts >= ctx.settings.stage_attempts:
            _give_up(session, stage, clip, attempts)
            return None
        if clip.status == "queued":  # the first stage to start takes the clip out of the queue
            move(session, clip, stage.status, actor="system")
        clip.progress = max(clip.progress or 0.0, stage.progress[0])
        run = StageRun(clip_id=clip_id, clip_version=version, stage=stage.name,
                       lease_until=now + timedelta(seconds=ctx.settings.lease_seconds),
                       worker=worker_tag())
        session.add(run)
        session.flush()
        src = clip.source
        inp = StageInput(clip_id, version, stage.name, run.id, src.id, src.kind, src.location,
                         clip.start, clip.end, clip.section_path, clip.section_offset,
                         clip.section_start, clip.section_end, clip.media_path,
                         [list(g) for g in clip.gaps] if clip.gaps else None,
                         scratch=scratch_dir(ctx, run.id))
    inp.scratch.mkdir(parents=True, exist_ok=True)
    report = throttled(lambda fraction: set_progress(ctx, stage, inp, fraction))

    def progress(fraction: float) -> None:
        shutdown.check()  # a stop interrupts Whisper between segments
        report(fraction)
    inp.progress = progress
    return inp


def scratch_dir(ctx: Context, run_id: int) -> Path:
    """A run's own folder for temporary files: two runs of one stage never share a name."""
    return ctx.settings.media_dir / "tmp" / f"run-{run_id}"


def _runs(stage: Stage, clip: Clip):  # noqa: ANN202 - a select, typed by SQLAlchemy
    return select(StageRun).where(StageRun.clip_id == clip.id,
                                  StageRun.clip_version == clip.version,
                                  StageRun.stage == stage.name)


def _other_run_alive(session: Session, stage: Stage, clip: Clip, now: datetime) -> bool:
    """Whether an open run of this stage holds a live lease; open runs past it are closed."""
    alive = False
    for run in session.scalars(_runs(stage, clip).where(StageRun.ended_at.is_(None))):
        if run.lease_until is not None and _aware(run.lease_until) > now:
            alive = True
        else:
            run.ended_at, run.error = now, LOST
    return alive


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _failed_attempts(session: Session, stage: Stage, clip: Clip) -> int:
    """Runs of this stage of this clip version that ended in a temporary error or were lost."""
    q = _runs(stage, clip).where(StageRun.error.is_not(None)).with_only_columns(
        func.count(StageRun.id))
    return session.scalar(q) or 0


def _give_up(session: Session, stage: Stage, clip: Clip, attempts: int) -> None:
    last = session.scalar(_runs(stage, clip).where(StageRun.error.is_not(None))
                          .order_by(StageRun.id.desc()).with_only_columns(StageRun.error))
    message = (f"Gave up {stage.status} after {attempts} attempts that ended in a temporary "
               f"error or a lost worker; the last: {last}")
    clip.error, clip.error_stage = message, stage.name
    move(session, clip, "failed", actor="system", action=f"stage.{stage.name}.failed",
         details={"error": message, "version": clip.version, "attempts": attempts})


def _current(stage: Stage, inp: StageInput, clip: Clip | None) -> bool:
    return clip is not None and clip.version == inp.version and clip.status in stage.starts_in


def _finish(ctx: Context, stage: Stage, inp: StageInput, out: StageOutput,
            seconds: float) -> str | None:
    """Write the stage's results; returns the new status, "" if it stayed, None if stale."""
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.detail = utcnow(), seconds, out.detail
        clip = lock_clip(session, inp.clip_id)
        if not _current(stage, inp, clip) or (stage.done_for and stage.done_for(session, clip)):
            return None  # a newer version, or another run of this stage finished first
        for key, value in out.updates.items():
            setattr(clip, key, value)
        if out.apply:
            out.apply(session, clip)
        new_status = stage.advance(session, clip)
        details = {"seconds": round(seconds, 3), "version": inp.version}
        moved = ""
        if new_status and new_status != clip.status:
            move(session, clip, new_status, actor="system", action=f"stage.{stage.name}.done",
                 details=details)
            moved = new_status
        else:
            log_event(session, "system", f"stage.{stage.name}.done", clip.id, details)
        clip.progress = 1.0 if clip.status in ("ready", "rendered") else max(
            clip.progress or 0.0, stage.progress[1])
        return moved


def _defer(ctx: Context, stage: Stage, inp: StageInput, later: StageDeferred,
           seconds: float) -> bool:
    """Close the run as deferred and put the clip back in the queue; False if it is stale."""
    at = datetime.fromtimestamp(later.until, UTC).isoformat(timespec="milliseconds")
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds = utcnow(), seconds
        # Merged: a retried run keeps its "transient" mark beside when it runs again.
        run.detail = {**(run.detail or {}), "deferred_until": at, "reason": later.reason}
        clip = lock_clip(session, inp.clip_id)
        if not _current(stage, inp, clip):
            return False
        details = {"until": at, "reason": later.reason, "version": inp.version}
        if clip.status == stage.status and "queued" in stage.starts_in:
            move(session, clip, "queued", actor="system", action=f"stage.{stage.name}.deferred",
                 details=details)
        else:
            log_event(session, "system", f"stage.{stage.name}.deferred", clip.id, details)
        return True


def _fail(ctx: Context, stage: Stage, inp: StageInput, exc: ClipperError, seconds: float) -> None:
    message = str(exc)
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.error = utcnow(), seconds, message
        clip = lock_clip(session, inp.clip_id)
        if not _current(stage, inp, clip):
            return
        clip.error, clip.error_stage = message, stage.name
        move(session, clip, "failed", actor="system", action=f"stage.{stage.name}.failed",
             details={"error": message, "version": inp.version})


def _hand_back(ctx: Context, stage: Stage, inp: StageInput, seconds: float) -> str | Deferred:
    """The worker is stopping: close the run and let the job run again at once elsewhere."""
    log.info("handing back %s for clip %s: the worker is stopping", stage.name, inp.clip_id)
    later = StageDeferred(time.time() + 1, "handed back: the worker stopped")
    return Deferred(later.until) if _defer(ctx, stage, inp, later, seconds) else "stale"


def _retry_later(ctx: Context, stage: Stage, inp: StageInput, message: str,
                 seconds: float) -> str | Deferred:
    """A temporary failure: run again after a backoff, unless attempts are used up."""
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.error = utcnow(), seconds, message
        run.detail = {"transient": True}
        clip = lock_clip(session, inp.clip_id)
        if not _current(stage, inp, clip):
            return "stale"
        attempts = _failed_attempts(session, stage, clip)
        if attempts >= ctx.settings.stage_attempts:
            _give_up(session, stage, clip, attempts)
            return "failed"
    later = StageDeferred(time.time() + retry_delay(attempts), f"retrying after: {message}")
    return Deferred(later.until) if _defer(ctx, stage, inp, later, seconds) else "stale"


def set_progress(ctx: Context, stage: Stage, inp: StageInput, fraction: float) -> None:
    """Record a stage's progress (0..1 within the stage) for status pages and the CLI bar."""
    lo, hi = stage.progress
    with ctx.db.session() as session:
        clip = session.get(Clip, inp.clip_id)
        if clip is not None and clip.version == inp.version:
            clip.progress = max(clip.progress or 0.0, lo + (hi - lo) * max(0.0, min(1.0, fraction)))


def throttled(fn: Callable[[float], None], every: float = 0.5) -> Callable[[float], None]:
    last = [0.0]

    def call(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            fn(fraction)
    return call
