"""The dashboard's Account page makes, lists and revokes one's API tokens and calendar link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from apiserver import serve
from streamlit.testing.v1 import AppTest

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services import users
from clipper.services.tokens import actor_for_token, list_tokens
from dashboard.deps import TOKEN_KEY

ACCOUNT = Path(__file__).resolve().parents[2] / "dashboard" / "account.py"
PASSWORD = "correct horse battery"


@pytest.fixture
def desk(sqlite_url, make_settings, redis_conn, monkeypatch) -> Context:
    """A database with vera on it, which the dashboard also sees (through the environment)."""
    settings = make_settings(sqlite_url)
    for key, value in {"CLIPPER_HOME": str(settings.home), "DATABASE_URL": sqlite_url,
                       "REDIS_URL": settings.redis_url}.items():
        monkeypatch.setenv(key, value)
    ctx = Context.build(settings, redis_conn=redis_conn)
    users.add_user(ctx, Actor.operator("setup"), "vera", "volunteer", PASSWORD)
    yield ctx
    ctx.db.dispose()


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "success", "error", "code")
                     for e in getattr(at, kind))


def test_account_makes_shows_once_and_revokes_an_api_token(desk):
    at = AppTest.from_file(str(ACCOUNT), default_timeout=30)
    at.session_state[TOKEN_KEY] = users.authenticate(desk, "vera", PASSWORD)
    at.run()
    assert not at.exception and "You have no API tokens." in texts(at)
    at.text_input(key="account_token_label").input("laptop script")
    at.button(key="FormSubmitter:account_token-Create token").click().run()
    assert not at.exception
    [code] = [c.value for c in at.code]
    assert code.startswith("clp_") and actor_for_token(desk, code) == Actor("vera", "volunteer")
    assert "it will not be shown again" in texts(at)
    [row] = at.dataframe
    assert list(row.value["Label"]) == ["laptop script"]

    at.run()  # shown once: the next run has it no more
    assert not at.code and code not in texts(at)
    at.button(key="FormSubmitter:account_api_revoke-Revoke").click().run()
    assert not at.exception
    assert actor_for_token(desk, code) is None
    assert "revoked: it no longer works" in texts(at)
    assert [t["active"] for t in list_tokens(desk, Actor("vera", "volunteer"))] == [False]


def test_account_makes_a_private_calendar_link_the_api_serves(desk, make_settings):
    at = AppTest.from_file(str(ACCOUNT), default_timeout=30)
    at.session_state[TOKEN_KEY] = users.authenticate(desk, "vera", PASSWORD)
    at.run()
    at.button(key="account_calendar").click().run()
    assert not at.exception
    [link] = [c.value for c in at.code]
    parts = urlsplit(link)
    assert (parts.hostname, parts.port) == ("127.0.0.1", 8502)
    assert parts.path.startswith("/api/calendar/clpcal_") and parts.path.endswith(".ics")
    with serve(make_settings(desk.settings.database_url)) as url, httpx.Client() as client:
        feed = client.get(url + parts.path)
    assert feed.status_code == 200 and "BEGIN:VCALENDAR" in feed.text
