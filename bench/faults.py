"""Fault-suite figures: the surge's accept times and each fault's recovery time, on the real stack.

The surge: 500 flags in 60 s from 50 long-lived clients (threads calling `file_flag` as the
dashboard's sessions do, 4% of the flags through `clipper flag --json` subprocesses), over 60
moments on 3 sources (many flags per moment, clustered as each moment airs), while `clipper up`'s
two workers fetch, cut and transcribe them and a reviewer claims and approves each clip that is
ready — on SQLite and on PostgreSQL. Printed: p50/p99 time to accept a flag, flags lost, moments
split over two clips, flaggers not credited.

The faults, each on a fresh `clipper up --no-dashboard` (2 workers; CLIPPER_LEASE_SECONDS and
CLIPPER_RECONCILE_SECONDS at their shipped defaults unless --lease / --reconcile say otherwise)
with clips in flight, on both databases unless said: a worker killed -9 mid-fetch/cut/asr/
render; every process of the stack killed -9 and `clipper up` started again; Ctrl-C and started
again (SQLite); Redis killed -9 and started empty; Redis with an append-only file (the compose
layout) killed -9 and started from it; PostgreSQL cut off for 10 s (a proxy drops and refuses its
connections); SQLite held by a 10 s reader; the media disk full during a cut, a transcription and
a fetch (a 32 MiB tmpfs; needs root); the team's webhook down, slow (one byte a second) or
answering 500 while clips become ready (all three on SQLite, the slow one on PostgreSQL too);
the recorder killed -9 mid-segment with an HLS and a TS channel recording. Printed: recovery time
(from the fault's end until every clip is ready; for the webhook, until every clip-ready message
is delivered; for the recorder, until both channels record again), and whether any clip failed,
any moment has two clips, any result was written twice, or any temporary file was left.

Writes the tables to docs/reliability.md: a whole run rewrites it; a run of some cases (--only,
--database) replaces those rows (and adds new ones), marking them with when and where they were
measured, and keeps the rest.
Usage: python bench/faults.py [--quick] [--only CASE,...] [--database sqlite|postgresql]
                              [--lease S] [--reconcile S] [--no-doc]
CASE: surge, worker, host, ctrl-c, redis, aof, postgres, sqlite, disk, webhook, recorder.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from faultparts import (  # noqa: E402  (tests/faults/faultparts.py: the newer injectors)
    AofRedis,
    WebHook,
    channel_gaps,
    channel_segments,
    job_known,
    outbox_rows,
    recorder_pid,
    requeued,
    stage_jobs,
    unix,
    unqueued,
    up_log_size,
    waiting_jobs,
)
from figures import percentile  # noqa: E402  (bench/figures.py, beside this script)
from pgdb import scratch_postgres  # noqa: E402  (tests/pgdb.py: throwaway PostgreSQL databases)

from clipper.context import Context  # noqa: E402
from clipper.media.live import PTS_HZ, pts_delta  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.pipeline.reconciler import reconcile  # noqa: E402
from clipper.services import review  # noqa: E402
from clipper.services.flags import file_flag  # noqa: E402
from clipper.settings import Settings  # noqa: E402
from testmedia.faults import (  # noqa: E402
    ClipperUp,
    RedisServer,
    TcpProxy,
    check_invariants,
    fill_disk,
    open_stages,
    problems,
    run_surge,
    spread_moments,
    stack_env,
    stage_errors,
    statuses,
    surge_findings,
    tmpfs,
    url_target,
    via_proxy,
    wait_for,
)
from testmedia.live import LiveServer, make_live_media  # noqa: E402
from testmedia.mediagen import make_video, serve_dir  # noqa: E402

CACHE = ROOT / "bench" / "out" / "faults"
DOC = ROOT / "docs" / "reliability.md"
TEXT = ("The health secretary said waiting lists would fall by forty percent before the "
        "election. Opposition leaders called the promise unrealistic. The prime minister "
        "promised three hundred new schools in the debate tonight.")
#: Four moments of the 30 s broadcast, one clip each.
MOMENTS = ((1.0, 7.0), (8.0, 14.0), (15.0, 21.0), (22.0, 28.0))
RECOVERY_TARGET = 90.0
#: The share of the surge's flags sent through `clipper flag --json` subprocesses: each starts
#: Python (about 0.7 s of CPU), so on a 2-vCPU machine a larger share measures process start-up.
CLI_SHARE = 0.04
GIVE_UP = 240.0  # seconds a case waits for recovery before it reports the clips as stuck
ANN = Actor.operator("ann")
#: CLIPPER_LEASE_SECONDS and CLIPPER_RECONCILE_SECONDS of every stack (set from the options).
TIMING = {"lease": 30.0, "reconcile": 30.0}


# ---- media ---------------------------------------------------------------------------------

def media(*, surge: bool = True) -> Path:
    """The 30 s broadcast of the tests, and (for the `surge`) a 10-minute one (the surge's 3
    sources are copies of it under 3 names), cached under bench/out/faults."""
    CACHE.mkdir(parents=True, exist_ok=True)
    short = CACHE / "show.mp4"
    if not short.exists():
        make_video(short, 30, gop=50, speech=TEXT)
    if not surge:
        return CACHE
    long = CACHE / "long.mp4"
    if not long.exists():
        make_video(long, 600, gop=50, speech=" ".join([TEXT] * 36))
    for k in "abc":
        copy = CACHE / f"long-{k}.mp4"
        if not copy.exists():
            shutil.copy(long, copy)
    return CACHE


# ---- one case's world ----------------------------------------------------------------------

@dataclass
class World:
    """A home, a database (SQLite in the home or a scratch PostgreSQL), a Redis (private, or
    `clipper up`'s embedded one), and the stacks and contexts built on them."""

    home: Path
    database: str
    database_url: str = ""
    redis: RedisServer | None = None
    stacks: list[ClipperUp] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return stack_env(self.home / "home", database_url=self.database_url,
                         redis_url=self.redis.url() if self.redis else "",
                         lease_seconds=TIMING["lease"], reconcile_seconds=TIMING["reconcile"],
                         **extra)

    def up(self, env: dict[str, str] | None = None, workers: int = 2) -> ClipperUp:
        stack = ClipperUp(env or self.env(), workers=workers)
        self.stacks.append(stack)
        return stack.start()

    def context(self, env: dict[str, str], **overrides: str) -> Context:
        ctx = Context.build(Settings.from_env({**env, **overrides}))
        self.contexts.append(ctx)
        return ctx


@contextlib.contextmanager
def world(database: str, *, embedded_redis: bool = False, aof: bool = False) -> Iterator[World]:
    """`aof`: the private Redis keeps an append-only file (the compose layout's)."""
    home = Path(tempfile.mkdtemp(prefix="clipper-faults-"))
    with contextlib.ExitStack() as stack:
        w = World(home, database)
        if not embedded_redis:
            w.redis = stack.enter_context(AofRedis() if aof else RedisServer())
        if database == "postgresql":
            w.database_url = stack.enter_context(scratch_postgres("clipper_faults")).url
        try:
            yield w
        finally:
            for s in w.stacks:
                s.stop()
            for ctx in w.contexts:
                with contextlib.suppress(Exception):
                    ctx.close()
    shutil.rmtree(home, ignore_errors=True)


# ---- recovery ------------------------------------------------------------------------------

@dataclass
class FaultRow:
    fault: str
    database: str
    clips: int
    outage: float  # seconds the fault lasted (0: instantaneous)
    recovery: float | None  # seconds from the fault's end to every clip done; None: never
    outcome: str
    broken: dict[str, Any]  # invariants that did not hold
    retries: int  # stage runs that ended in a temporary error or a lost worker
    note: str = ""

    @property
    def ok(self) -> bool:
        return (self.recovery is not None and self.recovery <= RECOVERY_TARGET
                and not self.broken)


def recover(ctx: Context, clips: int, since: float, *, done: tuple[str, ...] = ("ready",),
            tick: Callable[[], None] | None = None) -> tuple[float | None, str]:
    """Seconds from `since` until all `clips` are in `done` (None if one failed or GIVE_UP
    passed), and the outcome in words."""
    deadline = since + GIVE_UP
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        now = statuses(ctx)
        failed = {c: s for c, s in now.items() if s == "failed"}
        if failed:
            errors = check_invariants(ctx)["failed"]
            return None, "failed: " + "; ".join(f"clip {c}: {(e or '')[:160]}"
                                                 for c, e in errors.items())
        if len(now) == clips and all(s in done for s in now.values()):
            return time.monotonic() - since, "all " + "/".join(done)
        time.sleep(0.25)
    return None, f"stuck: {statuses(ctx)}"


def settle(ctx: Context, done: tuple[str, ...] | None = ("ready",)) -> dict[str, Any]:
    """The invariants that do not hold, once runs have had 15 s to end and clean up."""
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not problems(check_invariants(ctx, done=done)), 15, "invariants")
    return problems(check_invariants(ctx, done=done))


