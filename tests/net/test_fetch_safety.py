"""SSRF end to end: a redirect from an allowlisted host to a private one is refused by the worker,
and so is an HLS playlist that names another way out only when ffmpeg reads it."""

from __future__ import annotations

import http.server
import socket
import threading

from clipper.permissions import Actor
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from testmedia.mediagen import make_hls, make_video, serve_dir

ANN = Actor.operator("ann")  # the local command-line operator, as `--by ann`


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str, handler: type) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_redirect_to_a_private_address_fails_the_clip_without_reaching_it(sqlite_ctx, run_jobs):
    internal = _serve("127.0.0.2", _Counter)  # 127.0.0.2 is not on the allowlist (127.0.0.1 is)
    _Redirect.target = f"http://127.0.0.2:{internal.server_address[1]}/admin.mp4"
    public = _serve("127.0.0.1", _Redirect)
    try:
        url = f"http://127.0.0.1:{public.server_address[1]}/show.mp4"
        res = file_flag(sqlite_ctx, ANN, url, "1", "4")
        run_jobs(sqlite_ctx)
        st = clip_status(sqlite_ctx, ANN, res.clip_id)
    finally:
        public.shutdown()
        internal.shutdown()
    assert st["status"] == "failed"
    assert "127.0.0.2" in st["error"] and st["error_stage"] == "fetch"
    assert _Counter.hits == []


def test_playlist_turning_hostile_for_ffmpeg_fails_the_clip_without_reaching_it(
        sqlite_ctx, run_jobs, tmp_path):
    """yt-dlp's reads get a clean playlist; ffmpeg's (it sends Icy-MetaData) one whose segment is
    `httpproxy://127.0.0.2:…`, which ffmpeg would once open straight past the guard."""
    internal = socket.create_server(("127.0.0.2", 0))  # never answers; counts connections
    internal.setblocking(False)
    target = f"127.0.0.2:{internal.getsockname()[1]}"
    make_hls(make_video(tmp_path / "v.mp4", 6, size="160x90", gop=25), tmp_path / "hls", hls_time=1)
    clean = (tmp_path / "hls" / "index.m3u8").read_text()
    hostile = clean.replace("seg0001.ts", f"httpproxy://{target}/seg.ts")

    def hook(handler: http.server.BaseHTTPRequestHandler) -> bool:
        if handler.path != "/hls/index.m3u8":
            return False
        body = (hostile if "Icy-MetaData" in handler.headers else clean).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    try:
        with serve_dir(tmp_path, hook=hook) as (base, _):
            res = file_flag(sqlite_ctx, ANN, f"{base}/hls/index.m3u8", "1", "2")
            run_jobs(sqlite_ctx)
            st = clip_status(sqlite_ctx, ANN, res.clip_id)
        reached = 0
        while True:  # connections are queued by the kernel even if never accepted
            try:
                internal.accept()[0].close()
            except BlockingIOError:
                break
            reached += 1
    finally:
        internal.close()
    assert st["status"] == "failed" and st["error_stage"] == "fetch"
    assert f"names httpproxy://{target}/seg.ts" in st["error"]
    assert reached == 0
