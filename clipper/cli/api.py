"""`clipper api` (the HTTP API alone, for a separate host) and `clipper tokens`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clipper.cli.commands import local_operator
from clipper.context import Context


def _ctx(args: argparse.Namespace) -> Context:
    return Context.build(args.settings)


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the HTTP API in the foreground until SIGINT/SIGTERM."""
    from clipper.api.server import run_api
    from clipper.storage.broker import watch_parent

    watch_parent()  # under `clipper up`: stop if it dies, even where PDEATHSIG did not reach us
    return run_api(args.settings, host=args.host, port=args.port)


def cmd_tokens_create(args: argparse.Namespace) -> int:
    from clipper.services.tokens import create_token

    res = create_token(_ctx(args), local_operator(), name=args.name, user=args.user)
    print(f"token {res['id']} ({res['name']}) for {res['user']}: it acts with their role until "
          f"revoked (`clipper tokens revoke {res['id']}`). It is shown only this once:")
    # Alone on the last line, so `clipper tokens create | tail -n 1` is the token.
    print(res["token"])
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    from clipper.services.tokens import list_tokens

    rows = list_tokens(_ctx(args), local_operator(), user=args.user, everyone=args.user is None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for t in rows:
        state = "active" if t["active"] else f"revoked {t['revoked_at'][:19]}"
        used = t["last_used_at"][:19] if t["last_used_at"] else "never used"
        print(f"{t['id']:>5}  {t['user']:<20} {t['kind']:<9} {t['name']:<24} {state:<28} {used}")
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    from clipper.services.tokens import revoke_token

    res = revoke_token(_ctx(args), local_operator(), args.token_id)
    print(f"token {res['id']} ({res['name']}) of {res['user']} revoked")
    return 0


def add_api_parser(subparsers: Any) -> None:
    """Register `clipper api` and `clipper tokens` on the main parser's subcommands."""
    api = subparsers.add_parser("api", help="serve the HTTP API alone (clipper up serves it too)")
    api.add_argument("--host", default="127.0.0.1",
                     help="bind address (default 127.0.0.1; 0.0.0.0 in containers)")
    api.add_argument("--port", type=int, default=None,
                     help="port (default CLIPPER_API_PORT, 8502)")
    api.set_defaults(func=cmd_api)

    tokens = subparsers.add_parser("tokens", help="personal API tokens")
    sub = tokens.add_subparsers(dest="tokens_command", required=True)

    create = sub.add_parser("create", help="make an API token (printed once, alone on the last "
                                           "line)")
    create.add_argument("--name", metavar="LABEL", help="what it is for, e.g. laptop")
    create.add_argument("--user", metavar="NAME",
                        help="whose token it is (default: the account named like you)")
    create.set_defaults(func=cmd_tokens_create)

    ls = sub.add_parser("list", help="tokens, never the tokens themselves (default: everyone's)")
    ls.add_argument("--user", metavar="NAME", help="only this person's")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_tokens_list)

    revoke = sub.add_parser("revoke", help="revoke a token (it stops working at once)")
    revoke.add_argument("token_id", metavar="ID", type=int)
    revoke.set_defaults(func=cmd_tokens_revoke)