def row(name: str, w: World, ctx: Context, clips: int, outage: float, since: float,
        done: tuple[str, ...] = ("ready",), tick: Callable[[], None] | None = None,
        note: str = "") -> FaultRow:
    took, outcome = recover(ctx, clips, since, done=done, tick=tick)
    broken = settle(ctx, done) if took is not None else problems(
        check_invariants(ctx, done=done), ignore=("not_done", "failed", "open_runs"))
    r = FaultRow(name, w.database, clips, outage, took, outcome, broken, retried_runs(ctx), note)
    rec = f"{took:.1f} s" if took is not None else "never"
    print(f"  {name} [{w.database}]: recovery {rec}, {outcome}, retried runs {r.retries}"
          + (f", BROKEN {broken}" if broken else "") + (f" ({note})" if note else ""),
          flush=True)
    return r


def retried_runs(ctx: Context) -> int:
    """Stage runs that ended in an error and were run again: every errored run but the one
    that failed its clip, if it failed (a temporary error, a worker lost)."""
    from sqlalchemy import select

    from clipper.storage.tables import Clip, StageRun

    with ctx.db.read() as s:
        runs = s.execute(select(StageRun.clip_id, StageRun.error)
                         .where(StageRun.error.is_not(None))).all()
        failed = dict(s.execute(select(Clip.id, Clip.error).where(Clip.status == "failed")).all())
    return sum(1 for clip_id, error in runs if failed.get(clip_id) != error)


def flag_all(ctx: Context, source: str, moments=MOMENTS) -> list[int]:
    return [file_flag(ctx, ANN, source, s, e, note=f"moment at {s:g}").clip_id
            for s, e in moments]


def in_flight(ctx: Context, stage: str | None = None) -> bool:
    running = open_stages(ctx)
    return bool(running) and (stage is None or stage in running) and any(
        s != "ready" for s in statuses(ctx).values())


def worker_of(ctx: Context, stage: str) -> int | None:
    """The pid of the worker running `stage` now (its run's `worker` is host:pid)."""
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as s:
        tag = s.scalar(select(StageRun.worker).where(StageRun.ended_at.is_(None),
                                                     StageRun.stage == stage))
    return int(tag.rsplit(":", 1)[1]) if tag else None


# ---- the faults ----------------------------------------------------------------------------

