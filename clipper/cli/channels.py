"""`clipper channels ...`: add, list, pause, resume, remove and transcribe the live channels."""

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
    from clipper.services.channels import add_channel

    res = add_channel(_ctx(args), local_operator(), args.name, args.url,
                      retention_hours=args.retention, transcribe=args.transcribe)
    if args.json:
        _print_json(res)
    else:
        live = f", transcribed live ({res['transcribe']})" if res["transcribe"] else ""
        print(f"channel {res['name']} added ({res['url']}, keeps {res['retention_hours']:g} h"
              f"{live})")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from clipper.services.channels import set_transcribe

    mode = None if args.mode == "off" else args.mode
    res = set_transcribe(_ctx(args), local_operator(), args.name, mode)
    if args.json:
        _print_json(res)
    elif res["transcribe"]:
        print(f"channel {res['name']} is transcribed live ({res['transcribe']})")
    else:
        print(f"channel {res['name']} is not transcribed")
    return 0


def describe(ch: dict[str, Any]) -> str:
    """One channel as a line of the plain list."""
    lag = "-" if ch["lag_seconds"] is None else f"{ch['lag_seconds']:.1f} s behind"
    gaps = f", {len(ch['gaps'])} gap(s) in 24 h" if ch["gaps"] else ""
    return (f"{ch['name']:<20} {ch['status']:<10} {ch['clock']:<18} {lag:<16} "
            f"{ch['disk_bytes'] / 1e6:>9.1f} MB  {ch['recorded_from'] or '-'} .. "
            f"{ch['recorded_to'] or '-'}{gaps}{transcript_words(ch)}")


def transcript_words(ch: dict[str, Any]) -> str:
    """`, transcript (whisper) 12 s behind` for a channel transcribed live, else nothing."""
    if not ch.get("transcribe"):
        return ""
    source = ch.get("transcript_source") or ch["transcribe"]
    behind = ch.get("asr_lag_seconds")
    return f", transcript ({source}) " + ("not started" if behind is None
                                          else f"{behind:.0f} s behind")


def cmd_list(args: argparse.Namespace) -> int:
    from clipper.services.channels import list_channels

    rows = list_channels(_ctx(args), local_operator())
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no channels; add one with `clipper channels add NAME URL`")
    else:
        for ch in rows:
            print(describe(ch))
    return 0


def _switch(args: argparse.Namespace, what: str) -> int:
    from clipper.services import channels

    fn = {"paused": channels.pause_channel, "resumed": channels.resume_channel,
          "removed": channels.remove_channel}[what]
    res = fn(_ctx(args), local_operator(), args.name)
    if args.json:
        _print_json(res)
    else:
        print(f"channel {res['name']} {what}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    return _switch(args, "paused")


def cmd_resume(args: argparse.Namespace) -> int:
    return _switch(args, "resumed")


def cmd_remove(args: argparse.Namespace) -> int:
    return _switch(args, "removed")


def add_channels_parser(subparsers: Any) -> None:
    """Register `clipper channels` on the main parser's subparsers."""
    channels = subparsers.add_parser("channels", help="manage the live channels Clipper records")
    sub = channels.add_subparsers(dest="channels_command", required=True)

    add = sub.add_parser("add", help="record a live channel (HLS, HTTP MPEG-TS or a page)")
    add.add_argument("name", help="1-40 letters, digits, '-' or '_'")
    add.add_argument("url")
    add.add_argument("--retention", metavar="HOURS",
                     help="hours of recording kept (default CLIPPER_RETENTION_HOURS)")
    add.add_argument("--transcribe", nargs="?", const="auto", default=None,
                     metavar="whisper|captions|auto",
                     help="transcribe it live: with Whisper, from the broadcast's captions, or "
                          "auto (captions when present, else Whisper; the default when the "
                          "flag has no value)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)

    tr = sub.add_parser("transcribe", help="switch a channel's live transcript on or off")
    tr.add_argument("name")
    tr.add_argument("mode", nargs="?", default="auto", metavar="whisper|captions|auto|off",
                    help="default auto; off stops it (the transcript so far is kept)")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_transcribe)

    ls = sub.add_parser("list", help="every channel: status, lag, gaps, disk use")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    for verb, func, text in (("pause", cmd_pause, "stop recording (keeps the recording)"),
                             ("resume", cmd_resume, "record a paused channel again"),
                             ("remove", cmd_remove, "delete a channel and its recording")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
