"""Reusable test-media generators (ffmpeg, espeak-ng) and a tiny loopback HTTP server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def _run(args: Sequence[str]) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}\n{proc.stderr[-2000:]}")


def make_speech(text: str, out: Path, *, voice: str = "en-us", wpm: int = 150) -> Path:
    """Speak `text` into a WAV file with espeak-ng."""
    _run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(out), text])
    return out


def _video_codec_args(vcodec: str, rate: int, gop: int, keyint_min: int | None,
                      keyframes_at: Sequence[float] | None) -> list[str]:
    if vcodec != "libx264":
        return ["-c:v", vcodec, "-g", str(gop), "-b:v", "1M"]
    args = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(gop), "-keyint_min", str(keyint_min or gop)]
    if keyframes_at is not None:
        args += ["-force_key_frames", ",".join(f"{t:.3f}" for t in keyframes_at),
                 "-sc_threshold", "0"]
    elif keyint_min is None:
        args += ["-sc_threshold", "0"]  # exactly one keyframe every `gop` frames
    return args


def make_video(path: Path, seconds: float, size: str = "320x180", rate: int = 25, gop: int = 50,
               keyint_min: int | None = None, speech: Path | str | None = None, *,
               vcodec: str = "libx264", acodec: str = "aac", audio: bool = True,
               video: bool = True, keyframes_at: Sequence[float] | None = None,
               extra: Sequence[str] = ()) -> Path:
    """Generate a test file: testsrc2 picture (changes every frame) + a tone or speech track.

    gop: keyframe interval in frames; keyint_min: allow x264 scene-cut keyframes in between;
    keyframes_at: force keyframes at these times (irregular layouts); speech: a WAV path or a text
    to speak (padded/cut to `seconds`); the container follows path's suffix (.mp4, .ts, .mkv, .m4a).
    """
    path = Path(path)
    args = [*FFMPEG]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        if speech is not None:
            wav = Path(speech) if Path(str(speech)).suffix == ".wav" else make_speech(
                str(speech), path.with_suffix(".speech.wav"))
            args += ["-i", str(wav), "-filter:a", f"apad,atrim=0:{seconds}"]
        else:
            args += ["-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={seconds}"]
    if video:
        args += _video_codec_args(vcodec, rate, gop, keyint_min, keyframes_at)
    if audio:
        args += ["-c:a", acodec, "-ar", "48000", "-ac", "1"]
    args += [*extra, "-t", str(seconds), str(path)]
    _run(args)
    return path


def make_hls(src: Path, out_dir: Path, hls_time: float = 4, *, fmp4: bool = False,
             single_file: bool = False) -> Path:
    """Remux `src` into an HLS VOD playlist (`index.m3u8` + .ts segments; `fmp4`: an init.mp4
    and .m4s segments; `single_file`: one file the playlist names by byte ranges); returns the
    playlist."""
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / "index.m3u8"
    kind = ["-hls_segment_type", "fmp4"] if fmp4 else []
    if single_file:
        kind += ["-hls_flags", "single_file"]
    name = "seg%04d.m4s" if fmp4 else "seg%04d.ts"
    _run([*FFMPEG, "-i", str(src), "-c", "copy", "-f", "hls", "-hls_time", str(hls_time),
          "-hls_playlist_type", "vod", *kind,
          "-hls_segment_filename", str(out_dir / ("all.m4s" if single_file else name)),
          str(playlist)])
    return playlist


def make_hls_renditions(src: Path, out_dir: Path, hls_time: float = 2) -> Path:
    """Remux `src` into an fMP4 HLS master whose picture and sound are separate renditions
    (an audio group, as broadcasters' packagers write); returns the master playlist."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run([*FFMPEG, "-i", str(src), "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "hls",
          "-hls_time", str(hls_time), "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
          "-var_stream_map", "v:0,agroup:aud a:0,agroup:aud,default:yes",
          "-master_pl_name", "master.m3u8", "-hls_fmp4_init_filename", "init_%v.mp4",
          "-hls_segment_filename", str(out_dir / "s%v_%04d.m4s"), str(out_dir / "p%v.m3u8")])
    master = out_dir / "master.m3u8"
    # yt-dlp takes a variant without CODECS for picture and sound together.
    master.write_text(master.read_text().replace(
        'AUDIO="group_aud"', 'AUDIO="group_aud",CODECS="avc1.64000d,mp4a.40.2"'))
    return master


