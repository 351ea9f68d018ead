"""`clipper watch …` and `clipper alerts`: JSON contracts and exit codes, through a real
`python -m clipper.cli` on SQLite; the alert comes from the matcher run on stored live
segments, as the live transcriber runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from clipper.context import Context
from clipper.permissions import Actor
from clipper.search.query import EMPTY_MESSAGE
from clipper.services.watches import match_segments
from clipper.settings import Settings
from clipper.storage.tables import Channel, LiveSegment

pytestmark = pytest.mark.services

WATCH_KEYS = {"name", "query", "channels", "auto_flag"}
ALERT_KEYS = {"id", "watch", "channel", "wall_start", "wall_end", "text", "flag_id", "clip_id"}


def test_watch_and_alerts_commands(tmp_path, sqlite_url):
    env = {**os.environ, "CLIPPER_HOME": str(tmp_path / "home"), "DATABASE_URL": sqlite_url,
           "CLIPPER_TIMEZONE": "UTC", "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}
    env.pop("CLIPPER_WEBHOOK_URL", None)

    def clip(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clipper.cli", *argv], env=env, text=True,
                              capture_output=True, timeout=60)

    assert clip("channels", "add", "news", "http://127.0.0.1:9/x.m3u8").returncode == 0
    r = clip("watch", "add", "nhs", '"waiting lists" OR nurses', "--channels", "news",
             "--auto-flag", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"name": "nhs", "query": '"waiting lists" OR nurses',
                                    "channels": ["news"], "auto_flag": True}
    r = clip("watch", "add", "strike", "strike", "--json")
    assert json.loads(r.stdout) == {"name": "strike", "query": "strike", "channels": None,
                                    "auto_flag": False}

    # Nothing to look for: only an exclusion (after `--`, or it reads as an option), only
    # punctuation. The parser's message, exit 2, nothing stored.
    for query in (["--", "-budget"], ["!! ?"], ["-budget -football"]):
        r = clip("watch", "add", "bad", *query)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"error: {EMPTY_MESSAGE}"), r.stderr
    for bad in (["x", "y", "--channels", "nope"], ["x", "y", "--notify", "ftp://h/x"],
                ["x", "y", "--notify", "http://10.0.0.1/hook"], ["bad name", "y"],
                ["nhs", "other"]):
        r = clip("watch", "add", *bad)
        assert r.returncode == 2 and r.stderr.startswith("error: "), (bad, r.stderr)

    r = clip("watch", "list", "--json")
    assert [w["name"] for w in json.loads(r.stdout)] == ["nhs", "strike"]
    assert set(json.loads(r.stdout)[0]) >= WATCH_KEYS
    assert "nhs" in clip("watch", "list").stdout
    assert json.loads(clip("alerts", "--json").stdout) == []
    assert clip("alerts").stdout.strip() == "no alerts"

    # The live transcriber stores a segment and runs the matcher.
    t0 = round(time.time() - 600, 3)
    ctx = Context.build(Settings.from_env({"CLIPPER_HOME": env["CLIPPER_HOME"],
                                           "DATABASE_URL": sqlite_url}))
    try:
        with ctx.db.session() as s:
            ch = s.scalars(select(Channel).where(Channel.name == "news")).one()
            seg = LiveSegment(channel_id=ch.id, wall_start=t0, wall_end=t0 + 2, text="",
                              words=[[t0, t0 + 0.5, "a"], [t0 + 0.5, t0 + 1, "strike"],
                                     [t0 + 1, t0 + 2, "today."]], source="captions")
            s.add(seg)
            s.flush()
            channel_id, segment_id = ch.id, seg.id
        assert len(match_segments(ctx, Actor.operator("live-asr"), channel_id,
                                  [segment_id])) == 1
    finally:
        ctx.db.dispose()

    alerts = json.loads(clip("alerts", "--json").stdout)
    assert len(alerts) == 1 and set(alerts[0]) == ALERT_KEYS
    a = alerts[0]
    iso = datetime.fromtimestamp(t0 + 0.5, UTC).isoformat(timespec="milliseconds")
    assert a["wall_start"] == iso.replace("+00:00", "Z")
    assert (a["watch"], a["channel"], a["text"]) == ("strike", "news", "a strike today.")
    assert a["flag_id"] is None and a["clip_id"] is None
    later = datetime.fromtimestamp(t0 + 60, UTC).isoformat()
    assert json.loads(clip("alerts", "--since", later, "--json").stdout) == []
    assert "strike" in clip("alerts").stdout
    r = clip("alerts", "--since", "not-a-time")
    assert r.returncode == 2 and "since" in r.stderr

    assert clip("watch", "remove", "strike").returncode == 0
    r = clip("watch", "remove", "strike")
    assert r.returncode == 2 and "no watch named" in r.stderr
    assert len(json.loads(clip("alerts", "--json").stdout)) == 1  # alerts outlive their watch
