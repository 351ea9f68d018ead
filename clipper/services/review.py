"""The review desk: queue, claims, captions, trims, approve/reject, and a volunteer's own flags."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound, ProcessingError
from clipper.permissions import Actor, requires
from clipper.pipeline.lifecycle import lock_clip, log_event, move
from clipper.pipeline.sources import SOURCE_KINDS, SourceRef
from clipper.pipeline.stages import stage_for_status
from clipper.services.clips import status_dict
from clipper.storage.tables import Clip, Flag, utcnow

#: Post-text limits per platform (YouTube Shorts: the title).
PLATFORM_LIMITS = {"X": 280, "Instagram": 2200, "TikTok": 2200, "Facebook": 63206,
                   "YouTube Shorts title": 100}
URGENCY_RANK = {"high": 0, "normal": 1, "low": 2}
REVIEWABLE = ("ready",)
UPLOAD_EXTENSIONS = frozenset({"mp4", "mov", "mkv", "webm", "ts", "m4a", "mp3", "wav", "aac",
                               "flac", "ogg"})


# ---- pure decisions -------------------------------------------------------------------------

def caption_counts(text: str) -> dict[str, tuple[int, int]]:
    """{platform: (characters used, limit)} for a post caption."""
    n = len(text or "")
    return {platform: (n, limit) for platform, limit in PLATFORM_LIMITS.items()}


def claim_active(claimed_by: str | None, claimed_at: datetime | None, now: datetime,
                 minutes: float) -> bool:
    """A claim holds until `minutes` pass without activity."""
    return (bool(claimed_by) and claimed_at is not None
            and now - claimed_at < timedelta(minutes=minutes))


def queue_order(urgency: str, created_at: datetime) -> tuple[int, datetime]:
    """Most urgent first, then oldest first."""
    return URGENCY_RANK.get(urgency, 1), created_at


def stage_label(status: str, progress: float) -> str:
    """'cut 40%' while a stage runs; the status otherwise."""
    stage = stage_for_status(status)
    return f"{stage.name} {round((progress or 0) * 100)}%" if stage else status


def check_trim(trim_in: float | None, trim_out: float | None, duration: float | None) -> None:
    if trim_in is not None and trim_in < 0:
        raise InvalidInput("Trim in cannot be negative.", "Use seconds from the start of the clip.")
    if trim_in is not None and trim_out is not None and trim_out - trim_in < 0.1:
        raise InvalidInput(f"Trim out ({trim_out:.2f} s) must be after trim in ({trim_in:.2f} s).")
    if duration and trim_out is not None and trim_out > duration + 0.05:
        raise InvalidInput(f"Trim out ({trim_out:.2f} s) is past the clip's end "
                           f"({duration:.2f} s).")
    if duration and trim_in is not None and trim_in >= duration:
        raise InvalidInput(f"Trim in ({trim_in:.2f} s) is past the clip's end ({duration:.2f} s).")


# ---- the queue and claims ---------------------------------------------------------------------

def _clip(session: Session, clip_id: int, *, lock: bool = False) -> Clip:
    clip = lock_clip(session, clip_id) if lock else session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip with id {clip_id}.")
    return clip


def _claim_info(ctx: Context, clip: Clip, now: datetime) -> str | None:
    active = claim_active(clip.claimed_by, clip.claimed_at, now, ctx.settings.claim_minutes)
    return clip.claimed_by if active else None


@requires("review")
def review_queue(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Clips waiting for review, most urgent then oldest first, with flaggers' notes and tags."""
    now = utcnow()
    with ctx.db.read() as session:
        clips = list(session.scalars(select(Clip).where(Clip.status.in_(REVIEWABLE))).unique())
        clips.sort(key=lambda c: queue_order(c.urgency, c.created_at))
        out = []
        for c in clips:
            d = status_dict(session, c, heavy=False)
            d["claimed_by"] = _claim_info(ctx, c, now)
            out.append(d)
        return out


def _hold(ctx: Context, session: Session, clip: Clip, actor: Actor) -> None:
    """Conflict unless `actor` holds a live claim on the clip; refreshes it (activity)."""
    now = utcnow()
    holder = _claim_info(ctx, clip, now)
    if holder != actor.name:
        who = (f"{holder} has claimed it" if holder
               else "nobody has claimed it (or the claim lapsed)")
        raise Conflict(f"Clip {clip.id}: {who}.", "Claim it first from the Review queue.")
    clip.claimed_at = now


