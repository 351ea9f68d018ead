"""Benchmark: smart cut vs full accurate re-encode on generated 720p25 sources; prints figures.

    .venv/bin/python bench/cut.py            # 10-min sources, 20 sections of 10-120 s each
    .venv/bin/python bench/cut.py --quick    # 2-min sources, 6 sections of 10-40 s
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: testmedia
from figures import percentile  # noqa: E402  (bench/figures.py, beside this script)

from clipper.media import cut  # noqa: E402
from clipper.media.probe import probe_media, video_frames  # noqa: E402
from testmedia.mediagen import decode_gray, make_video  # noqa: E402


def frame_error(clip: Path, src: Path, pts: list[float], at: float, which: int) -> int:
    """How many frames the clip's first (which=0) / last (-1) frame is off from the source frame."""
    want = next(i for i, t in enumerate(pts) if t >= at - 1e-3) if which == 0 else \
        max(i for i, t in enumerate(pts) if t < at - 1e-3)
    lo = max(0, want - 3)
    window = decode_gray(src, start=pts[lo] - 0.01, seconds=7 * 0.04)
    got = decode_gray(clip)[which]
    best = int(np.argmin(np.abs(window - got[None]).mean(axis=(1, 2))))
    return lo + best - want


def full_reencode(src: Path, info, start: float, end: float, out: Path) -> None:  # type: ignore[no-untyped-def]
    plan = cut.plan_cut(video_frames(src, info.start_time), start, end)
    cut._reencode(src, info, plan, start, end, out)


def run(src: Path, sections: list[tuple[float, float]], work: Path) -> dict[str, object]:
    info = probe_media(src)
    pts = [f.pts for f in video_frames(src, info.start_time)]
    smart, full, worst, methods = [], [], 0, []
    for i, (a, b) in enumerate(sections):
        t = time.perf_counter()
        r = cut.cut_clip(src, a, b, work / f"s{i}.mp4")
        smart.append(time.perf_counter() - t)
        methods.append(r.method)
        worst = max(worst, abs(frame_error(r.path, src, pts, a, 0)),
                    abs(frame_error(r.path, src, pts, b, -1)))
    rss_smart = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for i, (a, b) in enumerate(sections):
        t = time.perf_counter()
        full_reencode(src, info, a, b, work / f"f{i}.mp4")
        full.append(time.perf_counter() - t)
    return {"smart": smart, "full": full, "worst": worst, "methods": methods,
            "rss_smart": rss_smart,
            "rss_all": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def p95(xs: list[float]) -> float:
    return percentile(xs, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    minutes, count, longest = (2, 6, 40) if args.quick else (10, 20, 120)
    rng = random.Random(20240501)
    total = minutes * 60
    sections = []
    for _ in range(count):
        length = rng.uniform(10, longest)
        a = rng.uniform(0, total - length - 1)
        sections.append((round(a, 3), round(a + length, 3)))
    with tempfile.TemporaryDirectory(prefix="bench-cut-") as tmp:
        work = Path(tmp)
        for gop_s in (2, 10):
            t = time.perf_counter()
            src = make_video(work / f"src{gop_s}.mp4", total, size="1280x720", gop=25 * gop_s)
            made = time.perf_counter() - t
            r = run(src, sections, work)
            s, f = r["smart"], r["full"]
            print(f"720p25 {minutes} min, keyframe every {gop_s} s (source made in {made:.0f} s), "
                  f"{count} sections of 10-{longest} s:")
            print(f"  smart cut : median {statistics.median(s):.2f} s  p95 {p95(s):.2f} s  "
                  f"methods {dict((m, r['methods'].count(m)) for m in set(r['methods']))}")
            print(f"  re-encode : median {statistics.median(f):.2f} s  p95 {p95(f):.2f} s")
            print(f"  speed-up  : {statistics.median(f) / statistics.median(s):.1f}x (median), "
                  f"total {sum(f) / sum(s):.1f}x")
            print(f"  worst frame error at either end: {r['worst']} frame(s)")
            print(f"  peak child RSS: {r['rss_smart'] / 1024:.0f} MiB after smart cuts, "
                  f"{r['rss_all'] / 1024:.0f} MiB incl. re-encodes")
            for p in work.glob("[sf]*.mp4"):
                p.unlink()


if __name__ == "__main__":
    main()
