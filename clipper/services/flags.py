"""Filing a flag: validate, store (creating or joining a clip), then queue the work."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clipper import dedupe
from clipper.context import Context
from clipper.errors import InvalidInput
from clipper.permissions import Actor, requires
from clipper.pipeline.jobqueue import queue_clip
from clipper.pipeline.lifecycle import REVIEWED, log_event, move
from clipper.pipeline.sources import SourceRef, resolve_source
from clipper.storage.tables import Clip, Flag, Source
from clipper.timecode import parse_interval

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
    by = actor.name.strip() or "anonymous"
    if isinstance(source, SourceRef):
        ref = source
    else:
        ref = resolve_source(source, ctx.settings,
                             server_paths=actor.can("use_server_files"))
    flag = Flag(start=s, end=e, note=(note or "").strip(), tags=clean_tags(tags),
                urgency=urgency, by=by)
    for attempt in range(3):
        try:
            with ctx.db.session() as session:
                result, requeue = _store(session, ctx, ref, flag)
            break
        except IntegrityError:  # two first flags of one source at once: retry finds the source
            if attempt == 2:
                raise
            flag = Flag(start=s, end=e, note=flag.note, tags=flag.tags, urgency=urgency, by=by)
    if requeue:
        result = FlagResult(**{**asdict(result), "queued": queue_clip(ctx, result.clip_id)})
    return result


def _store(session: Session, ctx: Context, ref: SourceRef, flag: Flag) -> tuple[FlagResult, bool]:
    src = _lock_source(session, ref)
    candidates = [dedupe.Candidate(c.id, c.start, c.end, c.status)
                  for c in session.scalars(select(Clip).where(Clip.source_id == src.id))]
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
