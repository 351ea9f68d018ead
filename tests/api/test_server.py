"""`clipper api` as its own process: it serves, and SIGTERM stops it gracefully and promptly,
open event streams included."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from apiserver import add_team
from polling import poll

from clipper.api.app import create_app
from clipper.context import Context
from clipper.storage.database import is_current

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_connects_and_migrates_as_it_starts(tmp_path, make_settings):
    # No request needed: the first one (a Slack `/clip`, with 3 s to answer) must not pay
    # for them. A fresh, empty database is migrated by the start alone.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    app = create_app(make_settings(url))
    st = app.state.clipper

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            assert st._ctx is not None
            assert is_current(st._ctx.db.engine)
        assert st._ctx is None and st.stopping.is_set()

    assert st._ctx is None  # `create_app()` alone touches no database
    asyncio.run(start_and_stop())


def test_clipper_api_serves_and_stops_on_sigterm(sqlite_ctx: Context):
    tokens = add_team(sqlite_ctx)
    port = free_port()
    env = {**os.environ, "CLIPPER_HOME": str(sqlite_ctx.settings.home),
           "DATABASE_URL": sqlite_ctx.settings.database_url,
           "REDIS_URL": sqlite_ctx.settings.redis_url, "CLIPPER_API_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "api"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/openapi.json", timeout=2).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False
        poll(up, 30, "clipper api to answer")
        headers = {"Authorization": f"Bearer {tokens['sam']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            assert c.get("/api/me").json()["name"] == "sam"
            with c.stream("GET", "/api/alerts/stream") as stream:
                lines = stream.iter_lines()
                assert next(line for line in lines if line.startswith(":")) == ": subscribed"
                asked = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=15) == 0
                assert time.monotonic() - asked < 4, "the open stream held the stop up"
        out = proc.stdout.read() if proc.stdout else ""
        assert "Shutting down" in out and "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
