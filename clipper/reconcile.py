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

from clipper import queue
from clipper.context import Context
from clipper.schema import Clip
from clipper.states import STAGE_OF_STATUS

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
    state = queue.job_state(conn, jid)
    if state is None or state not in queue.ACTIVE_JOB_STATES:
        return True
    if state == JobStatus.STARTED:
        return _worker_dead(conn, Job.fetch(jid, connection=conn))
    return False


def reconcile(ctx: Context) -> list[int]:
    """Queue every clip in a working state that has no live job; returns the clip ids queued."""
    conn = ctx.redis
    for name in queue.QUEUES:
        StartedJobRegistry(name, connection=conn).cleanup()
    with ctx.db.session() as session:
        rows = session.execute(select(Clip.id, Clip.status, Clip.version, Clip.urgency)
                               .where(Clip.status.in_(tuple(STAGE_OF_STATUS)))).all()
    requeued = []
    for clip_id, status, version, urgency in rows:
        for stage in stages_due(ctx, clip_id, status, version):
            job = queue.StageJob(stage, clip_id, version)
            if not job_lost(conn, job.id):
                continue
            _drop_started(conn, job.id)
            queue.enqueue_stage(conn, job, timeout=ctx.settings.job_timeout, urgent=urgency == "high")
            requeued.append(clip_id)
            log.info("re-queued %s for clip %s v%s", stage, clip_id, version)
    return sorted(set(requeued))


def stages_due(ctx: Context, clip_id: int, status: str, version: int) -> list[str]:
    """The jobs a clip in `status` must have: while cutting, the transcription runs too."""
    from clipper.pipeline import has_current_transcript

    stages = [STAGE_OF_STATUS[status]]
    if status == "cutting":
        with ctx.db.session() as session:
            clip = session.get(Clip, clip_id)
            if clip is not None and not has_current_transcript(session, clip):
                stages.append("asr")
    return stages


def _drop_started(conn: redis.Redis, jid: str) -> None:
    """Delete a lost job's record so the same deterministic id can be queued again."""
    try:
        Job.fetch(jid, connection=conn).delete()
    except NoSuchJobError:
        pass
