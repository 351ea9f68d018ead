"""`clipper watch add|list|remove` and `clipper alerts`: watch-lists on the live transcripts.

The local operator acts (it has every permission). JSON times are ISO 8601 UTC with
milliseconds (`2026-11-30T19:42:10.250Z`), as a channel clip's `wall_start` is."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clipper.cli.commands import local_operator
from clipper.context import Context

#: The keys of `watch add --json`, and of each alert in `alerts --json` (the contract).
WATCH_KEYS = ("name", "query", "channels", "auto_flag")
ALERT_KEYS = ("id", "watch", "channel", "wall_start", "wall_end", "text", "flag_id", "clip_id")


def _ctx(args: argparse.Namespace) -> Context:
    return Context.build(args.settings)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d[k] for k in keys}


def _where(w: dict[str, Any]) -> str:
    return ", ".join(w["channels"]) if w["channels"] else "all channels"


def cmd_add(args: argparse.Namespace) -> int:
    from clipper.services.watches import add_watch

    w = add_watch(_ctx(args), local_operator(), args.name, args.query, channels=args.channels,
                  auto_flag=args.auto_flag, notify_url=args.notify)
    if args.json:
        _print_json(_pick(w, WATCH_KEYS))
    else:
        print(f"watch {w['name']} added: {w['query']} on {_where(w)}"
              + (", files a flag on each match" if w["auto_flag"] else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clipper.services.watches import list_watches

    rows = list_watches(_ctx(args), local_operator())
    if args.json:
        _print_json([{**_pick(w, WATCH_KEYS), "notify": w["notify"]} for w in rows])
    elif not rows:
        print("no watches; add one with `clipper watch add NAME QUERY`")
    else:
        for w in rows:
            extra = [x for x in ("auto-flag" if w["auto_flag"] else "",
                                 f"notifies {w['notify']}" if w["notify"] else "") if x]
            print(f"{w['name']:<20} {w['query']:<40} {_where(w)}"
                  + (f"  ({', '.join(extra)})" if extra else ""))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from clipper.services.watches import remove_watch

    w = remove_watch(_ctx(args), local_operator(), args.name)
    print(f"watch {w['name']} removed")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from clipper.services.watches import list_alerts

    rows = list_alerts(_ctx(args), local_operator(), since=args.since, limit=args.limit)
    if args.json:
        _print_json([_pick(a, ALERT_KEYS) for a in rows])
    elif not rows:
        print("no alerts")
    else:
        for a in rows:
            flag = f"  flag {a['flag_id']} clip {a['clip_id']}" if a["flag_id"] else ""
            print(f"{a['id']:>6} {a['wall_start']} {a['channel']:<16} {a['watch']:<16} "
                  f"{a['text']}{flag}")
    return 0


def add_watch_parser(subparsers: Any) -> None:
    """Register `watch` and `alerts` on the main parser's subparsers."""
    watch = subparsers.add_parser("watch", help="watch-lists: alert when words are said live")
    sub = watch.add_subparsers(dest="watch_command", required=True)

    add = sub.add_parser("add", help="alert (and optionally flag) when QUERY is said live")
    add.add_argument("name", help="1-40 letters, digits, '-' or '_'")
    add.add_argument("query", help='the search language: words, "phrases", OR, -excluded')
    add.add_argument("--channels", metavar="A,B", help="only these channels (default all)")
    add.add_argument("--auto-flag", action="store_true",
                     help="file a flag (20 s either side of the match) on each alert")
    add.add_argument("--notify", metavar="URL",
                     help="post alerts to this webhook instead of CLIPPER_WEBHOOK_URL")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", help="every watch")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    rm = sub.add_parser("remove", help="remove a watch (its alerts are kept)")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)

    alerts = subparsers.add_parser("alerts", help="what the watches found, newest first")
    alerts.add_argument("--since", metavar="ISO",
                        help="only alerts aired from then on (no offset: CLIPPER_TIMEZONE)")
    alerts.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    alerts.add_argument("--json", action="store_true")
    alerts.set_defaults(func=cmd_alerts)
