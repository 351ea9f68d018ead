"""The compose layout's Redis (`--appendonly yes --appendfsync everysec`, docker-compose.yml)
killed -9 while `clipper up` has jobs queued and a stage running, then started again from its
append-only file, as `restart: unless-stopped` does: the queues need no rebuilding. Every job
that waited before the kill is still in Redis after it; the reconciler re-queues nothing but a
job a worker had just taken from its queue and not yet started (the kill cut it off from Redis:
without that, its clip would wait `queued` for ever), and that once; no stage of any clip runs
twice; every clip becomes ready. (Redis restarted empty, when the reconciler does rebuild the
queues, is test_stack_faults.py's case.)"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis
from faultparts import (
    job_known,
    requeued,
    stage_jobs,
    unqueued,
    up_log_size,
    waiting_jobs,
)
from polling import poll
from sqlalchemy import select

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.jobqueue import taken_unstarted
from clipper.services.flags import file_flag
from clipper.settings import Settings
from clipper.storage.tables import StageRun
from testmedia.faults import all_done, check_invariants, open_stages, problems, stack_env

pytestmark = [pytest.mark.faults, pytest.mark.services, pytest.mark.slow]
ANN = Actor.operator("ann")
#: Four moments of the 30 s broadcast, one clip each.
MOMENTS = ((1.0, 7.0), (8.0, 14.0), (15.0, 21.0), (22.0, 28.0))


def stage_runs(ctx: Context) -> list[tuple[int, int, str, str | None]]:
    """(clip, version, stage, error) of every stage run so far."""
    r = StageRun
    with ctx.db.read() as s:
        return [tuple(row) for row in s.execute(select(r.clip_id, r.clip_version, r.stage,
                                                       r.error))]


def test_redis_killed_and_restarted_from_its_aof_keeps_every_job(
        tmp_path, broadcast, aof_redis, up, stack_ctx):
    stack = up(stack_env(tmp_path / "home", redis_url=aof_redis.url()))
    ctx = Context.build(Settings.from_env(stack.env))
    stack_ctx.append(ctx)
    clips = [file_flag(ctx, ANN, str(broadcast), s, e, note=f"moment at {s:g}").clip_id
             for s, e in MOMENTS]
    conn = redis.Redis.from_url(aof_redis.url(), socket_timeout=5)

    def jobs_waiting() -> set[str] | None:
        """The jobs waiting in Redis while a stage runs."""
        return (waiting_jobs(conn) or None) if open_stages(ctx) else None
    waiting = poll(jobs_waiting, 60, "a stage under way and jobs waiting in Redis", every=0.02)
    assert aof_redis.aof_bytes() > 0
    log_from = up_log_size(stack)  # (a pass may have queued a clip just filed before this)
    aof_redis.restart()  # kill -9, then redis-server again on the same port and folder
    restarted = time.monotonic()

    # Straight after the restart, before the reconciler's next pass could queue anything:
    # every job that waited before the kill is still there (waiting, running or done).
    lost = [jid for jid in waiting if not job_known(conn, jid)]
    assert not lost, f"jobs gone with the kill: {lost} of {sorted(waiting)}"
    # What the kill can still cost: a job a worker's dequeue had just taken (kept so in the
    # file) that the worker never got to start. (The workers are reconnecting now: none is
    # between a dequeue and a start.)
    cut_off = sorted(jid for jid in stage_jobs(conn) if taken_unstarted(conn, jid))

    poll(lambda: all_done(ctx, len(clips)), 90, "every clip ready")
    recovered = time.monotonic() - restarted
    poll(lambda: not problems(check_invariants(ctx)), 15, "the invariants to hold")
    # Nothing else needed rebuilding: the reconciler (every 2 s here) queued again only the
    # cut-off jobs' clips and those whose next stage could not be queued while Redis was away
    # (a stage that ended then), each once; and each stage of each clip ran once, cleanly.
    expected = {int(j.split("-")[1]) for j in cut_off} | unqueued(stack)
    again = requeued(stack, after=log_from)
    assert sorted(again) == sorted(expected), (again, cut_off, sorted(waiting), stack.log())
    runs = stage_runs(ctx)
    assert [r for r in runs if r[3] is not None] == [], runs
    twice = {k: n for k, n in Counter(r[:3] for r in runs).items() if n > 1}
    assert not twice, twice
    print(f"{len(waiting)} jobs waiting at the kill, all kept; {len(cut_off)} taken and not "
          f"started ({cut_off}); re-queued clips {again}; clips ready "
          f"{recovered:.1f} s after the restart; {len(runs)} stage runs, none repeated")


def test_a_job_taken_from_its_queue_but_never_started_is_queued_again(
        sqlite_ctx, broadcast, redis_conn):
    """What such a kill (or any lost connection) can leave: a worker's BLPOP took a job from
    its queue (kept in the append-only file) and the worker lost Redis before it started the
    job. Its hash still says queued, but no queue holds it: once START_GRACE has passed the
    reconciler queues it again, once."""
    from datetime import timedelta

    from rq import Queue
    from rq.job import Job, JobStatus

    from clipper.pipeline.reconciler import START_GRACE, reconcile
    from clipper.storage.tables import utcnow

    clip = file_flag(sqlite_ctx, ANN, str(broadcast), 1.0, 7.0).clip_id
    [jid] = waiting_jobs(redis_conn)
    job = Job.fetch(jid, connection=redis_conn)
    queue = Queue(job.origin, connection=redis_conn)
    # The worker's dequeue, as RQ does it for a worker on several queues; then it is gone.
    assert Queue.lpop([queue.key], timeout=1, connection=redis_conn)[1].decode() == jid
    assert job.get_status(refresh=True) == JobStatus.QUEUED and jid not in queue.job_ids

    assert reconcile(sqlite_ctx) == []  # just taken: maybe a worker starting it right now
    later = utcnow() + START_GRACE + timedelta(seconds=1)
    assert reconcile(sqlite_ctx, now=later) == [clip]
    assert queue.job_ids == [jid]  # waiting again, under the same id
    assert reconcile(sqlite_ctx, now=later) == []  # and only once
