"""Reading clips: the status object the CLI prints and the dashboard shows; retrying failures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, NotFound
from clipper.permissions import Actor, requires
from clipper.pipeline.delivery import delivery_status
from clipper.pipeline.lifecycle import lock_clip, move
from clipper.storage.tables import Clip, Event, Flag, Publication, RenderRow, StageRun
from clipper.timecode import format_wallclock


def _missing(clip_id: int) -> NotFound:
    return NotFound(f"No clip with id {clip_id}.", "List clips with `clipper list`.")


def get_clip(session: Session, clip_id: int, *, lock: bool = False) -> Clip:
    """The clip row, or NotFound (for services that have already checked the actor's role).
    `lock` for a change decided on its status: locked in the one order (`lock_clip`), so a
    status another transaction has just changed is seen, not overwritten (PostgreSQL)."""
    clip = lock_clip(session, clip_id) if lock else session.get(Clip, clip_id)
    if clip is None:
        raise _missing(clip_id)
    return clip


def visible_clip(session: Session, actor: Actor, clip_id: int) -> Clip:
    """The clip if `actor` may see it: any clip for the whole desk, else only clips the actor's
    own flags made. Another's clip is the same NotFound as a missing one, so ids reveal nothing.
    """
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise _missing(clip_id)
    if not actor.can("view_all_clips"):
        mine = select(Flag.id).where(Flag.clip_id == clip_id, Flag.by == actor.name).limit(1)
        if session.scalars(mine).first() is None:
            raise _missing(clip_id)
    return clip


def _stages(session: Session, clip: Clip) -> dict[str, Any]:
    runs = session.scalars(select(StageRun).where(StageRun.clip_id == clip.id)
                           .order_by(StageRun.id))
    out: dict[str, Any] = {}
    for run in runs:
        if run.clip_version == clip.version or run.stage == "render":
            out[run.stage] = {"seconds": run.seconds, "error": run.error}
    return out


def status_dict(session: Session, clip: Clip, *, heavy: bool = True) -> dict[str, Any]:
    """The contract's status object; `heavy=False` leaves out the transcript and event log."""
    d: dict[str, Any] = {
        "id": clip.id, "status": clip.status, "source": clip.source.location,
        "start": clip.start, "end": clip.end, "duration": clip.duration,
        "media_path": clip.media_path, "thumbnail_path": clip.thumbnail_path,
        "srt_path": clip.srt_path, "vtt_path": clip.vtt_path, "error": clip.error,
        "error_stage": clip.error_stage, "version": clip.version, "urgency": clip.urgency,
        "progress": round(clip.progress or 0.0, 3), "created_at": clip.created_at.isoformat(),
        "flaggers": [{"by": f.by, "note": f.note, "tags": list(f.tags or []), "urgency": f.urgency,
                      "at": f.created_at.isoformat()} for f in clip.flags],
        "tags": sorted({t for f in clip.flags for t in (f.tags or [])}),
        "stages": _stages(session, clip),
        "caption": clip.caption_text, "claimed_by": clip.claimed_by,
        "trim_in": clip.trim_in, "trim_out": clip.trim_out, "reject_reason": clip.reject_reason,
        "export_path": clip.export_path,
        "renders": [{"format": r.format, "fit": r.fit, "captions": r.captions, "path": r.path,
                     "duration": r.duration, "width": r.width, "height": r.height}
                    for r in session.scalars(select(RenderRow).where(RenderRow.clip_id == clip.id)
                                             .order_by(RenderRow.id))],
        "published": [{"platform": p.platform, "url": p.url, "by": p.by, "at": p.at.isoformat()}
                      for p in session.scalars(select(Publication)
                                               .where(Publication.clip_id == clip.id)
                                               .order_by(Publication.id))],
        **delivery_status(session, clip.id),
    }
    if clip.source.kind == "channel":
        d.update(channel_times(clip))
    if heavy:
        # Imported here: its subtitle library is needed only with the transcript, and `clipper
        # list` starts faster without it.
        from clipper.pipeline.transcripts import load_transcript, transcript_dict

        t = load_transcript(session, clip.id)
        d["transcript"] = transcript_dict(t) if t else None
    return d


def channel_times(clip: Clip) -> dict[str, Any]:
    """A channel clip's wall-clock view: its channel, its start/end and the recording's gaps
    inside it, as ISO 8601 UTC with milliseconds (its start/end stay Unix seconds)."""
    return {"channel": clip.source.location, "wall_start": format_wallclock(clip.start),
            "wall_end": format_wallclock(clip.end),
            "gaps": [[format_wallclock(a), format_wallclock(b)] for a, b in clip.gaps or []]}


@requires("view_clip")
def clip_status(ctx: Context, actor: Actor, clip_id: int) -> dict[str, Any]:
    """One clip's status object (volunteers: only clips their flags made)."""
    with ctx.db.read() as session:
        return status_dict(session, visible_clip(session, actor, clip_id))


@requires("view_all_clips")
def list_clips(ctx: Context, actor: Actor, *, status: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    """Status objects without the transcript, newest first, optionally of one status."""
    with ctx.db.read() as session:
        stmt = select(Clip).order_by(Clip.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(Clip.status == status)
        return [status_dict(session, c, heavy=False) for c in session.scalars(stmt).unique()]


@requires("view_clip")
def clip_events(ctx: Context, actor: Actor, clip_id: int) -> list[dict[str, Any]]:
    """One clip's event log, oldest first (volunteers: only clips their flags made)."""
    with ctx.db.read() as session:
        visible_clip(session, actor, clip_id)
        rows = session.scalars(select(Event).where(Event.clip_id == clip_id).order_by(Event.id))
        return [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "details": e.details}
                for e in rows]


@requires("retry")
def retry_clip(ctx: Context, actor: Actor, clip_id: int) -> int:
    """Send a failed clip back through the pipeline as a new version."""
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id, lock=True)
        if clip.status != "failed":
            raise Conflict(f"Clip {clip_id} is {clip.status}, not failed; nothing to retry.")
        clip.version += 1
        clip.error = clip.error_stage = None
        clip.progress = 0.0
        move(session, clip, "queued", actor=actor.name, action="clip.retried",
             details={"version": clip.version})
    # Imported here: rq costs every CLI command that only reads a tenth of its start-up.
    from clipper.pipeline.jobqueue import queue_clip

    queue_clip(ctx, clip_id)
    return clip_id
