"""Demo media: a few minutes of generated 720p 'news' with synthetic speech,
served over loopback."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import ffmpeg

from clipper.media import ffrun

SCRIPT = [
    "Good evening. Here is the news at six.",
    "The health secretary said waiting lists would fall by forty percent before the election.",
    "Opposition leaders called the promise unrealistic and demanded a full costing.",
    "In the debate tonight, the prime minister said, and I quote, "
    "we will build three hundred new schools.",
    "Independent analysts said the figures did not add up.",
    "Turning to the economy, inflation fell to three point two percent last month.",
    "The chancellor welcomed the figures but warned that interest rates would stay high.",
    "Farmers protested outside parliament about new rules on water.",
    "A spokesperson said the government was listening and would publish a plan in the spring.",
    "Now the weather. Rain will spread from the west overnight, with strong winds on the coast.",
    "That is all from us. Good night.",
]
GAP_SECONDS = 2.5


def _speech(out: Path, work: Path, script: list[str]) -> None:
    """espeak-ng sentences joined with silences into one WAV."""
    parts = []
    for i, line in enumerate(script):
        wav = work / f"s{i:02d}.wav"
        subprocess.run(["espeak-ng", "-v", "en-gb", "-s", "155", "-w", str(wav), line], check=True,
                       capture_output=True)
        parts.append(wav)
    listing = work / "parts.txt"
    silence = work / "silence.wav"
    ffrun.run(ffmpeg.input("anullsrc=r=22050:cl=mono", f="lavfi", t=GAP_SECONDS)
              .output(str(silence)), what="make silence")
    listing.write_text("".join(f"file '{p}'\nfile '{silence}'\n" for p in parts))
    ffrun.run(ffmpeg.input(str(listing), f="concat", safe=0).output(str(out), ar=48000, ac=1),
              what="join demo speech")


def make_demo_media(home: Path, *, script: list[str] | None = None, size: str = "1280x720") -> Path:
    """The demo broadcast MP4 (cached) and an HLS copy beside it; returns the demo folder.

    The default is the whole script twice (about 2.5 minutes of 720p25, keyframes every 2 s).
    """
    folder = home / "demo"
    mp4, m3u8 = folder / "broadcast.mp4", folder / "broadcast.m3u8"
    if mp4.exists() and m3u8.exists():
        return folder
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    speech = work / "speech.wav"
    _speech(speech, work, script or SCRIPT * 2)
    video = ffmpeg.input(f"testsrc2=size={size}:rate=25", f="lavfi").video.drawtext(
        text="CLIPPER DEMO NEWS  %{pts\\:hms}", x=20, y="h-th-20", fontsize="h/18",
        fontcolor="white", box=1, boxcolor="black@0.6",
        fontfile="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    audio = ffmpeg.input(str(speech))
    tmp = folder / "broadcast.tmp.mp4"
    ffrun.run(ffmpeg.output(video, audio, str(tmp), vcodec="libx264", preset="veryfast", crf=26,
                            g=50, pix_fmt="yuv420p", acodec="aac", shortest=None,
                            movflags="+faststart"), what="make demo video")
    tmp.replace(mp4)
    ffrun.run(ffmpeg.input(str(mp4)).output(str(m3u8), c="copy", f="hls", hls_time=4,
                                            hls_playlist_type="vod",
                                            hls_segment_filename=str(folder / "seg%03d.ts")),
              what="make demo HLS")
    shutil.rmtree(work, ignore_errors=True)
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-segment (ffmpeg does) are not errors worth a traceback


class DemoServer:
    """Serves the demo folder on 127.0.0.1 in a background thread."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = _QuietServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name="demo-http")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> DemoServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
