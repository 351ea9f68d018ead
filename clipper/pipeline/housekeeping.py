"""Removing what no clip needs any more: superseded clip versions, fetched sections no clip will
cut again, uploads nobody flagged or whose clips are done, and the temporary files of jobs that
were killed — so a long campaign never fills the disk with leftovers. (Recorded channels have
their own retention, `pipeline.retention`.)"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from clipper.context import Context
from clipper.pipeline.lifecycle import REVIEWED
from clipper.storage.tables import Clip, Source

log = logging.getLogger(__name__)

#: A fetch moves its section into place just before its result is written: a file this young
#: may be about to be named by a clip.
GRACE_SECONDS = 3600.0
#: Clip statuses after which the clip's fetched section is never cut again.
DONE = REVIEWED | {"rejected"}
#: The names Clipper's writers give a file or folder while it is being made beside its final
#: place (a dot first, then): `.upload-<hex>.<ext>` (an upload), `<name>.tmp` and
#: `<name>.<hex>.tmp` (transcripts, subtitles, what Whisper heard, a package's folder and zip),
#: `<stem>.<hex>.tmp.mp4` (a render), `<stem>.<hex>.part.<ext>` (a cut, a join, audio),
#: `<stem>.<hex32>.<ext>` (a thumbnail), `<segment>.<pid>.<thread>.part` (a recorded segment),
#: `<name>.old-<hex>` (a package being replaced), `cut-…` and `fetch-…` (their work folders).
#: A kill -9 leaves them; nothing else removes them.
LEFTOVER = re.compile(r"\.(?:upload-.+|cut-.+|fetch-.+|.+\.(?:tmp|part)(?:\.\w+)?"
                      r"|.+\.old-[0-9a-f]{8}|.+\.[0-9a-f]{32}\.\w+)")


@dataclass(frozen=True)
class ClipFiles:
    """What housekeeping needs to know of one clip."""

    id: int
    version: int
    status: str
    section_path: str | None
    media_path: str | None
    source_location: str
    age_seconds: float


def keep_sections(clips: Iterable[ClipFiles], retention_seconds: float) -> set[str]:
    """Pure: section files still needed — those of clips not done, or done only recently."""
    return {c.section_path for c in clips if c.section_path
            and (c.status not in DONE or c.age_seconds < retention_seconds)}


def keep_uploads(clips: Iterable[ClipFiles], retention_seconds: float) -> set[str]:
    """Pure: uploads still needed, by the same rule as sections."""
    return {c.source_location for c in clips
            if c.status not in DONE or c.age_seconds < retention_seconds}


def superseded(clip_dirs: Mapping[int, list[Path]], clips: Mapping[int, ClipFiles]) -> list[Path]:
    """Pure: `clips/<id>/v<N>` folders of versions older than the clip's own, never the one
    its media still comes from."""
    out = []
    for clip_id, dirs in clip_dirs.items():
        clip = clips.get(clip_id)
        for d in dirs:
            n = d.name.removeprefix("v")
            if clip is None or not n.isdigit() or int(n) >= clip.version:
                continue
            if clip.media_path and Path(clip.media_path).parent == d:
                continue
            out.append(d)
    return out


def is_leftover(name: str) -> bool:
    """Pure: whether a file or folder name is one of the temporary names in `LEFTOVER`."""
    return LEFTOVER.fullmatch(name) is not None


def _newest(path: Path) -> float:
    """The latest change under `path` (itself, or anything in it when a folder): a folder a job
    still fills looks young even when the files it hard-links into it are old."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:  # renamed into place or removed since it was listed
        return float("inf")
    if path.is_dir() and not path.is_symlink():
        for root, _dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, f) for f in files)]:
                try:
                    newest = max(newest, os.lstat(name).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def leftovers(folder: Path, now: float) -> list[Path]:
    """Temporary files and folders (see `LEFTOVER`) under `folder` that nothing has written to
    for GRACE_SECONDS: a younger one may belong to a job still running."""
    if not folder.is_dir():
        return []
    out = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        found = [d for d in dirs if is_leftover(d)]
        dirs[:] = [d for d in dirs if d not in found]  # a leftover folder goes, or stays, whole
        out += [here / name for name in [*found, *(f for f in files if is_leftover(f))]
                if now - _newest(here / name) > GRACE_SECONDS]
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _clips(ctx: Context, now: float) -> dict[int, ClipFiles]:
    with ctx.db.session() as session:
        rows = session.execute(select(Clip.id, Clip.version, Clip.status, Clip.section_path,
                                      Clip.media_path, Clip.updated_at, Source.location)
                               .join(Source, Source.id == Clip.source_id)).all()
    return {r.id: ClipFiles(r.id, r.version, r.status, _real(r.section_path), r.media_path,
                            _real(r.location) or r.location, now - _aware(r.updated_at).timestamp())
            for r in rows}


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _real(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path and "://" not in path else path


def _old_files(folder: Path, now: float) -> Iterable[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
            and now - p.stat().st_mtime > GRACE_SECONDS]


def tidy(ctx: Context, *, now: float | None = None) -> dict[str, int]:
    """Delete what no clip needs; returns how many of each kind went."""
    now = time.time() if now is None else now
    retention = ctx.settings.retention_hours * 3600
    clips = _clips(ctx, now)
    media = ctx.settings.media_dir
    done = {"versions": 0, "sections": 0, "uploads": 0, "leftovers": 0}
    # Only the folders of finished files: a run's scratch folder goes whole (runner, reconciler).
    for folder in (ctx.settings.exports_dir, media / "uploads", media / "clips", media / "sources",
                   media / "channels"):
        for path in leftovers(folder, now):
            _remove(path)
            done["leftovers"] += 1
    clip_dirs = {int(d.name): sorted(d.glob("v*")) for d in (media / "clips").glob("*")
                 if d.name.isdigit()} if (media / "clips").is_dir() else {}
    for d in superseded(clip_dirs, clips):
        shutil.rmtree(d, ignore_errors=True)
        done["versions"] += 1
    needed = keep_sections(clips.values(), retention)
    for f in _old_files(media / "sources", now):
        # What Whisper heard (pipeline/heard.py) and the edges a cut re-encoded (media/cut.py):
        # small, kept as long as the recordings they could help.
        if f.parent.name in ("heard", "edges"):
            if now - f.stat().st_mtime > retention:
                f.unlink(missing_ok=True)
            continue
        if str(f.resolve()) not in needed:
            f.unlink(missing_ok=True)
            done["sections"] += 1
    with ctx.db.session() as session:
        uploads_named = {_real(p) for p in session.scalars(
            select(Source.location).where(Source.kind == "file"))}
    wanted = keep_uploads(clips.values(), retention)
    for f in _old_files(media / "uploads", now):
        flagged = str(f.resolve()) in uploads_named
        if (flagged and str(f.resolve()) not in wanted) or (not flagged and now - f.stat().st_mtime
                                                  > max(retention, 86400)):
            f.unlink(missing_ok=True)
            done["uploads"] += 1
    if any(done.values()):
        log.info("housekeeping removed %(versions)d old versions, %(sections)d sections, "
                 "%(uploads)d uploads, %(leftovers)d temporary files of killed jobs", done)
    return done
