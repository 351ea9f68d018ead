"""Render fixtures: small generated clips (testsrc2 + espeak-ng speech), known word timings,
renders made once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_fixtures import SPEECH, WORDS, ffmpeg  # noqa: E402

from clipper.media.render import RenderRequest, render_shape, render_shapes  # noqa: E402
from testmedia.mediagen import make_video  # noqa: E402


@pytest.fixture(scope="session")
def render_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="session")
def clip(render_dir: Path) -> Path:
    """10 s, 640x360, 25 fps, keyframe every 2 s, espeak speech (about -21 LUFS)."""
    return make_video(render_dir / "clip.mp4", 10, size="640x360", speech=SPEECH)


@pytest.fixture(scope="session")
def loud_clip(render_dir: Path) -> Path:
    """4 s, 320x180: a near full-scale 997 Hz tone (about -3 LUFS) that must come down."""
    out = render_dir / "loud.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
           "-f", "lavfi", "-i", "aevalsrc=0.97*sin(2*PI*997*t):s=48000:d=4",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "192k", "-shortest", str(out))
    return out


@pytest.fixture(scope="session")
def logo(render_dir: Path) -> Path:
    out = render_dir / "logo.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=0xff00ff:size=120x60", "-frames:v", "1", str(out))
    return out


@pytest.fixture(scope="session")
def captioned(clip: Path, render_dir: Path):
    """16x9 render of the whole clip with captions (and its progress reports)."""
    calls: list[tuple[float, str]] = []
    result = render_shape(clip, render_dir / "cap.mp4", shape="16x9", words=WORDS,
                          progress=lambda f, s: calls.append((f, s)))
    return result, calls


@pytest.fixture(scope="session")
def plain(clip: Path, render_dir: Path):
    """The same render with captions off: the reference picture."""
    return render_shape(clip, render_dir / "plain.mp4", shape="16x9", words=WORDS, captions=False)


@pytest.fixture(scope="session")
def full_size(clip: Path, render_dir: Path):
    """1x1 crop, 9x16 crop and 9x16 pad at full size, 1.2 s long, from one ffmpeg process."""
    requests = [RenderRequest(render_dir / "sq-crop.mp4", "1x1", "crop"),
                RenderRequest(render_dir / "v-crop.mp4", "9x16", "crop"),
                RenderRequest(render_dir / "v-pad.mp4", "9x16", "pad")]
    results = render_shapes(clip, requests, words=WORDS, captions=False, trim_in=1.0, trim_out=2.2)
    return {(r.format, r.fit): r for r in results}