@requires("review")
def claim(ctx: Context, actor: Actor, clip_id: int) -> None:
    """Take a ready clip for review; Conflict if someone else holds a live claim."""
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        if clip.status not in REVIEWABLE:
            raise Conflict(f"Clip {clip_id} is {clip.status}; only ready clips can be claimed.")
        holder = _claim_info(ctx, clip, utcnow())
        if holder and holder != actor.name:
            raise Conflict(f"{holder} has already claimed clip {clip_id}.",
                           f"Claims lapse after {ctx.settings.claim_minutes:g} minutes "
                           "without activity.")
        clip.claimed_by, clip.claimed_at = actor.name, utcnow()
        log_event(session, actor.name, "clip.claimed", clip_id, {})


@requires("review")
def release(ctx: Context, actor: Actor, clip_id: int) -> None:
    """Give a claim back (the holder, or an admin)."""
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        if clip.claimed_by and clip.claimed_by != actor.name and not actor.can("admin"):
            raise Conflict(f"Clip {clip_id} is claimed by {clip.claimed_by}, not you.")
        clip.claimed_by = clip.claimed_at = None
        log_event(session, actor.name, "clip.released", clip_id, {})


@requires("review")
def my_claim(ctx: Context, actor: Actor) -> int | None:
    """The ready clip `actor` holds a live claim on, if any."""
    now = utcnow()
    with ctx.db.read() as session:
        rows = session.scalars(select(Clip).where(Clip.claimed_by == actor.name,
                                                  Clip.status.in_(REVIEWABLE)).order_by(Clip.id))
        for clip in rows.unique():
            if _claim_info(ctx, clip, now) == actor.name:
                return clip.id
    return None


# ---- editing a claimed clip -------------------------------------------------------------------

@requires("review")
def set_caption(ctx: Context, actor: Actor, clip_id: int, text: str) -> dict[str, tuple[int, int]]:
    """Store the post caption; returns its counts against each platform's limit."""
    text = (text or "").strip()
    if len(text) > max(PLATFORM_LIMITS.values()):
        raise InvalidInput(f"The caption is {len(text)} characters; no platform takes that many.")
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        _hold(ctx, session, clip, actor)
        if clip.caption_text != text:
            clip.caption_text = text
            log_event(session, actor.name, "caption.set", clip_id, {"length": len(text)})
    return caption_counts(text)


@requires("review")
def set_trim(ctx: Context, actor: Actor, clip_id: int, trim_in: float | None,
             trim_out: float | None) -> None:
    """Seconds on the clip's own timeline; None clears that end."""
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        _hold(ctx, session, clip, actor)
        check_trim(trim_in, trim_out, clip.duration)
        clip.trim_in, clip.trim_out = trim_in, trim_out
        log_event(session, actor.name, "trim.set", clip_id, {"in": trim_in, "out": trim_out})


@requires("review")
def save_transcript(ctx: Context, actor: Actor, clip_id: int, text: str) -> None:
    """The reviewer's transcript correction (word timings kept by edit_transcript)."""
    from clipper.services.transcripts import edit_transcript

    touch(ctx, actor, clip_id)
    edit_transcript(ctx, actor, clip_id, text)


@requires("review")
def touch(ctx: Context, actor: Actor, clip_id: int) -> None:
    """Activity on a claimed clip keeps the claim alive."""
    with ctx.db.session() as session:
        _hold(ctx, session, _clip(session, clip_id, lock=True), actor)


# ---- decisions ---------------------------------------------------------------------------------

@requires("approve")
def approve(ctx: Context, actor: Actor, clip_id: int, *,
            formats: Sequence[str] = ("16x9", "1x1", "9x16"), fit: str = "crop",
            captions: str = "burn") -> dict[str, Any]:
    """Approve the claimed clip and queue its renders + package export."""
    from clipper.services.renders import render_plan, request_render

    if not formats:
        raise InvalidInput("Choose at least one shape to render.")
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        _hold(ctx, session, clip, actor)
        if not clip.media_path:
            raise Conflict(f"Clip {clip_id} has no media to render.",
                           "Retry it from the System page.")
        # Validate the render request first, so a bad one never leaves the clip stuck in approved.
        render_plan(clip, formats, fit, captions, clip.trim_in, clip.trim_out)
        clip.reviewed_by = actor.name
        move(session, clip, "approved", actor=actor.name, action="clip.approved",
             details={"formats": list(formats), "fit": fit, "captions": captions})
        trim_in, trim_out = clip.trim_in, clip.trim_out
    return request_render(ctx, actor, clip_id, formats=tuple(formats), fit=fit, captions=captions,
                          trim_in=trim_in, trim_out=trim_out, export=True)


