"""load_audio with a span gives the samples ffmpeg's `-ss START -t SECONDS` gives (what the asr
stage used to extract into a WAV), from MP4 and MPEG-TS, near the start and far in (sought)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from clipper.media.extract_audio import extract_audio
from clipper.transcribe.speech import SAMPLE_RATE, SEEK_AFTER, load_audio

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """70 s of seeded white noise as AAC in MP4 and in MPEG-TS (noise lines up one way only)."""
    folder = tmp_path_factory.mktemp("noise")
    out = {}
    for ext, fmt in (("mp4", "mp4"), ("ts", "mpegts")):
        out[ext] = folder / f"noise.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "anoisesrc=d=70:c=white:r=48000:seed=7:a=0.3", "-c:a", "aac", "-b:a",
                        "128k", "-f", fmt, str(out[ext])], check=True)
    return out


def lag(a: np.ndarray, b: np.ndarray, most: int = 400) -> int:
    """The shift of b against a (samples) where they agree best."""
    n = min(len(a), len(b)) - 2 * most
    scores = [float(np.dot(a[most:most + n], b[most + k:most + k + n]))
              for k in range(-most, most + 1)]
    return int(np.argmax(scores)) - most


@pytest.mark.parametrize("kind", ["mp4", "ts"])
@pytest.mark.parametrize("start", [0.0, 3.37, SEEK_AFTER + 12.5])
def test_a_span_is_what_ffmpeg_cuts(noise: dict[str, Path], tmp_path: Path, kind: str,
                                    start: float) -> None:
    src, seconds = noise[kind], 9.0
    span = load_audio(src, (start, seconds))
    wav = load_audio(extract_audio(src, start, seconds, tmp_path / "cut.wav"))
    assert abs(len(span.samples) - seconds * SAMPLE_RATE) <= 1 and span.offset == 0.0
    assert abs(len(span.samples) - len(wav.samples)) <= SAMPLE_RATE * 0.03
    assert abs(lag(wav.samples, span.samples)) <= 2  # 0.125 ms
    assert [p.name for p in tmp_path.iterdir()] == ["cut.wav"]


def test_a_span_past_the_end_is_what_is_there(noise: dict[str, Path]) -> None:
    tail = load_audio(noise["mp4"], (65.0, 20.0))
    assert 4.9 * SAMPLE_RATE <= len(tail.samples) <= 5.1 * SAMPLE_RATE
    assert load_audio(noise["mp4"], (80.0, 5.0)).samples.size == 0
