"""Search filters: validate what the editor asked for and turn it into SQL with bound parameters.

Clause text is fixed; every user value travels as a bound parameter. Clip clauses refer to the
clip as `c` (a `clips` row), live-transcript clauses to the live segment as `ls`. Dates are UTC
calendar days, both ends inclusive: on a clip's `created_at` (when it was first flagged), on a
live segment's `wall_start` (when it was said).

Source, status, tag, flagged-by and urgency describe clips: set, they leave channels out.
`channel` keeps what was said on that channel: its live transcript and clips of it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BindParameter, bindparam

from clipper.errors import InvalidInput
from clipper.storage.tables import UTCDateTime

_LIKE_ESCAPE = "!"

SCOPES = ("all", "clips", "channels")
"""What a search looks through: clip transcripts, channels' live transcripts, or both."""


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides its words; None means "any"."""

    source: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive (already moved past an inclusive end day)
    status: tuple[str, ...] = ()
    tag: str | None = None
    by: str | None = None
    urgency: str | None = None
    channel: str | None = None
    scope: str = "all"

    def empty(self) -> bool:
        return self == Filters()

    def clip_only(self) -> list[str]:
        """The filters set that only clips have (their CLI names): any leaves channels out."""
        named = (("source", self.source), ("status", self.status), ("tag", self.tag),
                 ("by", self.by), ("urgency", self.urgency))
        return [name for name, value in named if value]

    @property
    def clips(self) -> bool:
        """Search clip transcripts?"""
        return self.scope != "channels"

    @property
    def channels(self) -> bool:
        """Search channels' live transcripts?"""
        return self.scope != "clips" and not self.clip_only()


@dataclass
class Clauses:
    """SQL conditions on `c` (or on `s`, the segment, when they start "s."), their parameters,
    and which parameters need a column type."""

    sql: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    typed: list[BindParameter] = field(default_factory=list)


