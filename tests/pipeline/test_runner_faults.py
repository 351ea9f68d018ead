"""The runner under faults: temporary failures retried (bounded), a second copy of a stage never
runs beside a live first, lost runs closed and counted, scratch folders cleaned, and the lock
order of flags and reviews on PostgreSQL."""

from __future__ import annotations

import errno
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from clipper.errors import PermanentError, TransientError
from clipper.media.ffrun import failure
from clipper.permissions import Actor
from clipper.pipeline import jobqueue
from clipper.pipeline.reconciler import reconcile, sweep_scratch
from clipper.pipeline.runner import LOST, is_transient, retry_delay, run_stage, scratch_dir
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from clipper.storage.tables import Clip, StageRun, utcnow

ANN = Actor.operator("ann")


# --- pure decisions ------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [
    TransientError("network"), JobTimeoutException("took too long"),
    OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    OSError(errno.ENOSPC, "No space left on device"), redis.ConnectionError("gone"),
])
def test_temporary_failures_are_retried(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [PermanentError("404"), ValueError("bug"),
                                 OSError(errno.ENOENT, "missing")])
def test_the_clips_own_failures_are_not(exc):
    assert not is_transient(exc)


def test_retry_delays_grow_and_are_capped():
    assert [retry_delay(n) for n in (1, 2, 3, 4, 9)] == [5, 15, 45, 135, 300]


def test_ffmpeg_killed_or_out_of_disk_is_temporary_and_bad_media_is_not():
    assert isinstance(failure("cut", -15, ""), TransientError)
    assert isinstance(failure("cut", 1, "x.mp4: No space left on device\n"), TransientError)
    bad = failure("cut", 1, "Invalid data found when processing input\n")
    assert isinstance(bad, PermanentError) and not isinstance(bad, TransientError)
    assert "Invalid data" in str(bad)


# --- leases --------------------------------------------------------------------------------------

def _open_run(ctx, clip_id: int, stage: str, *, lease_in: float, worker: str = "other-host:7"):
    with ctx.db.session() as s:
        clip = s.get(Clip, clip_id)
        clip.status = {"fetch": "fetching", "asr": "transcribing", "cut": "cutting"}[stage]
        run = StageRun(clip_id=clip_id, clip_version=clip.version, stage=stage, worker=worker,
                       lease_until=utcnow() + timedelta(seconds=lease_in))
        s.add(run)
        s.flush()
        return run.id


def test_a_live_lease_on_another_host_is_never_run_twice_even_after_redis_lost_everything(
        sqlite_ctx, broadcast, redis_conn):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    run_id = _open_run(sqlite_ctx, res.clip_id, "fetch", lease_in=30)
    redis_conn.flushdb()  # Redis restarted empty while the fetch runs on another host
    assert reconcile(sqlite_ctx) == []
    assert run_stage(sqlite_ctx, "fetch", res.clip_id, 1) == "stale"  # a second copy refuses
    # Its worker dies: once the lease has passed, the stage is queued again, on any host.
    later = utcnow() + timedelta(seconds=31)
    assert reconcile(sqlite_ctx, now=later) == [res.clip_id]
    with sqlite_ctx.db.session() as s:
        run = s.get(StageRun, run_id)
        assert run.ended_at is not None and run.error == LOST
    assert Queue("fetch", connection=redis_conn).count == 1


def test_a_started_job_whose_worker_died_is_replaced_once_its_lease_passes(
        sqlite_ctx, broadcast, redis_conn, run_jobs):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    jid = jobqueue.job_id("fetch", res.clip_id, 1)
    q = Queue("fetch", connection=redis_conn)
    job = q.fetch_job(jid)
    # What a worker killed mid-job leaves: the job started in Redis, its run's lease running out.
    job.started_at = utcnow()
    job.set_status("started")
    job.save()
    q.remove(job)
    run_id = _open_run(sqlite_ctx, res.clip_id, "fetch", lease_in=30)
    scratch_dir(sqlite_ctx, run_id).mkdir(parents=True)
    (scratch_dir(sqlite_ctx, run_id) / ".clip.part.mp4").write_bytes(b"half")
    assert reconcile(sqlite_ctx) == []  # alive as far as anyone can tell
    assert reconcile(sqlite_ctx, now=utcnow() + timedelta(seconds=31)) == [res.clip_id]
    assert not scratch_dir(sqlite_ctx, run_id).exists()  # the dead run's temporary files
    assert Job.fetch(jid, connection=redis_conn).get_status() == "queued"
    run_jobs(sqlite_ctx)
    assert clip_status(sqlite_ctx, ANN, res.clip_id)["status"] == "ready"
    assert not list((sqlite_ctx.settings.media_dir / "tmp").glob("run-*"))


def test_a_stage_that_keeps_killing_its_worker_fails_the_clip_after_the_attempt_cap(
        sqlite_ctx, broadcast):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    cap = sqlite_ctx.settings.stage_attempts
    for _ in range(cap):
        _open_run(sqlite_ctx, res.clip_id, "fetch", lease_in=-1)  # each one's worker died
    assert run_stage(sqlite_ctx, "fetch", res.clip_id, 1) == "stale"
    status = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert status["status"] == "failed"
    assert f"after {cap} attempts" in status["error"] and "worker" in status["error"]


