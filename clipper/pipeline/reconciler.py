"""Rebuilding the queues from the database: re-queue clips whose job was lost, on any host.

Whether a stage is running is read from the database, not from Redis or process ids: a running
stage renews the lease on its StageRun row (see runner.Lease). A due stage is lost when no open
run of it holds a live lease and Redis has no job waiting for it — its worker was killed, its
host went away, or Redis lost its data. It is never re-queued while a live lease says the first
copy still runs. The pass also closes runs whose lease has passed and removes their scratch
folders.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta

import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.pipeline import jobqueue
from clipper.pipeline.runner import LOST, scratch_dir
from clipper.pipeline.stages import QUEUES, WORKING_STATUSES, due_stages, with_later
from clipper.storage.tables import Clip, StageRun, utcnow

log = logging.getLogger(__name__)

#: A job RQ calls started but whose run has not opened yet (it is between dequeue and its first
#: transaction) is given this long before it counts as lost. Short is safe: if the first copy
#: was only slow, whichever copy opens its run second finds the other's live lease and stops.
START_GRACE = timedelta(seconds=20)
#: Redis's and the database's clocks may differ a little (other hosts).
CLOCK_SKEW = timedelta(seconds=5)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _runs_of(job: jobqueue.StageJob):  # noqa: ANN202 - a select, typed by SQLAlchemy
    return select(StageRun).where(StageRun.clip_id == job.clip_id,
                                  StageRun.clip_version == job.version,
                                  StageRun.stage == job.stage)


def lease_alive(session: Session, job: jobqueue.StageJob, now: datetime) -> bool:
    """Whether an open run of this stage of this clip version holds a live lease."""
    leases = session.scalars(_runs_of(job).where(StageRun.ended_at.is_(None))
                             .with_only_columns(StageRun.lease_until))
    return any(t is not None and _aware(t) > now for t in leases)


def last_run_start(session: Session, job: jobqueue.StageJob) -> datetime | None:
    started = session.scalar(_runs_of(job).with_only_columns(func.max(StageRun.started_at)))
    return _aware(started) if started else None


def job_lost(conn: redis.Redis, jid: str, *, now: datetime | None = None,
             run_started: datetime | None = None) -> bool:
    """Given no live lease: whether Redis has nothing waiting for this job either.

    A job Redis calls started is lost once a run of it has begun (its lease, no longer live,
    says its worker is gone), or, when no run began, after START_GRACE. So is one Redis calls
    queued that no queue holds (a worker took it and lost Redis, or died, before starting it:
    seen after Redis restarted from its append-only file), START_GRACE after it was queued."""
    state = jobqueue.job_state(conn, jid)
    if state is None or state not in jobqueue.ACTIVE_JOB_STATES:
        return True
    if state == JobStatus.QUEUED and jobqueue.taken_unstarted(conn, jid):
        queued = Job.fetch(jid, connection=conn).enqueued_at
        return queued is None or _aware(queued) + START_GRACE < (now or utcnow())
    if state == JobStatus.STARTED:
        started = Job.fetch(jid, connection=conn).started_at
        if started is None:
            return True
        started = _aware(started)
        if run_started is not None and run_started >= started - CLOCK_SKEW:
            return True
        return started + START_GRACE < (now or utcnow())
    return False


def close_dead_runs(ctx: Context, now: datetime) -> list[int]:
    """Close open runs whose lease has passed (their worker is gone) and remove their scratch
    folders; returns the run ids closed."""
    with ctx.db.session() as session:
        dead = list(session.scalars(select(StageRun).where(
            StageRun.ended_at.is_(None), StageRun.lease_until < now)))
        for run in dead:
            run.ended_at, run.error = now, LOST
        ids = [run.id for run in dead]
    for run_id in ids:
        shutil.rmtree(scratch_dir(ctx, run_id), ignore_errors=True)
    return ids


def sweep_scratch(ctx: Context) -> int:
    """Remove scratch folders of runs that are closed or unknown (a killed run, a crash
    between a run's end and its clean-up); returns how many were removed."""
    root = ctx.settings.media_dir / "tmp"
    if not root.is_dir():
        return 0
    found = {}
    for path in root.glob("run-*"):
        suffix = path.name.removeprefix("run-")
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        return 0
    with ctx.db.session() as session:
        open_ids = set(session.scalars(select(StageRun.id).where(
            StageRun.id.in_(found), StageRun.ended_at.is_(None))))
    removed = 0
    for run_id, path in found.items():
        if run_id not in open_ids:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def reconcile(ctx: Context, *, now: datetime | None = None) -> list[int]:
    """Queue every clip in a working state that has no live run and no job; returns the clip
    ids queued."""
    conn, now = ctx.redis, now or utcnow()
    for name in with_later(QUEUES):
        StartedJobRegistry(name, connection=conn).cleanup()
    close_dead_runs(ctx, now)
    with ctx.db.session() as session:
        clips = session.scalars(select(Clip).where(Clip.status.in_(WORKING_STATUSES))).unique()
        due = [(jobqueue.StageJob(s.name, c.id, c.version), jobqueue.placing(c))
               for c in clips for s in due_stages(session, c)]
        due = [(job, place, last_run_start(session, job)) for job, place in due
               if not lease_alive(session, job, now)]
    requeued = []
    for job, place, run_started in due:
        if not job_lost(conn, job.id, now=now, run_started=run_started):
            continue
        if jobqueue.enqueue_stage(conn, job, timeout=ctx.settings.job_timeout, **place,
                                  replace_started=True):
            requeued.append(job.clip_id)
            log.info("re-queued %s for clip %s v%s", job.stage, job.clip_id, job.version)
    sweep_scratch(ctx)
    return sorted(set(requeued))
