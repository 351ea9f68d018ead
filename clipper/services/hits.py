"""Turning a search hit into a new flag on the same source, around that moment."""

from __future__ import annotations

from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import Actor, requires
from clipper.pipeline.sources import SourceRef
from clipper.services.clips import get_clip
from clipper.services.flags import FlagResult, file_flag
from clipper.timecode import parse_timecode

DEFAULT_BEFORE = 5.0
DEFAULT_AFTER = 15.0


@requires("clip_from_hit")
def clip_from_hit(ctx: Context, actor: Actor, clip_id: int, at: float | str, *,
                  before: float | str = DEFAULT_BEFORE, after: float | str = DEFAULT_AFTER,
                  note: str = "") -> FlagResult:
    """File a flag on `clip_id`'s source from `at - before` to `at + after` (`at` on the clip's
    timeline, as search hits report it). Same validation and merging as any flag."""
    at_s = parse_timecode(at, field="--at")
    before_s, after_s = (parse_timecode(before, field="--before"),
                         parse_timecode(after, field="--after"))
    if before_s + after_s <= 0:
        raise InvalidInput("--before and --after leave an empty clip.",
                           "For example --before 5 --after 15.")
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
