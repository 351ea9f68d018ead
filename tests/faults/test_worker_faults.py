"""Real worker processes hurt mid-stage: stopped (SIGTERM to its group, as `clipper up` stops
it), killed (-9), or its ffmpeg killed. No clip fails for it, no flag is lost, and no temporary
file outlives the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from polling import poll
from sqlalchemy import select

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.reconciler import reconcile
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from clipper.storage.tables import StageRun

pytestmark = [pytest.mark.faults, pytest.mark.services]
ROOT = Path(__file__).resolve().parents[2]
ANN = Actor.operator("ann")


class Workers:
    """`python -m clipper.cli worker` processes on the test's home, database and Redis."""

    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLIPPER_")},
                    "CLIPPER_HOME": str(s.home), "DATABASE_URL": s.database_url,
                    "REDIS_URL": s.redis_url, "HF_HUB_OFFLINE": "1",
                    "CLIPPER_URL_ALLOWLIST": "127.0.0.1", "CLIPPER_LEASE_SECONDS": "3"}
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "worker"], cwd=ROOT,
                                env=self.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def workers(sqlite_ctx: Context) -> Iterator[Workers]:
    w = Workers(sqlite_ctx)
    yield w
    w.stop_all()


def open_run(ctx: Context, stages: tuple[str, ...]) -> StageRun | None:
    with ctx.db.session() as s:
        return s.scalars(select(StageRun).where(StageRun.ended_at.is_(None),
                                                StageRun.stage.in_(stages))).first()


def status(ctx: Context, clip_id: int) -> dict:
    return clip_status(ctx, ANN, clip_id)


def no_temporary_files(ctx: Context) -> bool:
    tmp = ctx.settings.media_dir / "tmp"
    media = ctx.settings.media_dir
    leftovers = [p for p in media.rglob("*") if p.name.startswith(".") or ".part" in p.name]
    return not leftovers and (not tmp.exists() or not any(tmp.iterdir()))


def flag_long(ctx: Context, broadcast: Path) -> int:
    return file_flag(ctx, ANN, str(broadcast), "1", "28").clip_id


def test_a_stopped_worker_hands_its_stage_back_and_the_next_one_finishes_it(
        sqlite_ctx, broadcast, workers):
    clip_id = flag_long(sqlite_ctx, broadcast)
    first = workers.start()
    poll(lambda: open_run(sqlite_ctx, ("cut", "asr")), 90, "a cut or transcription under way")
    os.killpg(first.pid, signal.SIGTERM)  # what `clipper up` sends on Ctrl-C
    first.wait(20)  # it hands back at once instead of finishing or being killed after 8 s
    now = status(sqlite_ctx, clip_id)
    assert now["status"] != "failed", now
    with sqlite_ctx.db.session() as s:
        handed = [r.detail for r in s.scalars(select(StageRun)) if r.detail
                  and "handed back" in str(r.detail.get("reason", ""))]
    assert handed, "the interrupted stage was not handed back"
    workers.start()
    poll(lambda: status(sqlite_ctx, clip_id)["status"] == "ready", 120, "the clip ready")
    assert status(sqlite_ctx, clip_id)["error"] is None
    poll(lambda: no_temporary_files(sqlite_ctx), 10, "temporary files removed")


def test_a_killed_worker_s_stage_is_run_again_within_the_lease(sqlite_ctx, broadcast,
                                                                 workers):
    clip_id = flag_long(sqlite_ctx, broadcast)
    first = workers.start()
    run = poll(lambda: open_run(sqlite_ctx, ("cut", "asr")), 90, "a stage under way")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    workers.start()
    # The reconciler (here called as `clipper up` would, every few seconds) sees the lease pass.
    poll(lambda: reconcile(sqlite_ctx) == [clip_id], 30, "the lost stage re-queued")
    poll(lambda: status(sqlite_ctx, clip_id)["status"] == "ready", 120, "the clip ready")
    with sqlite_ctx.db.session() as s:
        lost = s.get(StageRun, run.id)
        assert lost.ended_at is not None and "stopped" in (lost.error or "")
    poll(lambda: (reconcile(sqlite_ctx), no_temporary_files(sqlite_ctx))[1], 30,
         "the killed run's temporary files removed")


def test_ffmpeg_killed_mid_stage_is_a_temporary_failure_retried(sqlite_ctx, broadcast,
                                                                 workers: Workers):
    clip_id = flag_long(sqlite_ctx, broadcast)
    proc = workers.start()
    me = psutil.Process(proc.pid)

    def kill_an_ffmpeg() -> bool:
        for child in me.children(recursive=True):
            try:
                if child.name() == "ffmpeg":
                    child.kill()
                    return True
            except psutil.NoSuchProcess:
                continue
        return False
    poll(kill_an_ffmpeg, 90, "an ffmpeg of the worker to kill", every=0.002)
    poll(lambda: status(sqlite_ctx, clip_id)["status"] == "ready", 120, "the clip ready")
    with sqlite_ctx.db.session() as s:
        errors = [r.error for r in s.scalars(select(StageRun)) if r.error]
    assert any("signal 9" in e for e in errors), errors
