"""CLI start-up benchmark: wall time of cheap `clipper` commands, and what their imports cost.

    .venv/bin/python bench/cli_start.py                 # 10 runs of each command
    .venv/bin/python bench/cli_start.py --runs 30 --top 15

Each command runs as its own process (`python -m clipper.cli ...`), as a user runs it, on a
migrated SQLite home in a temp dir holding one flagged clip and one channel (nothing recorded);
Redis points at a closed port, so `flag` (of a loopback URL, allow-listed, never fetched, inside
the clip: it joins it, nothing to queue; or of the channel's last 30 s, which widens the clip the
previous run filed and so tries to queue it) measures its start and the database write, not a
queue. Prints, per command, the median and p95 wall time over the runs and the median CPU time
(user + system: steadier than wall time on a busy machine), then the packages that
`python -X importtime` charges the most for `status` (self time of every module, summed by
top-level package; the quickest of three runs), and what the flags' imports cost, the queue's
and the cutter's packages among them.

Set PYTHONDONTWRITEBYTECODE=1 and every run compiles Clipper from source; a real install has
its bytecode cached, as this benchmark assumes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipper.context import Context  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.settings import Settings  # noqa: E402

#: Nothing listens here: `flag` finds no Redis at once and says the flag waits for `clipper up`.
NO_REDIS = "redis://127.0.0.1:9/0"
#: A URL flag is stored and queued without being fetched (a file would be probed by ffprobe).
SOURCE = "http://127.0.0.1:9/show.mp4"
CHANNEL = "news"
#: Packages a flag needs only to queue (redis; rq once Redis answers) or to cut (ffmpeg).
QUEUE_AND_CUT = ("redis", "rq", "ffmpeg")
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def prepare(home: Path) -> tuple[dict[str, str], int]:
    """A migrated home with one flagged clip; returns the environment and the clip id."""
    env = {**os.environ, "CLIPPER_HOME": str(home), "REDIS_URL": NO_REDIS,
           "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}
    env.pop("DATABASE_URL", None)
    from clipper.services.channels import add_channel
    from clipper.services.flags import file_flag

    logging.getLogger("clipper").setLevel(logging.ERROR)  # "stored but not queued" is expected
    ctx = Context.build(Settings.from_env(env))
    try:
        clip_id = file_flag(ctx, Actor.operator("bench"), SOURCE, "1", "5").clip_id
        add_channel(ctx, Actor.operator("bench"), CHANNEL, "http://127.0.0.1:9/live.m3u8")
    finally:
        ctx.close()
    return env, clip_id


def time_command(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float],
                                                                        list[float]]:
    """Wall and CPU seconds of `runs` runs of `clipper ARGS` (a first run, warming the OS
    cache, is not counted)."""
    cmd = [sys.executable, "-m", "clipper.cli", *args]
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def import_costs(args: list[str], env: dict[str, str],
                 tries: int = 3) -> tuple[float, dict[str, float]]:
    """Total import seconds of `clipper ARGS` and the self time summed per top-level package,
    from the quickest of `tries` runs (the others paid for something else on the machine)."""
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(tries):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "clipper.cli", *args],
                              env=env, capture_output=True, text=True, check=True)
        by_package: dict[str, float] = defaultdict(float)
        for line in proc.stderr.splitlines():
            m = _IMPORT_LINE.match(line)
            if m:
                by_package[m.group(4).split(".")[0]] += int(m.group(1)) / 1e6
        total = sum(by_package.values())
        if best is None or total < best[0]:
            best = (total, dict(by_package))
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="timed runs of each command")
    ap.add_argument("--top", type=int, default=10, help="packages to list by import cost")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="clipper-cli-bench-") as tmp:
        env, clip_id = prepare(Path(tmp) / "home")
        commands = {
            "list --json": ["list", "--json"],
            "status N --json": ["status", str(clip_id), "--json"],
            "flag URL --start 1 --end 5 --json": ["flag", SOURCE, "--start", "1", "--end", "5",
                                                   "--json"],
            "flag --channel C --last 30 --json": ["flag", "--channel", CHANNEL, "--last", "30",
                                                  "--json"],
            "--help": ["--help"],
        }
        for label, args in commands.items():
            wall, cpu = time_command(args, env, opts.runs)
            ms = {"median": statistics.median(wall) * 1000, "p95": p95(wall) * 1000,
                  "cpu": statistics.median(cpu) * 1000}
            print(f"clipper {label:<34} median {ms['median']:5.0f} ms, p95 {ms['p95']:5.0f} ms "
                  f"wall; median {ms['cpu']:5.0f} ms CPU over {opts.runs} runs")
        total, by_package = import_costs(["status", str(clip_id), "--json"], env)
        print(f"imports of `clipper status N --json`: {total * 1000:.0f} ms in all; the "
              "costliest packages (self time summed):")
        for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:opts.top]:
            print(f"  {seconds * 1000:7.1f} ms  {name}")
        for label in ("flag URL --start 1 --end 5 --json", "flag --channel C --last 30 --json"):
            total, by_package = import_costs(commands[label], env)
            parts = ", ".join(f"{name} {by_package[name] * 1000:.1f} ms" if name in by_package
                              else f"no {name}" for name in QUEUE_AND_CUT)
            print(f"imports of `clipper {label}`: {total * 1000:.0f} ms in all ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
