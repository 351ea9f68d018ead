"""fetch_section from servers that ignore Range (a plain `python -m http.server`, some servers in
the wild): the section is read sequentially through the guard and cut locally, frame-exact.

Real ffmpeg, yt-dlp and loopback HTTP. `bigstart` is what trips ffmpeg's seeking on such servers
(FACTS.md, "yt-dlp over loopback"): a faststart MP4 whose first frames are large, as a real
broadcast's are, so that ffmpeg, having read past them while probing, cannot seek back to the
first keyframe; every section starting in the first GOP (10 s) failed as "no playable media".
"""

from __future__ import annotations

import http.server
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from mediacheck import assert_frame_exact

from clipper.errors import PermanentError, TransientError
from clipper.media.cut import cut_clip
from clipper.media.fetch import fetch_section
from clipper.net.guard import GuardProxy
from testmedia.mediagen import make_video, serve_dir

Served = tuple[str, list[tuple[str, str]]]


@pytest.fixture(scope="module")
def bigstart(media_dir: Path) -> Path:
    """Faststart, keyframes every 10 s, the first half second noisy (32 KB frames at 320x180)."""
    return make_video(media_dir / "bigstart.mp4", 24, gop=250,
                      extra=["-vf", "noise=alls=100:allf=t:enable='lt(t,0.5)'",
                             "-movflags", "+faststart"])


def _serve(media_dir: Path, *, ranges: bool) -> Iterator[Served]:
    """Serve media_dir; yields (base URL, [(path, Range header or "")] of every GET)."""
    seen: list[tuple[str, str]] = []

    def hook(handler: http.server.BaseHTTPRequestHandler) -> bool:
        seen.append((handler.path, handler.headers.get("Range", "")))
        return False

    with serve_dir(media_dir, hook=hook, ranges=ranges) as (base, _):
        yield base, seen


@pytest.fixture(scope="module")
def norange(media_dir: Path, bigstart: Path, gop10: Path, gop10ts: Path) -> Iterator[Served]:
    yield from _serve(media_dir, ranges=False)


@pytest.fixture(scope="module")
def ranged(media_dir: Path, bigstart: Path) -> Iterator[Served]:
    yield from _serve(media_dir, ranges=True)


def _fetch_and_cut(url: str, source: Path, start: float, end: float, pad: float, tmp: Path,
                   guard: GuardProxy | None = None) -> Path:
    dest = tmp / "src"
    sec = fetch_section(url, start, end, dest_dir=dest, pad=pad, proxy=guard, tries=1)
    assert sec.path.parent == dest and sec.duration < end - start + 2 * pad + 10.5
    assert [p.name for p in dest.iterdir()] == [sec.path.name]  # no temporary file outlives it
    clip = cut_clip(sec.path, start - sec.offset, end - sec.offset, tmp / "clip.mp4")
    assert_frame_exact(clip.path, source, start, end)
    return sec.path


@pytest.mark.parametrize(("start", "end", "pad"), [(1.6, 4.52, 0.5), (3.5, 8.5, 0.5)])
def test_faststart_section_near_the_start_without_range(norange: Served, bigstart: Path,
                                                         tmp_path: Path, start: float,
                                                         end: float, pad: float) -> None:
    base, _ = norange
    _fetch_and_cut(f"{base}/bigstart.mp4", bigstart, start, end, pad, tmp_path)


def test_faststart_without_range_through_the_guard(norange: Served, bigstart: Path,
                                                   tmp_path: Path) -> None:
    base, seen = norange
    before = len(seen)
    with GuardProxy(["127.0.0.1"]) as guard:
        _fetch_and_cut(f"{base}/bigstart.mp4", bigstart, 2.2, 6.6, 1.0, tmp_path, guard)
        assert guard.unsafe_error() is None
    # It asked for one byte, was sent the whole file: the server was found to ignore Range.
    assert ("/bigstart.mp4", "bytes=0-0") in seen[before:]


def test_moov_at_the_end_without_range(norange: Served, gop10: Path, tmp_path: Path) -> None:
    """ffmpeg cannot read such a file from a stream at all: the whole file is downloaded to the
    fetch's scratch folder, the section cut from it, and the download deleted."""
    base, _ = norange
    with GuardProxy(["127.0.0.1"]) as guard:
        path = _fetch_and_cut(f"{base}/gop10.mp4", gop10, 12.33, 15.71, 1.5, tmp_path, guard)
    assert path.stat().st_size < gop10.stat().st_size / 2  # a section is kept, not the programme


