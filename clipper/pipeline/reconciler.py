"""Rebuilding the queues from the database: re-queue clips whose job was lost."""

from __future__ import annotations

import logging
import socket

import psutil
import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from clipper.context import Context
from clipper.pipeline import jobqueue
from clipper.pipeline.stages import QUEUES, WORKING_STATUSES, due_stages
from clipper.storage.tables import Clip

log = logging.getLogger(__name__)


def _worker_dead(conn: redis.Redis, job: Job) -> bool:
    """A started job whose worker process on this host is gone (killed, crashed)."""
    name = job.worker_name or ""
    # Clipper names workers "<host>.<pid>.<suffix>" so this host can check liveness.
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != socket.gethostname().split(".")[0] or not parts[1].isdigit():
        return False
    return not psutil.pid_exists(int(parts[1]))


def job_lost(conn: redis.Redis, jid: str) -> bool:
    state = jobqueue.job_state(conn, jid)
    if state is None or state not in jobqueue.ACTIVE_JOB_STATES:
        return True
    if state == JobStatus.STARTED:
        return _worker_dead(conn, Job.fetch(jid, connection=conn))
    return False


def reconcile(ctx: Context) -> list[int]:
    """Queue every clip in a working state that has no live job; returns the clip ids queued."""
    conn = ctx.redis
    for name in QUEUES:
        StartedJobRegistry(name, connection=conn).cleanup()
    with ctx.db.session() as session:
        clips = session.scalars(select(Clip).where(Clip.status.in_(WORKING_STATUSES))).unique()
        due = [(jobqueue.StageJob(s.name, c.id, c.version), c.urgency == "high")
               for c in clips for s in due_stages(session, c)]
    requeued = []
    for job, urgent in due:
        if not job_lost(conn, job.id):
            continue
        _drop_started(conn, job.id)
        jobqueue.enqueue_stage(conn, job, timeout=ctx.settings.job_timeout, urgent=urgent)
        requeued.append(job.clip_id)
        log.info("re-queued %s for clip %s v%s", job.stage, job.clip_id, job.version)
    return sorted(set(requeued))


def _drop_started(conn: redis.Redis, jid: str) -> None:
    """Delete a lost job's record so the same deterministic id can be queued again."""
    try:
        Job.fetch(jid, connection=conn).delete()
    except NoSuchJobError:
        pass
