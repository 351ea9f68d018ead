"""The real stack (`clipper up`: its supervisor, reconciler and workers) hurt from outside while
clips are in flight: Redis killed and started again empty, PostgreSQL cut off for 10 s (a proxy
drops and refuses the stack's connections; the shared server runs on), SQLite held by a long
reader, the media disk (a small tmpfs) full during a cut, a transcription or a fetch. Every case
then checks what the fault suite promises: every flag on a clip, every clip ready (none failed by
the fault), no moment with two clips, no result written twice, no temporary file left — within
90 s of the fault. CLIPPER_LEASE_SECONDS=3 and reconciling every 2 s keep each case short;
bench/faults.py measures the same faults at the shipped defaults."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from polling import poll

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.reconciler import reconcile
from clipper.services.flags import file_flag
from testmedia.faults import (
    ROOT,
    TcpProxy,
    all_done,
    check_invariants,
    fill_disk,
    open_stages,
    problems,
    stack_env,
    stage_errors,
    statuses,
    tmpfs,
    url_target,
    via_proxy,
)

pytestmark = [pytest.mark.faults, pytest.mark.services]
ANN = Actor.operator("ann")
#: Four moments of the 30 s broadcast, one clip each.
MOMENTS = ((1.0, 7.0), (8.0, 14.0), (15.0, 21.0), (22.0, 28.0))
#: Seconds from the fault's end until every clip must be ready (the suite's target).
RECOVERY = 90.0


def context(env: dict[str, str], made: list[Context], **settings: str) -> Context:
    """A Context on a stack's database and Redis (as the dashboard would build one)."""
    from clipper.settings import Settings

    ctx = Context.build(Settings.from_env({**env, **settings}))
    made.append(ctx)
    return ctx


def flag_moments(ctx: Context, broadcast: Path, moments=MOMENTS) -> list[int]:
    clips = [file_flag(ctx, ANN, str(broadcast), s, e, note=f"moment at {s:g}").clip_id
             for s, e in moments]
    assert len(set(clips)) == len(moments)
    return clips


def in_flight(ctx: Context) -> dict[int, str] | None:
    """The clips' statuses once a stage is running and some clip is not ready yet."""
    if not open_stages(ctx):
        return None
    now = statuses(ctx)
    return now if any(st != "ready" for st in now.values()) else None


def assert_recovered(ctx: Context, clips: int, since: float, *,
                     tick: Callable[[], object] | None = None) -> None:
    """Every clip ready within RECOVERY s of `since` (calling `tick` on the way), and then
    every invariant kept."""
    def ready() -> bool:
        if tick is not None:
            tick()
        return all_done(ctx, clips)
    poll(ready, RECOVERY - (time.monotonic() - since), "every clip ready", every=0.25)
    # A run ends (and its scratch folder goes) just after its clip is marked ready.
    poll(lambda: not problems(check_invariants(ctx)), 15, "the invariants to hold")


def test_the_proxy_drops_and_refuses_connections_while_cut(private_redis):
    """The fault injector itself: through the proxy until it is cut, nothing while it is (the
    open connection dropped, a new one refused), through it again once restored."""
    import redis

    with TcpProxy(*url_target(private_redis.url())) as proxy:
        conn = redis.Redis.from_url(via_proxy(private_redis.url(), proxy), socket_timeout=5,
                                    socket_connect_timeout=5)
        assert conn.ping() and proxy.connections == 1
        proxy.cut()
        with pytest.raises(redis.ConnectionError):
            conn.ping()  # the open connection is dropped, and reconnecting is refused
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert private_redis.answers()  # the server itself never noticed
        proxy.restore()
        assert conn.ping()
        conn.close()


