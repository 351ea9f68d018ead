"""`clipper tokens create|list|revoke`: the token alone on the last line, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clipper.cli import main
from clipper.context import Context
from clipper.services.tokens import actor_for_token
from clipper.storage.tables import User

pytestmark = pytest.mark.services

KEYS = {"id", "user", "name", "kind", "created_at", "last_used_at", "revoked_at", "active"}


@pytest.fixture
def cli_ctx(monkeypatch, make_settings, sqlite_url, redis_conn):
    """The environment `clipper` reads (with two accounts), and a Context on the same
    database."""
    s = make_settings(sqlite_url)
    env = {"CLIPPER_HOME": str(s.home), "DATABASE_URL": sqlite_url, "REDIS_URL": s.redis_url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx = Context.build(s, redis_conn=redis_conn)
    with ctx.db.session() as session:
        session.add_all([User(name="vera", role="volunteer", password_hash="unused"),
                         User(name="sam", role="social", password_hash="unused")])
    yield ctx, {**os.environ, **env}
    ctx.db.dispose()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_prints_the_token_alone_on_the_last_line_of_stdout(cli_ctx):
    ctx, env = cli_ctx
    proc = subprocess.run([sys.executable, "-m", "clipper.cli", "tokens", "create", "--name",
                           "laptop script", "--user", "vera"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\n")
    token = proc.stdout.splitlines()[-1]
    assert token == token.strip() and token.startswith("clp_") and " " not in token
    assert actor_for_token(ctx, token).name == "vera"


def test_list_json_and_revoke(cli_ctx, capsys):
    ctx, _ = cli_ctx
    code, out, _ = run(capsys, "tokens", "create", "--user", "vera", "--name", "phone")
    assert code == 0
    vera_token = out.splitlines()[-1]
    code, out, _ = run(capsys, "tokens", "create", "--user", "sam")
    sam_token = out.splitlines()[-1]

    code, out, _ = run(capsys, "tokens", "list", "--json")
    everyone = json.loads(out)
    assert code == 0 and [(t["user"], t["name"]) for t in everyone] == [("vera", "phone"),
                                                                         ("sam", "api")]
    assert all(set(t) == KEYS and t["active"] and t["kind"] == "api" for t in everyone)
    assert vera_token not in out and sam_token not in out
    code, out, _ = run(capsys, "tokens", "list", "--user", "sam", "--json")
    assert [t["user"] for t in json.loads(out)] == ["sam"]
    code, out, _ = run(capsys, "tokens", "list")
    assert code == 0 and "phone" in out and "never used" in out

    vera_id = everyone[0]["id"]
    code, out, _ = run(capsys, "tokens", "revoke", str(vera_id))
    assert code == 0 and out == f"token {vera_id} (phone) of vera revoked\n"
    assert actor_for_token(ctx, vera_token) is None
    assert actor_for_token(ctx, sam_token).name == "sam"
    code, out, _ = run(capsys, "tokens", "list", "--user", "vera", "--json")
    [revoked] = json.loads(out)
    assert revoked["active"] is False and revoked["revoked_at"]


def test_refusals_exit_2_and_print_no_token(cli_ctx, capsys):
    for argv, words in ((("create", "--user", "nobody"), "No user 'nobody'"),
                        (("create", "--user", "vera", "--name", "x" * 65), "label"),
                        (("list", "--user", "nobody"), "No user 'nobody'"),
                        (("revoke", "404"), "No token 404")):
        code, out, err = run(capsys, "tokens", *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("error: ") and words in err
    with pytest.raises(SystemExit):
        main(["tokens", "revoke", "seven"])