def worker_kill(database: str, stage: str, url: str) -> FaultRow:
    with world(database) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        done: tuple[str, ...] = ("ready",)
        moments = MOMENTS
        if stage == "render":
            moments, done = MOMENTS[:1], ("exported",)
        clips = flag_all(ctx, url, moments)
        if stage == "render":
            wait_for(lambda: statuses(ctx)[clips[0]] == "ready", 120, "the clip ready")
            rev = Actor("rev", "social")
            review.claim(ctx, rev, clips[0])
            review.approve(ctx, rev, clips[0])
        pid = wait_for(lambda: worker_of(ctx, stage), 120, f"a {stage} under way", every=0.01)
        stack.kill_worker(pid)
        return row(f"worker kill -9 mid-{stage}", w, ctx, len(clips), 0.0, time.monotonic(),
                   done=done)


def host_kill(database: str, url: str) -> FaultRow:
    with world(database, embedded_redis=True) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        clips = flag_all(ctx, url)
        wait_for(lambda: in_flight(ctx), 60, "a stage under way", every=0.05)
        killed = stack.kill_all()  # Redis (embedded, AOF every second) included
        since = time.monotonic()
        stack.start()
        return row("every process kill -9, `clipper up` again", w, ctx, len(clips), 0.0, since,
                   note=f"{killed} processes killed, embedded Redis")


def ctrl_c(database: str, url: str) -> FaultRow:
    with world(database, embedded_redis=True) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        clips = flag_all(ctx, url)
        wait_for(lambda: in_flight(ctx), 60, "a stage under way", every=0.05)
        since = time.monotonic()
        rc = stack.interrupt()
        stopped = time.monotonic() - since
        stack.start()
        return row("Ctrl-C mid-job, `clipper up` again", w, ctx, len(clips), 0.0, since,
                   note=f"stopped in {stopped:.1f} s (rc {rc}), embedded Redis")


def embedded_redis_kill(database: str, url: str) -> FaultRow:
    """Only `clipper up`'s own Redis dies: its supervisor starts it again from its AOF."""
    import psutil

    with world(database, embedded_redis=True) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        clips = flag_all(ctx, url)
        wait_for(lambda: in_flight(ctx), 60, "a stage under way", every=0.05)
        pid = (stack.state() or {}).get("redis_pid")
        psutil.Process(pid).kill()
        since = time.monotonic()

        def again() -> bool:
            new = (stack.state() or {}).get("redis_pid")
            return bool(new and new != pid and psutil.pid_exists(new))
        wait_for(again, 60, "the embedded Redis started again", every=0.1)
        back = time.monotonic() - since
        return row("embedded Redis kill -9 (alone)", w, ctx, len(clips), 0.0, since,
                   note=f"started again by clipper up in {back:.1f} s")


def redis_restart(database: str, url: str) -> FaultRow:
    with world(database) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        clips = flag_all(ctx, url)
        wait_for(lambda: in_flight(ctx), 60, "a stage under way", every=0.05)
        assert w.redis is not None
        w.redis.restart()
        return row("Redis kill -9, restarted empty", w, ctx, len(clips), 0.0, time.monotonic())


def postgres_cut(url: str, seconds: float = 10.0) -> FaultRow:
    with world("postgresql") as w, TcpProxy(*url_target(w.database_url)) as proxy:
        env = w.env()
        env["DATABASE_URL"] = via_proxy(w.database_url, proxy)
        w.up(env)
        ctx = w.context(env, DATABASE_URL=w.database_url)  # the bench's own view: never cut
        clips = flag_all(ctx, url)
        wait_for(lambda: in_flight(ctx), 60, "a stage under way", every=0.05)
        proxy.cut()
        time.sleep(seconds)  # the fault: PostgreSQL away
        proxy.restore()
        return row(f"PostgreSQL cut off {seconds:g} s", w, ctx, len(clips), seconds,
                   time.monotonic())


def sqlite_reader(url: str, seconds: float = 10.0) -> FaultRow:
    with world("sqlite") as w:
        stack = w.up()
        ctx = w.context(stack.env)
        reader = sqlite3.connect(stack.settings.home / "clipper.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM clips").fetchone()
        t0 = time.monotonic()
        accept = []
        clips = []
        for s, e in MOMENTS:
            t = time.perf_counter()
            clips.append(file_flag(ctx, ANN, url, s, e).clip_id)
            accept.append(time.perf_counter() - t)
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))  # the fault: a long reader
        reader.execute("COMMIT")
        reader.close()
        return row(f"SQLite held by a {seconds:g} s reader", w, ctx, len(clips), seconds,
                   time.monotonic(),
                   note=f"flags accepted meanwhile in max {max(accept) * 1000:.0f} ms")


def worker(env: dict[str, str], queues: str, *, burst: bool = False) -> subprocess.Popen:
    argv = [sys.executable, "-m", "clipper.cli", "worker", "--queues", queues]
    return subprocess.Popen(argv + (["--burst"] if burst else []), cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def disk_full_cut(database: str, url: str) -> FaultRow:
    """Fetch and transcribe first (a worker on those queues), fill the disk, then a worker on
    the media queue cuts: the cut meets the full disk; space comes back once it has."""
    with world(database) as w, tmpfs(w.home / "disk", "32m") as disk:
        env = w.env(CLIPPER_MEDIA_DIR=str(disk / "media"))
        ctx = w.context(env)
        clips = flag_all(ctx, url, MOMENTS[:2])
        procs = [worker(env, "fetch,asr", burst=True)]
        try:
            procs[0].wait(120)
            filler = fill_disk(disk)
            procs.append(worker(env, "media"))
            wait_for(lambda: any("disk" in e.lower() for e in stage_errors(ctx)), 60,
                     "a cut to meet the full disk")
            t0 = time.monotonic()
            filler.unlink()
            return row("disk full during a cut", w, ctx, len(clips), 0.0, t0,
                       tick=lambda: reconcile(ctx), note="32 MiB tmpfs; freed once a cut met it")
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)