@requires("approve")
def reject(ctx: Context, actor: Actor, clip_id: int, reason: str) -> None:
    """Reject with a reason the flaggers will see."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give a reason for rejecting.",
                           "The volunteers who flagged it will see it.")
    with ctx.db.session() as session:
        clip = _clip(session, clip_id, lock=True)
        if clip.status in REVIEWABLE:
            _hold(ctx, session, clip, actor)
        clip.reject_reason, clip.reviewed_by = reason, actor.name
        clip.claimed_by = clip.claimed_at = None
        move(session, clip, "rejected", actor=actor.name, action="clip.rejected",
             details={"reason": reason})


@requires("approve")
def export(ctx: Context, actor: Actor, clip_id: int) -> dict[str, Any]:
    """Build (or rebuild) the distribution package of a rendered clip."""
    from clipper.services.renders import export_package

    return export_package(ctx, actor, clip_id)


@requires("approve")
def publish(ctx: Context, actor: Actor, clip_id: int, *, platform: str, url: str) -> None:
    """Record where the clip was posted."""
    from clipper.services.renders import mark_published

    url = (url or "").strip()
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("Give the post's address (https://...).")
    mark_published(ctx, actor, clip_id, platform=platform, url=url)


def package_files(clip: dict[str, Any]) -> list[Path]:
    """Files of an exported package: everything in its folder, then `<folder>.zip` beside it."""
    path = clip.get("export_path")
    folder = Path(path) if path else None
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    zipped = folder.with_name(folder.name + ".zip")
    return files + ([zipped] if zipped.is_file() else [])


# ---- volunteers --------------------------------------------------------------------------------

@requires("view_own_flags")
def my_flags(ctx: Context, actor: Actor, *, limit: int = 50) -> list[dict[str, Any]]:
    """The actor's flags, newest first, with their clip's live status."""
    with ctx.db.read() as session:
        rows = session.scalars(select(Flag).where(Flag.by == actor.name)
                               .order_by(Flag.id.desc()).limit(limit))
        out = []
        for f in rows:
            c = f.clip
            out.append({
                "flag_id": f.id, "clip_id": c.id, "note": f.note, "tags": list(f.tags or []),
                "start": f.start, "end": f.end, "urgency": f.urgency, "merged": f.merged,
                "created_at": f.created_at.isoformat(), "source": c.source.location,
                "channel": c.source.location if c.source.kind == "channel" else None,
                "status": c.status, "progress": c.progress or 0.0,
                "stage": stage_label(c.status, c.progress or 0.0), "error": c.error,
                "thumbnail_path": c.thumbnail_path, "reject_reason": c.reject_reason,
            })
        return out


@requires("flag")
def save_upload(ctx: Context, actor: Actor, filename: str,
                data: bytes | BinaryIO) -> SourceRef:
    """Store an uploaded recording as media/uploads/<sha256>.<ext>; returns its checked source.

    `data` is the file's bytes or a binary stream (the dashboard's upload), copied to disk in
    chunks while it is hashed and measured — never a second whole copy in memory. The copy is
    checked (size, ffprobe) under a temporary name and kept only if it is a recording. The
    dashboard passes the returned SourceRef to `file_flag`, never a path: people on the
    dashboard cannot name files on the server (see `use_server_files`).
    """
    name = Path(filename or "").name
    ext = Path(name).suffix.lower().lstrip(".")
    if ext not in UPLOAD_EXTENSIONS:
        raise InvalidInput(f"{name!r} is not a recording Clipper takes.",
                           f"Upload one of: {', '.join(sorted(UPLOAD_EXTENSIONS))}.")
    folder = ctx.settings.media_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".upload-{uuid.uuid4().hex}.{ext}"
    try:
        digest = _copy_upload(io.BytesIO(data) if isinstance(data, bytes) else data, tmp,
                              name, int(ctx.settings.max_upload_mb * 2**20))
        _check_recording(tmp, name)
        path = folder / f"{digest}.{ext}"
        os.replace(tmp, path)  # the same recording uploaded twice is stored once
    finally:
        tmp.unlink(missing_ok=True)
    # Titled after the uploaded name (the stored one is a hash).
    return dataclasses.replace(SOURCE_KINDS["file"].ref(path), title=Path(name).stem)


def _copy_upload(stream: BinaryIO, out: Path, name: str, limit: int) -> str:
    """Copy in 1 MiB chunks, refusing past `limit` bytes; returns the SHA-256."""
    sha, size = hashlib.sha256(), 0
    with out.open("wb") as f:
        while chunk := stream.read(2**20):
            size += len(chunk)
            if size > limit:
                raise InvalidInput(f"{name} is larger than {limit / 2**20:g} MB.",
                                   "Upload a shorter recording, or flag its URL instead.")
            sha.update(chunk)
            f.write(chunk)
    if size == 0:
        raise InvalidInput(f"{name} is empty.")
    return sha.hexdigest()


def _check_recording(path: Path, name: str) -> None:
    from clipper.media.probe import probe_media

    try:
        probe_media(path)
    except (InvalidInput, ProcessingError):
        # ffprobe's own words would show where uploads live on the server.
        raise InvalidInput(f"{name} is not a recording Clipper can clip.",
                           "Upload an audio or video file.") from None


