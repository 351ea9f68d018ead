"""Renders: sizes, trims, burned captions on time, loudness, crop vs pad, overlays, refusals."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from render_fixtures import WORDS, ffmpeg

from clipper.domain import Word
from clipper.errors import InvalidInput
from clipper.media import ffrun
from clipper.media.render import (
    RenderRequest,
    crop_box,
    limiter_filters,
    linear_fits,
    loudnorm_options,
    next_gain,
    output_size,
    parse_loudnorm,
    plan_audio,
    render_package_shapes,
    render_shape,
)
from testmedia.mediagen import decode_gray, match_frame

FPS = 25
CUE_A = (1.0, 2.9)  # from WORDS: first cue on the clip's timeline
CUE_B = (5.0, 6.9)


def streams(path: Path) -> dict[str, dict]:
    data = ffrun.probe(str(path), extra=["-count_packets"])
    return {s["codec_type"]: s for s in data["streams"]}


def loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) as ffmpeg's ebur128 measures them."""
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a",
                           "-filter:a", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, check=True)
    summary = proc.stderr[proc.stderr.rindex("Summary:"):]
    i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary)[1])
    tp = float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)[1])
    return i, tp


def band_diff(a: np.ndarray, b: np.ndarray, rows: slice) -> np.ndarray:
    """Mean absolute difference per frame inside a band of rows."""
    n = min(len(a), len(b))
    return np.abs(a[:n, rows] - b[:n, rows]).mean(axis=(1, 2))


def frames_in(span: tuple[float, float]) -> set[int]:
    return {i for i in range(400) if span[0] <= i / FPS < span[1]}


CAPTION_ROWS = slice(125, 180)  # bottom 30% of a 320x180 decode
TOP_ROWS = slice(0, 110)


@pytest.mark.parametrize(("shape", "src", "size"), [
    ("16x9", (640, 360), (640, 360)), ("16x9", (1280, 720), (1280, 720)),
    ("16x9", (3840, 2160), (1920, 1080)), ("16x9", (720, 576), (718, 404)),
    ("1x1", (640, 360), (1080, 1080)), ("9x16", (1280, 720), (1080, 1920)),
])
def test_output_size(shape: str, src: tuple[int, int], size: tuple[int, int]) -> None:
    assert output_size(shape, *src) == size


def test_crop_box_is_centred_with_the_output_aspect() -> None:
    assert crop_box(1280, 720, 1080, 1920) == (404, 720, 438, 0)
    assert crop_box(1280, 720, 1080, 1080) == (720, 720, 280, 0)
    assert crop_box(720, 1280, 1280, 720) == (720, 404, 0, 438)


def test_shapes_have_the_promised_size_duration_and_codecs(full_size) -> None:
    for (shape, fit), want in {("1x1", "crop"): (1080, 1080), ("9x16", "crop"): (1080, 1920),
                               ("9x16", "pad"): (1080, 1920)}.items():
        result = full_size[shape, fit]
        s = streams(result.path)
        v, a = s["video"], s["audio"]
        assert (result.width, result.height) == (v["width"], v["height"]) == want
        assert int(v["nb_read_packets"]) == 30  # 1.0-2.2 s at 25 fps, frame-exact
        assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert (a["codec_name"], a["sample_rate"]) == ("aac", "48000")
        assert result.duration == pytest.approx(1.2, abs=0.08)
        head = result.path.read_bytes()[:200_000]
        assert head.index(b"moov") < head.index(b"mdat")  # +faststart


def test_16x9_keeps_the_source_shape_and_reports_progress(captioned, clip: Path) -> None:
    result, calls = captioned
    assert (result.format, result.fit, result.captions) == ("16x9", "crop", True)
    assert (result.width, result.height) == (640, 360)
    assert int(streams(result.path)["video"]["nb_read_packets"]) == 250
    assert calls[0] == (0.0, "measuring loudness") and calls[-1] == (1.0, "done")
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions)
    assert result.settings["video"]["preset"] and result.settings["audio"]["normalised"]


