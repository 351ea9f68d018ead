"""Housekeeping removes superseded clip versions, sections no clip will cut again, uploads
nobody needs and the temporary files of killed jobs — and nothing a clip still uses, nor a
temporary file a job may still be writing. A cut refuses (for now) a disk it would fill."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from clipper.errors import TransientError
from clipper.permissions import Actor
from clipper.pipeline.housekeeping import (
    GRACE_SECONDS,
    ClipFiles,
    is_leftover,
    keep_sections,
    superseded,
    tidy,
)
from clipper.pipeline.work import check_free_space, needed_bytes
from clipper.services.flags import file_flag
from clipper.storage.tables import Clip

ANN = Actor.operator("ann")
DAY = 86400.0


def clip(id_: int = 1, version: int = 1, status: str = "ready", section: str | None = "/s/a.mp4",
         media: str | None = None, age: float = 0.0) -> ClipFiles:
    return ClipFiles(id_, version, status, section, media, "/u/x.mp4", age)


def test_sections_of_clips_in_work_or_review_are_kept_and_of_long_done_clips_not():
    clips = [clip(1, status="cutting", section="/s/1.mp4"),
             clip(2, status="ready", section="/s/2.mp4", age=9 * DAY),
             clip(3, status="published", section="/s/3.mp4", age=DAY / 2),
             clip(4, status="rejected", section="/s/4.mp4", age=9 * DAY)]
    assert keep_sections(clips, retention_seconds=DAY) == {"/s/1.mp4", "/s/2.mp4", "/s/3.mp4"}


def test_only_older_versions_go_and_never_the_one_the_media_comes_from(tmp_path):
    dirs = {7: [tmp_path / "7" / f"v{n}" for n in (1, 2, 3)]}
    clips = {7: clip(7, version=3, media=str(tmp_path / "7" / "v2" / "clip.mp4"))}
    assert superseded(dirs, clips) == [tmp_path / "7" / "v1"]


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_tidy_on_disk(sqlite_ctx, broadcast):
    media = sqlite_ctx.settings.media_dir
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "2", "5")
    used = media / "sources" / "1" / "section-used.mp4"
    stray = media / "sources" / "1" / "section-stray.mp4"
    young = media / "sources" / "1" / "section-young.mp4"
    old_version = media / "clips" / str(res.clip_id) / "v1" / "clip.mp4"
    current = media / "clips" / str(res.clip_id) / "v2" / "clip.mp4"
    unflagged = media / "uploads" / "abc.mp4"
    for f in (used, stray, young, old_version, current, unflagged):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    for f in (used, stray, unflagged):
        _age(f, max(GRACE_SECONDS, 2 * DAY) + 60)
    with sqlite_ctx.db.session() as s:
        c = s.get(Clip, res.clip_id)
        c.version, c.status, c.section_path, c.media_path = 2, "ready", str(used), str(current)
    # What Whisper heard of the source and the edges its cuts re-encoded: kept while
    # recordings are, and not counted as sections.
    heard, edges = media / "sources" / "1" / "heard", media / "sources" / "1" / "edges"
    heard_recent, heard_old = heard / "k-2.000-5.000.json", heard / "k-9.000-12.000.json"
    edge_recent, edge_old = edges / "0123abcd.mp4", edges / "4567cdef.mp4"
    for f in (heard_recent, heard_old, edge_recent, edge_old):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    for f in (heard_recent, edge_recent):
        _age(f, GRACE_SECONDS + 60)
    for f in (heard_old, edge_old):
        _age(f, sqlite_ctx.settings.retention_hours * 3600 + 60)
    done = tidy(sqlite_ctx)
    assert done == {"versions": 1, "sections": 1, "uploads": 1, "leftovers": 0}
    assert used.exists() and young.exists() and current.exists()
    assert not stray.exists() and not old_version.parent.exists() and not unflagged.exists()
    assert heard_recent.exists() and not heard_old.exists()
    assert edge_recent.exists() and not edge_old.exists()


def test_a_cut_that_would_fill_the_disk_waits_instead(tmp_path):
    assert needed_bytes(100 * 2**20, 10, 100) == 20 * 2**20 + 16 * 2**20
    free = shutil.disk_usage(tmp_path).free
    check_free_space(tmp_path, 1024)
    with pytest.raises(TransientError, match="Not enough free disk space"):
        check_free_space(tmp_path, free * 2)


@pytest.mark.parametrize("name", [
    ".upload-0123456789abcdef0123456789abcdef.mp4",  # services/review.save_upload
    ".transcript.json.0123456789abcdef0123456789abcdef.tmp",  # pipeline/transcripts
    ".clip.srt.tmp", "..clip.srt.0123456789abcdef0123456789abcdef.tmp.tmp",  # subtitles
    ".16x9-crop.0a1b2c3d.tmp.mp4",  # media/render
    ".clip.0123456789abcdef0123456789abcdef.part.mp4",  # media/cut, media/concat
    ".audio.wav.0123456789abcdef0123456789abcdef.part.wav",  # media/extract_audio
    ".thumb.0123456789abcdef0123456789abcdef.jpg",  # media/thumbnail
    ".clip-7-budget.0a1b2c3d.tmp", ".clip-7-budget.0a1b2c3d.zip.tmp",  # media/package
    ".clip-7-budget.old-0a1b2c3d",
    ".7-1764531600000.ts.812.140233.part",  # pipeline/recorder (a segment being written)
    ".cut-k2j4_x9q", ".fetch-a8b7c6d5",  # their TemporaryDirectory folders
])
def test_the_temporary_names_writers_use_are_leftovers(name: str) -> None:
    assert is_leftover(name)


@pytest.mark.parametrize("name", ["clip.mp4", "clip-7-budget", "clip-7-budget.zip", "abc.mp4",
                                  "transcript.json", ".gitkeep", ".DS_Store", ".tmp", "x.tmp"])
def test_finished_files_and_other_dot_files_are_not(name: str) -> None:
    assert not is_leftover(name)


def _make(path: Path, age: float = 0.0, *inside: str) -> Path:
    """A file, or with `inside` a folder of those files, last written `age` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if inside:
        path.mkdir()
        for name in inside:
            _age(_make(path / name), age)
    else:
        path.write_bytes(b"x")
    _age(path, age)
    return path


