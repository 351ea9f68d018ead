"""SSRF end to end: a redirect from an allowlisted host to a private one is refused by the worker."""

from __future__ import annotations

import http.server
import threading

from clipper.services.clips import clip_status
from clipper.services.flags import file_flag


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
        res = file_flag(sqlite_ctx, f"http://127.0.0.1:{public.server_address[1]}/show.mp4", "1", "4",
                        by="ann")
        run_jobs(sqlite_ctx)
        st = clip_status(sqlite_ctx, res.clip_id)
    finally:
        public.shutdown()
        internal.shutdown()
    assert st["status"] == "failed"
    assert "127.0.0.2" in st["error"] and st["error_stage"] == "fetch"
    assert _Counter.hits == []
