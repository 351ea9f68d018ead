"""Social renders of a clip: 16x9 / 1x1 / 9x16, crop or blurred pad, burned captions, -14 LUFS.

Settings, chosen from measurements on the 2-vCPU workers (bench/render.py, 60 s 1280x720):
- Video: libx264 `superfast` with x264's macroblock tree kept on (`mbtree=1:rc-lookahead=10`,
  which `superfast` alone turns off), CRF 22, high profile, yuv420p, x264's own thread count.
  For 20 s of 9x16 pad (issue 16), user CPU seconds and sizes were: veryfast 11.5 s / 4.4 MB,
  superfast 8.7 s / 11.0 MB, superfast + mbtree 8.7 s / 5.0 MB, ultrafast 5.4 s / 17.3 MB:
  superfast + mbtree costs a quarter less CPU than veryfast for files 11% larger.
  CPU seconds per 60 s clip, captions on (measured while the machine ran at load 10-15, so
  treat them as upper bounds): 16x9 34, 1x1 crop 42, 9x16 crop 60, 1x1 pad 45, 9x16 pad 68.
  16x9 keeps the source size (at most 1920x1080) and is cheapest, so a package renders it
  first for the earliest preview.
- Several shapes can be rendered by one ffmpeg process (`render_shapes`): the source is decoded
  and the audio measured and normalised once, then split (three shapes: 114 CPU-s vs 137).
  `render_package_shapes` renders 16x9 alone (preview ready first), then the rest in one
  process: 60 s clip at load ~8, first shape 0.60x and all three 1.61x the clip's length;
  at load ~3, one shape per process gave 0.51x / 1.72x. On an unshared machine this should
  meet 0.6x / 1.5x (veryfast then; superfast + mbtree since issue 16).
- Pad: the background is scaled down to 1/8, blurred there and scaled back up (blurring a
  full-size frame costs as much as encoding it); the foreground is the whole frame, fitted.
- Crop: the crop is taken at source resolution, then scaled (fewer pixels through the scaler).
- Audio: loudnorm two-pass — an audio-only measuring pass (cheap), then `linear=true` to
  -14 LUFS integrated, true peak -1.5 dBTP (0.5 dB of room for the AAC encoder), AAC 128 kb/s,
  48 kHz stereo. Audio too peaky for a plain gain (speech with a high crest factor) gets a gain
  plus a sample-peak limiter at -2 dBFS instead, the gain tuned by up to three audio-only
  ebur128 passes (~0.3 CPU-s each per minute); loudnorm's dynamic mode alone ended 2-3 LU
  short of the target on such speech. Silence is passed through.
- Sound alone (radio, podcasts) is drawn as its waveform (`showwaves`, 1280x720 25 fps: an
  "audiogram") and that picture is shaped, captioned and branded like a video's.
- MP4 with `+faststart`, written to a temp name beside `out`, checked (duration, size) and
  renamed into place. The captions and progress files go to a folder of their own inside
  `tmp_dir` (the pipeline passes the run's scratch folder, which the reconciler removes when a
  killed run leaves it behind); without one, in the system temp folder.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from clipper.domain import MediaInfo, Word
from clipper.errors import InvalidInput, PermanentError
from clipper.media import ffrun
from clipper.media.captions_ass import CaptionLayout, build_ass, layout_for, shift_words, write_ass
from clipper.media.probe import probe_media

SHAPES = ("16x9", "1x1", "9x16")
FITS = ("crop", "pad")
PRESET = "superfast"
X264_PARAMS = "mbtree=1:rc-lookahead=10"
CRF = 22
AUDIO_BITRATE = "128k"
TRUE_PEAK = -1.5  # target; leaves room under the -1 dBTP limit for AAC's overshoot
LOUDNESS_RANGE = 11.0
PAD_BLUR_SCALE = 8  # background blurred at 1/8 size
LOGO_WIDTH = 0.14   # of the output width

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class RenderResult:
    """One finished render: the file, its shape and fit, and how it was made."""

    path: Path
    format: str
    fit: str
    captions: bool
    width: int
    height: int
    duration: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderRequest:
    """One output of `render_shapes`."""

    out: Path
    shape: str
    fit: str = "crop"


def output_size(shape: str, src_w: int, src_h: int) -> tuple[int, int]:
    """Output width, height for a shape; 16x9 keeps the source size up to 1920x1080 (pure)."""
    if shape == "1x1":
        return 1080, 1080
    if shape == "9x16":
        return 1080, 1920
    if shape != "16x9":
        raise InvalidInput(f"Unknown render shape {shape!r}.", f"Use one of {', '.join(SHAPES)}.")
    height = min(1080, src_h - src_h % 2, int(src_w * 9 / 16))
    height -= height % 2
    width = round(height * 16 / 9)
    return width + width % 2, height


def crop_box(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Centred (w, h, x, y) of the largest source region with the output's aspect (pure)."""
    if src_w * height > src_h * width:  # source wider than output: trim the sides
        h, w = src_h, round(src_h * width / height)
    else:
        w, h = src_w, round(src_w * height / width)
    w, h = min(src_w, w - w % 2), min(src_h, h - h % 2)
    return w, h, (src_w - w) // 2, (src_h - h) // 2