def disk_full_before_flag(database: str, source: str, stage: str) -> FaultRow:
    """The media disk full before the flag: `stage` is the first to write there (a local file
    is not copied, so its transcription is; a URL's fetch is)."""
    with world(database) as w, tmpfs(w.home / "disk", "32m") as disk:
        env = w.env(CLIPPER_MEDIA_DIR=str(disk / "media"))
        stack = w.up(env, workers=1)
        ctx = w.context(stack.env)
        filler = fill_disk(disk)
        clips = flag_all(ctx, source, MOMENTS[:1])
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: stage_errors(ctx) or "failed" in statuses(ctx).values(), 60,
                     "a stage to meet the full disk")
        t0 = time.monotonic()
        filler.unlink()
        kind = "URL" if "://" in source else "local file"
        return row(f"disk full during a {stage}", w, ctx, len(clips), 0.0, t0,
                   note=f"32 MiB tmpfs, full before the flag; {kind} source")


def redis_aof(database: str, url: str) -> FaultRow:
    """The compose layout's Redis (append-only file, fsync every second) killed -9 with jobs
    waiting and a stage running, then started from its file on the same port: nothing should
    need rebuilding but a job a worker had taken and not started (the reconciler's)."""
    import redis

    from clipper.pipeline.jobqueue import taken_unstarted

    with world(database, aof=True) as w:
        stack = w.up()
        ctx = w.context(stack.env)
        clips = flag_all(ctx, url)
        assert isinstance(w.redis, AofRedis)
        conn = redis.Redis.from_url(w.redis.url(), socket_timeout=5)
        waiting = wait_for(lambda: (waiting_jobs(conn) or None) if open_stages(ctx) else None,
                           60, "jobs waiting while a stage runs", every=0.02)
        log_from = up_log_size(stack)
        w.redis.restart()
        since = time.monotonic()
        gone = sorted(j for j in waiting if not job_known(conn, j))
        cut_off = sorted(j for j in stage_jobs(conn) if taken_unstarted(conn, j))
        r = row("Redis (append-only file) kill -9, restarted from it", w, ctx, len(clips), 0.0,
                since)
        # The reconciler's by design: jobs cut off from Redis between their dequeue and start,
        # and next stages a worker could not queue while Redis was away.
        expected = sorted({int(j.split("-")[1]) for j in cut_off} | unqueued(stack))
        again = sorted(requeued(stack, after=log_from))
        repeated = {k: n for k, n in Counter(stage_run_keys(ctx)).items() if n > 1}
        r.broken.update({k: v for k, v in {
            "jobs_lost_with_the_kill": gone, "requeued_beyond_cut_off": again != expected
            and again, "stages_run_twice": repeated}.items() if v})
        r.note = (f"{len(waiting)} jobs waiting at the kill, {len(waiting) - len(gone)} kept; "
                  f"{len(cut_off)} taken by a worker and not started; clips re-queued by the "
                  f"reconciler: {len(again)}; stage runs repeated: {sum(repeated.values())}")
        conn.close()
        return r


def stage_run_keys(ctx: Context) -> list[tuple[int, int, str]]:
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as s:
        return [tuple(k) for k in s.execute(select(StageRun.clip_id, StageRun.clip_version,
                                                   StageRun.stage))]


#: The webhook's faults: WebHook mode, words for the table, what its failed attempts say.
HOOK_FAULTS = {"down": ("webhook down (connections refused)", "Connection refused"),
               "drip": ("webhook slow (answers 1 byte/s)", "timed out"),
               "500": ("webhook answering 500", "HTTP 500")}


def webhook_fault(database: str, mode: str, url: str) -> FaultRow:
    """The team's webhook broken from before the flags until every clip is ready and every
    clip-ready message has failed at least once; then it works. Recovery: from then until the
    stack's own deliverer has delivered every message (the outbox's backoff: 5, 15, 45 s)."""
    from clipper.net.webhook import ATTEMPT_SECONDS

    name, error = HOOK_FAULTS[mode]
    with world(database) as w, WebHook(mode) as hook:
        stack = w.up(w.env(CLIPPER_WEBHOOK_URL=hook.url))
        ctx = w.context(stack.env)
        t0 = time.monotonic()
        clips = flag_all(ctx, url)
        ready, outcome = recover(ctx, len(clips), t0)
        if ready is None:
            return FaultRow(name, database, len(clips), 0.0, None, "clips " + outcome,
                            problems(check_invariants(ctx), ignore=("not_done", "failed")),
                            retried_runs(ctx))

        def failed_once() -> list[Any] | None:
            rows = outbox_rows(ctx)
            return rows if len(rows) == len(clips) and all(r.attempts for r in rows) else None
        rows = wait_for(failed_once, 60 + len(clips) * ATTEMPT_SECONDS, "every message tried")
        wrong = [r.last_error for r in rows if error not in (r.last_error or "")]
        hook.set("200")
        back = time.monotonic()
        delivered = None
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: {r.state for r in outbox_rows(ctx)} == {"delivered"}, GIVE_UP,
                     "every message delivered", every=0.25)
            delivered = time.monotonic() - back
        with contextlib.suppress(TimeoutError):  # the hook notes a delivery after answering it
            wait_for(lambda: len(hook.delivered) >= len(clips), 10, "the hook's notes",
                     every=0.05)
        rows = outbox_rows(ctx)
        sent = Counter(b["clip_id"] for b in hook.delivered)
        broken = settle(ctx)
        broken.update({k: v for k, v in {
            "messages_not_delivered": [r.payload.get("clip_id") for r in rows
                                       if r.state != "delivered"],
            "sent_twice": [c for c, n in sent.items() if n > 1],
            "not_sent": sorted(set(clips) - set(sent)),
            "unexpected_errors": wrong[:2]}.items() if v})
        attempts = [r.attempts for r in rows]
        r = FaultRow(name, database, len(clips), back - t0, delivered,
                     "all ready; every clip-ready message delivered once" if delivered
                     else f"messages: {Counter(r.state for r in rows)}", broken,
                     retried_runs(ctx),
                     f"clips ready {ready:.0f} s after the flags meanwhile; attempts per "
                     f"message {min(attempts)}-{max(attempts)}")
    print(f"  {name} [{database}]: delivered {_s(delivered)} after the hook came back, "
          f"outage {r.outage:.0f} s" + (f", BROKEN {r.broken}" if r.broken else ""), flush=True)
    return r