def test_killed_jobs_leftovers_go_after_the_grace_and_nothing_else(sqlite_ctx):
    media, exports = sqlite_ctx.settings.media_dir, sqlite_ctx.settings.exports_dir
    hexes, stale = "0123456789abcdef" * 2, GRACE_SECONDS + 60
    v1, renders = media / "clips" / "9" / "v1", media / "clips" / "9" / "renders"
    old = [  # what jobs killed over an hour ago left
        _make(exports / ".clip-3-vote.0a1b2c3d.tmp", stale, "clip-3-vote_16x9.mp4", "meta.json"),
        _make(exports / ".clip-3-vote.0a1b2c3d.zip.tmp", stale),
        _make(exports / ".clip-2-x.old-99aa88bb", stale, "clip-2-x_16x9.mp4"),
        _make(media / "uploads" / f".upload-{hexes}.mp4", stale),
        _make(v1 / f".transcript.json.{hexes}.tmp", stale),
        _make(v1 / "..clip.srt.tmp.tmp", stale),
        _make(renders / ".16x9-crop.0a1b2c3d.tmp.mp4", stale),
        _make(media / "sources" / "1" / "heard" / f".k-2.000-5.000.json.{hexes}.tmp", stale),
        # a recorder killed -9 while writing a segment (pipeline/recorder._write_file)
        _make(media / "channels" / "bbc" / "2026-11-30" / "19" / ".7-1764531600000.ts.812.140.part",
              stale)]
    # A package being built now: its render was hard-linked in (an old file), its metadata
    # written just now — the folder is in use though the folder entry itself looks old.
    filling = _make(exports / ".clip-4-now.1a2b3c4d.tmp", stale, "clip-4-now_16x9.mp4")
    _make(filling / "meta.json")
    _age(filling, stale)
    young = [filling, _make(exports / ".clip-4-now.1a2b3c4d.zip.tmp"),
             _make(media / "uploads" / f".upload-{hexes[::-1]}.mp4"),
             _make(v1 / f".clip.vtt.{hexes}.tmp")]
    kept = [  # finished files, however old, and dot-files that are not Clipper's
        _make(exports / "clip-1-done", stale, "clip-1-done_16x9.mp4"),
        _make(exports / "clip-1-done.zip", stale), _make(exports / ".keep", stale),
        _make(media / "uploads" / "f00d.mp4", stale),  # younger than the upload retention
        _make(v1 / "clip.mp4", stale), _make(v1 / "transcript.json", stale),
        _make(renders / "16x9-crop.mp4", stale),
        _make(media / "channels" / "bbc" / "2026-11-30" / "19" / "6-1764531594000.ts", stale)]
    assert tidy(sqlite_ctx)["leftovers"] == len(old)
    assert [f for f in old if f.exists()] == []
    assert [f for f in young + kept if not f.exists()] == []
    assert (filling / "meta.json").exists() and (filling / "clip-4-now_16x9.mp4").exists()
    # Nothing touches them for longer than the grace: now they are leftovers too.
    assert tidy(sqlite_ctx, now=time.time() + stale)["leftovers"] == len(young)
    assert [f for f in young if f.exists()] == [] and [f for f in kept if not f.exists()] == []
