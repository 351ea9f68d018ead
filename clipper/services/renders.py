"""Social renders, the distribution package, and the publish log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput
from clipper.roles import Actor, as_actor, require
from clipper.schema import Clip, Publication, RenderRow
from clipper.services.clips import get_clip
from clipper.states import can_move, log_event, move
from clipper.timecode import parse_timecode

SHAPES = ("16x9", "1x1", "9x16")
FITS = ("crop", "pad")
CAPTIONS = ("burn", "none")
#: Clips whose media exists and may be rendered (again).
RENDERABLE = frozenset({"ready", "approved", "rendered", "exported", "published", "failed"})


def parse_formats(formats: Sequence[str] | str) -> list[str]:
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = [f.strip().lower().replace(":", "x") for f in items if f.strip()]
    bad = [f for f in out if f not in SHAPES]
    if bad or not out:
        raise InvalidInput(f"Unknown format(s): {', '.join(bad) or '(none)'}.",
                           f"Use some of {','.join(SHAPES)}, e.g. --formats 16x9,9x16.")
    return list(dict.fromkeys(out))


def render_plan(clip: Clip, formats: Sequence[str] | str, fit: str, captions: str,
                trim_in: Any, trim_out: Any) -> dict[str, Any]:
    """Validated render options (pure, given the clip's duration)."""
    if fit not in FITS:
        raise InvalidInput(f"Fit {fit!r} is not one of {', '.join(FITS)}.", "For example --fit pad.")
    if captions not in CAPTIONS:
        raise InvalidInput(f"Captions {captions!r} is not one of {', '.join(CAPTIONS)}.")
    duration = clip.duration or (clip.end - clip.start)
    t_in = parse_timecode(trim_in, field="In") if trim_in not in (None, "") else (clip.trim_in or 0.0)
    t_out = parse_timecode(trim_out, field="Out") if trim_out not in (None, "") else (clip.trim_out or duration)
    t_out = min(t_out, duration)
    if t_out - t_in < 0.5:
        raise InvalidInput(f"The trim {t_in:.2f}–{t_out:.2f} s leaves less than half a second of a "
                           f"{duration:.2f} s clip.", "In and out are seconds on the clip, e.g. --in 1.5 --out 20.")
    return {"formats": parse_formats(formats), "fit": fit, "captions": captions,
            "trim_in": round(t_in, 3), "trim_out": round(t_out, 3)}


def request_render(ctx: Context, clip_id: int, *, by: Actor | str,
                   formats: Sequence[str] | str = SHAPES, fit: str = "crop", captions: str = "burn",
                   trim_in: Any = None, trim_out: Any = None, export: bool = True,
                   attribution: str | None = None) -> dict[str, Any]:
    """Queue renders of a clip (status -> rendering); the package is exported after when `export`."""
    from clipper.services.flags import queue_clip

    actor = as_actor(by)
    require(actor, "approve")
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id)
        if clip.status not in RENDERABLE or not clip.media_path:
            raise Conflict(f"Clip {clip_id} is {clip.status}; only a clip with its media can be rendered.",
                           "Wait until it is ready.")
        plan = render_plan(clip, formats, fit, captions, trim_in, trim_out)
        plan.update(export=export, by=actor.name, attribution=attribution)
        clip.render_options = plan
        clip.trim_in, clip.trim_out = plan["trim_in"], plan["trim_out"]
        clip.error = clip.error_stage = None
        move(session, clip, "rendering", actor=actor.name, action="render.requested", details=plan)
    queue_clip(ctx, clip_id)
    return plan


def render_words(session: Session, clip: Clip) -> list:
    from clipper.services.transcripts import load_transcript

    t = load_transcript(session, clip.id)
    return t.words() if t else []