def recorder_kill(database: str) -> FaultRow:
    """The recorder killed -9 half-way through a segment of a TS stream channel (an HLS
    channel recorded by the same process); flags on both channels around the kill. Recovery:
    from the kill until both channels have stored new segments."""
    from clipper.services.channels import add_channel
    from clipper.services.flags import flag_channel

    before_s, after_s = 6.0, 14.0
    with world(database) as w, LiveServer(make_live_media(seg_seconds=2.0)) as live:
        live.add("hls")
        live.add("ts")
        stack = w.up()
        ctx = w.context(stack.env)
        add_channel(ctx, ANN, "hls", live.url("hls"))
        add_channel(ctx, ANN, "ts", live.url("ts", "stream.ts"))
        wait_for(lambda: len(channel_segments(ctx, "ts")) >= 3
                 and len(channel_segments(ctx, "hls")) >= 6, 60, "both channels recording")
        wait_for(lambda: 1.5 <= time.time() - unix(channel_segments(ctx, "ts")[-1].arrived_at)
                 <= 3.0, 20, "half-way through a TS segment", every=0.05)
        old = recorder_pid(stack)
        assert old is not None
        before = {n: channel_segments(ctx, n) for n in ("hls", "ts")}
        os.kill(old, signal.SIGKILL)
        killed, t0 = time.time(), time.monotonic()
        clips = [flag_channel(ctx, ANN, n, start=killed - before_s, end=killed + after_s).clip_id
                 for n in ("hls", "ts")]
        wait_for(lambda: recorder_pid(stack) not in (None, old), 30, "a new recorder")
        restarted = time.monotonic() - t0
        wait_for(lambda: all(len(channel_segments(ctx, n)) > len(before[n]) for n in before),
                 GIVE_UP, "both channels recording again")
        resumed = time.monotonic() - t0
        ready, outcome = recover(ctx, len(clips), t0)
        ts = channel_segments(ctx, "ts")
        gaps = {n: channel_gaps(ctx, n) for n in ("hls", "ts")}
        last = before["ts"][-1]
        first = next(s for s in ts if s.wall_start > last.wall_start)
        missing = pts_delta(last.first_pts, first.first_pts) / PTS_HZ - last.duration
        broken = settle(ctx) if ready is not None else problems(
            check_invariants(ctx), ignore=("not_done", "failed", "open_runs"))
        gap = gaps["ts"][0][1] - gaps["ts"][0][0] if len(gaps["ts"]) == 1 else None
        broken.update({k: v for k, v in {
            "hls_gaps": gaps["hls"], "ts_gaps_not_one": len(gaps["ts"]) != 1 and gaps["ts"],
            "ts_gap_not_the_media_missing": gap is not None and abs(gap - missing) > 0.15
            and (gap, missing)}.items() if v})
        r = FaultRow("recorder kill -9 mid-segment (an HLS and a TS channel)", database,
                     len(clips), 0.0, resumed,
                     outcome if ready is None else
                     f"recording resumed; both flags' clips ready {ready:.0f} s after the kill",
                     broken, retried_runs(ctx),
                     f"restarted in {restarted:.1f} s; TS gap {_s(gap)} (media missing "
                     f"{missing:.1f} s), HLS none; flags {before_s:g} s before to {after_s:g} s "
                     "after the kill")
    print(f"  {r.fault} [{database}]: recording again {resumed:.1f} s after the kill; {r.outcome}"
          + (f", BROKEN {r.broken}" if r.broken else "") + f" ({r.note})", flush=True)
    return r


# ---- the surge -----------------------------------------------------------------------------

@dataclass
class SurgeRow:
    database: str
    flags: int
    clients: int
    seconds: float
    wall: float
    moments: int
    via_cli: int
    p50_ms: float
    p99_ms: float
    cli_p50_s: float
    cli_p99_s: float
    lost: int
    duplicates: int
    uncredited: int
    errors: list[str]
    approved: int
    conflicts: int
    broken: dict[str, Any]
    load: tuple[float, float]  # the machine's 1-minute load average before and after

    @property
    def target_ms(self) -> float:
        return 200.0 if self.database == "postgresql" else 500.0


