"""Personal API and calendar tokens: made for oneself, shown once, kept hashed, revocable."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from clipper.permissions import Actor
from clipper.services.tokens import (
    actor_for_token,
    calendar_url,
    create_token,
    list_tokens,
    revoke_token,
)
from clipper.services.users import disable_user, enable_user, set_role
from clipper.settings import Settings
from clipper.storage.tables import ApiToken, User, utcnow

OPERATOR = Actor.operator("root")
VERA = Actor("vera", "volunteer")
ADA = Actor("ada", "admin")
LISTING = {"id", "user", "name", "kind", "created_at", "last_used_at", "revoked_at", "active"}


@pytest.fixture
def people(ctx):
    with ctx.db.session() as session:
        for name, role in (("vera", "volunteer"), ("sam", "social"), ("ada", "admin")):
            session.add(User(name=name, role=role, password_hash="unused"))
    return ctx


def tokens_stored(ctx) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count()).select_from(ApiToken))


def test_a_token_is_shown_once_kept_hashed_and_acts_as_its_owner(people):
    ctx = people
    made = create_token(ctx, VERA, name="laptop")
    token = made["token"]
    assert token.startswith("clp_") and len(token) > 40
    assert set(made) == LISTING | {"token"}
    assert (made["user"], made["name"], made["kind"], made["active"]) == ("vera", "laptop", "api",
                                                                          True)
    with ctx.db.session() as session:
        row = session.get(ApiToken, made["id"])
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.token_hash, row.name)
    [listed] = list_tokens(ctx, VERA)
    assert set(listed) == LISTING and token not in str(listed)

    assert actor_for_token(ctx, token) == VERA
    assert actor_for_token(ctx, token, "calendar") is None  # the other kind
    for wrong in (None, "", "clp_" + "x" * 43, token + "x", token[4:], "clp_" + "y" * 500):
        assert actor_for_token(ctx, wrong) is None

    set_role(ctx, OPERATOR, "vera", "social")  # the role as it is now, not as it was
    assert actor_for_token(ctx, token) == Actor("vera", "social")
    disable_user(ctx, OPERATOR, "vera")
    assert actor_for_token(ctx, token) is None
    enable_user(ctx, OPERATOR, "vera")
    assert actor_for_token(ctx, token) is not None


def test_last_used_is_written_at_most_once_a_minute(people):
    ctx = people
    made = create_token(ctx, VERA)
    assert made["name"] == "api" and made["last_used_at"] is None
    actor_for_token(ctx, made["token"])
    [first] = list_tokens(ctx, VERA)
    actor_for_token(ctx, made["token"])
    assert list_tokens(ctx, VERA)[0]["last_used_at"] == first["last_used_at"] is not None
    with ctx.db.session() as session:
        session.execute(update(ApiToken).values(last_used_at=utcnow() - timedelta(minutes=2)))
    actor_for_token(ctx, made["token"])
    assert list_tokens(ctx, VERA)[0]["last_used_at"] > first["last_used_at"]


def test_revoked_tokens_stop_at_once_and_only_owners_and_admins_revoke(people):
    ctx = people
    mine = create_token(ctx, VERA, name="phone")
    sams = create_token(ctx, Actor("sam", "social"))
    with pytest.raises(NotFound) as hidden:
        revoke_token(ctx, VERA, sams["id"])  # someone else's reads as missing
    with pytest.raises(NotFound) as absent:
        revoke_token(ctx, VERA, 99999)
    assert str(hidden.value).replace(str(sams["id"]), "N") == str(absent.value).replace(
        "99999", "N")
    assert actor_for_token(ctx, sams["token"]) == Actor("sam", "social")

    gone = revoke_token(ctx, VERA, mine["id"])
    assert gone["active"] is False and gone["revoked_at"]
    assert actor_for_token(ctx, mine["token"]) is None
    assert revoke_token(ctx, VERA, mine["id"])["revoked_at"] == gone["revoked_at"]  # no-op
    assert revoke_token(ctx, ADA, sams["id"])["user"] == "sam"
    assert actor_for_token(ctx, sams["token"]) is None
    assert [t["active"] for t in list_tokens(ctx, OPERATOR, everyone=True)] == [False, False]
    with pytest.raises(InvalidInput):
        revoke_token(ctx, VERA, "seven")  # type: ignore[arg-type]


def test_only_admins_and_the_operator_act_for_others(people):
    ctx = people
    with pytest.raises(PermissionDenied):
        create_token(ctx, VERA, user="sam")
    with pytest.raises(PermissionDenied) as other:
        list_tokens(ctx, VERA, user="sam")
    with pytest.raises(PermissionDenied) as nobody:
        list_tokens(ctx, VERA, user="nobody")  # the same words: nobody is revealed
    assert str(other.value).replace("sam", "N") == str(nobody.value).replace("nobody", "N")
    with pytest.raises(PermissionDenied):
        list_tokens(ctx, VERA, everyone=True)
    assert tokens_stored(ctx) == 0

    assert create_token(ctx, ADA, user="sam", name="for sam")["user"] == "sam"
    assert create_token(ctx, OPERATOR, user="vera")["user"] == "vera"
    assert [t["user"] for t in list_tokens(ctx, ADA, everyone=True)] == ["sam", "vera"]
    assert [t["name"] for t in list_tokens(ctx, OPERATOR, user="sam")] == ["for sam"]
    with pytest.raises(NotFound, match="No user 'root'"):
        create_token(ctx, OPERATOR)  # the operator is no account: --user says whose
    with pytest.raises(NotFound):
        list_tokens(ctx, ADA, user="nobody")


def test_bad_requests_store_nothing(people):
    ctx = people
    with pytest.raises(InvalidInput, match="kind"):
        create_token(ctx, VERA, kind="admin")
    for label in ("x" * 65, "tab\there", "nul\x00"):
        with pytest.raises(InvalidInput, match="label"):
            create_token(ctx, VERA, name=label)
    disable_user(ctx, OPERATOR, "sam")
    with pytest.raises(Conflict, match="disabled"):
        create_token(ctx, ADA, user="sam")
    assert tokens_stored(ctx) == 0


def test_calendar_tokens_and_their_url(people, tmp_path):
    ctx = people
    feed = create_token(ctx, VERA, kind="calendar", name="phone")
    assert feed["token"].startswith("clpcal_")
    assert actor_for_token(ctx, feed["token"], "calendar") == VERA
    assert actor_for_token(ctx, feed["token"]) is None  # no API token
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path)})
    assert calendar_url(settings, "clpcal_abc") == \
        "http://127.0.0.1:8502/api/calendar/clpcal_abc.ics"
    public = Settings.from_env({"CLIPPER_HOME": str(tmp_path),
                                "CLIPPER_BASE_URL": "https://desk.example.org/clipper",
                                "CLIPPER_API_PORT": "9443"})
    assert calendar_url(public, "t") == "https://desk.example.org:9443/api/calendar/t.ics"
