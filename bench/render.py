"""Render benchmark: a 60 s 1280x720 clip with espeak speech into every social shape.

    .venv/bin/python bench/render.py [--seconds 60] [--frames docs/renders]

Prints seconds per shape and for the whole package as a ratio of the clip's length against
the targets (first shape <= 0.6x, all three <= 1.5x), the peak memory of any ffmpeg process,
and saves a frame grab of each render under --frames.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from clipper.domain import Word
from clipper.media.package import PackageSpec, build_package
from clipper.media.render import (
    RenderRequest,
    render_package_shapes,
    render_shape,
    render_shapes,
)

FIRST_TARGET, ALL_TARGET = 0.6, 1.5
SENTENCES = (
    "Good evening, the city council voted tonight to approve the new budget.",
    "The mayor said three hundred new homes would be built by next summer.",
    "Opposition members called the plan too little and too late for families.",
    "Police said the station in the centre would stay closed until Friday.",
    "Schools across the region will reopen on Monday after the storm.",
    "Our reporter spoke to residents who waited for hours in the rain.",
    "The minister promised a full inquiry into what went wrong this week.",
    "Tickets for the concert sold out in under an hour on Saturday morning.",
)
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def make_clip(work: Path, seconds: float) -> tuple[Path, list[Word]]:
    """testsrc2 picture + espeak-ng speech; words spread evenly over each spoken sentence."""
    words: list[Word] = []
    parts, t = [], 0.5
    while t < seconds - 3:
        for text in SENTENCES:
            wav = work / f"s{len(parts)}.wav"
            subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), text], check=True)
            with wave.open(str(wav)) as w:
                length = w.getnframes() / w.getframerate()
            if t + length > seconds - 0.5:
                break
            tokens = text.split()
            step = length / len(tokens)
            words += [Word(t + i * step, t + (i + 0.9) * step, tok) for i, tok in enumerate(tokens)]
            parts.append((wav, t))
            t += length + 0.7
        else:
            continue
        break
    inputs = [a for wav, _ in parts for a in ("-i", str(wav))]
    delays = "".join(f"[{i + 1}:a]adelay={int(at * 1000)}:all=1[a{i}];"
                     for i, (_, at) in enumerate(parts))
    mix = "".join(f"[a{i}]" for i in range(len(parts))) + f"amix=inputs={len(parts)}:normalize=0[a]"
    clip = work / "clip.mp4"
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i",
                    f"testsrc2=size=1280x720:rate=25:duration={seconds}",
                    *inputs, "-filter_complex", delays + mix, "-map", "0:v", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "50",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-t", str(seconds),
                    str(clip)], check=True)
    return clip, words


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, seconds: float, fn, results: list) -> object:  # type: ignore[no-untyped-def]
    """Run fn; print wall time and the CPU time its ffmpeg processes used (less load-sensitive)."""
    started, cpu = time.monotonic(), _child_cpu()
    value = fn()
    took, cpu = time.monotonic() - started, _child_cpu() - cpu
    results.append((label, took))
    print(f"  {label:<24} {took:6.1f} s  {took / seconds:5.2f}x clip   cpu {cpu:6.1f} s",
          flush=True)
    return value


def grab(render, frames: Path, at: float) -> Path:  # type: ignore[no-untyped-def]
    out = frames / f"{render.format}-{render.fit}.png"
    width = 480 if render.width >= render.height else 360
    subprocess.run([*FFMPEG, "-ss", f"{at:.2f}", "-i", str(render.path), "-frames:v", "1",
                    "-vf", f"scale={width}:-2:flags=lanczos", "-compression_level", "9", str(out)],
                   check=True)
    return out


def _package_strategy(clip: Path, work: Path, n: float, opts: dict, fit: str = "crop") -> None:
    print(f"package strategy (render_package_shapes), fit {fit}: 16x9 alone, then 1x1 + 9x16 "
          "in one process:")
    done: list[float] = []
    started = time.monotonic()
    timed("16x9, then 1x1+9x16", n, lambda: render_package_shapes(
        clip, [RenderRequest(work / f"p-{s}.mp4", s, fit) for s in ("16x9", "1x1", "9x16")],
        progress=lambda f, _s: done.append(time.monotonic() - started) if f >= 1.0 else None,
        **opts), [])
    print(f"  -> first shape ready {done[0]:.1f} s = {done[0] / n:.2f}x, all three "
          f"{done[-1]:.1f} s = {done[-1] / n:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--frames", type=Path, default=Path("docs/renders"))
    ap.add_argument("--skip-single-process", action="store_true")
    ap.add_argument("--package-only", action="store_true",
                    help="only the package strategy (render_package_shapes): "
                         "the figure that counts")
    ap.add_argument("--fit", choices=("crop", "pad"), default="crop",
                    help="the fit of the package strategy's 1x1 and 9x16")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clipper_bench_render_"))
    clip, words = make_clip(work, args.seconds)
    n = args.seconds
    print(f"clip: {clip} ({n:.0f} s 1280x720 25 fps, {len(words)} words); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results: list[tuple[str, float]] = []
    opts = {"words": words, "attribution": "Clipper News · 23 Nov 2026"}
    if args.package_only:
        _package_strategy(clip, work, n, opts, args.fit)
        return
    print("one shape per process, 16x9 first:")
    renders = [timed(f"{shape} {fit}", n, lambda s=shape, f=fit: render_shape(
        clip, work / f"{s}-{f}.mp4", shape=s, fit=f, **opts), results)
        for shape, fit in (("16x9", "crop"), ("1x1", "crop"), ("9x16", "crop"))]
    spec = PackageSpec(clip_id=1, title="Council approves budget", source=str(clip), start=0.0,
                       end=n, approver="bench", caption_text="Council approves budget",
                       transcript_text=" ".join(w.word for w in words), words=words,
                       renders=renders)
    timed("package folder + zip", n, lambda: build_package(spec, work / "exports" / "1-bench"),
          results)
    first, total = results[0][1], sum(t for _, t in results)
    print("pad variants:")
    pads = [timed(f"{shape} pad", n, lambda s=shape: render_shape(
        clip, work / f"{s}-pad.mp4", shape=s, fit="pad", **opts), results)
        for shape in ("1x1", "9x16")]
    _package_strategy(clip, work, n, opts)
    if not args.skip_single_process:
        print("all three shapes in one ffmpeg process (decode once):")
        timed("16x9+1x1+9x16 crop", n, lambda: render_shapes(clip, [
            RenderRequest(work / f"one-{s}.mp4", s) for s in ("16x9", "1x1", "9x16")], **opts),
            results)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"first shape ready: {first:.1f} s = {first / n:.2f}x (target <= {FIRST_TARGET}x) "
          f"{'OK' if first / n <= FIRST_TARGET else 'MISSED'}")
    print(f"whole package (3 shapes + zip): {total:.1f} s = {total / n:.2f}x "
          f"(target <= {ALL_TARGET}x) "
          f"{'OK' if total / n <= ALL_TARGET else 'MISSED'}")
    print(f"peak memory of one ffmpeg process: {peak:.0f} MB; load average now "
          f"{os.getloadavg()[0]:.1f}")
    args.frames.mkdir(parents=True, exist_ok=True)
    cue = next((w for w in words if w.start > min(10.0, n / 2)), words[len(words) // 2])
    for render in [*renders, *pads]:
        path = grab(render, args.frames, cue.start + 0.3)
        print(f"frame: {path} ({path.stat().st_size // 1024} KB)")
    print(f"work files left in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