def test_scratch_folders_of_closed_runs_are_swept_and_live_ones_kept(sqlite_ctx, broadcast):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    live = _open_run(sqlite_ctx, res.clip_id, "fetch", lease_in=30)
    for run_id in (live, 999_999):  # 999999: a run the database does not know
        scratch_dir(sqlite_ctx, run_id).mkdir(parents=True)
    assert sweep_scratch(sqlite_ctx) == 1
    assert scratch_dir(sqlite_ctx, live).exists()
    assert not scratch_dir(sqlite_ctx, 999_999).exists()


# --- duplicate runs ------------------------------------------------------------------------------

def test_two_copies_of_one_stage_at_once_keep_one_result_and_fail_nothing(sqlite_ctx, broadcast):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "8")
    assert run_stage(sqlite_ctx, "fetch", res.clip_id, 1) == "done"
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def asr() -> None:
        start.wait()
        outcomes.append(run_stage(sqlite_ctx, "asr", res.clip_id, 1))
    threads = [threading.Thread(target=asr) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(map(str, outcomes)) == ["done", "stale"]
    assert run_stage(sqlite_ctx, "cut", res.clip_id, 1) == "done"
    status = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert status["status"] == "ready" and "election" in status["transcript"]["text"]
    with sqlite_ctx.db.session() as s:
        runs = s.scalars(select(StageRun).where(StageRun.stage == "asr")).all()
        assert [r.error for r in runs] == [None]  # the second copy never began a run
    clip_dir = Path(status["media_path"]).parent
    assert sorted(p.name for p in clip_dir.iterdir()) == [
        "clip.mp4", "clip.srt", "clip.vtt", "thumb.jpg", "transcript.json"]


def test_queueing_one_stage_from_many_processes_at_once_leaves_exactly_one_job(
        sqlite_ctx, broadcast, redis_conn):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    job = jobqueue.StageJob("fetch", res.clip_id, 1)
    old = Job.fetch(job.id, connection=redis_conn)
    old.set_status("finished")  # a finished leftover under the same id, to be replaced
    Queue("fetch", connection=redis_conn).remove(old)
    results: list[bool] = []
    go = threading.Barrier(12)

    def enqueue() -> None:
        conn = redis.Redis(connection_pool=redis_conn.connection_pool)
        go.wait()
        results.append(jobqueue.enqueue_stage(conn, job, timeout=60, first=True))
    threads = [threading.Thread(target=enqueue) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(True) == 1 and len(results) == 12
    assert Queue("fetch", connection=redis_conn).job_ids == [job.id]


def test_a_full_disk_is_temporary_even_when_the_tools_do_not_say_so(tmp_path):
    from clipper.media.fetch import DISK_FULL_BYTES, disk_full_error

    # ffmpeg 5.1 exits 0 after "No space left on device"; yt-dlp says only "exit code 1".
    assert isinstance(failure("extract audio", 0, "audio.wav: No space left on device\n"),
                      TransientError)
    assert isinstance(disk_full_error(tmp_path, free=DISK_FULL_BYTES - 1), TransientError)
    assert disk_full_error(tmp_path, free=DISK_FULL_BYTES) is None


def test_new_moments_and_urgent_flags_go_ahead_of_re_cuts(sqlite_ctx, broadcast, redis_conn):
    """Debate night's burst: a merge that widens a clip re-cuts a clip there is already a
    version of to watch, so it waits (in the queue's twin, taken after every queue's own work)
    behind flags of new moments; an urgent one does not, nor does the widening of a clip with
    no version cut yet."""
    def flag(start: str, end: str, urgency: str = "normal") -> tuple[int, int]:
        res = file_flag(sqlite_ctx, ANN, str(broadcast), start, end, urgency=urgency)
        with sqlite_ctx.db.read() as session:
            return res.clip_id, session.get(Clip, res.clip_id).version

    first = flag("2", "5")
    other = flag("10", "13")
    uncut = flag("40", "43")
    with sqlite_ctx.db.session() as session:  # as if their first versions had been cut
        for cid in (first[0], other[0]):
            session.get(Clip, cid).media_path = str(broadcast)
    widened = flag("3", "7")  # the same moment as the first: its clip, version 2
    assert widened == (first[0], 2)
    new = flag("20", "23")
    urgent = flag("11", "14", urgency="high")  # widens the other one, urgently
    assert urgent == (other[0], 2)
    uncut_widened = flag("41", "45")  # nothing of it to watch yet: it goes first still
    assert uncut_widened == (uncut[0], 2)
    # First come first served, but for the urgent one, at the front.
    order = [jobqueue.StageJob("fetch", *c).id
             for c in (urgent, first, other, uncut, new, uncut_widened)]
    assert Queue("fetch", connection=redis_conn).job_ids == order
    assert Queue("fetch-later", connection=redis_conn).job_ids == [
        jobqueue.StageJob("fetch", *widened).id]
    assert jobqueue.queue_lengths(redis_conn)["fetch"] == len(order) + 1
    assert [jobqueue.goes_first(u, v, w) for u, v, w in (
        ("normal", 1, False), ("normal", 2, True), ("high", 3, True), ("normal", 2, False))] \
        == [True, False, True, True]
