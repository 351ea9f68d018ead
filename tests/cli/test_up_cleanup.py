"""`clipper up` leaves nothing running however it ends, and clears what a killed one left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
from polling import poll
from ports import free_port

pytestmark = pytest.mark.services

GONE_WITHIN = 20.0
"""Seconds every process of a stopped `clipper up` may take to exit: a worker cut off from its
Redis retries for a few seconds; past `watch_parent`'s 5 s grace its group is SIGKILLed."""


def _env(home: Path) -> dict[str, str]:
    """The embedded Redis and SQLite under `home`, whatever the developer's shell points at."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("CLIPPER_")}
    # Its own API port: two stacks at once (a killed one's leftovers and the next) never clash.
    env.update(CLIPPER_HOME=str(home), HF_HUB_OFFLINE="1", CLIPPER_API_PORT=str(free_port()))
    return env


def _alive(proc: psutil.Process) -> bool:
    """Running, and still that process (psutil checks the start time); a zombie nobody reaped
    (PID 1 here may not) has ended."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Up:
    """`python -m clipper.cli up --no-dashboard --workers 1` in its own session, as `setsid`
    or a terminal would start it, and every process it runs (children, Redis, the worker's
    RQ scheduler) once they are all up."""

    def __init__(self, home: Path, stdout: int | IO[Any]) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipper.cli", "up", "--no-dashboard", "--workers", "1"],
            env=_env(home), stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self.state: dict[str, Any] = {}
        self.tree: list[psutil.Process] = []

    def wait_up(self) -> None:
        self.state = poll(self._state, 60, "up.json of this clipper up")
        self.tree = poll(self._tree, 20, "the worker's RQ scheduler")

    def _state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.home / "run" / "up.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if state["pid"] == self.proc.pid else None

    def _tree(self) -> list[psutil.Process] | None:
        pids = [self.state["redis_pid"], *self.state["children"].values()]
        procs = [psutil.Process(p) for p in pids]
        worker = psutil.Process(self.state["children"]["worker-1"])
        below = worker.children(recursive=True)
        return procs + below if below else None

    def wait_gone(self) -> float:
        """Seconds until every process of the tree has exited; fails after GONE_WITHIN."""
        start = time.monotonic()
        poll(lambda: not [p.pid for p in self.tree if _alive(p)], GONE_WITHIN,
             "every process of clipper up to exit")
        return time.monotonic() - start

    def close(self) -> None:
        """Whatever a failed test left: a clean stop, then SIGKILL, only to this run's
        processes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for proc in self.tree:
            if _alive(proc):
                proc.kill()


@pytest.fixture
def ups(tmp_path: Path) -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        up.close()


def _start(ups: list[Up], home: Path, stdout: int | IO[Any] | None = None) -> Up:
    log = stdout if stdout is not None else open(home.parent / "up.log", "ab")  # noqa: SIM115
    up = Up(home, log)
    ups.append(up)  # before waiting: the fixture stops it even if it never comes up
    up.wait_up()
    return up


def test_sighup_to_its_group_stops_every_process(tmp_path: Path, ups: list[Up]) -> None:
    up = _start(ups, tmp_path / "home")
    os.killpg(up.proc.pid, signal.SIGHUP)  # the terminal closed (tried with `setsid`)
    took = up.wait_gone()
    assert up.proc.wait(10) == 0
    assert not (up.home / "run" / "up.json").exists()
    print(f"SIGHUP: all gone in {took:.2f} s")


def test_ctrl_c_after_its_stdout_closed_still_stops_everything(tmp_path: Path,
                                                                ups: list[Up]) -> None:
    up = _start(ups, tmp_path / "home", subprocess.PIPE)
    assert up.proc.stdout is not None
    up.proc.stdout.close()  # `clipper up | tee up.log`: Ctrl-C ends tee first
    os.killpg(up.proc.pid, signal.SIGINT)
    took = up.wait_gone()
    assert up.proc.wait(10) == 0  # no BrokenPipeError, not even at exit
    print(f"closed stdout + SIGINT: all gone in {took:.2f} s")


def test_children_exit_by_themselves_when_the_supervisor_is_killed(tmp_path: Path,
                                                                   ups: list[Up]) -> None:
    up = _start(ups, tmp_path / "home")
    up.proc.kill()  # SIGKILL: no clean-up runs; PR_SET_PDEATHSIG and the parent watch must
    took = up.wait_gone()
    print(f"SIGKILL of the supervisor: all gone in {took:.2f} s")


def test_the_next_up_stops_what_a_killed_one_left_and_nothing_else(tmp_path: Path,
                                                                   ups: list[Up]) -> None:
    home = tmp_path / "home"
    old = _start(ups, home)
    for proc in old.tree:  # stopped, they cannot act on the SIGTERM their parent's death sends
        proc.suspend()
    old.proc.kill()
    old.proc.wait(10)
    # A process that ended by itself before it was frozen (a helper, or a child between its
    # restarts) leaves nothing behind. Redis and the worker are the leftovers that matter.
    old.tree = [p for p in old.tree if _alive(p)]
    assert {old.state["redis_pid"], old.state["children"]["worker-1"]} <= {p.pid
                                                                           for p in old.tree}
    # Two strangers named in the stale up.json: a pid whose start time differs (the number was
    # reused), and one that started then but is another program. Neither may be touched.
    reused = subprocess.Popen(["sleep", "60"])
    other = subprocess.Popen(["sleep", "60"])
    try:
        state_file = home / "run" / "up.json"
        state = json.loads(state_file.read_text())
        worker = next(r for r in state["processes"] if "worker" in r["cmdline"])
        state["processes"] += [
            {**worker, "pid": reused.pid, "create_time": worker["create_time"] - 1000},
            {**worker, "pid": other.pid, "create_time": psutil.Process(other.pid).create_time()}]
        state_file.write_text(json.dumps(state))

        start = time.monotonic()
        new = _start(ups, home)
        print(f"leftovers cleared and a new up running in {time.monotonic() - start:.2f} s")
        assert not [p.pid for p in old.tree if _alive(p)]
        assert reused.poll() is None and other.poll() is None
        assert all(_alive(p) for p in new.tree)
        assert not {p.pid for p in old.tree} & {p.pid for p in new.tree}

        os.killpg(new.proc.pid, signal.SIGINT)
        new.wait_gone()
        assert new.proc.wait(10) == 0
    finally:
        for stranger in (reused, other):
            stranger.kill()
            stranger.wait()