def test_redis_killed_and_restarted_empty_with_clips_in_flight(
        tmp_path, broadcast, private_redis, up, stack_ctx):
    stack = up(stack_env(tmp_path / "home", redis_url=private_redis.url()))
    ctx = context(stack.env, stack_ctx)
    clips = flag_moments(ctx, broadcast)

    def waiting() -> list[int]:
        """Clips whose jobs wait in Redis while a stage runs."""
        now = in_flight(ctx) or {}
        return [c for c, st in now.items() if st == "queued"]
    lost = poll(waiting, 60, "a stage under way and clips waiting in Redis", every=0.02)
    private_redis.restart()  # kill -9: every queued job, result and lock is gone
    assert_recovered(ctx, len(clips), time.monotonic())
    # Their jobs were gone with Redis: the reconciler queued them again from the database.
    assert "re-queued lost work" in (stack.home / "up.out").read_text(), (lost, stack.log())


def _truncate(url: str) -> None:
    from sqlalchemy import create_engine, text

    from clipper.storage.tables import Base

    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_cut_off_for_10_s_while_workers_write(
        tmp_path, broadcast, pg_url, private_redis, up, stack_ctx):
    _truncate(pg_url)
    with TcpProxy(*url_target(pg_url)) as proxy:
        stack = up(stack_env(tmp_path / "home", database_url=via_proxy(pg_url, proxy),
                             redis_url=private_redis.url()))
        # The test's own view of the database goes straight to the server, never cut.
        ctx = context(stack.env, stack_ctx, DATABASE_URL=pg_url)
        clips = flag_moments(ctx, broadcast)
        poll(lambda: in_flight(ctx), 60, "a stage under way")
        assert proxy.connections > 0  # the stack reaches PostgreSQL through the proxy
        proxy.cut()
        time.sleep(10)  # the fault itself: PostgreSQL away for 10 s
        during = statuses(ctx)
        proxy.restore()
        fault = time.monotonic()
        assert any(st != "ready" for st in during.values()), during
        assert_recovered(ctx, len(clips), fault)
    # The workers did lose the database mid-stage: their runs closed as temporary failures
    # or lost (and were run again), never as a failed clip.
    assert stage_errors(ctx), "no stage noticed PostgreSQL going away"


def test_sqlite_held_by_a_long_reader_still_accepts_flags(
        tmp_path, broadcast, private_redis, up, stack_ctx):
    stack = up(stack_env(tmp_path / "home", redis_url=private_redis.url()))
    ctx = context(stack.env, stack_ctx)
    reader = sqlite3.connect(stack.settings.home / "clipper.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM flags").fetchone() == (0,)
        held = time.monotonic()
        clips = flag_moments(ctx, broadcast)  # accepted while the read transaction is open
        poll(lambda: in_flight(ctx), 60, "a stage under way")
        time.sleep(max(0.0, 10 - (time.monotonic() - held)))  # the fault: a 10 s reader
        # Still the same snapshot: the transaction stayed open all along.
        assert reader.execute("SELECT count(*) FROM flags").fetchone() == (0,)
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert_recovered(ctx, len(clips), time.monotonic())


