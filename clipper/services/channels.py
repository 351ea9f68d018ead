"""Live channels: add, list, pause, resume, remove, transcribe live and preview recordings."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound
from clipper.net.urls import check_url
from clipper.permissions import Actor, requires
from clipper.pipeline.channel_media import GAP_TOLERANCE, find_channel, preview_file
from clipper.pipeline.lifecycle import log_event
from clipper.pipeline.sources import check_channel_name
from clipper.storage.tables import Channel, ChannelSegment, LiveAsrState, LiveSegment
from clipper.timecode import format_wallclock

#: `gaps` in the channel list cover this much recent recording.
GAPS_WINDOW = 24 * 3600.0
#: The longest preview the Live page may ask for.
MAX_PREVIEW_SECONDS = 600.0
#: Live transcript modes: Whisper, the broadcast's captions, or captions when present else
#: Whisper.
TRANSCRIBE_MODES = ("whisper", "captions", "auto")


def _missing(name: str) -> NotFound:
    return NotFound(f"There is no channel named {name!r}.",
                    "See the channels with `clipper channels list`.")


def _channel(session: Session, name: str) -> Channel:
    row = find_channel(session, (name or "").strip())
    if row is None:
        raise _missing(name)
    return row


def check_retention(hours: float | str | None) -> float | None:
    """Pure: a channel's own retention in hours (None: CLIPPER_RETENTION_HOURS)."""
    if hours is None or hours == "":
        return None
    try:
        value = float(hours)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"Retention {hours!r} is not a number of hours above 0.",
                           "For example --retention 48.")
    return value


def check_transcribe(mode: str | None) -> str | None:
    """Pure: a live transcript mode (None or "": off)."""
    if mode is None or mode == "":
        return None
    value = str(mode).strip().lower()
    if value not in TRANSCRIBE_MODES:
        raise InvalidInput(f"Transcribe mode {mode!r} is not one of "
                           f"{', '.join(TRANSCRIBE_MODES)}.",
                           "auto uses the broadcast's captions when it has them, else Whisper.")
    return value


def _iso(unix: float | None) -> str | None:
    return None if unix is None else format_wallclock(unix)


def recent_gaps(session: Session, channel_id: int, since: float) -> list[tuple[float, float]]:
    """Gaps between consecutive stored segments that end after `since` (the database compares
    each segment's start with the furthest end reached before it)."""
    seg, ends = ChannelSegment, ChannelSegment.wall_start + ChannelSegment.duration
    reached = func.max(ends).over(order_by=(seg.wall_start, seg.id), rows=(None, -1))
    # An hour before the window finds the segment a gap crossing its start began after.
    inner = (select(seg.wall_start.label("start"), reached.label("reached"))
             .where(seg.channel_id == channel_id, seg.wall_start >= since - 3600).subquery())
    rows = session.execute(select(inner.c.reached, inner.c.start)
                           .where(inner.c.start - inner.c.reached > GAP_TOLERANCE,
                                  inner.c.start > since)
                           .order_by(inner.c.start))
    return [(max(float(a), since), float(b)) for a, b in rows]


def channel_dict(session: Session, ch: Channel, *, default_retention: float,
                 now: float) -> dict[str, Any]:
    """One channel as the list shows it; times ISO 8601 UTC, gaps over the last 24 h."""
    seg = ChannelSegment
    first, last, size, count = session.execute(
        select(func.min(seg.wall_start), func.max(seg.wall_start + seg.duration),
               func.sum(seg.bytes), func.count(seg.id)).where(seg.channel_id == ch.id)).one()
    gaps = recent_gaps(session, ch.id, now - GAPS_WINDOW) if count else []
    asr = session.get(LiveAsrState, ch.id) if ch.transcribe else None
    return {
        "name": ch.name, "url": ch.url, "status": "paused" if ch.paused else ch.state,
        "clock": ch.clock, "recorded_from": _iso(first), "recorded_to": _iso(last),
        "lag_seconds": None if last is None else round(now - float(last), 3),
        "gaps": [[_iso(a), _iso(b)] for a, b in gaps], "disk_bytes": int(size or 0),
        "paused": bool(ch.paused), "error": ch.error, "segments": int(count),
        "retention_hours": ch.retention_hours or default_retention,
        "last_segment_at": ch.last_segment_at.isoformat() if ch.last_segment_at else None,
        "transcribe": ch.transcribe, "transcript_source": ch.transcript_source,
        **asr_dict(asr, first, last),
    }


