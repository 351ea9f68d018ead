"""Turning a search hit into a new flag on the same source, around that moment.

A clip hit is named by its clip and `at` on the clip's timeline (`clip_from_hit`); a channel
hit by its channel and `at` on the wall clock (`clip_from_channel_hit`): what search reports.
"""

from __future__ import annotations

import time

from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import Actor, requires
from clipper.pipeline.sources import SourceRef
from clipper.services.clips import get_clip
from clipper.services.flags import FlagResult, file_flag, flag_channel
from clipper.timecode import parse_timecode, parse_wallclock

DEFAULT_BEFORE = 5.0
DEFAULT_AFTER = 15.0


@requires("clip_from_hit")
def clip_from_hit(ctx: Context, actor: Actor, clip_id: int, at: float | str, *,
                  before: float | str = DEFAULT_BEFORE, after: float | str = DEFAULT_AFTER,
                  note: str = "") -> FlagResult:
    """File a flag on `clip_id`'s source from `at - before` to `at + after` (`at` on the clip's
    timeline, as search hits report it). Same validation and merging as any flag."""
    at_s = parse_timecode(at, field="--at")
    before_s, after_s = _margins(before, after)
    with ctx.db.read() as session:  # only reads; file_flag below takes the write lock
        clip = get_clip(session, clip_id)
        src = clip.source
        ref = SourceRef(src.kind, src.key, src.location, src.title)
        moment = clip.start + at_s
        if clip.duration and at_s > clip.duration + 0.5:
            raise InvalidInput(f"--at {at_s:g} is past the end of clip {clip_id} "
                               f"({clip.duration:.1f} s).",
                               "Use the hit's start time.")
    start = max(0.0, moment - before_s)
    # The source was checked when its first flag was filed; passing the stored ref means an
    # editor may clip a hit on an uploaded recording without naming a server path.
    return file_flag(ctx, actor, ref, start, moment + after_s,
                     note=note or f"from search hit in clip {clip_id}", tags=["from-search"])


@requires("clip_from_hit")
def clip_from_channel_hit(ctx: Context, actor: Actor, channel: str, at: float | str, *,
                          before: float | str = DEFAULT_BEFORE,
                          after: float | str = DEFAULT_AFTER, note: str = "") -> FlagResult:
    """File a flag on recorded `channel` from `at - before` to `at + after` on the wall clock.

    `at` is what a channel hit reports (`at`: Unix seconds, or `at_utc`: ISO 8601), or a time
    a person types (`19:42:10`, today in CLIPPER_TIMEZONE). Checked and merged as any channel
    flag (`flag_channel`): refused when the recording cannot have that moment.
    """
    if isinstance(at, str):
        try:  # Unix seconds as typed on the command line (a hit's `at`)
            at = float(at)
        except ValueError:  # a clock time or ISO 8601: parse_wallclock reads it
            pass
    at_s = parse_wallclock(at, zone=ctx.settings.timezone, now=time.time(), field="--at")
    before_s, after_s = _margins(before, after)
    return flag_channel(ctx, actor, channel, start=at_s - before_s, end=at_s + after_s,
                        note=note or f"from search hit on channel {channel}",
                        tags=["from-search"])


def _margins(before: float | str, after: float | str) -> tuple[float, float]:
    """--before and --after in seconds; together they must leave something to clip."""
    before_s, after_s = (parse_timecode(before, field="--before"),
                         parse_timecode(after, field="--after"))
    if before_s + after_s <= 0:
        raise InvalidInput("--before and --after leave an empty clip.",
                           "For example --before 5 --after 15.")
    return before_s, after_s
