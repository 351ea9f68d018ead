"""API fixtures: the real server on the test database (both backends) and Redis, a team with
a token each."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clipper.context import Context
from clipper.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver import UNLIMITED, LiveApi, add_team, serve  # noqa: E402


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