def asr_dict(state: LiveAsrState | None, first: float | None,
             last: float | None) -> dict[str, Any]:
    """How far a channel's live transcript has got: `asr_lag_seconds` (recording not yet
    transcribed: from the recording's newest end, so it keeps growing when the transcriber
    stops), `asr_load` (seconds of compute per second of audio over its recent windows: the
    share of one core it needs), `asr_done_until` (ISO) and `asr_error`. None when off."""
    if state is None:
        return {"asr_lag_seconds": None, "asr_load": None, "asr_done_until": None,
                "asr_error": None}
    done = state.done_until
    lag = None
    if last is not None:
        lag = round(max(0.0, float(last) - (done if done is not None else float(first))), 3)
    return {"asr_lag_seconds": lag, "asr_load": state.load, "asr_done_until": _iso(done),
            "asr_error": state.error}


def _as_dict(session: Session, ctx: Context, ch: Channel) -> dict[str, Any]:
    return channel_dict(session, ch, default_retention=ctx.settings.retention_hours,
                        now=time.time())


@requires("manage_channels")
def add_channel(ctx: Context, actor: Actor, name: str, url: str, *,
                retention_hours: float | str | None = None,
                transcribe: str | None = None) -> dict[str, Any]:
    """Add a channel to record (and transcribe live: `transcribe` whisper, captions or auto,
    from its first recorded second). Refused, nothing stored: a name that is not 1-40 letters,
    digits, '-' or '_' (InvalidInput), one already taken (Conflict), an unsafe URL (UnsafeURL),
    an unknown transcribe mode (InvalidInput).
    """
    name = check_channel_name(name)
    hours = check_retention(retention_hours)
    mode = check_transcribe(transcribe)
    url = (url or "").strip()
    check_url(url, ctx.settings.url_allowlist)
    taken = Conflict(f"A channel named {name!r} already exists.",
                     "Pick another name, or remove the old channel first.")
    try:
        with ctx.db.session() as session:
            # Names become folder names: News and news would share one on some disks.
            same = select(Channel.id).where(func.lower(Channel.name) == name.lower())
            if session.scalars(same).first() is not None:
                raise taken
            # No transcript state yet: the transcriber starts at the recording's beginning.
            session.add(Channel(name=name, url=url, retention_hours=hours, transcribe=mode))
            log_event(session, actor.name, "channel.added", None,
                      {"name": name, "url": url, "retention_hours": hours, "transcribe": mode})
    except IntegrityError:  # added by someone else at the same moment
        raise taken from None
    return {"name": name, "url": url,
            "retention_hours": hours if hours is not None else ctx.settings.retention_hours,
            "transcribe": mode}


@requires("manage_channels")
def set_transcribe(ctx: Context, actor: Actor, name: str, mode: str | None) -> dict[str, Any]:
    """Switch a channel's live transcript: whisper, captions, auto, or None (off); returns its
    status. Switched on (or from captions to Whisper), the transcript starts now: recording
    from before is not transcribed after the fact. InvalidInput for an unknown mode, NotFound
    for an unknown channel; nothing is stored then."""
    new = check_transcribe(mode)
    with ctx.db.session() as session:
        ch = _channel(session, name)
        old = ch.transcribe
        if old != new:
            ch.transcribe = new
            if new is not None and new != "captions" and old in (None, "captions"):
                _start_now(session, ch.id)
            log_event(session, actor.name, "channel.transcribe", None,
                      {"name": ch.name, "from": old, "to": new})
        session.flush()
        return _as_dict(session, ctx, ch)


