"""Search for people: CLI arguments in, readable lines or JSON out."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from clipper.search.engine import SearchPage
from clipper.search.filters import SCOPES


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The `clipper search` options (the integrator adds them to a subparser)."""
    parser.add_argument("query", help='words, "exact phrase", a OR b, -exclude, prefix*')
    parser.add_argument("--source", help="source id, or part of its URL/path/title")
    parser.add_argument("--since", help="first day (YYYY-MM-DD, UTC), inclusive")
    parser.add_argument("--until", help="last day (YYYY-MM-DD, UTC), inclusive")
    parser.add_argument("--status", help="clip status, or several: ready,approved")
    parser.add_argument("--tag", help="any flag of the clip has this tag")
    parser.add_argument("--by", help="any flag of the clip was raised by this person")
    parser.add_argument("--urgency", help="clip urgency")
    parser.add_argument("--channel", help="only what this recorded channel said (live, and its "
                                          "clips)")
    parser.add_argument("--in", dest="scope", choices=SCOPES, default="all",
                        help="clip transcripts, channels' live transcripts, or both (default)")
    parser.add_argument("--limit", type=int, default=20, help="hits per page (1-100)")
    parser.add_argument("--offset", type=int, default=0, help="hits to skip")
    parser.add_argument("--json", action="store_true", help="print JSON")


def search_cli_args(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `search(db, **kwargs)` from parsed CLI arguments."""
    keys = ("query", "source", "since", "until", "status", "tag", "by", "urgency", "channel",
            "scope", "limit", "offset")
    return {key: getattr(args, key, None) for key in keys if getattr(args, key, None) is not None}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:04.1f}"


def _wall(unix: float, tz: str) -> str:
    return datetime.fromtimestamp(unix, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def format_page(page: SearchPage, tz: str = "UTC") -> str:
    """Human-readable lines: one header, then two lines per hit; a channel hit's wall-clock
    time in `tz` (an IANA zone), with the UTC instant `clip-from-hit --at` takes."""
    more = "" if page.total_exact else "+"
    if not page.hits:
        return (f"No matches for {page.query}"
                + (f" after the first {page.offset}" if page.offset else ""))
    first, last = page.offset + 1, page.offset + len(page.hits)
    lines = [f"{first}-{last} of {page.total}{more} matches for {page.query}"]
    for hit in page.hits:
        if hit.kind == "channel":
            lines.append(f"channel {hit.channel}  {_wall(hit.at, tz)} {tz}  (at {hit.at_utc})"
                         f"  [live, {hit.transcript}]")
        else:
            lines.append(f"clip {hit.clip_id}  {_clock(hit.start)}-{_clock(hit.end)}"
                         f"  (source {_clock(hit.source_start)})  [{hit.status}]  {hit.source}")
        lines.append(f"    {hit.snippet}")
    return "\n".join(lines)


def page_json(page: SearchPage) -> str:
    """JSON for `--json`: the page counts and each hit's `as_dict()`."""
    return json.dumps({"query": page.query, "total": page.total, "total_exact": page.total_exact,
                       "offset": page.offset, "limit": page.limit, "has_more": page.has_more,
                       "hits": [hit.as_dict() for hit in page.hits]}, ensure_ascii=False)
