"""Which job a worker takes (real Redis): a re-cut's just-queued fetch it has taken makes way for
new work queued within LATER_GRACE seconds of it, and is put back at the front of its queue."""

from __future__ import annotations

import threading
import time

from rq import Queue

from clipper.pipeline.worker import LATER_GRACE, later_grace, make_worker


def enqueue(conn, queue: str, job_id: str, stage: str = "fetch") -> None:
    """A stage job as jobqueue queues it (never run here: only taken)."""
    Queue(queue, connection=conn).enqueue("clipper.pipeline.jobs.run_stage_job", stage, 1, 1,
                                          job_id=job_id)


def queue_once_taken(conn, later: str, left: list[str], queue: str, job_id: str) -> None:
    """Queue new work as soon as the worker has taken a job from `later` (only `left` remain)."""
    deadline = time.monotonic() + 5
    while Queue(later, connection=conn).job_ids != left and time.monotonic() < deadline:
        time.sleep(0.002)  # polling for the worker's dequeue, with a deadline
    enqueue(conn, queue, job_id)


def test_only_a_just_queued_first_stage_waits_for_new_work():
    assert later_grace("fetch", 0.0) == LATER_GRACE
    assert later_grace("fetch", 0.1) == round(LATER_GRACE - 0.1, 3)
    assert later_grace("fetch", LATER_GRACE) == 0.0
    assert later_grace("fetch", 30.0) == 0.0  # it waited its turn: no flag is racing it
    assert later_grace("fetch", -5.0) == LATER_GRACE  # another machine's clock: never longer
    assert later_grace("cut", 0.0) == later_grace("asr", 0.0) == 0.0  # followers never wait


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

    filer = threading.Thread(target=queue_once_taken,
                             args=(redis_conn, "fetch-later", ["recut2"], "fetch", "new"))
    filer.start()
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    filer.join()
    assert (job.id, queue.name) == ("new", "fetch")
    assert later.job_ids == ["recut", "recut2"]  # back at the front, still queued
    assert later.fetch_job("recut").get_status() == "queued"
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    assert (job.id, queue.name) == ("recut", "fetch-later")


def test_a_follower_re_cut_is_taken_at_once(sqlite_ctx, redis_conn):
    """A re-cut's cut follows its fetch: no flag races it, so it does not wait or swap."""
    worker = make_worker(sqlite_ctx, ["media"], redis_conn)
    enqueue(redis_conn, "media-later", "recut-cut", stage="cut")
    filer = threading.Thread(target=queue_once_taken,
                             args=(redis_conn, "media-later", [], "media", "new"))
    filer.start()
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    filer.join()
    assert (job.id, queue.name) == ("recut-cut", "media-later")
    assert Queue("media", connection=redis_conn).job_ids == ["new"]


def test_own_work_already_waiting_is_taken_without_waiting(sqlite_ctx, redis_conn):
    worker = make_worker(sqlite_ctx, ["fetch"], redis_conn)
    enqueue(redis_conn, "fetch-later", "recut")
    enqueue(redis_conn, "fetch", "new")
    job, queue = worker.dequeue_job_and_maintain_ttl(timeout=5)
    assert (job.id, queue.name) == ("new", "fetch")
    assert Queue("fetch-later", connection=redis_conn).job_ids == ["recut"]
