"""The clip pipeline: fetch -> cut -> asr, each stage idempotent and version-checked.

A stage runs in three steps: `_begin` (in a transaction: is this job still current? mark the
status, open a StageRun), the work itself (outside any transaction: network, ffmpeg, Whisper),
and `_finish` (in a transaction: re-check the version, write results, move to the next status).
A job that finds its clip at another version exits quietly: a newer job owns the clip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from clipper import queue
from clipper.context import Context
from clipper.errors import ClipperError, PermanentError, ProcessingError
from clipper.schema import Clip, StageRun, TranscriptRow, utcnow
from clipper.states import STATUS_OF_STAGE, log_event, move

log = logging.getLogger(__name__)

#: Stages queued when a stage finishes: the cut and the transcription run side by side.
NEXT_STAGES: dict[str, tuple[str, ...]] = {"fetch": ("cut", "asr"), "cut": (), "asr": (), "render": ()}
#: Clip statuses in which a stage may run (asr starts while the cut is still going).
RUNS_IN = {"fetch": frozenset({"queued", "fetching"}), "cut": frozenset({"cutting"}),
           "asr": frozenset({"cutting", "transcribing"}), "render": frozenset({"rendering"})}
#: Share of the overall progress bar each stage covers.
PROGRESS_SPAN = {"fetch": (0.0, 0.3), "cut": (0.3, 0.5), "asr": (0.5, 1.0), "render": (0.0, 1.0)}


@dataclass
class StageInput:
    """What a stage needs to know about its clip, read in `_begin`."""

    clip_id: int
    version: int
    stage: str
    run_id: int
    source_id: int
    source_kind: str
    location: str
    start: float
    end: float
    section_path: str | None
    section_offset: float | None
    section_start: float | None
    section_end: float | None
    media_path: str | None


@dataclass
class StageOutput:
    """Column updates for the clip, plus an optional hook run in the finishing transaction."""

    updates: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[Session, Clip], None] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    next_status: str | None = None
    after: Callable[[], None] | None = None


def clip_dir(ctx: Context, clip_id: int, version: int) -> Path:
    return ctx.settings.media_dir / "clips" / str(clip_id) / f"v{version}"


def run_stage(ctx: Context, stage: str, clip_id: int, version: int) -> str:
    """Run one stage for one clip version; returns "done", "stale" or "failed"."""
    inp = _begin(ctx, stage, clip_id, version)
    if inp is None:
        return "stale"
    t0 = time.perf_counter()
    try:
        out = STAGES[stage](ctx, inp)
    except ClipperError as exc:
        _fail(ctx, inp, exc, time.perf_counter() - t0)
        return "failed"
    except Exception as exc:  # the job boundary: a bug becomes a readable failure, not a lost clip
        log.exception("%s failed for clip %s", stage, clip_id)
        _fail(ctx, inp, ProcessingError(f"Internal error while {STATUS_OF_STAGE[stage]}: {exc}"),
              time.perf_counter() - t0)
        return "failed"
    nxt, moved = _finish(ctx, inp, out, time.perf_counter() - t0)
    for stage_name in nxt:
        queue_next(ctx, clip_id, version, stage_name)
    if moved == "ready":
        from clipper.services.notifications import notify_ready

        notify_ready(ctx, clip_id)
    if moved and out.after:
        try:
            out.after()
        except ClipperError as exc:
            log.warning("after %s for clip %s: %s", stage, clip_id, exc)
            _record_error(ctx, clip_id, stage, exc)
    return "done"


def _record_error(ctx: Context, clip_id: int, stage: str, exc: ClipperError) -> None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        clip.error, clip.error_stage = str(exc), stage


def queue_next(ctx: Context, clip_id: int, version: int, stage: str) -> None:
    with ctx.db.session() as session:
        urgent = session.get(Clip, clip_id).urgency == "high"
    try:
        queue.enqueue_stage(ctx.redis, queue.StageJob(stage, clip_id, version),
                            timeout=ctx.settings.job_timeout, urgent=urgent)
    except Exception as exc:  # noqa: BLE001 - the reconciler re-queues from the clip's status
        log.warning("could not queue %s for clip %s: %s", stage, clip_id, exc)


def _begin(ctx: Context, stage: str, clip_id: int, version: int) -> StageInput | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id, with_for_update=True)
        if clip is None or clip.version != version or clip.status not in RUNS_IN[stage]:
            return None
        if clip.status == "queued":
            move(session, clip, "fetching", actor="system")
        clip.progress = max(clip.progress or 0.0, PROGRESS_SPAN[stage][0])
        run = StageRun(clip_id=clip_id, clip_version=version, stage=stage)
        session.add(run)
        session.flush()
        src = clip.source
        return StageInput(clip_id, version, stage, run.id, src.id, src.kind, src.location,
                          clip.start, clip.end, clip.section_path, clip.section_offset,
                          clip.section_start, clip.section_end, clip.media_path)


def _finish(ctx: Context, inp: StageInput, out: StageOutput,
            seconds: float) -> tuple[tuple[str, ...], str | None]:
    """Write the stage's results; returns (stages to queue, new status or None)."""
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.detail = utcnow(), seconds, out.detail
        clip = session.get(Clip, inp.clip_id, with_for_update=True)
        if clip.version != inp.version or clip.status not in RUNS_IN[inp.stage]:
            return (), None
        for key, value in out.updates.items():
            setattr(clip, key, value)
        if out.apply:
            out.apply(session, clip)
        new_status = out.next_status or _status_after(session, inp.stage, clip)
        details = {"seconds": round(seconds, 3), "version": inp.version}
        moved = None
        if new_status and new_status != clip.status:
            move(session, clip, new_status, actor="system", action=f"stage.{inp.stage}.done",
                 details=details)
            moved = new_status
        else:
            log_event(session, "system", f"stage.{inp.stage}.done", clip.id, details)
        clip.progress = 1.0 if clip.status in ("ready", "rendered") else max(
            clip.progress or 0.0, PROGRESS_SPAN[inp.stage][1])
        return NEXT_STAGES[inp.stage], moved


