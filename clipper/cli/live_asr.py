"""`clipper live-asr`: transcribe recorded channels as they air (a child of `clipper up`)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from clipper.context import Context
from clipper.permissions import Actor

log = logging.getLogger(__name__)


def watch_matcher(ctx: Context, who: str = "live-asr") -> Any:
    """`on_segments` for the transcriber and the recorder's captions: the watch-list matcher.
    A failure is logged, never raised: a watch-list problem must not stop a transcript."""
    from clipper.services.watches import match_segments

    actor = Actor.operator(who)

    def on_segments(channel_id: int, segment_ids: list[int]) -> None:
        try:
            match_segments(ctx, actor, channel_id, segment_ids)
        except Exception:  # noqa: BLE001 - logged with its traceback; the transcript goes on
            log.exception("watch-lists on channel %s failed", channel_id)

    return on_segments


def quick_matcher(ctx: Context, who: str = "live-asr") -> tuple[Any, Any]:
    """`on_heard` and `watched` for the transcriber's quick pass: words heard but not stored,
    matched against the watch-lists; which channels are watched. Failures are logged."""
    from clipper.services.watches import match_heard, watched_channel_ids

    actor = Actor.operator(who)

    def on_heard(channel_id: int, words: list[tuple[float, float, str]], heard_to: float) -> None:
        try:
            match_heard(ctx, actor, channel_id, words, heard_to=heard_to)
        except Exception:  # noqa: BLE001 - logged with its traceback; the transcript goes on
            log.exception("watch-lists (quick pass) on channel %s failed", channel_id)

    return on_heard, lambda: watched_channel_ids(ctx, actor)


def cmd_live_asr(args: argparse.Namespace) -> int:
    """Transcribe every channel that asks for Whisper (or only those named) until SIGINT or
    SIGTERM; idle while none does."""
    from clipper.errors import InvalidInput
    from clipper.pipeline.live_asr import QUICK_HOP, QUICK_WINDOW, run_live_asr
    from clipper.storage.broker import watch_parent
    from clipper.transcribe.windows import DEFAULT_HOP, DEFAULT_WINDOW, check_geometry

    window = DEFAULT_WINDOW if args.window is None else args.window
    hop = DEFAULT_HOP if args.hop is None else args.hop
    quick_window = QUICK_WINDOW if args.quick_window is None else args.quick_window
    quick_hop = QUICK_HOP if args.quick_hop is None else args.quick_hop
    try:
        check_geometry(window, hop)
    except ValueError as exc:
        raise InvalidInput(f"--window {window:g} --hop {hop:g}: {exc}.",
                           "The hop is above 0 and at most the window.") from exc
    if quick_hop and not 0 < quick_hop <= quick_window:
        raise InvalidInput(f"--quick-window {quick_window:g} --quick-hop {quick_hop:g}: the hop "
                           "must be above 0 and at most the window.",
                           "Use --quick-hop 0 to turn the quick pass off.")
    watch_parent()  # under `clipper up`: stop if it dies, even where PDEATHSIG did not reach us
    only = [name.strip() for name in (args.channels or "").split(",") if name.strip()]
    ctx = Context.build(args.settings)
    try:
        on_heard, watched = quick_matcher(ctx)
        return run_live_asr(ctx, on_segments=watch_matcher(ctx), only=only, window=window,
                            hop=hop, on_heard=on_heard, watched=watched,
                            quick_window=quick_window, quick_hop=quick_hop)
    finally:
        ctx.close()


def add_live_asr_parser(subparsers: Any) -> None:
    """Register `clipper live-asr` on the top-level parser's subcommands."""
    # Defaults resolved when it runs: the parser must not import the speech package (numpy).
    p = subparsers.add_parser("live-asr", help="transcribe recorded channels live (Whisper)")
    p.add_argument("--channels", default="",
                   help="comma-separated channel names (default: every channel whose "
                        "transcript Whisper makes)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="seconds of audio per window (default 30)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="seconds between window starts (default 25); shorter windows cut the "
                        "wait for words but make more errors")
    p.add_argument("--quick-window", type=float, default=None, metavar="SECONDS",
                   help="seconds of the newest audio a watched channel's quick pass hears, for "
                        "alerts only (default 8)")
    p.add_argument("--quick-hop", type=float, default=None, metavar="SECONDS",
                   help="how often it does: once this many seconds more are recorded "
                        "(default 2: each new segment; 0 turns the quick pass off)")
    p.set_defaults(func=cmd_live_asr)
