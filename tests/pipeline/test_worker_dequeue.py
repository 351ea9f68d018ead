"""Which job a worker takes (real Redis): a re-cut it has just taken makes way for new work
queued within LATER_GRACE seconds, and is put back at the front of its queue."""

from __future__ import annotations

import threading
import time

from rq import Queue

from clipper.pipeline.worker import LATER_GRACE, make_worker


def enqueue(conn, queue: str, job_id: str) -> None:
    Queue(queue, connection=conn).enqueue("os.getpid", job_id=job_id)


def test_a_re_cut_taken_alone_is_run_after_the_grace(sqlite_ctx, redis_conn):
    worker = make_worker(sqlite_ctx, ["fetch"], redis_conn)
    enqueue(redis_conn, "fetch-later", "recut")
    began = time.monotonic()
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    assert (job.id, queue.name) == ("recut", "fetch-later")
    assert time.monotonic() - began >= LATER_GRACE * 0.9  # it waited for new work first
    assert Queue("fetch-later", connection=redis_conn).job_ids == []


def test_new_work_queued_just_after_a_re_cut_was_taken_goes_first(sqlite_ctx, redis_conn):
    """A burst: a merge's re-cut is queued a few milliseconds before a new moment's fetch."""
    worker = make_worker(sqlite_ctx, ["media", "fetch"], redis_conn)
    later = Queue("fetch-later", connection=redis_conn)
    enqueue(redis_conn, "fetch-later", "recut")
    enqueue(redis_conn, "fetch-later", "recut2")

    def new_moment_once_the_re_cut_is_taken() -> None:
        deadline = time.monotonic() + 5
        while later.job_ids != ["recut2"] and time.monotonic() < deadline:
            time.sleep(0.002)  # polling for the worker's dequeue, with a deadline
        enqueue(redis_conn, "fetch", "new")

    filer = threading.Thread(target=new_moment_once_the_re_cut_is_taken)
    filer.start()
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    filer.join()
    assert (job.id, queue.name) == ("new", "fetch")
    assert later.job_ids == ["recut", "recut2"]  # back at the front, still queued
    assert later.fetch_job("recut").get_status() == "queued"
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    assert (job.id, queue.name) == ("recut", "fetch-later")


def test_own_work_already_waiting_is_taken_without_waiting(sqlite_ctx, redis_conn):
    worker = make_worker(sqlite_ctx, ["fetch"], redis_conn)
    enqueue(redis_conn, "fetch-later", "recut")
    enqueue(redis_conn, "fetch", "new")
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    assert (job.id, queue.name) == ("new", "fetch")
    assert Queue("fetch-later", connection=redis_conn).job_ids == ["recut"]