def make_dash(src: Path, out_dir: Path, seconds: float = 2) -> Path:
    """Remux `src` into a DASH VOD manifest (picture and sound as separate adaptation sets, a
    segment template and timeline); returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.mpd"
    _run([*FFMPEG, "-i", str(src), "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "dash",
          "-seg_duration", str(seconds), "-use_template", "1", "-use_timeline", "1",
          str(manifest)])
    return manifest


def decode_gray(path: Path, *, size: str = "160x90", start: float | None = None,
                seconds: float | None = None) -> np.ndarray:
    """Decode video frames as small grayscale arrays (frames, h, w), on ffmpeg's -ss timeline."""
    w, h = (int(x) for x in size.split("x"))
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    if start is not None:
        args += ["-ss", f"{start:.6f}"]
    args += ["-i", str(path)]
    if seconds is not None:
        args += ["-t", f"{seconds:.6f}"]
    args += ["-map", "0:v:0", "-vf", f"scale={w}:{h}:flags=area", "-vsync", "passthrough",
             "-pix_fmt", "gray", "-f", "rawvideo", "-"]
    proc = subprocess.run(args, capture_output=True, check=True)
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w).astype(np.int16)


def match_frame(frame: np.ndarray, source: np.ndarray) -> tuple[int, float, float]:
    """Index of the source frame most like `frame`, its mean abs diff, and the runner-up's."""
    diffs = np.abs(source - frame[None]).mean(axis=(1, 2))
    order = np.argsort(diffs)
    return int(order[0]), float(diffs[order[0]]), float(diffs[order[1]])


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single `Range: bytes=a-b` requests (ffmpeg seeks in MP4).

    With `ranges = False` it is SimpleHTTPRequestHandler as is, which ignores Range and answers
    200 with the whole file, as `python -m http.server` and some servers in the wild do.
    """

    log_message = staticmethod(lambda *a, **k: None)  # type: ignore[assignment]
    ranges = True

    def send_head(self):  # type: ignore[no-untyped-def]
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not self.ranges or rng is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first = int(rng[1]) if rng[1] else max(0, size - int(rng[2] or 0))
        last = min(int(rng[2]), size - 1) if rng[1] and rng[2] else size - 1
        if first >= size:
            self.send_error(416)
            return None
        f = path.open("rb")
        f.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        return _Limited(f, last - first + 1)


class _Limited:
    """A file object that reads at most `left` bytes (what copyfile sends for a range)."""

    def __init__(self, f: BinaryIO, left: int) -> None:
        self.f, self.left = f, left

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-file (ffmpeg does, once it has what it needs) is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_dir(directory: Path, *, hook: Callable[[http.server.BaseHTTPRequestHandler], bool]
              | None = None, tls: ssl.SSLContext | None = None,
              ranges: bool = True) -> Iterator[tuple[str, list[str]]]:
    """Serve `directory` on 127.0.0.1 in a thread (over https with `tls`); yields
    (base_url, requested_paths).

    `hook(handler)` runs before each GET; when it returns True it has answered the request itself
    (e.g. with a 503). Every requested path is appended to the list, so tests can count segments.
    `ranges=False`: ignore Range headers (always 200 and the whole file), like a plain
    `python -m http.server`.
    """
    requested: list[str] = []
    honour_ranges = ranges

    class Handler(_RangeHandler):
        ranges = honour_ranges

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requested.append(self.path)
            if hook is not None and hook(self):
                return
            super().do_GET()

    server = _QuietServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