def test_captions_appear_exactly_while_their_cue_is_on(captioned, plain) -> None:
    with_caps = decode_gray(captioned[0].path, size="320x180")
    without = decode_gray(plain.path, size="320x180")
    shown = {i for i, d in enumerate(band_diff(with_caps, without, CAPTION_ROWS)) if d > 4.0}
    want = frames_in(CUE_A) | frames_in(CUE_B)
    assert len(shown ^ want) <= 2, sorted(shown ^ want)  # at most one frame off at either end
    assert band_diff(with_caps, without, TOP_ROWS).max() < 1.5  # nothing drawn elsewhere


def test_trim_is_frame_accurate_and_shifts_captions(clip: Path, plain, render_dir: Path) -> None:
    out = render_shape(clip, render_dir / "trim.mp4", shape="16x9", words=WORDS,
                       trim_in=4.0, trim_out=9.0)
    assert int(streams(out.path)["video"]["nb_read_packets"]) == 125
    got = decode_gray(out.path, size="320x180")
    source = decode_gray(clip, size="320x180")
    assert match_frame(got[0, TOP_ROWS], source[:, TOP_ROWS])[0] == 100
    assert match_frame(got[-1, TOP_ROWS], source[:, TOP_ROWS])[0] == 224
    reference = decode_gray(plain.path, size="320x180")[100:225]
    shown = {i for i, d in enumerate(band_diff(got, reference, CAPTION_ROWS)) if d > 4.0}
    want = frames_in((CUE_B[0] - 4.0, CUE_B[1] - 4.0))
    assert len(shown ^ want) <= 2, sorted(shown ^ want)


def test_speech_is_normalised_to_minus_14_lufs(clip: Path, plain) -> None:
    assert loudness(clip)[0] < -17  # the input really was quieter
    i, tp = loudness(plain.path)
    assert i == pytest.approx(-14.0, abs=1.0)
    assert tp <= -1.0
    assert plain.settings["audio"]["normalisation"] == "limited"  # espeak is too peaky for gain


def test_loud_tone_is_brought_down_under_the_peak_limit(loud_clip: Path, render_dir: Path) -> None:
    assert loudness(loud_clip)[0] > -6
    result = render_shape(loud_clip, render_dir / "loud-out.mp4", shape="16x9")
    i, tp = loudness(result.path)
    assert i == pytest.approx(-14.0, abs=1.0)
    assert tp <= -1.0
    assert result.settings["audio"]["normalisation"] == "linear"
    assert result.captions is False  # no words, no captions


def test_pad_shows_the_whole_frame_over_a_blur_and_crop_fills(full_size, clip: Path) -> None:
    crop = decode_gray(full_size["9x16", "crop"].path, size="270x480")[5]
    pad = decode_gray(full_size["9x16", "pad"].path, size="270x480")[5]
    source = decode_gray(clip, size="270x152")[30]  # 1.2 s into the clip = frame 5 of the renders

    def sharpest_edge(img: np.ndarray) -> int:
        return int(np.abs(np.diff(img, axis=1)).max())

    band = slice((480 - 152) // 2, (480 - 152) // 2 + 152)
    assert sharpest_edge(pad[:120]) < 20 < 60 < sharpest_edge(crop[:120])  # blurred vs sharp
    assert np.abs(pad[band] - source).mean() < 12  # the full picture, letterboxed
    assert np.abs(crop[band] - source).mean() > 25  # a centre cut, not the full picture


def test_attribution_and_logo_are_drawn_at_the_top(clip: Path, render_dir: Path, logo: Path,
                                                   plain) -> None:
    out = render_shape(clip, render_dir / "credit.mp4", shape="16x9", trim_in=0.0, trim_out=1.0,
                       attribution="BBC News · 23 Nov 2026", logo=logo, captions=False)
    got = decode_gray(out.path, size="320x180")
    ref = decode_gray(plain.path, size="320x180")[: len(got)]
    diff = np.abs(got - ref).mean(axis=0)
    assert diff[:40, :100].mean() > 4  # the attribution, top left
    assert diff[:40, -60:].mean() > 20  # the magenta logo, top right
    assert diff[CAPTION_ROWS].mean() < 1.5
    assert out.settings["attribution"] == "BBC News · 23 Nov 2026"


def test_silent_and_picture_only_clips_render(render_dir: Path) -> None:
    silent = render_dir / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1",
           "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "1", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(silent))
    mute = render_dir / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(mute))
    a = render_shape(silent, render_dir / "silent-out.mp4", shape="16x9")
    assert a.settings["audio"]["normalised"] is False and "audio" in streams(a.path)
    b = render_shape(mute, render_dir / "mute-out.mp4", shape="16x9")
    assert "audio" not in streams(b.path) and b.duration == pytest.approx(1.0, abs=0.05)