def store_renders(session: Session, clip: Clip, results: Sequence[Any]) -> None:
    """Replace the clip's render rows (called in the render stage's finishing transaction)."""
    from clipper.package import sha256_file

    session.execute(delete(RenderRow).where(RenderRow.clip_id == clip.id))
    for r in results:
        session.add(RenderRow(clip_id=clip.id, format=r.format, fit=r.fit,
                              captions="burn" if r.captions else "none", path=str(r.path),
                              duration=r.duration, width=r.width, height=r.height,
                              sha256=sha256_file(Path(r.path)), settings=r.settings))


def _title(clip: Clip) -> str:
    notes = [f.note for f in clip.flags if f.note]
    return notes[0] if notes else (clip.source.title or f"clip {clip.id}")


def _package_spec(session: Session, clip: Clip, approver: str) -> Any:
    from clipper.media.captions_ass import shift_words
    from clipper.media.render import RenderResult
    from clipper.package import PackageSpec
    from clipper.services.transcripts import load_transcript

    rows = session.scalars(select(RenderRow).where(RenderRow.clip_id == clip.id).order_by(RenderRow.id)).all()
    if not rows:
        raise Conflict(f"Clip {clip.id} has no renders yet.", f"Run `clipper render {clip.id} --wait` first.")
    t_in = clip.trim_in or 0.0
    t_out = clip.trim_out or clip.duration or (clip.end - clip.start)
    t = load_transcript(session, clip.id)
    words = shift_words(t.words(), t_in, t_out) if t else []
    text = " ".join(w.word.strip() for w in words) if words else (t.text if t else "")
    renders = [RenderResult(Path(r.path), r.format, r.fit, r.captions == "burn", r.width, r.height,
                            r.duration, r.settings) for r in rows]
    flaggers = [{"by": f.by, "note": f.note, "tags": list(f.tags or []), "urgency": f.urgency,
                 "at": f.created_at.isoformat()} for f in clip.flags]
    return PackageSpec(clip_id=clip.id, title=_title(clip), source=clip.source.location,
                       start=clip.start + t_in, end=clip.start + t_out, approver=approver,
                       caption_text=clip.caption_text or "", transcript_text=text, words=words,
                       renders=renders, flaggers=flaggers)


def export_package(ctx: Context, clip_id: int, *, by: Actor | str, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the package folder + zip; returns {"path", "zip", "files", "checksums"}."""
    from clipper.package import build_package, default_folder_name
    from clipper.services.notifications import notify_exported

    actor = as_actor(by)
    require(actor, "approve")
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id)
        spec = _package_spec(session, clip, clip.reviewed_by or actor.name)
    folder = Path(out_dir) if out_dir else ctx.settings.exports_dir / default_folder_name(clip_id, spec.title)
    result = build_package(spec, folder)
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id)
        clip.export_path = str(result.path)
        details = {"path": str(result.path), "zip": str(result.zip_path)}
        if can_move(clip.status, "exported") and clip.status != "published":
            move(session, clip, "exported", actor=actor.name, action="package.exported", details=details)
        else:
            log_event(session, actor.name, "package.exported", clip_id, details)
    notify_exported(ctx, clip_id, str(result.path))
    return {"path": str(result.path), "zip": str(result.zip_path), "files": sorted(result.files),
            "checksums": result.files}


def mark_published(ctx: Context, clip_id: int, *, platform: str, url: str, by: Actor | str) -> None:
    """Record where a clip was posted (and move it to published)."""
    actor = as_actor(by)
    require(actor, "approve")
    platform, url = (platform or "").strip(), (url or "").strip()
    if not platform or not url.startswith(("http://", "https://")):
        raise InvalidInput("A publication needs a platform and the post's http(s) URL.",
                           "For example --platform x --url https://x.com/team/status/1.")
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id)
        session.add(Publication(clip_id=clip_id, platform=platform, url=url, by=actor.name))
        details = {"platform": platform, "url": url}
        if can_move(clip.status, "published"):
            move(session, clip, "published", actor=actor.name, action="clip.published", details=details)
        else:
            log_event(session, actor.name, "clip.published", clip_id, details)
