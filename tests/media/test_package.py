"""Distribution package: folder contents, checksums, metadata, zip, atomic replacement."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clipper.domain import Word
from clipper.errors import PermanentError
from clipper.media.package import PackageSpec, build_package, default_folder_name, slugify
from clipper.media.render import RenderResult

WORDS = [Word(0.5 + 0.4 * i, 0.8 + 0.4 * i, w) for i, w in
         enumerate("The council voted to approve the budget.".split())]


@pytest.mark.parametrize(("text", "slug"), [
    ("Minister: 'We will act NOW!'", "minister-we-will-act-now"),
    ("Café — Zürich 2026", "cafe-zurich-2026"),
    ("", "clip"), ("!!!", "clip"),
    ("word " * 20, "-".join(["word"] * 9)),  # cut at a word boundary, 44 chars
    ("x" * 80, "x" * 48),
])
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert len(slugify(text)) <= 48


def _render(tmp: Path, shape: str, fit: str, colour: str) -> RenderResult:
    path = tmp / f"render-{shape}-{fit}.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"color=c={colour}:size=64x64:duration=0.2", "-c:v", "libx264",
                    "-preset", "ultrafast", str(path)], check=True)
    return RenderResult(path=path, format=shape, fit=fit, captions=True, width=64, height=64,
                        duration=0.2, settings={"video": {"preset": "veryfast", "crf": 22}})


@pytest.fixture
def spec(tmp_path: Path) -> PackageSpec:
    renders = [_render(tmp_path, "16x9", "crop", "red"), _render(tmp_path, "9x16", "pad", "blue")]
    return PackageSpec(
        clip_id=42, title="Council votes: budget approved!", source="https://example.org/live",
        start=120.0, end=135.5, approver="editor@desk",
        caption_text="Council approves budget #news",
        transcript_text="The council voted to approve the budget.", words=WORDS, renders=renders,
        flaggers=[{"user": "vol1", "note": "budget vote"}, {"user": "vol2", "note": ""}],
        created_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.services  # `spec` renders with ffmpeg
def test_package_folder_holds_everything_with_checksums(spec: PackageSpec, tmp_path: Path) -> None:
    out = tmp_path / "exports" / default_folder_name(spec.clip_id, spec.title)
    result = build_package(spec, out)
    assert out.name == "42-council-votes-budget-approved" and result.path == out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["42-16x9-crop.mp4", "42-9x16-pad.mp4", "caption.txt", "captions.srt",
                     "captions.vtt", "metadata.json", "transcript.txt"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta == result.metadata
    assert (meta["clip_id"], meta["source"], meta["start"], meta["end"]) == (
        42, "https://example.org/live", 120.0, 135.5)
    assert meta["approver"] == "editor@desk" and meta["flaggers"][0]["user"] == "vol1"
    assert meta["created_at"] == "2026-11-23T12:00:00+00:00"
    for entry in meta["renders"]:
        assert entry["sha256"] == sha(out / entry["file"])
        assert entry["settings"]["video"]["crf"] == 22
    assert {e["format"] for e in meta["renders"]} == {"16x9", "9x16"}
    assert all(meta["files"][n] == sha(out / n) for n in names if n != "metadata.json")
    assert result.files == {n: sha(out / n) for n in names}
    assert (out / "caption.txt").read_text() == "Council approves budget #news\n"
    assert "council voted to approve" in (out / "captions.srt").read_text()
    assert (out / "captions.vtt").read_text().startswith("WEBVTT")
    # Renders are hard-linked, not copied, when they are on the same filesystem.
    assert (out / "42-16x9-crop.mp4").stat().st_ino == Path(spec.renders[0].path).stat().st_ino


@pytest.mark.services  # `spec` renders with ffmpeg
def test_zip_beside_the_folder_has_the_same_files(spec: PackageSpec, tmp_path: Path) -> None:
    result = build_package(spec, tmp_path / "pkg")
    assert result.zip_path == tmp_path / "pkg.zip"
    with zipfile.ZipFile(result.zip_path) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == sorted(f"pkg/{n}" for n in result.files)
        for name, digest in result.files.items():
            assert hashlib.sha256(zf.read(f"pkg/{name}")).hexdigest() == digest
        assert zf.getinfo("pkg/42-16x9-crop.mp4").compress_type == zipfile.ZIP_STORED


@pytest.mark.services  # `spec` renders with ffmpeg
def test_rebuilding_replaces_the_old_package_and_leaves_no_temp(spec: PackageSpec,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    build_package(spec, out)
    (out / "stale.txt").write_text("from an older export")
    build_package(spec, out)
    assert not (out / "stale.txt").exists()
    assert (sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pkg"))
            == ["pkg", "pkg.zip"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.services  # `spec` renders with ffmpeg
def test_missing_render_fails_before_anything_is_written(spec: PackageSpec, tmp_path: Path) -> None:
    Path(spec.renders[1].path).unlink()
    with pytest.raises(PermanentError, match="render missing"):
        build_package(spec, tmp_path / "out" / "pkg")
    assert not (tmp_path / "out" / "pkg").exists()
