"""Accounts: hashing, roles, login sessions, lockout after repeated failures, first admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clipper.errors import Conflict, InvalidInput, PermissionDenied
from clipper.permissions import Actor
from clipper.services import users
from clipper.storage.tables import LoginSession, User, utcnow

ADMIN = Actor("boss", "admin")
OPERATOR = Actor.operator("root")  # `clipper users ...` on the server


def test_add_user_generates_password_and_stores_only_a_hash(sqlite_ctx):
    password = users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer")
    assert len(password) >= 12
    with sqlite_ctx.db.session() as s:
        row = s.scalars(select(User).where(User.name == "vera")).one()
        assert row.password_hash.startswith("$argon2") and password not in row.password_hash
    token = users.authenticate(sqlite_ctx, "vera", password)
    assert users.user_for_token(sqlite_ctx, token) == Actor("vera", "volunteer")


def test_add_user_validates(sqlite_ctx):
    with pytest.raises(InvalidInput):
        users.add_user(sqlite_ctx, OPERATOR, "x y", "volunteer")
    with pytest.raises(InvalidInput):
        users.add_user(sqlite_ctx, OPERATOR, "sam", "overlord")
    with pytest.raises(InvalidInput):
        users.add_user(sqlite_ctx, OPERATOR, "sam", "social", "short")
    users.add_user(sqlite_ctx, OPERATOR, "sam", "social", "long enough pw")
    with pytest.raises(Conflict):
        users.add_user(sqlite_ctx, OPERATOR, "sam", "editor")


def test_only_admins_manage_accounts(sqlite_ctx):
    for role in ("volunteer", "social", "editor"):
        with pytest.raises(PermissionDenied):
            users.add_user(sqlite_ctx, Actor("mallory", role), "eve", "admin")
        with pytest.raises(PermissionDenied):
            users.list_users(sqlite_ctx, Actor("mallory", role))
    users.add_user(sqlite_ctx, ADMIN, "eve", "editor")
    assert [u["name"] for u in users.list_users(sqlite_ctx, ADMIN)] == ["eve"]


def test_wrong_password_and_unknown_user_fail_alike(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    with pytest.raises(users.LoginFailed, match="Wrong username or password"):
        users.authenticate(sqlite_ctx, "vera", "wrong horse")
    with pytest.raises(users.LoginFailed, match="Wrong username or password"):
        users.authenticate(sqlite_ctx, "nobody", "correct horse")


def test_lockout_after_five_failures_grows_and_blocks_even_the_right_password(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    for _ in range(users.FREE_TRIES - 1):
        with pytest.raises(users.LoginFailed):
            users.authenticate(sqlite_ctx, "vera", "nope nope")
    users.authenticate(sqlite_ctx, "vera", "correct horse")  # success resets the count
    for _ in range(users.FREE_TRIES):
        with pytest.raises(users.LoginFailed, match="Wrong"):
            users.authenticate(sqlite_ctx, "vera", "nope nope")
    with pytest.raises(users.LoginFailed, match="Too many failed logins"):
        users.authenticate(sqlite_ctx, "vera", "correct horse")
    # Once the lock has passed, the right password works again.
    with sqlite_ctx.db.session() as s:
        s.scalars(select(User)).one().locked_until = utcnow() - timedelta(seconds=1)
    assert users.authenticate(sqlite_ctx, "vera", "correct horse")


def test_lock_seconds_doubles_and_caps():
    assert users.lock_seconds(4) == 0
    assert users.lock_seconds(5) == 30
    assert users.lock_seconds(6) == 60
    assert users.lock_seconds(50) == users.LOCK_MAX_SECONDS


def test_session_expiry_logout_and_disable(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    token = users.authenticate(sqlite_ctx, "vera", "correct horse")
    with sqlite_ctx.db.session() as s:
        s.scalars(select(LoginSession)).one().expires_at = utcnow() - timedelta(seconds=1)
    assert users.user_for_token(sqlite_ctx, token) is None
    token = users.authenticate(sqlite_ctx, "vera", "correct horse")
    users.logout(sqlite_ctx, token)
    assert users.user_for_token(sqlite_ctx, token) is None
    token = users.authenticate(sqlite_ctx, "vera", "correct horse")
    users.disable_user(sqlite_ctx, ADMIN, "vera")
    assert users.user_for_token(sqlite_ctx, token) is None
    with pytest.raises(users.LoginFailed, match="disabled"):
        users.authenticate(sqlite_ctx, "vera", "correct horse")
    assert users.user_for_token(sqlite_ctx, "made-up") is None


def test_set_role_changes_what_the_session_may_do(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    token = users.authenticate(sqlite_ctx, "vera", "correct horse")
    users.set_role(sqlite_ctx, ADMIN, "vera", "social")
    assert users.user_for_token(sqlite_ctx, token).role == "social"


def test_first_admin_once_and_last_admin_protected(sqlite_ctx):
    with pytest.raises(PermissionDenied):
        users.ensure_first_admin(sqlite_ctx, Actor("vera", "volunteer"))
    name, password = users.ensure_first_admin(sqlite_ctx, OPERATOR)
    assert name == "admin" and users.ensure_first_admin(sqlite_ctx, OPERATOR) is None
    assert users.user_for_token(sqlite_ctx,
                                users.authenticate(sqlite_ctx, name, password)).role == "admin"
    with pytest.raises(Conflict, match="only active admin"):
        users.disable_user(sqlite_ctx, ADMIN, "admin")
    with pytest.raises(Conflict):
        users.set_role(sqlite_ctx, ADMIN, "admin", "editor")


def test_operator_is_no_account_role(sqlite_ctx):
    with pytest.raises(InvalidInput, match="Unknown role"):
        users.add_user(sqlite_ctx, OPERATOR, "root", "operator")
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    with pytest.raises(InvalidInput, match="Unknown role"):
        users.set_role(sqlite_ctx, OPERATOR, "vera", "operator")
    token = users.authenticate(sqlite_ctx, "vera", "correct horse")
    with sqlite_ctx.db.session() as s:  # edited by hand in the database
        s.scalars(select(User)).one().role = "operator"
    assert users.user_for_token(sqlite_ctx, token) is None


def _cli(ctx, argv, stdin="", monkeypatch=None, capsys=None):
    import argparse
    import io

    from clipper.cli.users import add_users_parser

    parser = argparse.ArgumentParser(prog="clipper")
    add_users_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.settings = ctx.settings
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = args.func(args)
    return rc, capsys.readouterr().out


def test_users_cli_add_list_disable(sqlite_ctx, monkeypatch, capsys):
    rc, out = _cli(sqlite_ctx, ["users", "add", "vera", "--role", "volunteer"],
                   monkeypatch=monkeypatch, capsys=capsys)
    generated = out.rsplit(" ", 1)[-1].strip()
    assert rc == 0 and "shown once" in out
    assert users.authenticate(sqlite_ctx, "vera", generated)
    rc, out = _cli(sqlite_ctx, ["users", "add", "sam", "--role", "social", "--password-stdin"],
                   stdin="a long secret\n", monkeypatch=monkeypatch, capsys=capsys)
    assert "a long secret" not in out and users.authenticate(sqlite_ctx, "sam", "a long secret")
    rc, out = _cli(sqlite_ctx, ["users", "disable", "vera"], monkeypatch=monkeypatch, capsys=capsys)
    rc, out = _cli(sqlite_ctx, ["users", "list"], monkeypatch=monkeypatch, capsys=capsys)
    assert [line.split() for line in out.splitlines()] == [["sam", "social", "active"],
                                                          ["vera", "volunteer", "disabled"]]
