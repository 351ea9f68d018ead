"""Filing a flag: validate, store (creating or joining a clip), then queue the work."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from clipper import dedupe
from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import Actor, requires
from clipper.pipeline.channel_media import find_channel, flag_refusal, recording_around
from clipper.pipeline.jobqueue import queue_clip
from clipper.pipeline.lifecycle import REVIEWED, log_event, move
from clipper.pipeline.sources import SOURCE_KINDS, SourceRef, resolve_source
from clipper.settings import Settings
from clipper.storage.tables import Clip, Flag, Source
from clipper.timecode import (
    FUTURE_SLACK,
    check_wall_interval,
    format_wallclock,
    parse_date,
    parse_interval,
    parse_last,
    parse_wall_interval,
)

log = logging.getLogger(__name__)

URGENCIES = ("low", "normal", "high")


@dataclass(frozen=True)
class FlagResult:
    flag_id: int
    clip_id: int
    status: str
    merged: bool
    queued: bool = True

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("queued")
        return d


def clean_tags(tags: Sequence[str] | str | None) -> list[str]:
    """Tags from a list or a comma-separated string: trimmed, lower-case, de-duplicated."""
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for t in tags or ():
        t = t.strip().lstrip("#").lower()
        if t and t not in out:
            out.append(t[:64])
    return out


def check_urgency(urgency: str) -> str:
    u = (urgency or "normal").strip().lower()
    if u not in URGENCIES:
        raise InvalidInput(f"Urgency {urgency!r} is not one of {', '.join(URGENCIES)}.",
                           "For example --urgency high.")
    return u


@requires("flag")
def file_flag(ctx: Context, actor: Actor, source: str | SourceRef, start: str | float,
              end: str | float, *, note: str = "", tags: Sequence[str] | str | None = None,
              urgency: str = "normal") -> FlagResult:
    """Store `actor`'s flag (new clip, or joined to the same moment's open clip) and queue it.

    `source` is what the person typed (a URL; a server path only for the local operator) or a
    SourceRef already checked (an upload, a search hit's source). Everything is validated
    before anything is stored. Queueing failures never lose the flag: the row is the truth and
    the reconciler queues it once Redis is back.
    """
    s, e = parse_interval(start, end, max_seconds=ctx.settings.max_clip_seconds)
    urgency = check_urgency(urgency)
    if isinstance(source, SourceRef):
        ref = source
    else:
        ref = resolve_source(source, ctx.settings,
                             server_paths=actor.can("use_server_files"))
    return _file(ctx, actor, ref, s, e, note=note, tags=tags, urgency=urgency)


@requires("flag")
def flag_channel(ctx: Context, actor: Actor, channel: str, *, start: str | float | None = None,
                 end: str | float | None = None, last: str | float | None = None,
                 date: str | None = None, tz: str | None = None, note: str = "",
                 tags: Sequence[str] | str | None = (), urgency: str = "normal") -> FlagResult:
    """Flag a recorded channel by wall-clock time: `start`/`end` (`19:42:10`, ISO 8601, or Unix
    seconds; bare times on `date` in zone `tz`, defaults today and CLIPPER_TIMEZONE), or the
    `last` N seconds up to now.

    Refused at once (InvalidInput, nothing stored): an unknown channel, a bad interval, or one
    the recording cannot have (older than the retention, before the recording began, wholly
    in a gap). An end not yet aired is accepted: the clip waits, `queued`, until it is recorded.
    Then stored and merged exactly as `file_flag`, the source being "channel:<name>".
    """
    now = time.time()
    ref = SOURCE_KINDS["channel"].check(channel, ctx.settings)
    s, e = channel_interval(ctx.settings, start=start, end=end, last=last, date=date, tz=tz,
                            now=now)
    urgency = check_urgency(urgency)
    with ctx.db.session() as session:
        row = find_channel(session, ref.location)
        if row is None:
            raise InvalidInput(f"There is no channel named {ref.location!r}.",
                               "See the channels with `clipper channels list`.")
        rec = recording_around(session, row.id, s, e)
        hours = row.retention_hours or ctx.settings.retention_hours
    problem = flag_refusal(ref.location, s, e, rec, now=now, retention_seconds=hours * 3600,
                           grace=ctx.settings.stall_seconds)
    if problem:
        raise InvalidInput(problem, "Flag a time the channel recorded.")
    return _file(ctx, actor, ref, s, e, note=note, tags=tags, urgency=urgency)


def channel_interval(settings: Settings, *, start: str | float | None, end: str | float | None,
                     last: str | float | None, date: str | None, tz: str | None,
                     now: float) -> tuple[float, float]:
    """A channel flag's [start, end] in Unix seconds, checked (pure but for `now` given)."""
    if last is not None:
        if start is not None or end is not None:
            raise InvalidInput("Give either the last N seconds or a start and an end, not both.",
                               "For example --last 30, or --start 19:42:10 --end 19:42:40.")
        if date:
            raise InvalidInput("A date goes with a start and an end, not with the last N seconds.",
                               "For example --date 2026-11-30 --start 19:42:10 --end 19:42:40.")
        seconds = parse_last(last, max_seconds=settings.max_clip_seconds)
        return now - seconds, now
    if start is None or end is None or start == "" or end == "":
        raise InvalidInput("A channel flag needs a start and an end, or the last N seconds.",
                           "For example --start 19:42:10 --end 19:42:40, or --last 30.")
    day = parse_date(date) if date else None
    s, e = parse_wall_interval(start, end, zone=tz or settings.timezone, now=now, day=day)
    check_wall_interval(s, e, max_seconds=settings.max_clip_seconds)
    if s > now + FUTURE_SLACK:
        raise InvalidInput(f"The flag starts at {format_wallclock(s)}, more than "
                           f"{FUTURE_SLACK / 3600:g} h from now.",
                           "Flag a moment that has aired or is about to.")
    return s, e


def _file(ctx: Context, actor: Actor, ref: SourceRef, s: float, e: float, *, note: str,
          tags: Sequence[str] | str | None, urgency: str) -> FlagResult:
    """Store a checked flag (new clip, or joined to an open clip of the same moment), queue it."""
    by = actor.name.strip() or "anonymous"
    flag = Flag(start=s, end=e, note=(note or "").strip(), tags=clean_tags(tags),
                urgency=urgency, by=by)
    for attempt in range(STORE_TRIES):
        try:
            with ctx.db.session() as session:
                result, requeue = _store(session, ctx, ref, flag)
            break
        except (IntegrityError, OperationalError) as exc:
            # Two first flags of one source at once (the retry finds the source), or PostgreSQL
            # chose this flag as a deadlock / serialisation victim, or SQLite stayed busy: the
            # transaction rolled back whole, so storing again stores exactly one flag.
            if attempt + 1 == STORE_TRIES or not _retryable(exc):
                raise
            log.info("storing a flag again after %s", type(exc.orig).__name__)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter only
            flag = Flag(start=s, end=e, note=flag.note, tags=flag.tags, urgency=urgency, by=by)
    if requeue:
        result = FlagResult(**{**asdict(result), "queued": queue_clip(ctx, result.clip_id)})
    return result


#: Attempts at storing one flag (deadlocks and busy databases are retried, see `_file`).
STORE_TRIES = 5
#: PostgreSQL SQLSTATEs that mean "run the transaction again": deadlock, serialisation failure.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def _retryable(exc: IntegrityError | OperationalError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


def _store(session: Session, ctx: Context, ref: SourceRef, flag: Flag) -> tuple[FlagResult, bool]:
    # Locks in the one order used everywhere (see lifecycle.lock_clip): the source, then its
    # clips. The clips are read locked, so an approve, reject or render that commits while
    # this flag waits is seen here, not overwritten with a stale status.
    src = _lock_source(session, ref)
    clips = session.scalars(select(Clip).where(Clip.source_id == src.id).order_by(Clip.id)
                            .with_for_update(of=Clip)
                            .execution_options(populate_existing=True)).unique()
    candidates = [dedupe.Candidate(c.id, c.start, c.end, c.status) for c in clips]
    chosen = dedupe.choose_clip((flag.start, flag.end), candidates)
    flag.source_id = src.id
    if chosen is None:
        clip = Clip(source_id=src.id, start=flag.start, end=flag.end, urgency=flag.urgency,
                    status="queued")
        session.add(clip)
        session.flush()
        flag.clip_id, flag.merged = clip.id, False
        session.add(flag)
        session.flush()
        log_event(session, flag.by, "flag.created", clip.id,
                  {"flag_id": flag.id, "start": flag.start, "end": flag.end, "note": flag.note})
        return FlagResult(flag.id, clip.id, clip.status, False), True
    clip = session.get(Clip, chosen.clip_id)
    flag.clip_id, flag.merged = clip.id, True
    session.add(flag)
    session.flush()
    requeue = _absorb(session, ctx, clip, flag)
    return FlagResult(flag.id, clip.id, clip.status, True), requeue


def _absorb(session: Session, ctx: Context, clip: Clip, flag: Flag) -> bool:
    """Widen the clip to the union and re-cut it if its media was already under way."""
    if URGENCIES.index(flag.urgency) > URGENCIES.index(clip.urgency):
        clip.urgency = flag.urgency
    new = dedupe.merged_interval((clip.start, clip.end), (flag.start, flag.end),
                                 max_seconds=ctx.settings.max_clip_seconds)
    details = {"flag_id": flag.id, "start": flag.start, "end": flag.end, "note": flag.note}
    changed = new != (clip.start, clip.end)
    if not changed or clip.status in REVIEWED:
        log_event(session, flag.by, "flag.merged", clip.id, {**details, "recut": False})
        return clip.status == "failed" and _requeue(session, clip, flag.by)
    clip.start, clip.end = new
    log_event(session, flag.by, "flag.merged", clip.id, {**details, "recut": True,
                                                          "interval": list(new)})
    return _requeue(session, clip, flag.by)


def _requeue(session: Session, clip: Clip, actor: str) -> bool:
    clip.version += 1
    clip.error = clip.error_stage = None
    clip.progress = 0.0
    if clip.status != "queued":
        move(session, clip, "queued", actor=actor, action="clip.requeued",
             details={"version": clip.version})
    return True


def _lock_source(session: Session, ref: SourceRef) -> Source:
    """Get or create the source row, locked so concurrent flags of it serialise."""
    stmt = select(Source).where(Source.key == ref.key).with_for_update()
    src = session.scalars(stmt).first()
    if src is None:
        src = Source(kind=ref.kind, key=ref.key, location=ref.location, title=ref.title)
        session.add(src)
        session.flush()
    return src
