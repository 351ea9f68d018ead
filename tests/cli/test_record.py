"""`clipper record` in the foreground, and as the recorder child `clipper up` keeps alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from polling import poll
from ports import free_port

from clipper.context import Context
from clipper.settings import Settings
from clipper.storage.tables import Channel, ChannelSegment
from testmedia.live import LiveServer, make_live_media

pytestmark = pytest.mark.services




def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(CLIPPER_HOME=str(home), HF_HUB_OFFLINE="1", CLIPPER_URL_ALLOWLIST="127.0.0.1",
               CLIPPER_API_PORT=str(free_port()))
    return env


def test_record_runs_in_the_foreground_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ctx = Context.build(Settings.from_env(_env(home)))
    with LiveServer(make_live_media(seg_seconds=1)) as live:
        live.add("one")
        live.add("other")
        with ctx.db.session() as session:
            session.add_all([Channel(name="one", url=live.url("one")),
                             Channel(name="other", url=live.url("other"))])
        rec = subprocess.Popen([sys.executable, "-m", "clipper.cli", "record", "--channels",
                                "one"], env=_env(home), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            poll(lambda: list((home / "media" / "channels" / "one").rglob("*.ts")), 30,
                  "a stored segment")
        finally:
            rec.send_signal(signal.SIGINT)
            out, _ = rec.communicate(timeout=30)
    assert rec.returncode == 0, out
    with ctx.db.session() as session:
        names = {c.name for c in session.query(Channel).join(ChannelSegment)}
    assert names == {"one"}  # --channels: only the one named
    ctx.close()


def _recorder_pid(up: subprocess.Popen) -> int | None:
    for child in psutil.Process(up.pid).children():
        try:
            if child.cmdline()[-1:] == ["record"] and child.status() != psutil.STATUS_ZOMBIE:
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return None


def test_up_restarts_a_killed_recorder_within_5_s_even_when_it_keeps_dying(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = subprocess.Popen([sys.executable, "-m", "clipper.cli", "up", "--workers", "0",
                           "--no-dashboard"], env=_env(home), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        poll((home / "run" / "up.json").exists, 60, "up.json")
        pid = json.loads((home / "run" / "up.json").read_text())["children"]["recorder"]
        for _ in range(3):  # a crash loop: each restart is killed at once
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            pid = poll(lambda old=pid: (p := _recorder_pid(up)) != old and p, 10,
                        "a new recorder")
            assert time.monotonic() - killed < 5
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