def parse_loudnorm(stderr: str) -> dict[str, str]:
    """The JSON block loudnorm prints at the end of a measuring pass (pure)."""
    blocks = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not blocks:
        raise PermanentError("ffmpeg's loudness measurement printed no result.")
    return json.loads(blocks[-1])


def loudnorm_options(measured: dict[str, str] | None, target: float) -> dict[str, Any] | None:
    """Options for loudnorm's second pass, or None for silence (nothing to normalise) (pure)."""
    if not measured:
        return None
    try:
        input_i = float(measured["input_i"])
    except (KeyError, ValueError):
        return None
    if not input_i > -70.0:  # -inf or near-silent: normalising would only amplify noise
        return None
    return {"I": target, "TP": TRUE_PEAK, "LRA": LOUDNESS_RANGE,
            "measured_I": measured["input_i"], "measured_TP": measured["input_tp"],
            "measured_LRA": measured["input_lra"], "measured_thresh": measured["input_thresh"],
            # In linear mode loudnorm computes its own gain; offset only matters if it falls
            # back to dynamic, and short clips can report it as inf.
            "offset": _finite(measured.get("target_offset"), 0.0), "linear": "true"}


def _finite(text: str | None, default: float) -> float:
    try:
        value = float(text or "nan")
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def linear_fits(measured: dict[str, str], target: float) -> bool:
    """Whether a plain gain reaches `target` without pushing the true peak over the limit (pure)."""
    return float(measured["input_tp"]) + target - float(measured["input_i"]) <= TRUE_PEAK


def limiter_filters(gain_db: float) -> list[tuple[str, dict[str, Any]]]:
    """A gain then a peak limiter, for audio too peaky for a plain gain (pure).

    The limiter works on samples, not true peaks: its ceiling sits 0.5 dB under TRUE_PEAK to
    leave room for inter-sample peaks and AAC's overshoot.
    """
    ceiling = TRUE_PEAK - 0.5
    return [("volume", {"volume": f"{gain_db:.2f}dB"}),
            ("alimiter", {"limit": round(10 ** (ceiling / 20), 3), "attack": 1, "release": 15,
                          "level": 0, "latency": 1})]


def next_gain(tried: Sequence[tuple[float, float]], target: float) -> float:
    """The next gain to try, from (gain, loudness reached) pairs so far (pure).

    Limiting eats part of any gain (about half, on speech), so the first correction doubles
    the shortfall; later ones interpolate between the last two tries.
    """
    (g0, l0), *rest = tried
    if not rest:
        return g0 + 2.0 * (target - l0)
    (ga, la), (gb, lb) = tried[-2], tried[-1]
    slope = (lb - la) / (gb - ga) if gb != ga and lb != la else 0.5
    return gb + (target - lb) / max(slope, 0.1)


@dataclass(frozen=True)
class AudioPlan:
    """How a clip's audio is normalised: the filters, in order, and what was measured."""

    filters: tuple[tuple[str, dict[str, Any]], ...]
    mode: str  # "linear", "limited" or "none" (silence)
    input_i: float | None
    expected_i: float | None = None


