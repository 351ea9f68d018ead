"""`clipper up`: embedded Redis + database + workers + dashboard start, work, and stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import psutil
import pytest
from polling import poll

from clipper.cli.demo import SCRIPT, DemoServer, make_demo_media

pytestmark = pytest.mark.services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api_health(port: int) -> bool:
    """Whether the API on `port` answers `GET /api/health` with `{"ok": true}`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
            return r.status == 200 and json.loads(r.read()) == {"ok": True}
    except OSError:
        return False


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_up_runs_the_whole_stack_and_ctrl_c_stops_everything(tmp_path, broadcast):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    api_port = _free_port()
    env.update(CLIPPER_HOME=str(home), HF_HUB_OFFLINE="1", CLIPPER_API_PORT=str(api_port))
    port = _free_port()
    up = subprocess.Popen([sys.executable, "-m", "clipper.cli", "up", "--workers", "1",
                           "--port", str(port)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        state_file = home / "run" / "up.json"
        poll(state_file.exists, 60, "up.json")
        poll(lambda: _health(port), 60, "dashboard health")
        poll(lambda: _api_health(api_port), 60, "the API's /api/health")
        state = json.loads(state_file.read_text())
        pids = [state["redis_pid"], *state["children"].values()]
        assert all(psutil.pid_exists(p) for p in pids)
        assert (home / "redis" / "redis.sock").exists()
        # Another command with the same CLIPPER_HOME finds the embedded Redis by itself.
        flag = subprocess.run([sys.executable, "-m", "clipper.cli", "flag", str(broadcast),
                               "--start", "1.5", "--end", "4", "--wait", "--json",
                               "--timeout", "180"],
                              env=env, capture_output=True, text=True, timeout=240)
        assert flag.returncode == 0, flag.stderr
        assert json.loads(flag.stdout)["status"] == "ready"
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert "Stopped." in out
    children = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]
    assert all(c.status() == psutil.STATUS_ZOMBIE for c in children), "processes left running"
    assert not (home / "redis" / "redis.sock").exists()
    assert not (home / "run" / "up.json").exists()


def test_demo_media_is_generated_and_served(tmp_path):
    folder = make_demo_media(tmp_path, script=SCRIPT[:2], size="320x180")
    assert (folder / "broadcast.mp4").stat().st_size > 10_000
    server = DemoServer(folder).start()
    try:
        with urllib.request.urlopen(f"{server.base_url}/broadcast.m3u8", timeout=5) as r:
            body = r.read().decode()
        assert "#EXTM3U" in body and ".ts" in body
    finally:
        server.stop()
