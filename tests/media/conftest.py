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
def discontinuous(gop2: Path, media_dir: Path) -> tuple[Path, Path]:
    """A VOD stitched from two programmes (`disc/index.m3u8`): gop2's 24 s, an
    EXT-X-DISCONTINUITY, then 8 s of another whose timestamps start again; and that second
    programme's own playlist (`disc/b/index.m3u8`), which says what its frames are."""
    folder = media_dir / "disc"
    a = make_hls(gop2, folder / "a", hls_time=2)
    b = make_hls(make_video(media_dir / "second.mp4", 8, gop=50), folder / "b", hls_time=2)

    def body(playlist: Path) -> list[str]:
        lines = playlist.read_text().splitlines()
        return [f"{playlist.parent.name}/{line}" if line.endswith(".ts") else line
                for line in lines if line.startswith("#EXTINF") or line.endswith(".ts")]

    (folder / "index.m3u8").write_text("\n".join([
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-PLAYLIST-TYPE:VOD",
        *body(a), "#EXT-X-DISCONTINUITY", *body(b), "#EXT-X-ENDLIST"]) + "\n")
    return folder / "index.m3u8", b


@pytest.fixture(scope="session")
def server(media_dir: Path, gop2: Path, hls: Path, fmp4_hls: Path, fmp4_single: Path,
           fmp4_renditions: Path, dash: Path, mpegts: Path, gop10ts: Path,
           discontinuous: tuple[Path, Path]):  # type: ignore[no-untyped-def]
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