def has_current_transcript(session: Session, clip: Clip) -> bool:
    row = session.get(TranscriptRow, clip.id)
    return row is not None and row.clip_version == clip.version


def _status_after(session: Session, stage: str, clip: Clip) -> str | None:
    """The join of the side-by-side cut and transcription: ready when both are done."""
    if stage == "fetch":
        return "cutting"
    if stage == "cut":
        return "ready" if has_current_transcript(session, clip) else "transcribing"
    if stage == "asr":
        return "ready" if clip.status == "transcribing" else None
    return None


def _fail(ctx: Context, inp: StageInput, exc: ClipperError, seconds: float) -> None:
    message = str(exc)
    with ctx.db.session() as session:
        run = session.get(StageRun, inp.run_id)
        run.ended_at, run.seconds, run.error = utcnow(), seconds, message
        clip = session.get(Clip, inp.clip_id, with_for_update=True)
        if clip.version != inp.version or clip.status not in RUNS_IN[inp.stage]:
            return
        clip.error, clip.error_stage = message, inp.stage
        move(session, clip, "failed", actor="system", action=f"stage.{inp.stage}.failed",
             details={"error": message, "version": inp.version})


def set_progress(ctx: Context, inp: StageInput, fraction: float) -> None:
    """Record a stage's progress (0..1 within the stage) for status pages and the CLI bar."""
    lo, hi = PROGRESS_SPAN[inp.stage]
    with ctx.db.session() as session:
        clip = session.get(Clip, inp.clip_id)
        if clip is not None and clip.version == inp.version:
            clip.progress = max(clip.progress or 0.0, lo + (hi - lo) * max(0.0, min(1.0, fraction)))


