"""A clip's renders in storage and its distribution package (folder + zip), built from them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import Conflict, NotFound
from clipper.media.captions_ass import shift_words
from clipper.media.package import PackageSpec, build_package, default_folder_name, sha256_file
from clipper.media.render import RenderResult
from clipper.pipeline.delivery import queue_delivery
from clipper.pipeline.lifecycle import can_move, lock_clip, log_event, move
from clipper.pipeline.notifications import notify_exported
from clipper.pipeline.transcripts import load_transcript
from clipper.storage.tables import Clip, RenderRow


def _get_clip(session: Session, clip_id: int, *, lock: bool = False) -> Clip:
    clip = lock_clip(session, clip_id) if lock else session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip with id {clip_id}.", "List clips with `clipper list`.")
    return clip


def render_words(session: Session, clip: Clip) -> list:
    """The clip's (possibly corrected) words, for burned captions."""
    t = load_transcript(session, clip.id)
    return t.words() if t else []


def store_renders(session: Session, clip: Clip, results: Sequence[Any],
                  hashes: Sequence[str] | None = None) -> None:
    """Replace the clip's render rows (called in the render stage's finishing transaction);
    `hashes` are the files' SHA-256, computed before the transaction began."""
    session.execute(delete(RenderRow).where(RenderRow.clip_id == clip.id))
    for i, r in enumerate(results):
        digest = hashes[i] if hashes is not None else sha256_file(Path(r.path))
        session.add(RenderRow(clip_id=clip.id, format=r.format, fit=r.fit,
                              captions="burn" if r.captions else "none", path=str(r.path),
                              duration=r.duration, width=r.width, height=r.height,
                              sha256=digest, settings=r.settings))


def _title(clip: Clip) -> str:
    notes = [f.note for f in clip.flags if f.note]
    return notes[0] if notes else (clip.source.title or f"clip {clip.id}")


def _package_spec(session: Session, clip: Clip, approver: str) -> PackageSpec:
    rows = session.scalars(select(RenderRow).where(RenderRow.clip_id == clip.id)
                           .order_by(RenderRow.id)).all()
    if not rows:
        raise Conflict(f"Clip {clip.id} has no renders yet.",
                       f"Run `clipper render {clip.id} --wait` first.")
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


def export_clip(ctx: Context, clip_id: int, *, by: str,
                out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the package folder + zip (no permission check: callers hold one); returns
    {"path", "zip", "files", "checksums"}."""
    with ctx.db.session() as session:
        clip = _get_clip(session, clip_id)
        spec = _package_spec(session, clip, clip.reviewed_by or by)
    default = ctx.settings.exports_dir / default_folder_name(clip_id, spec.title)
    folder = Path(out_dir) if out_dir else default
    result = build_package(spec, folder)
    with ctx.db.session() as session:
        # Locked (source, then clip: the one order) and read fresh: a reject or re-render that
        # commits while the package was built is seen here, not overwritten with "exported".
        clip = _get_clip(session, clip_id, lock=True)
        clip.export_path = str(result.path)
        details = {"path": str(result.path), "zip": str(result.zip_path)}
        if can_move(clip.status, "exported") and clip.status != "published":
            move(session, clip, "exported", actor=by, action="package.exported", details=details)
        else:
            log_event(session, by, "package.exported", clip_id, details)
        queue_delivery(ctx, clip_id, result.path, session=session)  # to the drive, if one is set
    notify_exported(ctx, clip_id, str(result.path))
    return {"path": str(result.path), "zip": str(result.zip_path), "files": sorted(result.files),
            "checksums": result.files}


