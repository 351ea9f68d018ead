"""Losing Redis or a worker never loses a flag: the reconciler rebuilds work from the database."""

from __future__ import annotations

import pytest
from rq import Queue

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline import jobqueue
from clipper.pipeline.reconciler import reconcile
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag

ANN = Actor.operator("ann")  # the local command-line operator, as `--by ann`


def test_flag_is_kept_when_redis_is_down_and_queued_later(sqlite_url, make_settings, redis_conn,
                                                          broadcast, run_jobs):
    down = Context.build(make_settings(sqlite_url, REDIS_URL="redis://127.0.0.1:1/0"))
    res = file_flag(down, ANN, str(broadcast), "2", "5")
    assert res.queued is False
    assert clip_status(down, ANN, res.clip_id)["status"] == "queued"

    up = Context.build(make_settings(sqlite_url), redis_conn=redis_conn)
    assert reconcile(up) == [res.clip_id]
    assert reconcile(up) == []  # a queued job is not queued twice
    run_jobs(up)
    assert clip_status(up, ANN, res.clip_id)["status"] == "ready"


def test_job_of_a_dead_worker_is_requeued(sqlite_ctx, broadcast, redis_conn, run_jobs):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    jid = jobqueue.job_id("fetch", res.clip_id, 1)
    q = Queue("fetch", connection=redis_conn)
    job = q.fetch_job(jid)
    # What a worker killed mid-job leaves behind: the job marked started by a process now gone.
    import socket

    job.worker_name = f"{socket.gethostname().split('.')[0]}.999999.dead"
    job.set_status("started")
    job.save()
    q.remove(job)
    assert q.count == 0
    assert reconcile(sqlite_ctx) == [res.clip_id]
    assert q.count == 1
    run_jobs(sqlite_ctx)
    assert clip_status(sqlite_ctx, ANN, res.clip_id)["status"] == "ready"


@pytest.mark.parametrize("stage", ["fetch"])
def test_stale_job_exits_quietly(sqlite_ctx, broadcast, stage):
    from clipper.pipeline.runner import run_stage

    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    assert run_stage(sqlite_ctx, stage, res.clip_id, 99) == "stale"
    assert clip_status(sqlite_ctx, ANN, res.clip_id)["status"] == "queued"
