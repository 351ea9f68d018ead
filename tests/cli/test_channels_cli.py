"""`clipper channels …` and `clipper flag --channel …`: JSON contracts and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from channel_segments import Part, make_broadcast, store_pieces, store_spans
from polling import poll
from sqlalchemy import func, select

from clipper.cli import main
from clipper.context import Context
from clipper.storage.tables import Channel, Clip, Flag, LiveAsrState
from clipper.timecode import format_wallclock
from testmedia.mediagen import decode_gray, match_frame

pytestmark = pytest.mark.services

URL = "http://127.0.0.1:9/live/index.m3u8"
CHANNEL_KEYS = {"name", "url", "status", "clock", "recorded_from", "recorded_to", "lag_seconds",
                "gaps", "disk_bytes", "transcribe", "transcript_source", "asr_lag_seconds",
                "asr_load"}


@pytest.fixture
def cli_ctx(monkeypatch, make_settings, sqlite_url, redis_conn):
    """The environment `clipper` reads, and a Context on the same database and Redis."""
    s = make_settings(sqlite_url, CLIPPER_PAD_SECONDS="0.5")
    env = {"CLIPPER_HOME": str(s.home), "DATABASE_URL": sqlite_url, "REDIS_URL": s.redis_url,
           "CLIPPER_URL_ALLOWLIST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "CLIPPER_PAD_SECONDS": "0.5"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx = Context.build(s, redis_conn=redis_conn)
    yield ctx, {**os.environ, **env}
    ctx.db.dispose()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def stored(ctx) -> tuple[int, ...]:
    with ctx.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t))
                     for t in (Channel, Flag, Clip))


def test_channels_commands_json_contract_and_exit_codes(cli_ctx, capsys):
    ctx, _ = cli_ctx
    code, out, _ = run(capsys, "channels", "add", "news", URL, "--retention", "36", "--json")
    assert code == 0 and json.loads(out) == {"name": "news", "url": URL, "retention_hours": 36.0,
                                             "transcribe": None}
    for argv, words in ((("bad name", URL), "channel name"), (("news", URL), "already exists"),
                        (("lan", "http://10.1.2.3/x.m3u8"), "private"),
                        (("x", URL, "--retention", "-1"), "Retention")):
        code, _, err = run(capsys, "channels", "add", *argv, "--json")
        assert code == 2 and words in err, err
    assert stored(ctx) == (1, 0, 0)

    code, out, _ = run(capsys, "channels", "list", "--json")
    (row,) = json.loads(out)
    assert code == 0 and CHANNEL_KEYS <= set(row) and row["status"] == "recording"
    assert row["recorded_from"] is None and row["gaps"] == [] and row["disk_bytes"] == 0
    code, out, _ = run(capsys, "channels", "pause", "news", "--json")
    assert code == 0 and json.loads(out)["status"] == "paused"
    code, out, _ = run(capsys, "channels", "list")
    assert code == 0 and "paused" in out
    code, out, _ = run(capsys, "channels", "resume", "news")
    assert code == 0 and out.strip() == "channel news resumed"
    code, out, _ = run(capsys, "channels", "remove", "news", "--json")
    assert code == 0 and json.loads(out)["removed"] is True
    code, _, err = run(capsys, "channels", "pause", "news")
    assert code == 2 and "no channel named" in err
    assert run(capsys, "channels", "list", "--json")[1].strip() == "[]"


def test_channels_add_transcribe_flag_and_switch(cli_ctx, capsys):
    ctx, _ = cli_ctx
    for name, flag, mode in (("a", ["--transcribe"], "auto"),
                             ("b", ["--transcribe", "whisper"], "whisper"),
                             ("c", ["--transcribe", "captions"], "captions"),
                             ("d", ["--transcribe", "auto"], "auto"), ("e", [], None)):
        code, out, err = run(capsys, "channels", "add", name, URL, *flag, "--json")
        assert code == 0 and json.loads(out)["transcribe"] == mode, err
    # The flag without a value, then other options: still auto.
    code, out, _ = run(capsys, "channels", "add", "f", URL, "--transcribe", "--retention", "2")
    assert code == 0 and "transcribed live (auto)" in out
    for bad in ("bogus", "yes"):
        code, _, err = run(capsys, "channels", "add", "g", URL, "--transcribe", bad)
        assert code == 2 and "Transcribe mode" in err
    assert stored(ctx) == (6, 0, 0)
    code, out, _ = run(capsys, "channels", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert [rows[n]["transcribe"] for n in "abcdef"] == ["auto", "whisper", "captions", "auto",
                                                          None, "auto"]
    assert all(CHANNEL_KEYS <= set(r) and r["transcript_source"] is None for r in rows.values())
    code, out, _ = run(capsys, "channels", "list")
    assert code == 0 and "transcript (whisper) not started" in out
    assert run(capsys, "channels", "transcribe", "e")[1].strip() == \
        "channel e is transcribed live (auto)"
    code, out, _ = run(capsys, "channels", "transcribe", "e", "off", "--json")
    assert code == 0 and json.loads(out)["transcribe"] is None
    code, _, err = run(capsys, "channels", "transcribe", "e", "sometimes")
    assert code == 2 and "Transcribe mode" in err
    code, _, err = run(capsys, "live-asr", "--window", "10", "--hop", "12")
    assert code == 2 and "hop" in err


def test_live_asr_command_transcribes_and_stops_on_ctrl_c(cli_ctx, capsys, cli_broadcast):
    """`clipper live-asr` as a process: it works through a recorded channel (a tone: no words,
    but its transcript moves on), and SIGINT stops it cleanly."""
    ctx, env = cli_ctx
    _, pieces = cli_broadcast
    run(capsys, "channels", "add", "news", URL, "--transcribe", "whisper")
    base = time.time() - 8.0
    store_pieces(ctx, "news", pieces, base)
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "live-asr", "--window", "4",
                             "--hop", "3"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def progress() -> float | None:
            with ctx.db.session() as session:
                st = session.scalar(select(LiveAsrState))
                return st and st.done_until and st.done_until > base + 3 and st.done_until
        poll(progress, 60, "the transcript to move on")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list((ctx.settings.media_dir / "tmp").glob("live-asr-*"))


def test_flag_channel_refusals_exit_2_and_store_nothing(cli_ctx, capsys, broadcast):
    ctx, _ = cli_ctx
    run(capsys, "channels", "add", "news", URL)
    now = time.time()
    store_spans(ctx, "news", [(now - 600 + 2 * i, 2.0) for i in range(100)]
                + [(now - 300 + 2 * i, 2.0) for i in range(100)])
    refusals = [
        (["--channel", "nope", "--last", "30"], "no channel named"),
        (["--channel", "news", "--start", format_wallclock(now - 90000),
          "--end", format_wallclock(now - 89990)], "older than"),
        (["--channel", "news", "--start", format_wallclock(now - 390),
          "--end", format_wallclock(now - 380)], "gap"),
        (["--channel", "news", "--start", format_wallclock(now - 4000),
          "--end", format_wallclock(now - 3990)], "before"),
        (["--channel", "news", "--start", "19:00:00", "--end", "19:00:10", "--tz", "Mars/X"],
         "time zone"),
        (["--channel", "news", "--start", "19:00:00"], "start and an end"),
        (["--channel", "news", "--last", "0"], "--last"),
        (["--channel", "news", "--last", "30", "--start", "19:00:00"], "not both"),
        ([str(broadcast), "--channel", "news", "--last", "30"], "exactly one"),
        (["--last", "30"], "exactly one"),
        ([str(broadcast), "--last", "30"], "only go with --channel"),
        ([str(broadcast), "--start", "1"], "needs --start and --end"),
    ]
    for argv, words in refusals:
        code, _, err = run(capsys, "flag", *argv, "--json")
        assert code == 2 and words in err, (argv, err)
    assert stored(ctx) == (1, 0, 0)
    # A file flag is as before.
    code, out, _ = run(capsys, "flag", str(broadcast), "--start", "2", "--end", "6", "--json")
    assert code == 0 and set(json.loads(out)) == {"flag_id", "clip_id", "status", "merged"}


@pytest.fixture(scope="session")
def cli_broadcast(tmp_path_factory):
    return make_broadcast(tmp_path_factory.mktemp("cli-live"), [Part(0, 200, 10.0)], 8)


@pytest.fixture
def worker(cli_ctx):
    """A real `clipper worker` process on all queues (it runs RQ's scheduler too)."""
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "worker"], env=cli_ctx[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.terminate()
    proc.wait(20)


def test_flag_channel_last_wait_returns_a_ready_clip_of_what_aired(cli_ctx, worker, capsys,
                                                                    cli_broadcast):
    ctx, _ = cli_ctx
    master, pieces = cli_broadcast
    run(capsys, "channels", "add", "news", URL)
    base = time.time() - 5.0  # 8 s recorded: the last 5 s up to now, and 3 s already ahead
    store_pieces(ctx, "news", pieces, base)
    code, out, err = run(capsys, "flag", "--channel", "news", "--last", "3", "--note", "live",
                         "--wait", "--json", "--quiet", "--timeout", "120")
    assert code == 0, err
    st = json.loads(out)
    assert st["status"] == "ready" and st["merged"] is False and st["channel"] == "news"
    assert st["end"] - st["start"] == pytest.approx(3.0, abs=1e-3) and st["gaps"] == []
    assert st["wall_start"] == format_wallclock(st["start"])
    full, frames = decode_gray(master), decode_gray(Path(st["media_path"]))
    first = next(i for i in range(len(full)) if i / 25 >= st["start"] - base - 1e-3)
    assert match_frame(frames[0], full)[0] == first
    assert len(frames) in (75, 76)
