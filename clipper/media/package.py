"""The distribution package: a folder of renders, captions, post text and metadata, plus its zip."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import unicodedata
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clipper.domain import Word
from clipper.errors import InvalidInput, PermanentError
from clipper.media.render import RenderResult
from clipper.subtitles import build_cues, write_srt, write_vtt

SLUG_MAX = 48
# Already-compressed media gains nothing from deflate; text does.
_STORED_SUFFIXES = (".mp4", ".m4a", ".jpg", ".png", ".zip")
#: Every package holds this file; one naming the same clip marks a folder Clipper may replace.
METADATA = "metadata.json"
_NOT_OURS_HINT = ("Choose an empty or new folder for --out (or move those files away); Clipper "
                  "replaces only an earlier package of the same clip.")


@dataclass(frozen=True)
class PackageSpec:
    """Everything a package holds, as plain data (times on the source's timeline)."""

    clip_id: int | str
    title: str
    source: str
    start: float
    end: float
    approver: str
    caption_text: str
    transcript_text: str
    words: Sequence[Word] = ()
    renders: Sequence[RenderResult] = ()
    flaggers: Sequence[dict[str, Any]] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class PackageResult:
    """The finished package: its folder, the zip beside it, and each file's sha256."""

    path: Path
    zip_path: Path
    files: dict[str, str]
    metadata: dict[str, Any]


def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """Lower-case ASCII words joined by '-', cut at a word boundary; 'clip' when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in ascii_text.lower()).split()
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            slug = slug or word[:max_len]
            break
        slug = candidate
    return slug or "clip"


def default_folder_name(clip_id: int | str, title: str) -> str:
    """`<clip-id>-<slug>`, the folder name under the exports directory."""
    return f"{clip_id}-{slugify(title)}"


def render_file_name(clip_id: int | str, render: RenderResult) -> str:
    return f"{clip_id}-{render.format}-{render.fit}.mp4"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed: copy instead
        shutil.copy2(src, dst)


def _render_entry(name: str, render: RenderResult, digest: str, size: int) -> dict[str, Any]:
    return {"file": name, "format": render.format, "fit": render.fit, "captions": render.captions,
            "width": render.width, "height": render.height, "duration": render.duration,
            "bytes": size, "sha256": digest, "settings": render.settings}


def build_metadata(spec: PackageSpec, renders: list[dict[str, Any]], files: dict[str, str],
                   created_at: datetime) -> dict[str, Any]:
    """The metadata.json document (pure)."""
    return {
        "clip_id": spec.clip_id, "title": spec.title, "slug": slugify(spec.title),
        "source": spec.source, "start": round(spec.start, 3), "end": round(spec.end, 3),
        "duration": round(spec.end - spec.start, 3), "flaggers": list(spec.flaggers),
        "approver": spec.approver, "caption": spec.caption_text, "renders": renders,
        "files": files, "created_at": created_at.isoformat(timespec="seconds"), **spec.extra,
    }


def _write_texts(spec: PackageSpec, folder: Path) -> None:
    cues = build_cues(spec.words)
    write_srt(cues, folder / "captions.srt")
    write_vtt(cues, folder / "captions.vtt")
    (folder / "caption.txt").write_text(spec.caption_text.strip() + "\n", encoding="utf-8")
    (folder / "transcript.txt").write_text(spec.transcript_text.strip() + "\n", encoding="utf-8")


def _fill(spec: PackageSpec, folder: Path, created_at: datetime) -> dict[str, Any]:
    """Write every file of the package into `folder`; returns the metadata written."""
    renders = []
    for render in spec.renders:
        name = render_file_name(spec.clip_id, render)
        _link_or_copy(Path(render.path), folder / name)
        renders.append(_render_entry(name, render, sha256_file(folder / name),
                                     (folder / name).stat().st_size))
    _write_texts(spec, folder)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    metadata = build_metadata(spec, renders, files, created_at)
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    return metadata


def _zip(folder: Path, zip_path: Path, arcname: str) -> None:
    """Zip `folder`, entries under `arcname/`, to `zip_path`."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(folder.iterdir()):
            kind = (zipfile.ZIP_STORED if path.suffix in _STORED_SUFFIXES
                    else zipfile.ZIP_DEFLATED)
            zf.write(path, f"{arcname}/{path.name}", compress_type=kind)


def _names_clip(metadata: Any, clip_id: int | str) -> bool:
    return (isinstance(metadata, dict) and str(metadata.get("clip_id")) == str(clip_id)
            and isinstance(metadata.get("files"), dict))


def is_package_of(folder: Path, clip_id: int | str) -> bool:
    """True when `folder` is a package Clipper wrote for `clip_id` (its metadata.json says so)."""
    try:
        return _names_clip(json.loads((folder / METADATA).read_text(encoding="utf-8")), clip_id)
    except (OSError, ValueError):  # no metadata, unreadable, or not JSON: not ours
        return False


def _is_package_zip(zip_path: Path, arcname: str, clip_id: int | str) -> bool:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            metadata = json.loads(zf.read(f"{arcname}/{METADATA}").decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # not a zip of this package
        return False
    return _names_clip(metadata, clip_id)


def check_destination(out_dir: Path, clip_id: int | str) -> None:
    """Refuse (InvalidInput) to write the package where it would replace what Clipper did not
    write: a file, a link, a folder holding other files, or a `<out_dir>.zip` of another kind.

    A new or empty folder is fine, and so is an earlier package of the same clip (re-exporting
    replaces it whole, files added to it since included).
    """
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InvalidInput(f"{out_dir} exists and is not a folder; Clipper will not replace it.",
                           _NOT_OURS_HINT)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_package_of(out_dir, clip_id):
        raise InvalidInput(f"{out_dir} is not empty and is not a package of clip {clip_id}; "
                           "Clipper will not delete what is there.", _NOT_OURS_HINT)
    zip_path = package_zip_path(out_dir)
    if zip_path.is_symlink() or (zip_path.exists()
                                 and not _is_package_zip(zip_path, out_dir.name, clip_id)):
        raise InvalidInput(f"{zip_path} exists and is not the zip of a package of clip "
                           f"{clip_id}; Clipper will not replace it.", _NOT_OURS_HINT)


def package_zip_path(out_dir: Path) -> Path:
    """Where the zip of the package at `out_dir` goes: `<out_dir>.zip`, beside it."""
    return out_dir.with_name(out_dir.name + ".zip")


def _swap_in(tmp: Path, out_dir: Path, clip_id: int | str) -> None:
    """Rename the finished temp folder to `out_dir`: an earlier package of the clip is moved
    aside and deleted; an empty folder is removed with rmdir, which fails rather than delete
    files someone put there since the check."""
    old = None
    if out_dir.is_dir() and is_package_of(out_dir, clip_id):
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, old)
    elif out_dir.is_dir():
        try:
            out_dir.rmdir()
        except OSError as exc:
            raise InvalidInput(f"{out_dir} is no longer empty; Clipper will not delete what is "
                               "there.", _NOT_OURS_HINT) from exc
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_package(spec: PackageSpec, out_dir: Path) -> PackageResult:
    """Write the package folder `out_dir` and `<out_dir>.zip` beside it.

    `out_dir` must be new, empty, or an earlier package of the same clip (else InvalidInput,
    before anything is written: see `check_destination`). The folder and the zip are both built
    under temp names in the same parent and renamed into place, so a failed export leaves no
    half-made package and the old one, if any, intact; renders are hard-linked when possible.
    """
    out_dir = Path(out_dir)
    missing = [str(r.path) for r in spec.renders if not Path(r.path).is_file()]
    if missing:
        raise PermanentError(f"Cannot package clip {spec.clip_id}: render missing ({missing[0]}).",
                             "Render the clip again.")
    check_destination(out_dir, spec.clip_id)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    created_at = spec.created_at or datetime.now(UTC)
    stem = f".{out_dir.name}.{uuid.uuid4().hex[:8]}"
    tmp, tmp_zip = out_dir.with_name(f"{stem}.tmp"), out_dir.with_name(f"{stem}.zip.tmp")
    zip_path = package_zip_path(out_dir)
    tmp.mkdir()
    try:
        metadata = _fill(spec, tmp, created_at)
        _zip(tmp, tmp_zip, out_dir.name)
        # Again, just before replacing: the folder may have changed while the package was built.
        check_destination(out_dir, spec.clip_id)
        _swap_in(tmp, out_dir, spec.clip_id)
        os.replace(tmp_zip, zip_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp_zip.unlink(missing_ok=True)
    files = {p.name: sha256_file(p) for p in sorted(out_dir.iterdir())}
    return PackageResult(path=out_dir, zip_path=zip_path, files=files, metadata=metadata)