@pytest.fixture
def small_media_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs for CLIPPER_MEDIA_DIR (mounted here as root), unmounted after the stack
    on it has stopped (this fixture is set up before `up`, so torn down after it)."""
    try:
        with tmpfs(tmp_path / "disk", "32m") as mount:
            yield mount
    except OSError as exc:  # CalledProcessError too: mount refused (not root, no CAP_SYS_ADMIN)
        # .ci/run runs as root (it starts PostgreSQL and Redis itself): a refusal is a failure.
        pytest.fail(f"cannot mount a tmpfs here (the disk-full cases need root): {exc}")


def worker(env: dict[str, str], queues: str, *, burst: bool = False) -> subprocess.Popen:
    """`python -m clipper.cli worker --queues QUEUES` (one of `clipper up`'s workers, on only
    some queues) in a session of its own."""
    argv = [sys.executable, "-m", "clipper.cli", "worker", "--queues", queues]
    return subprocess.Popen(argv + (["--burst"] if burst else []), cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    """Worker processes a test starts: killed (their whole group) after it."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_disk_full_during_a_cut_is_retried_not_failed(
        tmp_path, broadcast, small_media_disk, private_redis, workers, stack_ctx):
    media = small_media_disk / "media"
    env = stack_env(tmp_path / "home", redis_url=private_redis.url(),
                    CLIPPER_MEDIA_DIR=str(media))
    ctx = context(env, stack_ctx)
    clips = flag_moments(ctx, broadcast, MOMENTS[:2])
    # Fetch and transcribe first (a worker on those queues alone, until they are empty): the
    # clips then wait, `cutting`, for a worker on the media queue.
    first = worker(env, "fetch,asr", burst=True)
    workers.append(first)
    assert first.wait(120) == 0
    assert set(statuses(ctx).values()) == {"cutting"}, check_invariants(ctx)
    filler = fill_disk(small_media_disk)
    workers.append(worker(env, "media"))

    def disk_full_seen() -> list[str]:
        assert "failed" not in statuses(ctx).values(), check_invariants(ctx)
        return [e for e in stage_errors(ctx) if "disk" in e.lower()]
    poll(disk_full_seen, 60, "a cut to hit the full disk")
    filler.unlink()  # space is back: the retry, after its backoff, succeeds
    # No `clipper up` here: the reconciler runs from the test, as it would every few seconds.
    assert_recovered(ctx, len(clips), time.monotonic(), tick=lambda: reconcile(ctx))
    assert {"cut"} == {stage for stage, in _runs_with_errors(ctx)}


@pytest.mark.parametrize("kind", [pytest.param("file", id="transcription"),
                                  pytest.param("url", id="fetch")])
def test_disk_full_before_the_flag_is_retried_not_failed(
        kind, tmp_path, broadcast, broadcast_site, small_media_disk, private_redis, up,
        stack_ctx):
    """The first stage to write to the full media disk: a local file is not copied, so its
    transcription (the audio it extracts); a URL's fetch."""
    media = small_media_disk / "media"
    stack = up(stack_env(tmp_path / "home", redis_url=private_redis.url(),
                         CLIPPER_MEDIA_DIR=str(media)), workers=1)
    ctx = context(stack.env, stack_ctx)
    filler = fill_disk(small_media_disk)
    source = str(broadcast) if kind == "file" else f"{broadcast_site[0]}/show.mp4"
    clips = [file_flag(ctx, ANN, source, *MOMENTS[0]).clip_id]

    def disk_full_seen() -> list[str]:
        assert "failed" not in statuses(ctx).values(), check_invariants(ctx)["failed"]
        return [e for e in stage_errors(ctx) if "disk" in e.lower()]
    poll(disk_full_seen, 60, "a stage to hit the full disk")
    filler.unlink()
    assert_recovered(ctx, len(clips), time.monotonic())


def _runs_with_errors(ctx: Context) -> list[tuple[str]]:
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as s:
        return list(s.execute(select(StageRun.stage).where(StageRun.error.is_not(None))))


def test_the_embedded_redis_killed_alone_is_started_again(tmp_path, broadcast, up, stack_ctx):
    """`clipper up`'s own Redis dies (kill -9) with clips in flight: the supervisor starts it
    again from its AOF (the workers, which exit without it, are restarted as usual), and every
    clip becomes ready."""
    import psutil

    stack = up(stack_env(tmp_path / "home", redis_url=""))
    ctx = context(stack.env, stack_ctx)
    first = (stack.state() or {}).get("redis_pid")
    assert first and psutil.pid_exists(first)
    clips = flag_moments(ctx, broadcast)
    poll(lambda: in_flight(ctx), 60, "a stage under way", every=0.02)
    os.kill(first, signal.SIGKILL)
    since = time.monotonic()

    def restarted() -> int | None:
        pid = (stack.state() or {}).get("redis_pid")
        return pid if pid and pid != first and psutil.pid_exists(pid) else None
    poll(restarted, 30, "the embedded Redis started again", every=0.1)
    assert_recovered(ctx, len(clips), since)
    assert "the embedded Redis exited" in (stack.home / "up.out").read_text(), stack.log()