def integrated_loudness(src: Path, trim_in: float, duration: float,
                        pre: Sequence[tuple[str, dict[str, Any]]] = ()) -> float:
    """Integrated loudness (LUFS) of the trimmed audio after `pre` filters (ebur128: cheap)."""
    audio = ffmpeg.input(str(src), **_trim_opts(trim_in, duration)).audio
    for name, kwargs in pre:
        audio = audio.filter(name, **kwargs)
    args = ffrun.compile_args(audio.filter("ebur128").output("-", f="null"))
    args[args.index("-loglevel") + 1] = "info"  # the summary is printed at info level
    stderr = ffrun.run(args, what="measure the clip's loudness")
    found = re.findall(r"I:\s+(-?[\d.]+|-inf) LUFS", stderr[stderr.rfind("Summary:"):])
    if not found:
        raise PermanentError("ffmpeg's loudness measurement printed no result.")
    return float(found[-1])


def measure_loudness(src: Path, trim_in: float, duration: float, target: float,
                     pre: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, str]:
    """A loudnorm measuring pass over the audio only (after `pre` filters),
    on the trimmed window."""
    audio = ffmpeg.input(str(src), **_trim_opts(trim_in, duration)).audio
    for name, kwargs in pre:
        audio = audio.filter(name, **kwargs)
    stream = audio.filter("loudnorm", I=target, TP=TRUE_PEAK, LRA=LOUDNESS_RANGE,
                          print_format="json").output("-", f="null")
    args = ffrun.compile_args(stream)
    args[args.index("-loglevel") + 1] = "info"  # loudnorm prints its measurement at info level
    return parse_loudnorm(ffrun.run(args, what="measure the clip's loudness"))


def plan_audio(src: Path, trim_in: float, duration: float, target: float,
               tolerance: float = 0.3) -> AudioPlan:
    """Cached `measure_audio`: renders of the same clip window share one measurement."""
    st = Path(src).stat()
    return _plan_cached(str(Path(src).resolve()), st.st_size, st.st_mtime_ns, trim_in, duration,
                        target, tolerance)


@functools.lru_cache(maxsize=32)
def _plan_cached(src: str, _size: int, _mtime: int, trim_in: float, duration: float,
                 target: float, tolerance: float) -> AudioPlan:
    return measure_audio(Path(src), trim_in, duration, target, tolerance)


def measure_audio(src: Path, trim_in: float, duration: float, target: float,
                  tolerance: float = 0.3) -> AudioPlan:
    """Measure the clip's loudness (audio-only passes) and choose the normalising filters.

    A plain gain (loudnorm linear) when the peaks allow it; otherwise gain + limiter, the gain
    found in at most three cheap ebur128 passes (loudnorm's dynamic mode fell 2-3 LU short).
    """
    measured = measure_loudness(src, trim_in, duration, target)
    norm = loudnorm_options(measured, target)
    if norm is None:
        return AudioPlan((), "none", None)
    input_i = float(measured["input_i"])
    if linear_fits(measured, target):
        return AudioPlan((("loudnorm", norm),), "linear", input_i, target)
    tried: list[tuple[float, float]] = []
    gain = target - input_i
    for _ in range(3):
        tried.append((gain, integrated_loudness(src, trim_in, duration, limiter_filters(gain))))
        if abs(tried[-1][1] - target) <= tolerance:
            break
        gain = min(next_gain(tried, target), gain + 12.0)
    gain, reached = min(tried, key=lambda t: abs(t[1] - target))
    return AudioPlan(tuple(limiter_filters(gain)), "limited", input_i, reached)


def _trim_opts(trim_in: float, duration: float) -> dict[str, Any]:
    # -ss before -i with re-encoding is frame-accurate and restarts timestamps at 0.
    opts: dict[str, Any] = {"t": f"{duration:.3f}"}
    if trim_in > 0:
        opts["ss"] = f"{trim_in:.3f}"
    return opts


def _square_pixels(v: Any, info: MediaInfo) -> Any:
    """Anamorphic sources (SD broadcasts: 720x576 shown 16:9) are stretched to the width a
    player shows first, so crops and pads work on the picture people see."""
    if abs(info.sar - 1.0) < 0.01:
        return v
    return v.filter("scale", info.display_width, info.height).filter("setsar", 1)


def _crop_chain(v: Any, info: MediaInfo, width: int, height: int) -> Any:
    w, h, x, y = crop_box(info.display_width, info.height, width, height)
    if (w, h) != (info.display_width, info.height):
        v = v.filter("crop", w, h, x, y)
    return v.filter("scale", width, height)


