"""Searching every transcript, for the people allowed to (the CLI and the Search page call this)."""

from __future__ import annotations

from typing import Any

from clipper.context import Context
from clipper.permissions import Actor, requires
from clipper.search import SearchPage, search


@requires("search")
def search_transcripts(ctx: Context, actor: Actor, query: str, **filters: Any) -> SearchPage:
    """Ranked transcript hits for `query`, from clips and from channels' live transcripts;
    InvalidInput (only) for a bad query or filter.

    `filters` are `clipper.search.search`'s keywords: source, since, until, status, tag, by
    (who flagged the clip, not who searches), urgency (those five leave channels out),
    channel, scope ("all", "clips" or "channels"), limit, offset. A hit's `kind` is "clip"
    (a `Hit`) or "channel" (a `ChannelHit`: channel name and wall-clock time, no clip).
    """
    # A read transaction: on SQLite a search never waits for (or holds up) a flag's write.
    with ctx.db.read() as session:
        return search(session, query, **filters)
