"""Accounts: hashing, roles, login sessions, lockout after repeated failures, first admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
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
    here = "203.0.113.7"
    for _ in range(users.FREE_TRIES - 1):
        with pytest.raises(users.LoginFailed):
            users.authenticate(sqlite_ctx, "vera", "nope nope", client=here)
    users.authenticate(sqlite_ctx, "vera", "correct horse", client=here)  # success resets it
    for _ in range(users.FREE_TRIES):
        with pytest.raises(users.LoginFailed, match="Wrong"):
            users.authenticate(sqlite_ctx, "vera", "nope nope", client=here)
    with pytest.raises(users.LoginFailed, match="Too many failed logins") as locked:
        users.authenticate(sqlite_ctx, "vera", "correct horse", client=here)
    assert "vera" not in str(locked.value)
    # The real person elsewhere is not locked out by someone guessing from `here`.
    assert users.authenticate(sqlite_ctx, "vera", "correct horse", client="198.51.100.2")
    # Once the lock has passed (the clock moved, not waited for), the right password works.
    later = utcnow() + timedelta(seconds=users.LOCK_BASE_SECONDS + 1)
    assert users.authenticate(sqlite_ctx, "vera", "correct horse", client=here, now=later)


def test_a_lock_says_the_same_for_names_that_do_not_exist(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    messages = []
    for name in ("vera", "nobody"):
        for _ in range(users.FREE_TRIES):
            with pytest.raises(users.LoginFailed, match="Wrong username or password"):
                users.authenticate(sqlite_ctx, name, "nope nope", client="203.0.113.7")
        with pytest.raises(users.LoginFailed) as info:
            users.authenticate(sqlite_ctx, name, "nope nope", client="203.0.113.7")
        messages.append(str(info.value).replace(name, "NAME"))
    assert messages[0] == messages[1] and "Too many failed logins" in messages[0]


def test_one_address_trying_many_names_is_locked_out_of_all(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    free, _cap = users.THROTTLES["client"]
    for i in range(free):
        with pytest.raises(users.LoginFailed, match="Wrong"):
            users.authenticate(sqlite_ctx, f"guess{i}", "password1", client="203.0.113.9")
    with pytest.raises(users.LoginFailed, match="Too many failed logins"):
        users.authenticate(sqlite_ctx, "vera", "correct horse", client="203.0.113.9")
    assert users.authenticate(sqlite_ctx, "vera", "correct horse", client="198.51.100.2")


def test_a_crowd_guessing_one_name_locks_it_only_briefly(sqlite_ctx):
    users.add_user(sqlite_ctx, OPERATOR, "admin2", "admin", "correct horse")
    free, cap = users.THROTTLES["name"]
    now = utcnow()
    for i in range(free + 10):  # from many addresses, each under its own allowance
        with pytest.raises(users.LoginFailed):
            users.authenticate(sqlite_ctx, "admin2", "guess", client=f"10.0.0.{i}", now=now)
    with pytest.raises(users.LoginFailed, match="Too many failed logins"):
        users.authenticate(sqlite_ctx, "admin2", "correct horse", client="198.51.100.2",
                           now=now)
    later = now + timedelta(seconds=cap + 1)
    assert users.authenticate(sqlite_ctx, "admin2", "correct horse", client="198.51.100.2",
                              now=later)
    listed = {u["name"]: u for u in users.list_users(sqlite_ctx, OPERATOR)}
    assert listed["admin2"]["failed_logins"] == free  # refused while locked: not counted


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
    with sqlite_ctx.db.read() as s:  # the expired row is removed (a write after the read)
        assert s.scalars(select(LoginSession)).all() == []
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


# ---- one's own account -----------------------------------------------------------------------

def _row(ctx, name: str) -> User:
    with ctx.db.session() as s:
        row = s.scalars(select(User).where(User.name == name)).one()
        s.expunge(row)
        return row


def test_own_time_zone_and_email_refusals_store_nothing(sqlite_ctx):
    from clipper.services.rota_views import my_timezone

    ctx = sqlite_ctx
    users.add_user(ctx, OPERATOR, "vera", "volunteer", "correct horse")
    users.add_user(ctx, OPERATOR, "sam", "social", "correct horse")
    vera = Actor("vera", "volunteer")
    assert users.my_account(ctx, vera) == {"name": "vera", "role": "volunteer",
                                           "timezone": ctx.settings.timezone, "email": None}
    users.set_my_timezone(ctx, vera, " Asia/Tokyo ")
    users.set_my_email(ctx, vera, " vera@example.org ")
    assert users.my_account(ctx, vera) == {"name": "vera", "role": "volunteer",
                                           "timezone": "Asia/Tokyo", "email": "vera@example.org"}
    assert my_timezone(ctx, vera) == "Asia/Tokyo"  # the rota pages follow it
    for bad in ("Mars/Olympus", "localtime", "../../etc/passwd", "Europe/Lon don"):
        with pytest.raises(InvalidInput, match="Unknown time zone") as info:
            users.set_my_timezone(ctx, vera, bad)
        assert info.value.hint and "Europe/London" in info.value.hint
    for bad in ("vera", "vera@", "a b@example.org", "a@b@example.org"):
        with pytest.raises(InvalidInput, match="not an email address") as info:
            users.set_my_email(ctx, vera, bad)
        assert info.value.hint
    row = _row(ctx, "vera")
    assert (row.timezone, row.email) == ("Asia/Tokyo", "vera@example.org")
    assert (_row(ctx, "sam").timezone, _row(ctx, "sam").email) == (None, None)  # only one's own
    users.set_my_email(ctx, vera, "")
    users.set_my_timezone(ctx, vera, "")  # back to CLIPPER_TIMEZONE
    assert (_row(ctx, "vera").timezone, _row(ctx, "vera").email) == (None, None)
    assert users.my_account(ctx, vera)["timezone"] == ctx.settings.timezone
    with pytest.raises(NotFound):  # the command-line operator has no account to set
        users.set_my_timezone(ctx, OPERATOR, "Europe/London")


def test_change_my_password_needs_the_current_one_and_ends_other_sessions(sqlite_ctx):
    ctx = sqlite_ctx
    users.add_user(ctx, OPERATOR, "vera", "volunteer", "correct horse")
    vera = Actor("vera", "volunteer")
    here = users.authenticate(ctx, "vera", "correct horse")
    phone = users.authenticate(ctx, "vera", "correct horse")
    before = _row(ctx, "vera").password_hash
    with pytest.raises(users.LoginFailed, match="current password is wrong") as info:
        users.change_my_password(ctx, vera, "wrong horse", "a new long password", keep=here)
    assert info.value.hint
    assert _row(ctx, "vera").password_hash == before
    with pytest.raises(InvalidInput, match="shorter than"):
        users.change_my_password(ctx, vera, "correct horse", "short", keep=here)
    assert _row(ctx, "vera").password_hash == before
    users.change_my_password(ctx, vera, "correct horse", "a new long password", keep=here)
    assert users.user_for_token(ctx, here) == vera  # the session it was changed from stays
    assert users.user_for_token(ctx, phone) is None
    with pytest.raises(users.LoginFailed):
        users.authenticate(ctx, "vera", "correct horse")
    assert users.authenticate(ctx, "vera", "a new long password")


def test_wrong_current_passwords_lock_like_failed_logins(sqlite_ctx):
    ctx = sqlite_ctx
    users.add_user(ctx, OPERATOR, "vera", "volunteer", "correct horse")
    vera = Actor("vera", "volunteer")
    for _ in range(users.FREE_TRIES):
        with pytest.raises(users.LoginFailed, match="wrong"):
            users.change_my_password(ctx, vera, "guess guess", "a new long password")
    with pytest.raises(users.LoginFailed, match="Too many failed logins"):
        users.change_my_password(ctx, vera, "correct horse", "a new long password")
    # A stolen session guessing cannot lock the real person out of logging in.
    assert users.authenticate(ctx, "vera", "correct horse", client="198.51.100.2")


def test_users_cli_set_timezone(sqlite_ctx, monkeypatch, capsys):
    users.add_user(sqlite_ctx, OPERATOR, "vera", "volunteer", "correct horse")
    rc, out = _cli(sqlite_ctx, ["users", "set-timezone", "vera", "Europe/Paris"],
                   monkeypatch=monkeypatch, capsys=capsys)
    assert rc == 0 and "time zone of vera is now Europe/Paris" in out
    assert _row(sqlite_ctx, "vera").timezone == "Europe/Paris"
    with pytest.raises(InvalidInput, match="Unknown time zone"):
        _cli(sqlite_ctx, ["users", "set-timezone", "vera", "Paris"], monkeypatch=monkeypatch,
             capsys=capsys)
    assert _row(sqlite_ctx, "vera").timezone == "Europe/Paris"
    rc, out = _cli(sqlite_ctx, ["users", "set-timezone", "vera", ""], monkeypatch=monkeypatch,
                   capsys=capsys)
    assert "cleared" in out and _row(sqlite_ctx, "vera").timezone is None
    with pytest.raises(PermissionDenied):  # an admin service underneath, like set-email
        users.set_timezone(sqlite_ctx, Actor("vera", "volunteer"), "vera", "Europe/Paris")