def surge(database: str, folder: Path, *, flags: int, clients: int, seconds: float,
          workers: int = 2, cli_share: float = CLI_SHARE) -> SurgeRow:
    with world(database) as w, serve_dir(folder) as (base, _):
        stack = w.up(workers=workers)
        load = os.getloadavg()[0]
        ctx = w.context(stack.env)
        sources = [f"{base}/long-{k}.mp4" for k in "abc"]
        moments = spread_moments(sources, 60, gap=29.0, length=20.0, jitter=5.0, first=5.0)
        result = run_surge(ctx, stack.env, moments, flags=flags, clients=clients,
                           seconds=seconds, cli_share=cli_share)
        found = surge_findings(ctx, result, moments)
        inv = check_invariants(ctx, done=None)
        svc = [a.seconds * 1000 for a in result.accepted if a.via == "service"]
        cli = [a.seconds for a in result.accepted if a.via == "cli"]
        r = SurgeRow(
            database, flags, clients, seconds, result.wall, len(moments), len(cli),
            percentile(svc, .5), percentile(svc, .99),
            percentile(cli, .5) if cli else 0.0, percentile(cli, .99) if cli else 0.0,
            lost=len(found["lost"]) + len(found["moved"]),
            duplicates=len(found["moments_split"]) + len(inv["moments_with_two_clips"])
            + len(inv["duplicate_results"]) + len(inv["duplicate_renders"]),
            uncredited=len(found["uncredited"]),
            errors=result.errors + result.reviewer_errors,
            approved=len(result.approved), conflicts=result.conflicts,
            broken={k: v for k, v in found.items() if v and k != "extra_flags"},
            load=(load, os.getloadavg()[0]))
    print(f"  surge [{database}]: {len(result.accepted)}/{flags} accepted in {r.wall:.0f} s "
          f"from {clients} clients; service p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms "
          f"(target {r.target_ms:.0f}); CLI ({r.via_cli}) p50 {r.cli_p50_s:.2f} s, "
          f"p99 {r.cli_p99_s:.2f} s; lost {r.lost}, duplicates {r.duplicates}, "
          f"uncredited {r.uncredited}, errors {len(r.errors)}; reviewer approved {r.approved} "
          f"({r.conflicts} lost races); load {r.load[0]:.1f} -> {r.load[1]:.1f}"
          + (f"; BROKEN {r.broken}" if r.broken else ""),
          flush=True)
    for e in r.errors[:5]:
        print(f"    error: {e}")
    return r


# ---- the report ----------------------------------------------------------------------------

def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (out.splitlines() or ["?"])[0].strip()


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = _version(["psql", "--version"]).replace("psql (PostgreSQL)", "PostgreSQL")
    redis = _version(["redis-server", "--version"]).split(" sha=")[0].replace(" server v=", " ")
    ffmpeg = " ".join(_version(["ffmpeg", "-version"]).split()[:3]).replace(" version", "")
    return (f"{cpu}, {os.cpu_count()} vCPU, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
            f"{pg}; {redis}; {ffmpeg}")


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f} s"


SURGE_HEADER = ("| database | flags accepted | wall | accept p50 | accept p99 (target) "
                "| CLI p50 / p99 | lost | duplicates | uncredited | errors "
                "| approved (lost races) | load |")
FAULT_HEADER = ("| fault | database | clips | outage | recovery (<= 90 s) | outcome "
                "| retried runs | invariants | note |")
#: How a row from a run of some cases is marked (in its note, or its database cell).
MEASURED = "measured {when}"


def _surge_line(r: SurgeRow, when: str = "") -> str:
    mark = "ok" if r.p99_ms <= r.target_ms else "MISSED"
    database = r.database + (f" ({MEASURED.format(when=when)})" if when else "")
    return (f"| {database} | {r.flags - len(r.errors)}/{r.flags} ({r.via_cli} by CLI) | "
            f"{r.wall:.0f} s | {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms ({r.target_ms:.0f}, "
            f"{mark}) | {r.cli_p50_s:.2f} s / {r.cli_p99_s:.2f} s | {r.lost} | "
            f"{r.duplicates} | {r.uncredited} | {len(r.errors)} | {r.approved} "
            f"({r.conflicts}) | {r.load[0]:.1f} -> {r.load[1]:.1f} |")


def _fault_line(f: FaultRow, when: str = "") -> str:
    broken = "ok" if not f.broken else ", ".join(f"{k}: {v}" for k, v in f.broken.items())
    outcome = f.outcome.replace("|", "/")
    note = "; ".join(filter(None, [MEASURED.format(when=when) if when else "", f.note]))
    return (f"| {f.fault} | {f.database} | {f.clips} | {f.outage:.0f} s | {_s(f.recovery)} "
            f"{'ok' if f.ok else 'MISSED'} | {outcome[:300]} | {f.retries} | "
            f"{broken[:200].replace('|', '/')} | {note.replace('|', '/')} |")


def _misses(surges: list[SurgeRow], faults: list[FaultRow]) -> list[str]:
    misses = [f"- {f.fault} [{f.database}]: {f.outcome[:240]}"
              + (f"; broken: {f.broken}"[:300] if f.broken else "")
              + "".join(f" — {why}" for text, why in KNOWN.items() if text in f.outcome)
              for f in faults if not f.ok]
    misses += [f"- the surge [{r.database}]: accept p99 {r.p99_ms:.0f} ms over the "
               f"{r.target_ms:.0f} ms target, at a load average of {r.load[0]:.1f} -> "
               f"{r.load[1]:.1f} on {os.cpu_count()} vCPU (the two workers' ffmpeg and Whisper "
               "share them with the clients and the database)" for r in surges
               if r.p99_ms > r.target_ms]
    misses += [f"- the surge [{r.database}]: {r.lost} lost, {r.duplicates} duplicates, "
               f"{r.uncredited} uncredited, errors {r.errors[:3]}, broken {r.broken}"
               for r in surges if r.lost or r.duplicates or r.uncredited or r.errors or r.broken]
    return misses


def _table(text: str, header: str) -> list[str]:
    """The rows of the table under `header` in a document."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header[:20]):
            return list(itertools.takewhile(lambda x: x.startswith("|"), lines[i + 2:]))
    return []


def _key(line: str, cells: int) -> tuple[str, ...]:
    """A table row's first `cells` cells, less any "(measured ...)" mark."""
    parts = [c.strip() for c in line.strip().strip("|").split("|")][:cells]
    return tuple(re.sub(r" \(measured [^)]*\)$", "", c) for c in parts)


def _merge(old: list[str], new: list[str], cells: int) -> list[str]:
    """`old` rows with those of `new` that have the same key in their place; the other new
    rows after them."""
    fresh = {_key(line, cells): line for line in new}
    kept = [fresh.pop(_key(line, cells), line) for line in old]
    return kept + list(fresh.values())