def parse_day(value: date | str | None, name: str) -> date | datetime | None:
    """A date (or datetime) from a date object or an ISO string like 2026-11-23."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{name} is not a date: {value!r}.",
                           "Write dates like 2026-11-23.") from None


def _day_start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _day_end(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return _day_start(value) + timedelta(microseconds=1)
    return _day_start(value) + timedelta(days=1)


def _no_control(value: str, name: str) -> str:
    # PostgreSQL refuses NUL in text; no real source, tag or name holds control characters.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidInput(f"The {name} filter contains a control character.",
                           "Type it as plain text.")
    return value


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = _no_control(str(value).strip(), name)
    if not value:
        raise InvalidInput(f"The {name} filter is empty.",
                           f"Leave out --{name} to search everything.")
    return value


def _statuses(status: str | Sequence[str] | None) -> tuple[str, ...]:
    if status is None:
        return ()
    items = status.split(",") if isinstance(status, str) else list(status)
    cleaned = tuple(_no_control(str(s).strip(), "status") for s in items if str(s).strip())
    if not cleaned:
        raise InvalidInput("The status filter is empty.", "Use e.g. --status ready")
    return cleaned


def _scope(scope: str | None) -> str:
    value = (scope or "all").strip().lower()
    if value not in SCOPES:
        raise InvalidInput(f"Search in {scope!r}? It is one of {', '.join(SCOPES)}.",
                           "For example --in channels.")
    return value


def make_filters(*, source: str | int | None = None, since: date | str | None = None,
                 until: date | str | None = None, status: str | Sequence[str] | None = None,
                 tag: str | None = None, by: str | None = None,
                 urgency: str | None = None, channel: str | None = None,
                 scope: str | None = "all") -> Filters:
    """Validated filters; raises InvalidInput for empty values, bad dates or since > until,
    an unknown scope, or a channels-only search narrowed by what only clips have."""
    first, last = parse_day(since, "since"), parse_day(until, "until")
    start = _day_start(first) if first is not None else None
    end = _day_end(last) if last is not None else None
    if start is not None and end is not None and start >= end:
        raise InvalidInput("The date range is empty: since is after until.", "Swap the two dates.")
    tag_text = _text(tag, "tag")
    filters = Filters(source=_text(None if source is None else str(source), "source"),
                      since=start, until=end, status=_statuses(status),
                      tag=tag_text,
                      by=_text(by, "by"), urgency=_text(urgency, "urgency"),
                      channel=_text(channel, "channel"), scope=_scope(scope))
    if filters.scope == "channels" and filters.clip_only():
        # It could only ever find nothing: say why instead.
        named = ", ".join(f"--{name}" for name in filters.clip_only())
        raise InvalidInput(f"{named} only narrows clips, and this search is in channels only.",
                           f"Leave out {named}, or search --in all.")
    return filters


def _like(value: str) -> str:
    for ch in (_LIKE_ESCAPE, "%", "_"):
        value = value.replace(ch, _LIKE_ESCAPE + ch)
    return f"%{value.lower()}%"


def filter_clauses(filters: Filters, dialect: str) -> Clauses:
    """SQL conditions on the clip `c` for `filters` on `dialect` ("sqlite" or "postgresql")."""
    out = Clauses()
    if filters.source is not None:
        out.sql.append(
            "c.source_id IN (SELECT id FROM sources WHERE id = :source_id"
            f" OR lower(location) LIKE :source_like ESCAPE '{_LIKE_ESCAPE}'"
            f" OR lower(title) LIKE :source_like ESCAPE '{_LIKE_ESCAPE}')")
        source_id = (int(filters.source) if filters.source.isdigit() and len(filters.source) < 18
                     else -1)
        out.params.update(source_id=source_id, source_like=_like(filters.source))
    if filters.since is not None:
        out.sql.append("c.created_at >= :since")
        out.params["since"] = filters.since
        out.typed.append(bindparam("since", type_=UTCDateTime()))
    if filters.until is not None:
        out.sql.append("c.created_at < :until")
        out.params["until"] = filters.until
        out.typed.append(bindparam("until", type_=UTCDateTime()))
    if filters.status:
        names = [f"status_{i}" for i in range(len(filters.status))]
        out.sql.append(f"c.status IN ({', '.join(':' + n for n in names)})")
        out.params.update(zip(names, filters.status, strict=True))
    if filters.urgency is not None:
        out.sql.append("c.urgency = :urgency")
        out.params["urgency"] = filters.urgency
    if filters.by is not None:
        out.sql.append("c.id IN (SELECT fl.clip_id FROM flags fl WHERE fl.by = :by)")
        out.params["by"] = filters.by
    if filters.tag is not None:
        # clip_tags holds every flag's tags lower-cased (kept by the ORM): an index lookup.
        # PostgreSQL copies them onto each segment, into the text's GIN index (migration 0004),
        # so one index scan answers word and tag together.
        if dialect == "postgresql":
            out.sql.append("s.tags @> ARRAY[CAST(:tag AS text)]")
        else:
            out.sql.append("c.id IN (SELECT ct.clip_id FROM clip_tags ct WHERE ct.tag = :tag)")
        out.params["tag"] = filters.tag.strip().lower()
    if filters.channel is not None:
        # A channel clip's source key is "channel:<name>" (clipper.pipeline.sources), unique.
        out.sql.append("c.source_id IN (SELECT id FROM sources WHERE key = :channel_key)")
        out.params["channel_key"] = f"channel:{filters.channel}"
    return out


def live_clauses(filters: Filters) -> Clauses:
    """SQL conditions on the live segment `ls` for `filters` (only channel and dates apply)."""
    out = Clauses()
    if filters.channel is not None:
        out.sql.append("ls.channel_id = (SELECT ch.id FROM channels ch WHERE ch.name = :channel)")
        out.params["channel"] = filters.channel
    elif filters.since is not None or filters.until is not None:
        # Lets the (channel_id, wall_start) index answer a date range, one channel at a time.
        out.sql.append("ls.channel_id IN (SELECT ch.id FROM channels ch)")
    if filters.since is not None:
        out.sql.append("ls.wall_start >= :wall_since")
        out.params["wall_since"] = filters.since.timestamp()
    if filters.until is not None:
        out.sql.append("ls.wall_start < :wall_until")
        out.params["wall_until"] = filters.until.timestamp()
    return out