def test_mpeg_ts_without_range(norange: Served, gop10ts: Path, tmp_path: Path) -> None:
    """Cut locally as yt-dlp would from the network: as MP4, from earlier while the picture is
    late (see tests/media/test_fetch.py's .ts test)."""
    base, _ = norange
    path = _fetch_and_cut(f"{base}/gop10.ts", gop10ts, 13.37, 15.9, 1.0, tmp_path)
    assert path.suffix == ".mp4"


@pytest.mark.parametrize("name", ["bigstart.mp4", "gop10.mp4"])
def test_a_section_beyond_the_end_says_the_duration(norange: Served, tmp_path: Path,
                                                    name: str) -> None:
    base, _ = norange
    with pytest.raises(PermanentError, match=r"lasts only 24\.\d s"):
        fetch_section(f"{base}/{name}", 100, 110, dest_dir=tmp_path / "src", pad=1, tries=1)
    assert not list((tmp_path / "src").iterdir())


def test_a_dropped_connection_is_transient_not_a_short_section(media_dir: Path, bigstart: Path,
                                                              tmp_path: Path) -> None:
    """The server announces the whole file and sends a third: ffmpeg would exit 0 with a short
    file, the download would stop early; either way the fetch is retried, nothing is kept."""
    body = bigstart.read_bytes()

    def hook(handler: http.server.BaseHTTPRequestHandler) -> bool:
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:len(body) // 3])
        return True

    with serve_dir(media_dir, hook=hook, ranges=False) as (base, _), \
            pytest.raises(TransientError, match="closed after"):
        fetch_section(f"{base}/bigstart.mp4", 15.0, 18.0, dest_dir=tmp_path / "src", pad=1,
                      tries=1)
    assert not list((tmp_path / "src").iterdir())


def test_a_server_with_range_still_gets_section_requests(ranged: Served, bigstart: Path,
                                                         tmp_path: Path) -> None:
    """No sequential read where seeking works: ffmpeg jumps to the section's keyframe."""
    base, seen = ranged
    before = len(seen)
    path = _fetch_and_cut(f"{base}/bigstart.mp4", bigstart, 15.2, 18.8, 1.0, tmp_path)
    ranges = [r for p, r in seen[before:] if p == "/bigstart.mp4"]
    assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges
    assert path.stat().st_size < bigstart.stat().st_size / 2


def test_the_sequential_read_cannot_leave_the_guard(media_dir: Path, bigstart: Path,
                                                    tmp_path: Path) -> None:
    """The source answers the fallback's reads with a redirect to an internal address: the
    guard refuses it, nothing connects there, and the clip fails saying why."""
    internal = socket.create_server(("127.0.0.2", 0))
    internal.setblocking(False)
    where = f"http://127.0.0.2:{internal.getsockname()[1]}/bigstart.mp4"

    served: list[str] = []
    redirected: list[str] = []

    def hook(handler: http.server.BaseHTTPRequestHandler) -> bool:
        if not served or handler.headers.get("Range") == "bytes=0-0":
            served.append(handler.path)  # yt-dlp's look at the link, and the Range probe
            return False
        redirected.append("ffmpeg" if "Icy-MetaData" in handler.headers else "python")
        handler.send_response(302)
        handler.send_header("Location", where)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    try:
        with serve_dir(media_dir, hook=hook, ranges=False) as (base, _), \
                GuardProxy(["127.0.0.1"]) as guard, \
                pytest.raises(PermanentError, match="must not go"):
            fetch_section(f"{base}/bigstart.mp4", 1.0, 4.0, dest_dir=tmp_path / "src", pad=0,
                          proxy=guard, tries=1)
        with pytest.raises(BlockingIOError):
            internal.accept()  # nobody came
    finally:
        internal.close()
    # Both reads of the fallback were sent away: ffmpeg's stream (it sends Icy-MetaData), then,
    # that having failed, the download of the whole file.
    assert len(served) == 2 and redirected == ["ffmpeg", "python"], redirected
    assert not list((tmp_path / "src").glob("*"))