def test_sound_alone_renders_as_its_waveform_with_captions(render_dir: Path) -> None:
    """A radio clip (no picture): each shape shows its waveform, captions burned on it, with
    the sound brought to -14 LUFS (an "audiogram"); silence draws nothing."""
    radio = render_dir / "radio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=4",
           "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-filter_complex",
           "[0:a][1:a]concat=n=2:v=0:a=1", "-t", "8", "-c:a", "aac", str(radio))
    words = [Word(0.5, 1.5, "radio"), Word(1.6, 2.6, "news")]
    plain, captioned = (render_package_shapes(
        radio, [RenderRequest(render_dir / f"radio-{tag}-9x16.mp4", "9x16", "pad")],
        words=w, trim_in=0.0, trim_out=6.0)[0] for tag, w in (("plain", []), ("cc", words)))
    assert (captioned.width, captioned.height) == (1080, 1920) and captioned.captions
    assert captioned.duration == pytest.approx(6.0, abs=0.05)
    assert {"video", "audio"} <= set(streams(captioned.path))
    tone, quiet = (decode_gray(plain.path, size="54x96", start=t, seconds=0.04)[0]
                   for t in (1.0, 5.0))
    assert tone.max() > 60 and quiet.max() < 20  # the tone's band; silence is a flat line
    cc = decode_gray(captioned.path, size="54x96", start=1.0, seconds=0.04)[0]
    rows = np.abs(cc - tone).mean(axis=1)  # the words, drawn in the lower third only
    assert rows[64:90].max() > 20 and rows[:60].max() < 1