def _start_now(session: Session, channel_id: int) -> None:
    """Whisper starts on this channel from now (a fresh state: no lag, load or error)."""
    state = session.get(LiveAsrState, channel_id)
    if state is None:
        state = LiveAsrState(channel_id=channel_id)
        session.add(state)
    state.done_until, state.lag_seconds, state.load = time.time(), None, None
    state.source, state.error = None, None


@requires("view_channels")
def list_channels(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Every channel, by name: status, clock, recorded range, lag, recent gaps, disk use."""
    with ctx.db.read() as session:
        rows = session.scalars(select(Channel).order_by(Channel.name)).all()
        return [_as_dict(session, ctx, ch) for ch in rows]


@requires("view_channels")
def channel_status(ctx: Context, actor: Actor, name: str) -> dict[str, Any]:
    """One channel as `list_channels` shows it (NotFound for an unknown name)."""
    with ctx.db.read() as session:
        return _as_dict(session, ctx, _channel(session, name))


def _set_paused(ctx: Context, actor: Actor, name: str, paused: bool) -> dict[str, Any]:
    with ctx.db.session() as session:
        ch = _channel(session, name)
        if ch.paused != paused:
            ch.paused = paused
            log_event(session, actor.name, "channel.paused" if paused else "channel.resumed",
                      None, {"name": ch.name})
        session.flush()
        return _as_dict(session, ctx, ch)


@requires("manage_channels")
def pause_channel(ctx: Context, actor: Actor, name: str) -> dict[str, Any]:
    """Stop recording a channel (its recording is kept); returns its status."""
    return _set_paused(ctx, actor, name, True)


@requires("manage_channels")
def resume_channel(ctx: Context, actor: Actor, name: str) -> dict[str, Any]:
    """Record a paused channel again; returns its status."""
    return _set_paused(ctx, actor, name, False)


@requires("manage_channels")
def remove_channel(ctx: Context, actor: Actor, name: str) -> dict[str, Any]:
    """Delete a channel, its segment rows and its recording folder. Clips already cut from it
    keep their media; clips still waiting for it fail when their fetch runs."""
    with ctx.db.session() as session:
        ch = _channel(session, name)
        count, size = session.execute(
            select(func.count(ChannelSegment.id), func.sum(ChannelSegment.bytes))
            .where(ChannelSegment.channel_id == ch.id)).one()
        session.execute(delete(ChannelSegment).where(ChannelSegment.channel_id == ch.id))
        session.execute(delete(LiveSegment).where(LiveSegment.channel_id == ch.id))
        session.execute(delete(LiveAsrState).where(LiveAsrState.channel_id == ch.id))
        session.delete(ch)
        log_event(session, actor.name, "channel.removed", None,
                  {"name": ch.name, "segments": int(count), "bytes": int(size or 0)})
        removed = ch.name
    # Rows first: the database is the truth, and a file without a row is only disk.
    for folder in (ctx.settings.media_dir / "channels" / removed,
                   ctx.settings.media_dir / "previews" / removed):
        shutil.rmtree(folder, ignore_errors=True)
    return {"name": removed, "removed": True, "segments": int(count), "bytes": int(size or 0)}


@requires("view_channels")
def preview_clip(ctx: Context, actor: Actor, name: str, *, ago: float,
                 seconds: float = 60) -> Path | None:
    """An MP4 remux (stream copy) of what channel `name` recorded over [now - ago,
    now - ago + seconds], for the Live page's player; None when nothing was recorded there.

    Cached under media_dir/previews/<name>/<first wall_start ms>-<last ms>.mp4: file time t is
    wall-clock time (first wall_start ms) / 1000 + t.
    """
    if not (math.isfinite(ago) and ago >= 0):
        raise InvalidInput(f"ago={ago!r} must be 0 or more seconds.")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_PREVIEW_SECONDS):
        raise InvalidInput(f"A preview lasts more than 0 and at most {MAX_PREVIEW_SECONDS:g} s.")
    with ctx.db.read() as session:
        _channel(session, name)
    lo = time.time() - ago
    return preview_file(ctx, name.strip(), lo, lo + seconds)
