"""`clipper record [--channels A,B]`: the channel recorder in the foreground (Ctrl-C stops it)."""

from __future__ import annotations

import argparse

from clipper.context import Context


def cmd_record(args: argparse.Namespace) -> int:
    """Record every channel that is not paused (or only those named) until SIGINT/SIGTERM."""
    from clipper.pipeline.recorder import run_recorder
    from clipper.storage.broker import watch_parent

    watch_parent()  # under `clipper up`: stop if it dies, even where PDEATHSIG did not reach us
    only = [name.strip() for name in (args.channels or "").split(",") if name.strip()]
    ctx = Context.build(args.settings)
    try:
        from clipper.cli.live_asr import watch_matcher

        # Captions arrive in the recorder: watch-lists see them as soon as they are stored.
        return run_recorder(ctx, only=only, on_caption_segments=watch_matcher(ctx, "recorder"))
    finally:
        ctx.close()


def add_record_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `clipper record` on the top-level parser's subcommands."""
    p = subparsers.add_parser("record", help="record live channels in the foreground")
    p.add_argument("--channels", default="",
                   help="comma-separated channel names to record (default: every channel "
                        "that is not paused)")
    p.set_defaults(func=cmd_record)