def _section(text: str, title: str) -> list[str]:
    """The non-blank lines of a document's `## title` section."""
    lines = text.splitlines()
    if f"## {title}" not in lines:
        return []
    body = itertools.takewhile(lambda x: not x.startswith("## "),
                               lines[lines.index(f"## {title}") + 1:])
    return [line for line in body if line.strip()]


def write_doc(surges: list[SurgeRow], faults: list[FaultRow], args: argparse.Namespace,
              took: float, load: tuple[float, float]) -> None:
    """The whole document from a whole run; from a run of some cases (--only, --database),
    the document as it was with those rows replaced or added, marked with when and where
    they were measured."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    timing = (": the shipped defaults" if TIMING == defaults() else
              ", not the shipped defaults")
    run = "python bench/faults.py" + (" --quick" if args.quick else "") + (
        f" --only {args.only}" if args.only else "") + (
        f" --database {args.database}" if args.database else "") + (
        "" if TIMING == defaults() or args.quick
        else f" --lease {args.lease:g} --reconcile {args.reconcile:g}")
    about = (f"by `{run}` ({took / 60:.1f} minutes), on {machine()}. The machine's 1-minute "
             f"load average was {load[0]:.1f} at the start and {load[1]:.1f} at the end.")
    partial = bool(args.only or args.database) and DOC.exists()
    mark = when if partial else ""
    surge_lines = [_surge_line(r, mark) for r in surges]
    fault_lines = [_fault_line(f, mark) for f in faults]
    misses = _misses(surges, faults)
    measured = [f"Measured {when} {about}"]
    if partial:
        old = DOC.read_text()
        surge_lines = _merge(_table(old, SURGE_HEADER), surge_lines, 1)
        fault_lines = _merge(_table(old, FAULT_HEADER), fault_lines, 2)
        rerun = ({f"- {f.fault} [{f.database}]:" for f in faults}
                 | {f"- the surge [{r.database}]:" for r in surges})
        misses = [m for m in _section(old, "Missed")
                  if not any(m.startswith(k) for k in rerun)] + misses
        rows = "\n".join(surge_lines + fault_lines)
        earlier = [line for line in old.splitlines() if line.startswith("Rows noted")]
        # A note about rows measured earlier stays while any of its rows does.
        earlier = [line for line in earlier
                   if (m := re.search(r"“measured ([^”]+)”", line)) and m.group(1) in rows]
        measured = [line for line in old.splitlines() if line.startswith("Measured ")][:1]
        measured += earlier + [f"Rows noted “{MEASURED.format(when=when)}” were measured "
                               f"then, {about}"]
    lines = ["# Reliability: the fault suite's figures", ""]
    for paragraph in measured:
        lines += [paragraph, ""]
    lines += [
        "Everything runs for real: `clipper up --no-dashboard` (two workers, "
        f"`CLIPPER_LEASE_SECONDS={TIMING['lease']:g}`, `CLIPPER_RECONCILE_SECONDS="
        f"{TIMING['reconcile']:g}`{timing}), a Redis of the bench's own (or `clipper "
        "up`'s embedded one where the whole stack is killed or stopped), SQLite in the home or a "
        "scratch database on the machine's PostgreSQL, and ffmpeg and Whisper (tiny.en) on a "
        "30 s broadcast with speech served over loopback HTTP (and live channels from a "
        "loopback server for the recorder). The same checks as `tests/faults/` "
        "(`testmedia/faults.py`): every flag on a clip, no moment with two clips, no result "
        "written twice, no temporary file left.",
        "",
        "Targets: p99 time to accept a flag <= 200 ms on PostgreSQL and <= 500 ms on SQLite; "
        "recovery <= 90 s after any fault; 0 flags lost, 0 duplicates, 0 clips failed by a "
        "fault.",
        "",
    ]
    if surge_lines:
        s0 = surges[0] if surges else None
        size = (f"{s0.flags} flags planned over {s0.seconds:g} s from {s0.clients} long-lived "
                f"clients" if s0 else "500 flags planned over 60 s from 50 long-lived clients")
        lines += [
            "## The surge",
            "",
            f"{size} (threads of one process calling `file_flag` as the dashboard's sessions "
            f"do; {CLI_SHARE:.0%} through `clipper flag --json` subprocesses) over 60 moments "
            "on 3 sources, each moment's flags clustered just after it airs (so its first flags "
            "race), while the two workers fetch, cut and transcribe and a reviewer claims and "
            "approves every clip that is ready. Accept time: the `file_flag` call, from the "
            "client's side (the CLI's includes starting Python, so it is shown apart). Load: "
            "the machine's 1-minute load average before and after (other work on a shared "
            "machine shows here).",
            "",
            SURGE_HEADER,
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *surge_lines,
            "",
        ]
    if fault_lines:
        lines += [
            "## Faults",
            "",
            "Recovery: seconds from the fault's end (its injection, for a kill) until every "
            "clip is ready (the render case: exported; the webhook cases: until every "
            "clip-ready message is delivered, from when the hook works again; the recorder "
            "case: until both channels record again). Outage: how long the fault lasted (the "
            "webhook cases: from the flags until the hook works again). Retried runs: stage "
            "runs that ended in a temporary error or were lost with their worker, and were run "
            "again.",
            "",
            FAULT_HEADER,
            "|---|---|---|---|---|---|---|---|---|",
            *fault_lines,
            "",
        ]
    if misses:
        lines += ["## Missed", "", *misses, ""]
    lines += [
        "## Rerunning",
        "",
        "```sh",
        ".venv/bin/python bench/faults.py           # everything (about 20 minutes)",
        ".venv/bin/python bench/faults.py --quick   # CI-sized surge, one worker kill, the "
        "tests' timing (about 8 minutes)",
        ".venv/bin/python bench/faults.py --only surge,redis --no-doc",
        ".venv/bin/python bench/faults.py --only webhook,recorder,aof   # these rows replaced, "
        "the others kept",
        ".venv/bin/python bench/faults.py --only worker,host,disk --database postgresql",
        ".venv/bin/python bench/faults.py --lease 3 --reconcile 2   # the tests' timing",
        "```",
        "",
        "It needs what `scripts/test.sh` starts (PostgreSQL on 127.0.0.1:5432, `redis-server` "
        "on the PATH), ffmpeg and espeak-ng, and root for the disk-full cases (a tmpfs is "
        "mounted); media is generated once into `bench/out/faults/`. The CI-sized versions of "
        "these cases are in `tests/faults/` (`test_stack_faults.py`, `test_worker_faults.py`, "
        "`test_redis_aof.py`, `test_webhook_faults.py`, `test_recorder_faults.py`, "
        "`test_surge.py`; marker `faults`).",
        "",
    ]
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC.relative_to(ROOT)}")


#: Causes found for known misses, keyed by a piece of their error text.
KNOWN = {
    "audio.wav as media": "ffmpeg 5.1 exits 0 after 'No space left on device' writing the WAV, "
                          "and clipper/media/ffrun.py `run` checks only the exit status: the "
                          "truncated WAV then fails the clip as bad media instead of a "
                          "temporary error retried.",
    "ffmpeg exited with code": "yt-dlp reports only ffmpeg's exit code for a download that met "
                               "the full disk, and clipper/media/fetch.py `classify_error` makes "
                               "that a PermanentError: the clip fails instead of being retried.",
}

def defaults() -> dict[str, float]:
    """The shipped CLIPPER_LEASE_SECONDS and CLIPPER_RECONCILE_SECONDS."""
    from clipper.settings import SETTINGS

    by_env = {st.env: st.default for st in SETTINGS}
    return {"lease": float(by_env["CLIPPER_LEASE_SECONDS"]),
            "reconcile": float(by_env["CLIPPER_RECONCILE_SECONDS"])}


ALL = ("surge", "worker", "host", "ctrl-c", "redis", "aof", "postgres", "sqlite", "disk",
       "webhook", "recorder")
DATABASES = ("sqlite", "postgresql")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a CI-sized surge (150 flags, 30 clients, 20 s), one worker-kill case, "
                         "and the tests' lease and reconcile timing")
    ap.add_argument("--only", default="", help=f"comma-separated, of: {','.join(ALL)}")
    ap.add_argument("--database", choices=DATABASES, default=None,
                    help="run the cases of this database only (default: both)")
    ap.add_argument("--no-doc", action="store_true", help=f"do not write {DOC.name}")
    ap.add_argument("--lease", type=float, default=None,
                    help="CLIPPER_LEASE_SECONDS of the stacks (default: the shipped default; "
                         "with --quick, 3 as in the tests)")
    ap.add_argument("--reconcile", type=float, default=None,
                    help="CLIPPER_RECONCILE_SECONDS of the stacks (default: the shipped one; "
                         "with --quick, 2 as in the tests)")
    args = ap.parse_args()
    shipped = defaults()
    args.lease = args.lease or (3.0 if args.quick else shipped["lease"])
    args.reconcile = args.reconcile or (2.0 if args.quick else shipped["reconcile"])
    TIMING.update(lease=args.lease, reconcile=args.reconcile)
    only = set(filter(None, args.only.split(","))) or set(ALL)
    unknown = only - set(ALL)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    dbs = [d for d in DATABASES if args.database in (None, d)]
    quick = args.quick
    t0, load = time.monotonic(), os.getloadavg()[0]
    folder = media(surge="surge" in only)
    print(f"media ready ({time.monotonic() - t0:.0f} s)", flush=True)
    surges: list[SurgeRow] = []
    faults: list[FaultRow] = []
    size = dict(flags=150, clients=30, seconds=20.0) if quick else dict(
        flags=500, clients=50, seconds=60.0)
    with serve_dir(folder) as (base, _):
        url = f"{base}/show.mp4"
        if "surge" in only:
            for database in dbs:
                surges.append(surge(database, folder, **size))
        if "worker" in only:
            for database in dbs[:1] if quick else dbs:
                for stage in ("cut",) if quick else ("fetch", "cut", "asr", "render"):
                    faults.append(worker_kill(database, stage, url))
        if "host" in only:
            for database in dbs:
                faults.append(host_kill(database, url))
        if "ctrl-c" in only and "sqlite" in dbs:
            faults.append(ctrl_c("sqlite", url))
        if "redis" in only:
            for database in dbs:
                faults.append(redis_restart(database, url))
                faults.append(embedded_redis_kill(database, url))
        if "aof" in only:
            for database in dbs:
                faults.append(redis_aof(database, url))
        if "postgres" in only and "postgresql" in dbs:
            faults.append(postgres_cut(url))
        if "sqlite" in only and "sqlite" in dbs:
            faults.append(sqlite_reader(url))
        if "disk" in only:
            if os.geteuid() != 0:
                print("  disk full: skipped (mounting a tmpfs needs root)")
            else:
                for database in dbs:
                    faults.append(disk_full_cut(database, url))
                    faults.append(disk_full_before_flag(database, str(folder / "show.mp4"),
                                                        "transcription"))
                    faults.append(disk_full_before_flag(database, url, "fetch"))
        if "webhook" in only:
            for database in dbs:
                # All three on SQLite; the slow hook (the longest attempts) on PostgreSQL.
                for mode in HOOK_FAULTS if database == "sqlite" else ("drip",):
                    faults.append(webhook_fault(database, mode, url))
        if "recorder" in only:
            for database in dbs:
                faults.append(recorder_kill(database))
    took = time.monotonic() - t0
    print(f"done in {took / 60:.1f} minutes")
    if not args.no_doc:
        write_doc(surges, faults, args, took, (load, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
