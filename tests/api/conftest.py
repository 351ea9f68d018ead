"""API fixtures: the real server on the test database (both backends) and Redis, a team with
a token each."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clipper.cli import main
from clipper.context import Context
from clipper.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver import UNLIMITED, LiveApi, add_team, serve  # noqa: E402
from slackfake import SECRET, Slack, hook_server  # noqa: E402


@pytest.fixture
def team(ctx: Context) -> dict[str, str]:
    return add_team(ctx)


@pytest.fixture
def start_api(ctx: Context, make_settings: Callable[..., Settings], team: dict[str, str]
              ) -> Iterator[Callable[..., LiveApi]]:
    """start_api(**env) -> a LiveApi on the test database with extra settings; stopped after."""
    stack: list = []

    def start(**env: str) -> LiveApi:
        settings = make_settings(ctx.settings.database_url,
                                 **{"CLIPPER_API_RATE": UNLIMITED, **env})
        cm = serve(settings)
        url = cm.__enter__()
        stack.append(cm)
        return LiveApi(url, team)

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def api(start_api: Callable[..., LiveApi]) -> LiveApi:
    """The API server on the test database (both backends), no rate limit in the way."""
    return start_api()


@pytest.fixture
def hook() -> Iterator[Any]:
    """A loopback stand-in for Slack's response_url and the team's webhook (`.posts`)."""
    with hook_server() as server:
        yield server


@pytest.fixture
def slack(start_api: Callable[..., LiveApi], hook: Any) -> Slack:
    """The API with the Slack app set up (both databases), and Slack to talk to it."""
    live = start_api(CLIPPER_SLACK_SIGNING_SECRET=SECRET)
    return Slack(live.url, hook.url)


@pytest.fixture
def cli(ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """cli(*argv) -> (exit code, stdout, stderr) of `clipper` in this process, on the test
    database and Redis (the local operator)."""
    for key, value in {"CLIPPER_HOME": str(ctx.settings.home),
                       "DATABASE_URL": ctx.settings.database_url,
                       "REDIS_URL": ctx.settings.redis_url,
                       "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
