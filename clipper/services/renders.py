"""Social renders, the distribution package, and the publish log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, PermissionDenied
from clipper.permissions import Actor, requires
from clipper.pipeline.jobqueue import queue_clip
from clipper.pipeline.lifecycle import can_move, log_event, move
from clipper.pipeline.packaging import export_clip
from clipper.services.clips import get_clip
from clipper.storage.tables import Clip, Publication
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
        raise InvalidInput(f"Fit {fit!r} is not one of {', '.join(FITS)}.",
                           "For example --fit pad.")
    if captions not in CAPTIONS:
        raise InvalidInput(f"Captions {captions!r} is not one of {', '.join(CAPTIONS)}.")
    duration = clip.duration or (clip.end - clip.start)
    t_in = (parse_timecode(trim_in, field="In") if trim_in not in (None, "")
            else (clip.trim_in or 0.0))
    t_out = (parse_timecode(trim_out, field="Out") if trim_out not in (None, "")
             else (clip.trim_out or duration))
    t_out = min(t_out, duration)
    if t_out - t_in < 0.5:
        raise InvalidInput(f"The trim {t_in:.2f}–{t_out:.2f} s leaves less than half a second of a "
                           f"{duration:.2f} s clip.",
                           "In and out are seconds on the clip, e.g. --in 1.5 --out 20.")
    return {"formats": parse_formats(formats), "fit": fit, "captions": captions,
            "trim_in": round(t_in, 3), "trim_out": round(t_out, 3)}


@requires("approve")
def request_render(ctx: Context, actor: Actor, clip_id: int, *,
                   formats: Sequence[str] | str = SHAPES, fit: str = "crop", captions: str = "burn",
                   trim_in: Any = None, trim_out: Any = None, export: bool = True,
                   attribution: str | None = None) -> dict[str, Any]:
    """Queue renders of a clip (status -> rendering); the package is exported after when
    `export`."""
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id, lock=True)
        if clip.status not in RENDERABLE or not clip.media_path:
            raise Conflict(f"Clip {clip_id} is {clip.status}; "
                           "only a clip with its media can be rendered.",
                           "Wait until it is ready.")
        plan = render_plan(clip, formats, fit, captions, trim_in, trim_out)
        plan.update(export=export, by=actor.name, attribution=attribution)
        clip.render_options = plan
        clip.trim_in, clip.trim_out = plan["trim_in"], plan["trim_out"]
        clip.error = clip.error_stage = None
        move(session, clip, "rendering", actor=actor.name, action="render.requested", details=plan)
    queue_clip(ctx, clip_id)
    return plan


@requires("approve")
def export_package(ctx: Context, actor: Actor, clip_id: int, *,
                   out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the package folder + zip; returns {"path", "zip", "files", "checksums"}.

    `out_dir` (a folder on the server) is the local operator's choice only; everyone else gets
    the default under CLIPPER_EXPORTS_DIR.
    """
    if out_dir is not None and not actor.can("use_server_files"):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not choose where on the server "
                               "the package is written.", "Leave the folder out.")
    return export_clip(ctx, clip_id, by=actor.name, out_dir=out_dir)


@requires("approve")
def mark_published(ctx: Context, actor: Actor, clip_id: int, *, platform: str, url: str) -> None:
    """Record where a clip was posted (and move it to published)."""
    platform, url = (platform or "").strip(), (url or "").strip()
    if not platform or not url.startswith(("http://", "https://")):
        raise InvalidInput("A publication needs a platform and the post's http(s) URL.",
                           "For example --platform x --url https://x.com/team/status/1.")
    with ctx.db.session() as session:
        clip = get_clip(session, clip_id, lock=True)
        session.add(Publication(clip_id=clip_id, platform=platform, url=url, by=actor.name))
        details = {"platform": platform, "url": url}
        if can_move(clip.status, "published"):
            move(session, clip, "published", actor=actor.name, action="clip.published",
                 details=details)
        else:
            log_event(session, actor.name, "clip.published", clip_id, details)
