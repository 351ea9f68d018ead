"""Clips from a recorded channel through real workers: frame-exact by the wall clock across a PTS
wrap, a source restart and segment boundaries; gaps listed; an end not yet aired waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from channel_segments import PTS_NEAR_WRAP, RATE, Part, make_broadcast, store_pieces
from rq.job import Job, JobStatus

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline import jobqueue
from clipper.pipeline.reconciler import reconcile
from clipper.pipeline.worker import make_worker
from clipper.services.channels import add_channel
from clipper.services.clips import clip_events, clip_status
from clipper.services.flags import flag_channel
from clipper.storage.tables import Clip
from clipper.timecode import format_wallclock
from testmedia.mediagen import decode_gray, match_frame

ANN = Actor.operator("ann")
URL = "http://127.0.0.1:9/live/index.m3u8"
QUEUES = ("asr", "media", "fetch")
#: The broadcast: 0-8 s with PTS wrapping 2.3 s in; 8-16 s after a restart (PTS reset);
#: 16-18 s never recorded; 18-24 s after another restart.
PARTS = [Part(0, 200, PTS_NEAR_WRAP), Part(200, 400, 10.0), Part(450, 600, 500.0)]


@pytest.fixture(scope="session")
def live_broadcast(tmp_path_factory: pytest.TempPathFactory):
    """(source as MP4 for comparing frames, its decoded frames, the recorded TS segments)."""
    master, pieces = make_broadcast(tmp_path_factory.mktemp("live"), PARTS, 24)
    return master, decode_gray(master), pieces


def frames_between(start: float, end: float) -> list[int]:
    """Source frame numbers shown at start <= t < end (25 fps from t = 0)."""
    return [i for i in range(24 * RATE) if start - 1e-3 <= i / RATE < end - 1e-3]


def assert_frames(clip: Path, full: np.ndarray, wanted: list[int]) -> None:
    """The clip holds exactly the source frames `wanted`: each nearer its own source frame than
    that frame's neighbours, the first and last also matched against the whole source."""
    frames = decode_gray(clip)
    assert len(frames) == len(wanted), f"{len(frames)} frames, expected {len(wanted)}"
    for got, want in zip(frames, wanted, strict=True):
        own = np.abs(full[want] - got).mean()
        others = [np.abs(full[j] - got).mean() for j in (want - 1, want + 1) if 0 <= j < len(full)]
        assert own < 0.5 * min(others), (want, own, others)
    for got, want in ((frames[0], wanted[0]), (frames[-1], wanted[-1])):
        assert match_frame(got, full)[0] == want


