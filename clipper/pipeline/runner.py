"""Running one stage of one clip version: begin, work, finish — each stage idempotent.

A stage runs in three steps: `_begin` (in a transaction: is this job still current? mark the
status, open a StageRun), the work itself (outside any transaction: network, ffmpeg, Whisper),
and `_finish` (in a transaction: re-check the version, write results, move to the next status).
A job that finds its clip at another version exits quietly: a newer job owns the clip. What
each stage is — its queue, statuses, successors, progress span — comes from the stage table.

A stage whose work cannot be done yet raises StageDeferred: `_defer` closes its run, puts a
clip it took out of the queue back in (`queued`), and `run_stage` returns a `Deferred`; the RQ
job then asks to be run again at that time (see jobs.run_stage_job), holding no worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from clipper.context import Context
from clipper.errors import ClipperError, ProcessingError, StageDeferred
from clipper.pipeline import jobqueue
from clipper.pipeline.lifecycle import log_event, move
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
        out = stage.work(ctx, inp)
    except StageDeferred as later:
        moved = _defer(ctx, stage, inp, later, time.perf_counter() - t0)
        return Deferred(later.until) if moved else "stale"
    except ClipperError as exc:
        _fail(ctx, stage, inp, exc, time.perf_counter() - t0)
        return "failed"
    except Exception as exc:  # the job boundary: a bug becomes a readable failure, not a lost clip
        log.exception("%s failed for clip %s", stage.name, clip_id)
        _fail(ctx, stage, inp, ProcessingError(f"Internal error while {stage.status}: {exc}"),
              time.perf_counter() - t0)
        return "failed"
    moved = _finish(ctx, stage, inp, out, time.perf_counter() - t0)
    if moved is None:
        return "stale"
    for follower in stage.then:
        queue_next(ctx, clip_id, version, follower)
    if moved == "ready":
        notify_ready(ctx, clip_id)
    if moved != "" and out.after:
        _run_after(ctx, stage, clip_id, out.after)
    return "done"


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
        urgent = session.get(Clip, clip_id).urgency == "high"
    try:
        jobqueue.enqueue_stage(ctx.redis, jobqueue.StageJob(stage_name, clip_id, version),
                               timeout=ctx.settings.job_timeout, urgent=urgent)
    except Exception as exc:  # noqa: BLE001 - the reconciler re-queues from the clip's status
        log.warning("could not queue %s for clip %s: %s", stage_name, clip_id, exc)


def _begin(ctx: Context, stage: Stage, clip_id: int, version: int) -> StageInput | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id, with_for_update=True)
        if clip is None or clip.version != version or clip.status not in stage.starts_in:
            return None
        if clip.status == "queued":  # the first stage to start takes the clip out of the queue
            move(session, clip, stage.status, actor="system")
        clip.progress = max(clip.progress or 0.0, stage.progress[0])
        run = StageRun(clip_id=clip_id, clip_version=version, stage=stage.name)
        session.add(run)
        session.flush()
        src = clip.source
        inp = StageInput(clip_id, version, stage.name, run.id, src.id, src.kind, src.location,
                         clip.start, clip.end, clip.section_path, clip.section_offset,
                         clip.section_start, clip.section_end, clip.media_path,
                         [list(g) for g in clip.gaps] if clip.gaps else None)
    inp.progress = throttled(lambda fraction: set_progress(ctx, stage, inp, fraction))
    return inp


def _current(stage: Stage, inp: StageInput, clip: Clip) -> bool:
    return clip.version == inp.version and clip.status in stage.starts_in


def _finish(ctx: Context, stage: Stage, inp: StageInput, out: StageOutput,
            seconds: float) -> str | None:
    """Write the stage's results; returns the new status, "" if it stayed, None if stale."""
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.detail = utcnow(), seconds, out.detail
        clip = session.get(Clip, inp.clip_id, with_for_update=True)
        if not _current(stage, inp, clip):
            return None
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
        run.detail = {"deferred_until": at, "reason": later.reason}
        clip = session.get(Clip, inp.clip_id, with_for_update=True)
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
        clip = session.get(Clip, inp.clip_id, with_for_update=True)
        if not _current(stage, inp, clip):
            return
        clip.error, clip.error_stage = message, stage.name
        move(session, clip, "failed", actor="system", action=f"stage.{stage.name}.failed",
             details={"error": message, "version": inp.version})


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
