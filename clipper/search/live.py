"""Channel hits: words said on a recorded channel, found in its live transcript (`live_segments`,
indexed like clip transcripts by migration 0014), where nobody needs to have flagged a clip.

A channel hit names the channel and the wall-clock time: in JSON `wall_start`/`wall_end` in ISO
8601 UTC and `clip_id` null (no clip holds these words); `at` is when its first matching word was
said, in Unix seconds (`at_utc` the same in ISO 8601), the segment's start when the words carry no
timings — where Play and `Clip this` go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from clipper.search.query import Query
from clipper.search.snippet import first_match_word, make_snippet
from clipper.storage.tables import Channel, LiveSegment
from clipper.timecode import format_wallclock

CHANNEL_HIT_KEYS = ("kind", "channel", "clip_id", "wall_start", "wall_end", "at", "at_utc",
                    "snippet", "transcript", "score")
"""The JSON form of a channel hit. `kind` is "channel"; clip hits keep HIT_KEYS (no `kind`)."""


@dataclass(frozen=True)
class ChannelHit:
    """One matching live-transcript segment of `channel`. `wall_start`/`wall_end`/`at` are Unix
    seconds (UTC); `snippet`, `text` and `spans` as for clip hits; `transcript` is where the
    words came from (whisper | captions); `words` are [[start, end, word], ...] on the wall
    clock. Scores compare with the clip hits of the same search."""

    kind: ClassVar[str] = "channel"

    segment_id: int
    channel: str
    wall_start: float
    wall_end: float
    at: float
    snippet: str
    text: str
    spans: list[tuple[int, int]]
    transcript: str
    score: float
    words: list[Any] = field(default_factory=list)

    @property
    def at_utc(self) -> str:
        """`at` as ISO 8601 UTC with milliseconds: `2026-11-30T19:42:10.250Z`."""
        return format_wallclock(self.at)

    @property
    def said_at(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: exactly CHANNEL_HIT_KEYS, wall-clock times in ISO 8601 UTC."""
        iso = {"clip_id": None, "wall_start": format_wallclock(self.wall_start),
               "wall_end": format_wallclock(self.wall_end)}
        return {key: iso[key] if key in iso else getattr(self, key) for key in CHANNEL_HIT_KEYS}


def first_match_at(row: LiveSegment, query: Query) -> float:
    """When the first word matching `query` was said (the segment's start if none is timed)."""
    words = [w for w in row.words or [] if isinstance(w, list | tuple) and len(w) >= 3]
    index = first_match_word([str(w[2]) for w in words], query)
    if index is None:
        return float(row.wall_start)
    try:
        return min(max(float(words[index][0]), float(row.wall_start)), float(row.wall_end))
    except (TypeError, ValueError):  # a malformed timing must not cost the hit
        return float(row.wall_start)


def channel_hits(session: Session, scored: list[tuple[int, float]],
                 query: Query) -> dict[int, ChannelHit]:
    """ChannelHits for (live segment id, score) pairs, by id; rows deleted meanwhile are absent."""
    if not scored:
        return {}
    rows = session.execute(
        select(LiveSegment, Channel.name).join(Channel, Channel.id == LiveSegment.channel_id)
        .where(LiveSegment.id.in_([sid for sid, _ in scored]))).all()
    found = {seg.id: (seg, name) for seg, name in rows}
    hits = {}
    for sid, score in scored:
        if sid not in found:
            continue
        seg, name = found[sid]
        plain, spans, marked = make_snippet(seg.text, query)
        hits[sid] = ChannelHit(
            segment_id=seg.id, channel=name, wall_start=round(seg.wall_start, 3),
            wall_end=round(seg.wall_end, 3), at=round(first_match_at(seg, query), 3),
            snippet=marked, text=plain, spans=spans, transcript=seg.source,
            score=round(score, 6), words=list(seg.words or []))
    return hits
