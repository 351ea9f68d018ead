"""Recording live channels: cost per channel, wall-clock accuracy, and clip time from a recording.

A loopback live server (testmedia/live.py) airs N channels of 720p25 at about 3 Mbps with
EXT-X-PROGRAM-DATE-TIME; the embedded stack (`clipper up --no-dashboard`, whose `recorder` child
records every channel) records them for a few minutes. Printed:
- the recorder's CPU-seconds per channel-hour, and how many channels one core could record;
- its resident memory (RSS, peak of 0.2 s samples) and the disk used per channel-hour;
- the wall-clock error of the recorded segments against the times the server stamped (ms);
- flag -> ready for 60 s clips from the recording (through the services, as a page or the CLI
  files them), p50/p95,
  against the same 60 s of the same media from a VOD URL (an MP4 over loopback), in this run.
Usage: python bench/record.py [--channels 10] [--seconds 240] [--clips 5] [--bitrate 3M]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import percentile  # noqa: E402  (bench/figures.py, beside this script)
from sqlalchemy import select  # noqa: E402

from clipper.context import Context  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.services.clips import clip_status  # noqa: E402
from clipper.services.flags import file_flag, flag_channel  # noqa: E402
from clipper.settings import Settings  # noqa: E402
from clipper.storage.database import Database  # noqa: E402
from clipper.storage.tables import Channel, ChannelSegment  # noqa: E402
from testmedia.live import LiveServer, make_live_media  # noqa: E402
from testmedia.mediagen import serve_dir  # noqa: E402

CACHE = ROOT / "bench" / "out"
CLIP = 60.0



def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clipper(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(home: Path) -> tuple[subprocess.Popen, dict[str, str], dict]:
    env = {**os.environ, "CLIPPER_HOME": str(home), "CLIPPER_URL_ALLOWLIST": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "CLIPPER_API_PORT": str(_free_port())}
    for key in ("REDIS_URL", "DATABASE_URL"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "up", "--workers", "2",
                             "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = home / "run" / "up.json"
    deadline = time.monotonic() + 90
    while not (state.exists() and "recorder" in json.loads(state.read_text())["children"]):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("clipper up did not start (see CLIPPER_HOME/logs)")
        time.sleep(0.2)
    return proc, env, json.loads(state.read_text())


class Sampler(threading.Thread):
    """CPU time and peak RSS of one process, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak_rss, self.done = psutil.Process(pid), 0, False

    def cpu(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def run(self) -> None:
        while not self.done:
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.2)


def segments(home: Path) -> dict[str, list[ChannelSegment]]:
    db = Database(Settings.from_env({"CLIPPER_HOME": str(home)}).database_url)
    try:
        with db.session() as session:
            rows = session.execute(select(Channel.name, ChannelSegment)
                                   .join(Channel, Channel.id == ChannelSegment.channel_id)
                                   .order_by(ChannelSegment.wall_start)).all()
            out: dict[str, list[ChannelSegment]] = {}
            for name, seg in rows:
                session.expunge(seg)
                out.setdefault(name, []).append(seg)
            return out
    finally:
        db.dispose()


def wall_errors_ms(server: LiveServer, recorded: dict[str, list[ChannelSegment]]) -> list[float]:
    """|stored wall_start - the PDT the server stamped| for every recorded segment."""
    errors = []
    for name, segs in recorded.items():
        aired = {(a.pts, a.seq): a.wall for a in server.channels[name].published()}
        for seg in segs:
            wall = aired.get((seg.first_pts, seg.seq))
            if wall is not None:
                errors.append(abs(seg.wall_start - wall) * 1000)
    return errors


def flag_times(env: dict[str, str], flags: list[tuple[str, str, float, float]]) -> list[float]:
    """Flag -> ready seconds for each (kind, where, start, end), one after another, in this
    process through the services (as bench/time_to_clip.py does: no CLI start-up counted)."""
    ctx = Context.build(Settings.from_env(env))
    actor = Actor.operator("bench")
    times = []
    try:
        for kind, where, start, end in flags:
            t0 = time.perf_counter()
            if kind == "channel":
                res = flag_channel(ctx, actor, where, start=iso(start), end=iso(end))
            else:
                res = file_flag(ctx, actor, where, start, end)
            times.append(wait_ready(ctx, actor, res.clip_id, t0))
    finally:
        ctx.close()
    return times