@pytest.mark.parametrize("kwargs", [
    {"shape": "4x5"}, {"shape": "9x16", "fit": "stretch"},
    {"shape": "16x9", "trim_in": 9.5, "trim_out": 9.55}, {"shape": "16x9", "trim_in": 12.0},
])
def test_bad_requests_are_refused_before_rendering(clip: Path, tmp_path: Path, kwargs) -> None:
    with pytest.raises(InvalidInput):
        render_shape(clip, tmp_path / "x.mp4", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_peaky_audio_gets_a_limiter_before_the_linear_pass() -> None:
    speech = {"input_i": "-20.9", "input_tp": "-1.7"}
    assert not linear_fits(speech, -14.0)
    assert linear_fits({"input_i": "-20.9", "input_tp": "-9.0"}, -14.0)
    (vol, gain), (lim, opts) = limiter_filters(6.9)
    assert (vol, gain["volume"], lim) == ("volume", "6.90dB", "alimiter")
    assert opts["limit"] < 0.8 and opts["level"] == 0  # no auto-level: it would undo the limit
    assert next_gain([(6.9, -15.9)], -14.0) == pytest.approx(10.7)  # the limiter eats ~half
    assert next_gain([(6.9, -15.9), (10.7, -14.5)], -14.0) == pytest.approx(12.057, abs=1e-3)


def test_loudnorm_second_pass_options() -> None:
    stderr = ('[Parsed_loudnorm_0 @ 0x1]\n{\n\t"input_i" : "-23.10",\n\t"input_tp" : "-5.20",\n'
              '\t"input_lra" : "4.10",\n\t"input_thresh" : "-33.40",\n\t"output_i" : "-14.2",\n'
              '\t"target_offset" : "0.20"\n}\n')
    measured = parse_loudnorm(stderr)
    opts = loudnorm_options(measured, -14.0)
    assert opts is not None
    assert (opts["measured_I"], opts["offset"], opts["linear"]) == ("-23.10", 0.2, "true")
    assert loudnorm_options({**measured, "target_offset": "inf"}, -14.0)["offset"] == 0.0
    assert loudnorm_options({**measured, "input_i": "-inf"}, -14.0) is None


def test_package_order_renders_the_first_shape_alone_and_shares_loudness(clip: Path,
                                                                         render_dir: Path) -> None:
    done: list[str] = []
    results = render_package_shapes(
        clip, [RenderRequest(render_dir / "pk-16x9.mp4", "16x9"),
               RenderRequest(render_dir / "pk-1x1.mp4", "1x1", "pad")],
        trim_in=2.0, trim_out=3.0, progress=lambda f, s: done.append(s) if f >= 1.0 else None)
    assert ([(r.format, r.fit, r.width) for r in results]
            == [("16x9", "crop", 640), ("1x1", "pad", 1080)])
    assert done == ["done", "done"]  # two ffmpeg runs: the preview is ready first
    assert plan_audio(clip, 2.0, 1.0, -14.0) is plan_audio(clip, 2.0, 1.0, -14.0)


@pytest.mark.services
def test_pad_works_on_a_small_source(tmp_path):
    """A 320x180 source makes a tiny blurred background; the blur must still fit it."""
    from clipper.media.render import RenderRequest, render_shapes
    from testmedia.mediagen import make_video

    src = make_video(tmp_path / "small.mp4", 2)
    [result] = render_shapes(src, [RenderRequest(tmp_path / "pad.mp4", "16x9", "pad")],
                             captions=False)
    assert (result.width, result.height) == (320, 180)


@pytest.mark.services
def test_anamorphic_broadcast_renders_as_people_see_it(tmp_path: Path) -> None:
    """An SD broadcast is 720x576 stored, 1024x576 shown (pixel aspect 64:45): the 16x9 render
    must keep the whole picture, not crop a 16:9 box out of the stored 5:4 pixels."""
    src = tmp_path / "sd.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=black:size=720x576:rate=25:duration=1",
           "-vf", "drawbox=x=0:y=0:w=iw:h=40:color=white:t=fill,setsar=64/45",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src))
    [wide, square] = render_package_shapes(
        src, [RenderRequest(tmp_path / "wide.mp4", "16x9"),
              RenderRequest(tmp_path / "sq.mp4", "1x1")],
        captions=False)
    assert (wide.width, wide.height) == (1024, 576)
    assert streams(wide.path)["video"]["sample_aspect_ratio"] in ("1:1", None)
    top = decode_gray(wide.path, size="64x36")[0]
    assert top[:2].mean() > 200 and top[4:].mean() < 30  # the top band survived, unstretched
    # 1x1 crops the sides of the 1024-wide picture: 576 of it, centred, scaled to 1080.
    band = decode_gray(square.path, size="60x60")[0]
    assert band[:3].mean() > 200 and band[6:].mean() < 30


def test_working_files_live_in_the_given_folder_and_go_with_the_render(
        clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A scratch folder under a media dir whose path ffmpeg-python would mis-escape in a filter.
    scratch = tmp_path / "media:x's" / "tmp" / "run-7"
    seen: list[tuple[Path, list[str]]] = []
    real_run = ffrun.run

    def watched(args, **kwargs):  # noqa: ANN001, ANN202 - a spy on ffmpeg runs
        if kwargs.get("cwd"):  # the encode (the loudness passes write no files)
            cwd = Path(kwargs["cwd"])
            seen.append((cwd, sorted(p.name for p in cwd.iterdir())))
        return real_run(args, **kwargs)

    monkeypatch.setattr(ffrun, "run", watched)
    out = render_shape(clip, tmp_path / "out.mp4", shape="16x9", words=WORDS, trim_in=1.0,
                       trim_out=2.0, tmp_dir=scratch)
    [(work, files)] = seen
    assert work.parent == scratch and work.name.startswith("clipper_render_")
    assert "captions-16x9-crop.ass" in files  # burned in by its name, ffmpeg running in `work`
    assert out.captions and out.path.is_file() and abs(out.duration - 1.0) < 0.1
    assert list(scratch.iterdir()) == []  # the working folder went; the scratch is the run's
