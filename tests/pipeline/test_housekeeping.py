"""Housekeeping removes superseded clip versions, sections no clip will cut again and uploads
nobody needs — and nothing a clip still uses. A cut refuses (for now) a disk it would fill."""

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
    # What Whisper heard of the source: kept while recordings are, and not counted as sections.
    heard = media / "sources" / "1" / "heard"
    heard_recent, heard_old = heard / "k-2.000-5.000.json", heard / "k-9.000-12.000.json"
    for f in (heard_recent, heard_old):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    _age(heard_recent, GRACE_SECONDS + 60)
    _age(heard_old, sqlite_ctx.settings.retention_hours * 3600 + 60)
    done = tidy(sqlite_ctx)
    assert done == {"versions": 1, "sections": 1, "uploads": 1}
    assert used.exists() and young.exists() and current.exists()
    assert not stray.exists() and not old_version.parent.exists() and not unflagged.exists()
    assert heard_recent.exists() and not heard_old.exists()


def test_a_cut_that_would_fill_the_disk_waits_instead(tmp_path):
    assert needed_bytes(100 * 2**20, 10, 100) == 20 * 2**20 + 16 * 2**20
    free = shutil.disk_usage(tmp_path).free
    check_free_space(tmp_path, 1024)
    with pytest.raises(TransientError, match="Not enough free disk space"):
        check_free_space(tmp_path, free * 2)
