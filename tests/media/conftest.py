"""Session-wide generated media for the media tests (built once, small frames)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mediacheck import IRREGULAR  # noqa: E402

from testmedia.mediagen import (  # noqa: E402
    make_dash,
    make_hls,
    make_hls_renditions,
    make_video,
    serve_dir,
)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def gop2(media_dir: Path) -> Path:
    return make_video(media_dir / "gop2.mp4", 24, gop=50, extra=["-movflags", "+faststart"])


@pytest.fixture(scope="session")
def gop10(media_dir: Path) -> Path:
    return make_video(media_dir / "gop10.mp4", 24, gop=250)


@pytest.fixture(scope="session")
def irregular(media_dir: Path) -> Path:
    return make_video(media_dir / "irregular.mp4", 24, gop=1000, keyframes_at=IRREGULAR)


@pytest.fixture(scope="session")
def mpegts(gop2: Path, media_dir: Path) -> Path:
    out = media_dir / "gop2.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(gop2), "-c", "copy", "-f", "mpegts",
                    str(out)],
                   check=True)
    return out


@pytest.fixture(scope="session")
def gop10ts(gop10: Path, media_dir: Path) -> Path:
    """gop10 as MPEG-TS: no keyframe index, a keyframe each 10 s."""
    out = media_dir / "gop10.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(gop10), "-c", "copy", "-f", "mpegts",
                    str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def hls(gop2: Path, media_dir: Path) -> Path:
    return make_hls(gop2, media_dir / "hls", hls_time=2)


@pytest.fixture(scope="session")
def fmp4_hls(gop2: Path, media_dir: Path) -> Path:
    """gop2 as HLS of fragmented-MP4 segments (EXT-X-MAP), 2 s each."""
    return make_hls(gop2, media_dir / "fmp4", hls_time=2, fmp4=True)


@pytest.fixture(scope="session")
def fmp4_single(gop2: Path, media_dir: Path) -> Path:
    """gop2 as fMP4 HLS in one file, its segments named by EXT-X-BYTERANGE."""
    return make_hls(gop2, media_dir / "fmp4single", hls_time=2, fmp4=True, single_file=True)


@pytest.fixture(scope="session")
def fmp4_renditions(gop2: Path, media_dir: Path) -> Path:
    """gop2 as an fMP4 HLS master with picture and sound in separate renditions."""
    return make_hls_renditions(gop2, media_dir / "renditions")


@pytest.fixture(scope="session")
def dash(gop2: Path, media_dir: Path) -> Path:
    """gop2 as a DASH manifest, picture and sound apart."""
    return make_dash(gop2, media_dir / "dash")


@pytest.fixture(scope="session")
def server(media_dir: Path, gop2: Path, hls: Path, fmp4_hls: Path, fmp4_single: Path,
           fmp4_renditions: Path, dash: Path, mpegts: Path, gop10ts: Path):  # type: ignore[no-untyped-def]
    """Loopback HTTP server over media_dir; paths under /flaky/ answer 503 twice, then serve."""
    seen: Counter[str] = Counter()

    def hook(handler) -> bool:  # type: ignore[no-untyped-def]
        if not handler.path.startswith("/flaky/"):
            return False
        seen[handler.path] += 1
        if seen[handler.path] <= 2:
            handler.send_error(503)
            return True
        handler.path = handler.path.removeprefix("/flaky")
        return False

    with serve_dir(media_dir, hook=hook) as (base, requested):
        yield base, requested