def throttled(fn: Callable[[float], None], every: float = 0.5) -> Callable[[float], None]:
    last = [0.0]

    def call(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            fn(fraction)
    return call


# --- the stages -------------------------------------------------------------------------------

def fetch_stage(ctx: Context, inp: StageInput) -> StageOutput:
    """Bring the flagged section (plus padding) to local disk; skip when we already have it."""
    from clipper.media.fetch import fetch_section, local_section

    if inp.source_kind == "file":
        section = local_section(Path(inp.location))
        return StageOutput(updates=_section_updates(section, 0.0, section.duration),
                           detail={"skipped": True, "kind": "file"})
    covered = (inp.section_path and Path(inp.section_path).exists()
               and inp.section_start is not None and inp.section_end is not None
               and inp.section_start <= max(0.0, inp.start - ctx.settings.pad_seconds) + 1e-6
               and inp.section_end >= inp.end)
    if covered:
        return StageOutput(detail={"skipped": True, "kind": "url"})
    dest = ctx.settings.media_dir / "sources" / str(inp.source_id)
    from clipper.netguard import GuardProxy

    # Every request yt-dlp and ffmpeg make (redirects, HLS segments) goes through the guard,
    # which re-checks the address it actually connects to.
    with GuardProxy(ctx.settings.url_allowlist) as proxy:
        try:
            section = fetch_section(inp.location, inp.start, inp.end, dest_dir=dest,
                                    pad=ctx.settings.pad_seconds, proxy=proxy.url,
                                    tries=ctx.settings.fetch_tries)
        except ClipperError:
            _raise_refusal(proxy)
            raise
        _raise_refusal(proxy)  # ffmpeg can exit 0 after a refused segment was skipped
    lo = max(0.0, inp.start - ctx.settings.pad_seconds)
    return StageOutput(updates=_section_updates(section, lo, section.offset + section.duration),
                       detail={"bytes": section.path.stat().st_size, "kind": "url"})


def _raise_refusal(proxy: Any) -> None:
    err = proxy.unsafe_error()
    if err is not None:
        raise PermanentError(err.message, err.hint)


def _section_updates(section: Any, lo: float, hi: float) -> dict[str, Any]:
    return {"section_path": str(section.path), "section_offset": section.offset,
            "section_start": lo, "section_end": hi}


def cut_stage(ctx: Context, inp: StageInput) -> StageOutput:
    """Frame-accurate clip and its thumbnail, from the fetched section."""
    from clipper.media.cut import cut_clip
    from clipper.media.probe import probe_media
    from clipper.media.thumbnail import make_thumbnail

    section = Path(inp.section_path or "")
    if not section.exists():
        raise PermanentError("The fetched section is missing from disk.", "Retry the clip to fetch it again.")
    offset = inp.section_offset or 0.0
    available = offset + probe_media(section).duration
    if inp.start >= available - 0.04:
        raise PermanentError(f"The clip starts at {inp.start:.2f} s, after the end of the media "
                             f"({available:.2f} s).", "Flag a time inside the recording.")
    if inp.end > available + 0.5:
        raise PermanentError(f"The clip ends at {inp.end:.2f} s, after the end of the media "
                             f"({available:.2f} s).", f"Flag an end at or before {available:.2f} s.")
    end = min(inp.end, available)
    out_dir = clip_dir(ctx, inp.clip_id, inp.version)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = cut_clip(section, inp.start - offset, end - offset, out_dir / "clip.mp4")
    thumb = make_thumbnail(result.path, out_dir / "thumb.jpg")
    return StageOutput(
        updates={"media_path": str(result.path), "thumbnail_path": str(thumb),
                 "duration": result.duration, "cut_method": result.method},
        detail={"method": result.method},
    )


def asr_stage(ctx: Context, inp: StageInput) -> StageOutput:
    """Word-timed transcript, subtitle files, and the search index — from the fetched section's
    audio, so it runs while the video is being cut."""
    from clipper.media.audio import extract_audio
    from clipper.services.transcripts import store_transcript, write_transcript_files
    from clipper.transcribe import get_engine

    engine = get_engine(ctx.settings)
    out_dir = clip_dir(ctx, inp.clip_id, inp.version)
    wav = extract_audio(Path(inp.section_path or ""), inp.start - (inp.section_offset or 0.0),
                        inp.end - inp.start, out_dir / "audio.wav")
    progress = throttled(lambda f: set_progress(ctx, inp, f))
    try:
        transcript = engine.transcribe(wav, progress=progress)
    finally:
        wav.unlink(missing_ok=True)
    files = write_transcript_files(transcript, out_dir)

    def apply(session: Session, clip: Clip) -> None:
        store_transcript(session, clip, transcript, by="system")

    return StageOutput(updates=files, apply=apply,
                       detail={"engine": transcript.engine, "words": len(transcript.words())})


def render_stage(ctx: Context, inp: StageInput) -> StageOutput:
    """Social shapes with burned captions and normalised loudness; the package after, if asked."""
    from clipper.media.render import RenderRequest, render_package_shapes
    from clipper.services.renders import render_words, store_renders

    with ctx.db.session() as session:
        clip = session.get(Clip, inp.clip_id)
        plan = dict(clip.render_options or {})
        words = render_words(session, clip) if plan.get("captions", "burn") == "burn" else []
    out_dir = ctx.settings.media_dir / "clips" / str(inp.clip_id) / "renders"
    fit = plan.get("fit", "crop")
    requests = [RenderRequest(out_dir / f"{shape}-{fit}.mp4", shape, fit)
                for shape in plan.get("formats", ["16x9", "1x1", "9x16"])]
    progress = throttled(lambda f, _stage="": set_progress(ctx, inp, f))
    results = render_package_shapes(Path(inp.media_path or ""), requests, words=words,
                            captions=bool(words), trim_in=plan.get("trim_in", 0.0),
                            trim_out=plan.get("trim_out"), attribution=plan.get("attribution"),
                            progress=lambda f, _s: progress(f))

    def apply(session: Session, clip: Clip) -> None:
        store_renders(session, clip, results)

    def after() -> None:
        if plan.get("export"):
            from clipper.services.renders import export_package

            export_package(ctx, inp.clip_id, by=plan.get("by") or "system")

    return StageOutput(apply=apply, after=after, next_status="rendered",
                       detail={"formats": [r.format for r in results]})


STAGES: dict[str, Callable[[Context, StageInput], StageOutput]] = {
    "fetch": fetch_stage, "cut": cut_stage, "asr": asr_stage, "render": render_stage,
}