def test_clips_are_frame_exact_by_the_clock_and_list_gaps(sqlite_ctx, live_broadcast, run_jobs):
    master, full, pieces = live_broadcast
    add_channel(sqlite_ctx, ANN, "news", URL)
    base = float(int(time.time()) - 300)  # aired five minutes ago
    store_pieces(sqlite_ctx, "news", pieces, base)
    # Across the PTS wrap (2.3 s), segment joins (4, 6 s) and the restart at 8 s.
    exact = flag_channel(sqlite_ctx, ANN, "news", start=format_wallclock(base + 2.13),
                         end=format_wallclock(base + 9.87))
    # Across the unrecorded 16-18 s.
    gappy = flag_channel(sqlite_ctx, ANN, "news", start=base + 14.5, end=base + 20.3)
    # Partly before the recording began.
    early = flag_channel(sqlite_ctx, ANN, "news", start=base - 1.5, end=base + 1.0)
    run_jobs(sqlite_ctx)

    with sqlite_ctx.db.session() as session:
        methods = [session.get(Clip, c.clip_id).cut_method for c in (exact, gappy)]
    assert methods[0] == "smart"  # the smart cut works on sections joined from segments
    st = clip_status(sqlite_ctx, ANN, exact.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["gaps"] == [] and st["wall_start"] == format_wallclock(base + 2.13)
    assert_frames(Path(st["media_path"]), full, frames_between(2.13, 9.87))

    st = clip_status(sqlite_ctx, ANN, gappy.clip_id)
    assert st["status"] == "ready", st["error"]
    (lo, hi), = st["gaps"]
    assert lo[:19] == format_wallclock(base + 16)[:19] and hi[:21] == format_wallclock(
        base + 17.98)[:21]
    assert_frames(Path(st["media_path"]), full,
                  frames_between(14.5, 16.0) + frames_between(18.0, 20.3))
    assert st["duration"] == pytest.approx(5.8, abs=0.05)  # the gap stays a gap in time

    st = clip_status(sqlite_ctx, ANN, early.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["gaps"] == [[format_wallclock(base - 1.5), format_wallclock(pieces[0].start + base)]]
    assert_frames(Path(st["media_path"]), full, frames_between(0.0, 1.0))


def test_a_flag_whose_end_has_not_aired_waits_queued_then_completes(
        sqlite_url, make_settings: Callable, redis_conn, live_broadcast):
    _, full, pieces = live_broadcast
    ctx = Context.build(make_settings(sqlite_url, CLIPPER_PAD_SECONDS="0.5"),
                        redis_conn=redis_conn)
    add_channel(ctx, ANN, "news", URL)
    now = time.time()
    base = now - 5.0  # two segments (to base + 4) have aired; the next ones have not
    store_pieces(ctx, "news", pieces[:2], base)
    res = flag_channel(ctx, ANN, "news", start=now - 2.0, end=now + 0.5)
    make_worker(ctx, QUEUES).work(burst=True)

    st = clip_status(ctx, ANN, res.clip_id)
    assert st["status"] == "queued"
    assert "stage.fetch.deferred" in [e["action"] for e in clip_events(ctx, ANN, res.clip_id)]
    jid = jobqueue.job_id("fetch", res.clip_id, 1)
    assert Job.fetch(jid, connection=redis_conn).get_status() == JobStatus.SCHEDULED
    assert reconcile(ctx) == []  # a scheduled job is alive, not lost

    store_pieces(ctx, "news", pieces[2:4], base, first_seq=2)  # time moves on
    deadline = time.monotonic() + 60
    while st["status"] not in ("ready", "failed") and time.monotonic() < deadline:
        make_worker(ctx, QUEUES).work(burst=True, with_scheduler=True)
        st = clip_status(ctx, ANN, res.clip_id)
        if st["status"] == "queued":
            time.sleep(0.2)  # poll interval while RQ's scheduled time comes
    assert st["status"] == "ready", st["error"]
    assert st["gaps"] == []
    assert_frames(Path(st["media_path"]), full, frames_between(now - 2.0 - base,
                                                               now + 0.5 - base))
    ctx.db.dispose()


def test_after_the_grace_what_was_recorded_is_cut_or_the_clip_fails_saying_why(
        sqlite_url, make_settings: Callable, redis_conn, live_broadcast):
    _, full, pieces = live_broadcast
    ctx = Context.build(make_settings(sqlite_url, CLIPPER_PAD_SECONDS="0.5",
                                      CLIPPER_STALL_SECONDS="1"), redis_conn=redis_conn)
    add_channel(ctx, ANN, "news", URL)
    now = time.time()
    base = now - 5.0
    store_pieces(ctx, "news", pieces[:2], base)  # recorded up to now - 1; then it stops
    cut_short = flag_channel(ctx, ANN, "news", start=now - 2.0, end=now + 0.3)
    nothing = flag_channel(ctx, ANN, "news", start=now + 0.5, end=now + 2.0)
    deadline = time.monotonic() + 60
    states = {}
    while time.monotonic() < deadline:
        make_worker(ctx, QUEUES).work(burst=True, with_scheduler=True)
        states = {c: clip_status(ctx, ANN, c.clip_id) for c in (cut_short, nothing)}
        if all(st["status"] in ("ready", "failed") for st in states.values()):
            break
        time.sleep(0.2)  # poll interval while RQ's scheduled time comes
    st = states[cut_short]
    assert st["status"] == "ready", st["error"]
    recorded_to = base + pieces[1].start + pieces[1].duration
    assert st["gaps"] == [[format_wallclock(recorded_to), format_wallclock(now + 0.3)]]
    assert_frames(Path(st["media_path"]), full, frames_between(3.0, recorded_to - base))
    st = states[nothing]
    assert st["status"] == "failed" and st["error_stage"] == "fetch"
    assert "Nothing of news was recorded between" in st["error"]
    ctx.db.dispose()
