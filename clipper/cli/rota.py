"""`clipper rota ...`: shifts on channels, sign-ups, gaps, who is on now, calendars.

The local operator acts as a coordinator (it has every permission)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clipper.cli.commands import local_operator
from clipper.context import Context


def _ctx(args: argparse.Namespace) -> Context:
    return Context.build(args.settings)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_add(args: argparse.Namespace) -> int:
    from clipper.services.rota import add_shifts

    ids = add_shifts(_ctx(args), local_operator(), args.channel, args.start, args.end,
                     needs=args.needs, note=args.note, weekly_until=args.weekly_until)
    if args.json:
        _print_json({"shift_ids": ids})
    else:
        print(f"{len(ids)} shift(s) added: {', '.join(map(str, ids))}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clipper.services.rota import list_shifts

    rows = list_shifts(_ctx(args), local_operator(), start_day=args.start_day, days=args.days,
                       channel=args.channel)
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no shifts")
    else:
        for r in rows:
            print(f"{r['id']:>6} {r['channel']:<16} {r['start']} .. {r['end']} "
                  f"{r['status']:<8} {len(r['volunteers'])}/{r['needs']} "
                  f"{', '.join(r['volunteers'])}  {r['note']}".rstrip())
    return 0


def cmd_signup(args: argparse.Namespace) -> int:
    from clipper.services.rota import signup

    res = signup(_ctx(args), local_operator(), args.shift_id, args.user)
    print(f"{res['user']} signed up for shift {res['shift_id']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from clipper.services.rota import cancel_signup

    res = cancel_signup(_ctx(args), local_operator(), args.shift_id, args.user)
    print(f"{res['user']} taken off shift {res['shift_id']}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from clipper.services.rota import edit_shift

    r = edit_shift(_ctx(args), local_operator(), args.shift_id, start=args.start, end=args.end,
                   needs=args.needs, note=args.note)
    if args.json:
        _print_json(r)
    else:
        print(f"shift {r['id']} on {r['channel']}: {r['start']} .. {r['end']}, "
              f"{len(r['volunteers'])}/{r['needs']} {r['status']}")
    return 0


def cmd_cancel_shift(args: argparse.Namespace) -> int:
    from clipper.services.rota import cancel_shift

    r = cancel_shift(_ctx(args), local_operator(), args.shift_id)
    print(f"shift {r['shift_id']} on {r['channel']} cancelled"
          + (f"; told {', '.join(r['volunteers'])}" if r["volunteers"] else ""))
    return 0


def cmd_missed(args: argparse.Namespace) -> int:
    from clipper.services.rota import missed_shifts

    rows = missed_shifts(_ctx(args), local_operator(), days=args.days)
    if args.json:
        _print_json(rows)
    elif not rows:
        print(f"nobody missed a shift in the last {args.days} days")
    else:
        for r in rows:
            print(f"{r['user']:<16} {r['channel']:<16} shift {r['shift_id']} "
                  f"{r['start']} .. {r['end']}")
    return 0


def cmd_team(args: argparse.Namespace) -> int:
    from clipper.services.rota import team_stats

    rows = team_stats(_ctx(args), local_operator())
    if args.json:
        _print_json(rows)
    else:
        print(f"{'name':<16} {'done':>5} {'missed':>6} {'flags':>6} {'published':>9}")
        for r in rows:
            print(f"{r['name']:<16} {r['shifts_done']:>5} {r['missed']:>6} "
                  f"{r['flags_filed']:>6} {r['flags_published']:>9}")
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from clipper.services.rota import gaps

    rows = gaps(_ctx(args), local_operator(), days=args.days)
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no gaps")
    else:
        for g in rows:
            print(f"{g['channel']:<16} {g['start']} .. {g['end']}  {g['missing']} missing")
    return 0


def cmd_now(args: argparse.Namespace) -> int:
    from clipper.services.rota import now

    rows = now(_ctx(args), local_operator())
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no shift is on now")
    else:
        for r in rows:
            who = ", ".join(r["volunteers"]) or "nobody"
            print(f"{r['channel']:<16} shift {r['shift_id']} until {r['until']}: {who}")
    return 0


def cmd_ical(args: argparse.Namespace) -> int:
    from clipper.services.rota import ical

    print(ical(_ctx(args), local_operator(), args.user), end="")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


def add_rota_parser(subparsers: Any) -> None:
    """Register `clipper rota` on the main parser's subparsers."""
    rota = subparsers.add_parser("rota", help="the volunteers' rota: shifts, sign-ups, gaps")
    sub = rota.add_subparsers(dest="rota_command", required=True)

    add = sub.add_parser("add", help="add a shift, or a weekly repeat of it")
    add.add_argument("--channel", required=True, metavar="NAME")
    add.add_argument("--start", required=True, metavar="ISO",
                     help="ISO 8601; without an offset it is in CLIPPER_TIMEZONE")
    add.add_argument("--end", required=True, metavar="ISO")
    add.add_argument("--needs", type=int, default=1, metavar="N", help="people (default 1)")
    add.add_argument("--note", default="", metavar="TEXT")
    add.add_argument("--weekly-until", metavar="YYYY-MM-DD",
                     help="repeat every week at the same local time until this day")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", help="shifts, with who is on them and their coverage")
    ls.add_argument("--from", dest="start_day", metavar="YYYY-MM-DD",
                    help="first day (default today in CLIPPER_TIMEZONE)")
    ls.add_argument("--days", type=_positive, default=7)
    ls.add_argument("--channel", metavar="NAME")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    for verb, func, text in (("signup", cmd_signup, "put a person on a shift"),
                             ("cancel", cmd_cancel, "take a person off a shift")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("shift_id", type=int)
        p.add_argument("--user", required=True, metavar="NAME")
        p.set_defaults(func=func)

    ed = sub.add_parser("edit", help="change a shift's times, needs or note (those signed up "
                        "are told)")
    ed.add_argument("shift_id", type=int)
    ed.add_argument("--start", metavar="ISO")
    ed.add_argument("--end", metavar="ISO")
    ed.add_argument("--needs", type=int, metavar="N")
    ed.add_argument("--note", metavar="TEXT")
    ed.add_argument("--json", action="store_true")
    ed.set_defaults(func=cmd_edit)

    cs = sub.add_parser("cancel-shift", help="cancel a whole shift (those signed up are told)")
    cs.add_argument("shift_id", type=int)
    cs.set_defaults(func=cmd_cancel_shift)

    ms = sub.add_parser("missed", help="who missed which shift (signed up, never checked in)")
    ms.add_argument("--days", type=_positive, default=14,
                    help="shifts that ended in the last N days (default 14)")
    ms.add_argument("--json", action="store_true")
    ms.set_defaults(func=cmd_missed)

    tm = sub.add_parser("team", help="each person's shifts done and missed, flags filed and "
                        "published")
    tm.add_argument("--json", action="store_true")
    tm.set_defaults(func=cmd_team)

    g = sub.add_parser("gaps", help="stretches where shifts are short of people")
    g.add_argument("--days", type=_positive, default=7)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_gaps)

    n = sub.add_parser("now", help="who is watching what now")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_now)

    ic = sub.add_parser("ical", help="a person's shifts as iCalendar text")
    ic.add_argument("--user", required=True, metavar="NAME")
    ic.set_defaults(func=cmd_ical)
