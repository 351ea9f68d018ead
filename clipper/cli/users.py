"""`clipper users ...`: add, list, disable, set-role, set-email, set-timezone, reset-password."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clipper.cli.commands import local_operator
from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import ROLES


def _ctx(args: argparse.Namespace) -> Context:
    return Context.build(args.settings)


def _read_password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput("--password-stdin was given but stdin had no password.")
    return password


def cmd_add(args: argparse.Namespace) -> int:
    from clipper.services.users import add_user

    given = _read_password(args)
    password = add_user(_ctx(args), local_operator(), args.name, args.role, given)
    if given is None:
        print(f"user {args.name} ({args.role}) added; password (shown once): {password}")
    else:
        print(f"user {args.name} ({args.role}) added")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clipper.services.users import list_users

    users = list_users(_ctx(args), local_operator())
    if args.json:
        print(json.dumps(users, indent=2))
        return 0
    for u in users:
        state = "disabled" if u["disabled"] else ("locked" if u["locked_until"] else "active")
        print(f"{u['name']:<24} {u['role']:<10} {state}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from clipper.services.users import disable_user

    disable_user(_ctx(args), local_operator(), args.name)
    print(f"user {args.name} disabled")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    from clipper.services.users import enable_user

    enable_user(_ctx(args), local_operator(), args.name)
    print(f"user {args.name} enabled")
    return 0


def cmd_set_role(args: argparse.Namespace) -> int:
    from clipper.services.users import set_role

    set_role(_ctx(args), local_operator(), args.name, args.role)
    print(f"user {args.name} is now {args.role}")
    return 0


def cmd_set_email(args: argparse.Namespace) -> int:
    from clipper.services.users import set_email

    set_email(_ctx(args), local_operator(), args.name, args.email)
    print(f"email of {args.name} " + (f"is now {args.email}" if args.email else "cleared"))
    return 0


def cmd_set_timezone(args: argparse.Namespace) -> int:
    from clipper.services.users import set_timezone

    set_timezone(_ctx(args), local_operator(), args.name, args.tz)
    print(f"time zone of {args.name} "
          + (f"is now {args.tz.strip()}" if args.tz.strip() else "cleared (CLIPPER_TIMEZONE)"))
    return 0


def cmd_reset_password(args: argparse.Namespace) -> int:
    from clipper.services.users import set_password

    given = _read_password(args)
    password = set_password(_ctx(args), local_operator(), args.name, given)
    print(f"password of {args.name} reset"
          + ("" if given else f"; new password (shown once): {password}"))
    return 0


def add_users_parser(subparsers: Any) -> None:
    """Register `clipper users` on the main parser's subparsers (cli.EXTENSIONS hook)."""
    users = subparsers.add_parser("users", help="manage dashboard accounts")
    sub = users.add_subparsers(dest="users_command", required=True)

    add = sub.add_parser("add", help="add an account (prints a generated password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", help="list accounts")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    dis = sub.add_parser("disable", help="disable an account and end its sessions")
    dis.add_argument("name")
    dis.set_defaults(func=cmd_disable)

    en = sub.add_parser("enable", help="re-enable an account (clears a lockout)")
    en.add_argument("name")
    en.set_defaults(func=cmd_enable)

    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=cmd_set_role)

    mail = sub.add_parser("set-email", help="set the address rota reminders go to ('' clears)")
    mail.add_argument("name")
    mail.add_argument("email")
    mail.set_defaults(func=cmd_set_email)

    zone = sub.add_parser("set-timezone",
                          help="set the time zone the person's times are shown in ('' clears)")
    zone.add_argument("name")
    zone.add_argument("tz", metavar="TZ", help="an IANA name such as Europe/London")
    zone.set_defaults(func=cmd_set_timezone)

    pw = sub.add_parser("reset-password",
                        help="set a new password (generated unless --password-stdin)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=cmd_reset_password)