def wait_ready(ctx: Context, actor: Actor, clip_id: int, t0: float, timeout: float = 300) -> float:
    while time.perf_counter() - t0 < timeout:
        st = clip_status(ctx, actor, clip_id)
        if st["status"] == "ready":
            return time.perf_counter() - t0
        if st["status"] in ("failed", "rejected"):
            raise SystemExit(f"clip {clip_id} {st['status']}: {st['error']}")
        time.sleep(0.05)
    raise SystemExit(f"clip {clip_id} not ready after {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=240, help="how long to record")
    ap.add_argument("--clips", type=int, default=5, help="60 s clips from each source kind")
    ap.add_argument("--bitrate", default="3M")
    a = ap.parse_args()
    print("Preparing 720p25 media (cached after the first run)...", flush=True)
    media = make_live_media(CACHE / "live", seconds=120, seg_seconds=2, size="1280x720",
                            video_bitrate=a.bitrate)
    vod = CACHE / "live" / "vod.mp4"
    if not vod.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(media.source), "-c", "copy",
                        "-movflags", "+faststart", str(vod)], check=True)
    for i in range(a.clips):
        copy = vod.with_name(f"vod{i}.mp4")
        if not copy.exists():
            copy.hardlink_to(vod)
    home = Path(tempfile.mkdtemp(prefix="clipper-record-bench-"))
    with LiveServer(media) as server, serve_dir(vod.parent) as (vod_base, _requested):
        names = [f"ch{i:02d}" for i in range(a.channels)]
        for name in names:
            server.add(name, pdt=True)
        proc, env, state = start_stack(home)
        try:
            for name in names:
                added = clipper(env, "channels", "add", name, server.url(name))
                if added.returncode:
                    raise SystemExit(added.stderr)
            sampler = Sampler(state["children"]["recorder"])
            sampler.start()
            cpu0, t0 = sampler.cpu(), time.monotonic()
            print(f"Recording {a.channels} channels for {a.seconds:.0f} s...", flush=True)
            time.sleep(a.seconds)  # the measurement window itself
            cpu, took = sampler.cpu() - cpu0, time.monotonic() - t0
            recorded = segments(home)
            report_recording(a, server, recorded, cpu, took, sampler.peak_rss)
            report_clips(a, env, recorded, names, media, f"{vod_base}/vod.mp4")
            sampler.done = True
        finally:
            proc.terminate()
            proc.wait(60)


def report_recording(a: argparse.Namespace, server: LiveServer, recorded: dict, cpu: float,
                     took: float, peak_rss: int) -> None:
    channel_hours = a.channels * took / 3600
    per_hour = cpu / channel_hours
    total_bytes = sum(s.bytes for segs in recorded.values() for s in segs)
    errors = wall_errors_ms(server, recorded)
    print(f"\nRecorder: {cpu:.2f} CPU-s over {took:.0f} s for {a.channels} channels = "
          f"{per_hour:.1f} CPU-s per channel-hour -> one core records ~{3600 / per_hour:.0f} "
          f"channels (target >= 50)")
    print(f"Recorder peak RSS: {peak_rss / 2**20:.0f} MB for {a.channels} channels "
          f"(target < 150 MB for 10)")
    print(f"Disk: {total_bytes / channel_hours / 2**30:.2f} GB per channel-hour "
          f"({len([s for v in recorded.values() for s in v])} segments)")
    if errors:
        print(f"Wall-clock error of segments: median {statistics.median(errors):.1f} ms, "
              f"p95 {percentile(errors, 0.95):.1f} ms, max {max(errors):.1f} ms "
              f"({len(errors)} matched)")


def report_clips(a: argparse.Namespace, env: dict[str, str], recorded: dict, names: list[str],
                 media: object, vod_url: str) -> None:
    loop = media.loop_seconds  # type: ignore[attr-defined]
    channel_flags, vod_flags = [], []
    for i in range(a.clips):
        segs = recorded[names[i % len(names)]]
        lo, hi = segs[0].wall_start + 5, segs[-1].wall_start - 5
        start = lo + (hi - lo - CLIP) * (i + 0.5) / a.clips
        channel_flags.append(("channel", names[i % len(names)], start, start + CLIP))
        at = (loop - CLIP - 4) * (i + 0.5) / a.clips + 2
        # One copy of the file per clip: overlapping flags on one URL would merge into one clip.
        vod_flags.append(("url", vod_url.replace("vod.mp4", f"vod{i}.mp4"), at, at + CLIP))
    chan = flag_times(env, channel_flags)
    url = flag_times(env, vod_flags)
    print(f"\nFlag -> ready, {CLIP:.0f} s clips ({a.clips} each, one after another):")
    print(f"  from a recording: p50 {statistics.median(chan):.2f} s, "
          f"p95 {percentile(chan, 0.95):.2f} s "
          f"(target p50 <= 3.5 s)")
    print(f"  from a VOD URL:   p50 {statistics.median(url):.2f} s, "
          f"p95 {percentile(url, 0.95):.2f} s")
    ratio = statistics.median(url) / statistics.median(chan)
    print(f"  ratio VOD / recording at p50: {ratio:.2f}x")


if __name__ == "__main__":
    main()
