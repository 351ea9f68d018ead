"""The named RQ queues and stage enqueueing: deterministic job ids, one live job per stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipper.context import Context
from clipper.errors import ClipperError
from clipper.pipeline.stages import QUEUES, STAGES, due_stages, queue_for, with_later
from clipper.storage.tables import Clip

# The Redis client, rq and the job function (which imports rq) load where they are used, not
# here: a `clipper flag` that queues nothing (it joins a clip without widening it) loads none of
# them, and one that finds no Redis reachable stores the flag and exits without rq.
if TYPE_CHECKING:
    import redis
    from rq.job import JobStatus

log = logging.getLogger(__name__)



def job_id(stage: str, clip_id: int, version: int) -> str:
    """Deterministic: the same stage of the same clip version is never queued twice."""
    return f"{stage}-{clip_id}-v{version}"


@dataclass(frozen=True)
class StageJob:
    stage: str
    clip_id: int
    version: int

    @property
    def id(self) -> str:
        return job_id(self.stage, self.clip_id, self.version)


def goes_first(urgency: str, version: int, watchable: bool) -> bool:
    """Pure: whether a clip's stages go in their queue proper — an urgent flag's, and those
    of a clip with nothing to watch yet (its first version, or one widened before any version
    was cut); the re-cut of a clip a merge widened, which has a version to watch already, goes
    to the queue's twin for work that can wait (`stages.LATER`), taken after every queue's own."""
    return urgency == "high" or version == 1 or not watchable


def placing(clip: Clip) -> dict[str, bool]:
    """`enqueue_stage`'s `first` and `urgent` for this clip's stages."""
    return {"first": goes_first(clip.urgency, clip.version, clip.media_path is not None),
            "urgent": clip.urgency == "high"}


#: rq's JobStatus QUEUED, STARTED, DEFERRED and SCHEDULED by value: JobStatus is a str enum, so
#: its members are found here, and this module loads without rq.
ACTIVE_JOB_STATES = {"queued", "started", "deferred", "scheduled"}


def job_state(conn: redis.Redis, jid: str) -> JobStatus | None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        return Job.fetch(jid, connection=conn).get_status(refresh=False)
    except NoSuchJobError:
        return None


def taken_unstarted(conn: redis.Redis, jid: str) -> bool:
    """Whether a job Redis calls queued is in no list of its queue: a worker's dequeue took it
    and the worker never started it (it lost Redis in between, or died). Nothing will run it,
    yet its status alone would keep it from being queued again."""
    from rq import Queue
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(jid, connection=conn)
    except NoSuchJobError:
        return False
    if job.get_status(refresh=False) != "queued" or not job.origin:
        return False
    queue = Queue(job.origin, connection=conn)
    # A worker on one queue moves a job through an intermediate list (which RQ clears itself).
    return (queue.get_job_position(jid) is None
            and jid not in queue.intermediate_queue.get_job_ids())


def enqueue_stage(conn: redis.Redis, job: StageJob, *, timeout: int, first: bool = False,
                  urgent: bool = False, replace_started: bool = False) -> bool:
    """Queue one stage: in its queue when `first` (see `goes_first`), else in the queue's twin
    for work that can wait (`stages.LATER`); at the back, first come first served, so a new
    clip's cut and transcription are taken together rather than beside another clip's, unless
    `urgent` (an urgent flag's clip: the front). False when an identical job is already waiting
    or running.

    Check, delete a leftover and enqueue happen under one short Redis lock per job id, so two
    processes queueing the same stage (a worker's follower, the reconciler) never delete a job
    the other has just queued. `replace_started` (the reconciler, once the database shows the
    run's lease has passed) also replaces a job Redis still calls started, or calls queued while
    no queue holds it (`taken_unstarted`).
    """
    with conn.lock(f"clipper:enqueue:{job.id}", timeout=10, blocking_timeout=10):
        # Once Redis has answered (the lock): with none reachable, a flag never loads rq.
        from rq import Queue, Retry
        from rq.exceptions import DuplicateJobError
        from rq.job import JobStatus

        from clipper.pipeline.jobs import run_stage_job

        state = job_state(conn, job.id)
        lost = replace_started and (state == JobStatus.STARTED or (
            state == JobStatus.QUEUED and taken_unstarted(conn, job.id)))
        if state in ACTIVE_JOB_STATES and not lost:
            return False
        if state is not None:  # finished/failed/stopped leftovers block a re-run under this id
            _delete(conn, job.id)
        stage = STAGES[job.stage]
        queue = Queue(queue_for(stage.queue, first=first or urgent), connection=conn)
        try:
            queue.enqueue(
                run_stage_job, job.stage, job.clip_id, job.version,
                job_id=job.id, unique=True, at_front=urgent, job_timeout=stage.timeout or timeout,
                result_ttl=600, failure_ttl=7 * 86400, retry=Retry(max=2),
                description=f"{job.stage} clip {job.clip_id} v{job.version}",
            )
        except DuplicateJobError:
            return False
    return True


def _delete(conn: redis.Redis, jid: str) -> None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        Job.fetch(jid, connection=conn).delete()
    except NoSuchJobError:
        pass


def queue_lengths(conn: redis.Redis) -> dict[str, int]:
    from rq import Queue

    return {name: sum(Queue(q, connection=conn).count for q in with_later([name]))
            for name in QUEUES}


def queue_clip(ctx: Context, clip_id: int) -> bool:
    """Queue the stages the clip's status calls for; False (logged) if Redis is unreachable.

    The clip row is already stored: a False here loses nothing, the reconciler queues it later.
    """
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        jobs = [StageJob(s.name, clip.id, clip.version) for s in due_stages(session, clip)]
        place = placing(clip)
    if not jobs:
        return False
    import redis  # for its errors; `ctx.redis` loads it anyway

    try:
        for job in jobs:
            enqueue_stage(ctx.redis, job, timeout=ctx.settings.job_timeout, **place)
    except (ClipperError, redis.RedisError, OSError) as exc:
        log.warning("clip %s stored but not queued (%s); it will be queued when Redis is back",
                    clip_id, exc)
        return False
    return True