def _pad_chain(v: Any, width: int, height: int) -> Any:
    fg, bg = (lambda s: (s.stream(0), s.stream(1)))(v.filter_multi_output("split", 2))
    sw, sh = (2 * round(n / PAD_BLUR_SCALE / 2) for n in (width, height))
    # boxblur's radius must fit the half-size chroma planes of a small background.
    radius = max(1, min(6, min(sw, sh) // 4 - 1))
    bg = (bg.filter("scale", sw, sh, force_original_aspect_ratio="increase", flags="fast_bilinear")
          .filter("crop", sw, sh).filter("boxblur", luma_radius=radius, luma_power=2)
          .filter("eq", brightness=-0.08, saturation=0.85)
          .filter("scale", width, height, flags="bilinear"))
    fg = fg.filter("scale", width, height, force_original_aspect_ratio="decrease",
                   force_divisible_by=2)
    return ffmpeg.overlay(bg, fg, x="(W-w)/2", y="(H-h)/2")


def _logo_chain(v: Any, logo: Any, layout: CaptionLayout) -> Any:
    logo = logo.filter("scale", round(layout.width * LOGO_WIDTH), -1)
    return ffmpeg.overlay(v, logo, x=f"W-w-{layout.margin_side}", y=str(layout.margin_top))


def _split(stream: Any, kind: str, n: int) -> list[Any]:
    if n == 1:
        return [stream]
    node = stream.filter_multi_output(kind, n)
    return [node.stream(i) for i in range(n)]


@dataclass(frozen=True)
class _Job:
    request: RenderRequest
    width: int
    height: int
    layout: CaptionLayout
    ass: Path | None
    tmp: Path


def _video_for(v: Any, job: _Job, info: MediaInfo, logo: Any | None) -> Any:
    v = _square_pixels(v, info)
    if job.request.fit == "pad":
        v = _pad_chain(v, job.width, job.height)
    else:
        v = _crop_chain(v, info, job.width, job.height)
    v = v.filter("setsar", 1)
    if job.ass is not None:
        # By name, ffmpeg running in its folder: ffmpeg-python mis-escapes ':' and quotes in a
        # filter's argument, and the folder may be anywhere under CLIPPER_MEDIA_DIR.
        v = v.filter("ass", job.ass.name)
    if logo is not None:
        v = _logo_chain(v, logo, job.layout)
    return v.filter("format", "yuv420p")


def _encode_opts() -> dict[str, Any]:
    return {"c:v": "libx264", "preset": PRESET, "x264-params": X264_PARAMS, "crf": CRF,
            "profile:v": "high",
            "c:a": "aac", "b:a": AUDIO_BITRATE, "ar": 48000, "ac": 2,
            "movflags": "+faststart", "f": "mp4"}


#: The picture drawn for sound alone (radio, podcasts): its waveform, 16:9 at 25 fps, shaped,
#: captioned and branded like any other picture (an "audiogram").
WAVEFORM = {"width": 1280, "height": 720, "fps": 25.0, "colour": "0x3b82f6"}


def picture_of(info: MediaInfo) -> MediaInfo:
    """Pure: the picture a render shapes: the source's, or for sound alone its drawn waveform."""
    if info.has_video or not info.has_audio:
        return info
    return dataclasses.replace(info, has_video=True, width=WAVEFORM["width"],
                               height=WAVEFORM["height"], fps=WAVEFORM["fps"], sar=1.0,
                               video_codec="waveform")


def _graph(src: Path, jobs: Sequence[_Job], info: MediaInfo, trim_in: float, duration: float,
           audio_plan: AudioPlan | None, logo: Path | None) -> Any:
    inp = ffmpeg.input(str(src), **_trim_opts(trim_in, duration))
    picture, sound = inp.video, inp.audio
    if not info.has_video:
        wave, sound = _split(inp.audio, "asplit", 2)
        picture = (wave.filter("showwaves", s=f"{WAVEFORM['width']}x{WAVEFORM['height']}",
                               mode="cline", rate=WAVEFORM["fps"], colors=WAVEFORM["colour"])
                   .filter("format", "yuv420p"))
    videos = _split(picture, "split", len(jobs))
    logos = (_split(ffmpeg.input(str(logo)).video, "split", len(jobs)) if logo
             else [None] * len(jobs))
    audios: list[Any] = [None] * len(jobs)
    if info.has_audio:
        a = sound
        for name, kwargs in audio_plan.filters if audio_plan else ():
            a = a.filter(name, **kwargs)
        audios = _split(a.filter("aresample", 48000), "asplit", len(jobs))
    outs = []
    for job, v, a, lg in zip(jobs, videos, audios, logos, strict=True):
        streams = [_video_for(v, job, picture_of(info), lg)] + ([a] if a is not None else [])
        outs.append(ffmpeg.output(*streams, str(job.tmp), **_encode_opts()))
    return ffmpeg.merge_outputs(*outs)


class _ProgressWatch:
    """Feeds ffmpeg's `-progress` file to a callback from a side thread while ffmpeg runs."""

    def __init__(self, path: Path, duration: float, callback: Progress | None, stage: str) -> None:
        self.path, self.duration, self.callback, self.stage = path, duration, callback, stage
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _ProgressWatch:
        if self.callback:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            try:
                text = self.path.read_text()
            except OSError:
                continue
            times = re.findall(r"out_time_us=(\d+)", text)
            if times and self.callback:
                done = int(times[-1]) / 1e6 / max(self.duration, 1e-3)
                self.callback(min(0.99, 0.05 + 0.95 * done), self.stage)


def _check(requests: Sequence[RenderRequest], info: MediaInfo, trim_in: float,
           trim_out: float | None) -> float:
    """Validate the request; returns the output duration."""
    if not requests:
        raise InvalidInput("Nothing to render.", "Ask for at least one shape.")
    for r in requests:
        output_size(r.shape, info.display_width, info.height)
        if r.fit not in FITS:
            raise InvalidInput(f"Unknown fit {r.fit!r}.", f"Use one of {', '.join(FITS)}.")
    if not info.has_video or info.width <= 0:
        raise InvalidInput(f"{info.path.name} has no picture to render.")
    end = info.duration if trim_out is None else min(trim_out, info.duration)
    if trim_in < 0 or end - trim_in < 0.1:
        raise InvalidInput(f"Trim {trim_in:.2f}-{end:.2f} s leaves nothing of the clip.",
                           f"Choose times inside 0-{info.duration:.2f} s.")
    return end - trim_in


def _make_job(r: RenderRequest, info: MediaInfo, work: Path, words: Sequence[Word],
              duration: float, attribution: str | None, highlight: bool) -> _Job:
    width, height = output_size(r.shape, info.display_width, info.height)
    layout = layout_for(width, height)
    ass = None
    if words or attribution:
        subs = build_ass(layout, words=words, duration=duration, attribution=attribution,
                         highlight=highlight)
        ass = write_ass(subs, work / f"captions-{r.shape}-{r.fit}.ass")
    tmp = Path(r.out).with_name(f".{Path(r.out).stem}.{uuid.uuid4().hex[:8]}.tmp.mp4")
    return _Job(r, width, height, layout, ass, tmp)


def _settings(job: _Job, trim_in: float, trim_out: float, target: float,
              audio: AudioPlan | None,
              attribution: str | None, logo: Path | None, seconds: float) -> dict[str, Any]:
    return {
        "video": {"codec": "libx264", "preset": PRESET, "x264_params": X264_PARAMS, "crf": CRF,
                  "profile": "high",
                  "pix_fmt": "yuv420p"},
        "audio": {"codec": "aac", "bitrate": AUDIO_BITRATE, "sample_rate": 48000,
                  "loudness_target": target, "true_peak_target": TRUE_PEAK,
                  "measured_input_i": audio.input_i if audio else None,
                  "expected_output_i": audio.expected_i if audio else None,
                  "normalisation": audio.mode if audio else "no audio",
                  "normalised": bool(audio and audio.mode != "none")},
        "trim_in": round(trim_in, 3), "trim_out": round(trim_out, 3),
        "caption_layout": job.layout.as_dict(), "attribution": attribution,
        "logo": Path(logo).name if logo else None, "render_seconds": round(seconds, 2),
    }


def _finish(job: _Job, duration: float, captioned: bool, settings: dict[str, Any]) -> RenderResult:
    """Check the temp output is whole, rename it into place, describe it."""
    got = probe_media(job.tmp)
    frame = 1.0 / got.fps if got.fps else 0.05
    if abs(got.duration - duration) > max(0.25, 3 * frame):
        raise PermanentError(f"The {job.request.shape} render came out {got.duration:.2f} s long, "
                             f"expected {duration:.2f} s.", "Render it again.")
    if (got.width, got.height) != (job.width, job.height):
        raise PermanentError(f"The {job.request.shape} render is {got.width}x{got.height}, "
                             f"expected {job.width}x{job.height}.")
    os.replace(job.tmp, job.request.out)
    return RenderResult(path=Path(job.request.out), format=job.request.shape, fit=job.request.fit,
                        captions=captioned, width=got.width, height=got.height,
                        duration=round(got.duration, 3), settings=settings)


def _encode(src: Path, jobs: Sequence[_Job], info: MediaInfo, trim_in: float, duration: float,
            audio: AudioPlan | None, logo: Path | None, work: Path,
            progress: Progress | None) -> None:
    """The one ffmpeg run that writes every job's temp output, reporting progress as it goes."""
    for job in jobs:
        job.tmp.parent.mkdir(parents=True, exist_ok=True)
    args = ffrun.compile_args(_graph(src, jobs, info, trim_in, duration, audio, logo))
    args[1:1] = ["-progress", str(work / "progress.txt"), "-nostats"]
    shapes = ", ".join(j.request.shape for j in jobs)
    with _ProgressWatch(work / "progress.txt", duration, progress, f"rendering {shapes}"):
        ffrun.run(args, what=f"render {shapes}", yield_cpu=True, cwd=work)


def render_shapes(src: Path, requests: Sequence[RenderRequest], *, words: Sequence[Word] = (),
                  captions: bool = True, trim_in: float = 0.0, trim_out: float | None = None,
                  attribution: str | None = None, logo: Path | None = None,
                  loudness: float = -14.0, progress: Progress | None = None,
                  highlight: bool = False, tmp_dir: Path | None = None) -> list[RenderResult]:
    """Render several shapes of one clip in a single ffmpeg process (source decoded once).

    `words` are on the clip's timeline; the outputs cover [trim_in, trim_out) and their
    captions are shifted to start with them; `highlight` colours the word being spoken.
    `progress(fraction, stage)` is called from a side thread about twice a second.
    Each file appears at its `out` only when complete. Working files go to a new folder inside
    `tmp_dir` (default: the system temp folder), removed when done.
    """
    info = probe_media(Path(src))
    duration = _check(requests, picture_of(info), trim_in, trim_out)
    started = time.monotonic()
    (progress or (lambda _f, _s: None))(0.0, "measuring loudness")
    audio = plan_audio(Path(src), trim_in, duration, loudness) if info.has_audio else None
    shifted = shift_words(words, trim_in, trim_in + duration) if captions else []
    if tmp_dir is not None:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clipper_render_", dir=tmp_dir))
    jobs: list[_Job] = []
    try:
        jobs += [_make_job(r, picture_of(info), work, shifted, duration, attribution, highlight)
                 for r in requests]
        _encode(Path(src), jobs, info, trim_in, duration, audio, logo, work, progress)
        seconds = time.monotonic() - started
        results = [_finish(j, duration, bool(shifted), _settings(
            j, trim_in, trim_in + duration, loudness, audio, attribution, logo, seconds))
            for j in jobs]
    finally:
        for job in jobs:
            job.tmp.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    if progress:
        progress(1.0, "done")
    return results


def render_package_shapes(src: Path, requests: Sequence[RenderRequest], **options: Any
                          ) -> list[RenderResult]:
    """The first request alone (the earliest preview), then the rest in one ffmpeg process.

    Same options as `render_shapes`; the loudness measurement is shared between the two runs.
    """
    first = render_shapes(src, requests[:1], **options)
    return first + (render_shapes(src, requests[1:], **options) if len(requests) > 1 else [])


def render_shape(src: Path, out: Path, *, shape: str, fit: str = "crop",
                 words: Sequence[Word] = (), captions: bool = True, trim_in: float = 0.0,
                 trim_out: float | None = None, attribution: str | None = None,
                 logo: Path | None = None, loudness: float = -14.0,
                 progress: Progress | None = None, highlight: bool = False,
                 tmp_dir: Path | None = None) -> RenderResult:
    """Render one shape of a clip (see `render_shapes`)."""
    return render_shapes(src, [RenderRequest(Path(out), shape, fit)], words=words,
                         captions=captions, trim_in=trim_in, trim_out=trim_out,
                         attribution=attribution, logo=logo, loudness=loudness,
                         progress=progress, highlight=highlight, tmp_dir=tmp_dir)[0]
