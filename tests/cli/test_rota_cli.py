"""`clipper rota …`: JSON contracts and exit codes, through a real `python -m clipper.cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services import rota
from clipper.settings import Settings

pytestmark = pytest.mark.services


def test_rota_commands(tmp_path, sqlite_url):
    env = {**os.environ, "CLIPPER_HOME": str(tmp_path / "home"), "DATABASE_URL": sqlite_url,
           "CLIPPER_TIMEZONE": "Europe/London", "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}

    def clip(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clipper.cli", *argv], env=env, text=True,
                              capture_output=True, timeout=60)

    assert clip("channels", "add", "news", "http://127.0.0.1:9/x.m3u8").returncode == 0
    assert clip("users", "add", "ann", "--role", "coordinator").returncode == 0
    r = clip("rota", "add", "--channel", "news", "--start", "2027-03-21T19:00",
             "--end", "2027-03-21T20:00", "--weekly-until", "2027-04-04", "--json")
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)["shift_ids"]
    assert len(ids) == 3
    for bad in (["--channel", "nope", "--start", "2027-03-21T19:00", "--end", "2027-03-21T20:00"],
                ["--channel", "news", "--start", "2027-03-21T19:00", "--end", "2027-03-21T18:00"]):
        r = clip("rota", "add", *bad)
        assert r.returncode == 2 and "error:" in r.stderr
    rows = json.loads(clip("rota", "list", "--from", "2027-03-20", "--days", "21",
                           "--json").stdout)
    assert [(x["start"], x["status"]) for x in rows] == [
        ("2027-03-21T19:00:00Z", "empty"), ("2027-03-28T18:00:00Z", "empty"),
        ("2027-04-04T18:00:00Z", "empty")]
    assert clip("rota", "signup", str(ids[0]), "--user", "ann").returncode == 0
    assert clip("rota", "signup", str(ids[0]), "--user", "nobody").returncode == 2
    assert clip("rota", "cancel", str(ids[0]), "--user", "ann").returncode == 0
    assert clip("rota", "signup", str(ids[1]), "--user", "ann").returncode == 0
    ical = clip("rota", "ical", "--user", "ann").stdout
    assert "BEGIN:VCALENDAR" in ical and f"UID:shift-{ids[1]}@clipper" in ical
    assert json.loads(clip("rota", "gaps", "--json").stdout) == []  # 2027 is beyond 7 days
    assert json.loads(clip("rota", "now", "--json").stdout) == []


def test_rota_edit_refusals_missed_and_team(tmp_path, sqlite_url):
    """`rota edit` refusals exit 2 with the reason; `rota missed` and `rota team` as JSON."""
    env = {**os.environ, "CLIPPER_HOME": str(tmp_path / "home"), "DATABASE_URL": sqlite_url,
           "CLIPPER_TIMEZONE": "UTC", "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}

    def clip(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clipper.cli", *argv], env=env, text=True,
                              capture_output=True, timeout=60)

    assert clip("channels", "add", "news", "http://127.0.0.1:9/x.m3u8").returncode == 0
    for name in ("ann", "bob"):
        assert clip("users", "add", name, "--role", "volunteer").returncode == 0
    # A shift in 2020 (over: frozen) and one in 2099.
    past, future = (json.loads(clip("rota", "add", "--channel", "news", "--needs", "2", "--json",
                                    "--start", f"{y}-03-21T19:00", "--end", f"{y}-03-21T20:00"
                                    ).stdout)["shift_ids"][0] for y in (2020, 2099))
    for name in ("ann", "bob"):
        assert clip("rota", "signup", str(future), "--user", name).returncode == 0
    r = clip("rota", "edit", str(future), "--needs", "1")
    assert r.returncode == 2 and "already has 2 people" in r.stderr
    r = clip("rota", "edit", str(past), "--needs", "3")
    assert r.returncode == 2 and "has ended" in r.stderr
    # ann was on the 2020 shift (signed up then, through the services): now it is over, not
    # even the operator (a coordinator) may take her off it; her sign-up stays.
    ctx = Context.build(Settings.from_env(env))
    try:
        rota.signup(ctx, Actor.operator("test"), past, "ann", at=datetime(2020, 3, 21, tzinfo=UTC))
        r = clip("rota", "cancel", str(past), "--user", "ann")
        assert r.returncode == 2 and f"Shift {past} ended at 2020-03-21T20:00:00Z" in r.stderr
        assert rota.list_shifts(ctx, Actor.operator("test"), start_day="2020-03-21")[0][
            "volunteers"] == ["ann"]
    finally:
        ctx.close()
    assert json.loads(clip("rota", "missed", "--json").stdout) == []
    assert json.loads(clip("rota", "team", "--json").stdout) == [
        {"name": n, "role": "volunteer", "shifts_done": 0, "missed": 0, "flags_filed": 0,
         "flags_published": 0} for n in ("ann", "bob")]
    r = clip("rota", "missed", "--days", "0")
    assert r.returncode == 2 and "not at least 1" in r.stderr
