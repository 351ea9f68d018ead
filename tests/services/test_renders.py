"""Approved clip -> renders -> package -> publish log, through real workers and ffmpeg."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from clipper.errors import Conflict, InvalidInput, PermissionDenied
from clipper.media import ffrun
from clipper.permissions import Actor
from clipper.services.clips import clip_events, clip_status
from clipper.services.flags import file_flag
from clipper.services.renders import export_package, mark_published, request_render

ANN = Actor.operator("ann")  # the local command-line operator, as `--by ann`
SAM = Actor("sam", "social")


@pytest.fixture
def ready_clip(sqlite_ctx, broadcast, run_jobs):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "8", "14", note="Schools promise")
    run_jobs(sqlite_ctx)
    assert clip_status(sqlite_ctx, ANN, res.clip_id)["status"] == "ready"
    return res.clip_id


def test_render_export_publish(sqlite_ctx, ready_clip, run_jobs, tmp_path, monkeypatch):
    ctx, cid = sqlite_ctx, ready_clip
    with pytest.raises(InvalidInput, match="Unknown format"):
        request_render(ctx, SAM, cid, formats="4x3")
    with pytest.raises(PermissionDenied):
        request_render(ctx, Actor("vic", "volunteer"), cid)
    plan = request_render(ctx, SAM, cid, formats="16x9,9x16", fit="pad", trim_in="1",
                          trim_out="5", export=False)
    assert plan["trim_in"] == 1.0 and plan["trim_out"] == 5.0
    assert clip_status(ctx, ANN, cid)["status"] == "rendering"
    folders, real_run = [], ffrun.run
    monkeypatch.setattr(ffrun, "run", lambda args, **kw: (
        folders.append(kw.get("cwd")), real_run(args, **kw))[1])
    run_jobs(ctx)
    st = clip_status(ctx, ANN, cid)
    assert st["status"] == "rendered", st["error"]
    # The render worked inside its run's scratch folder, which a dead run's sweep removes.
    works = [Path(f) for f in folders if f]  # 16x9 first, then the rest (two ffmpeg runs)
    assert len(works) == 2 and all(w.parent.parent == ctx.settings.media_dir / "tmp"
                                   and w.parent.name.startswith("run-") and not w.exists()
                                   for w in works)
    shapes = {r["format"]: r for r in st["renders"]}
    assert (shapes["9x16"]["width"], shapes["9x16"]["height"]) == (1080, 1920)
    assert shapes["16x9"]["duration"] == pytest.approx(4.0, abs=0.05)
    assert "render" in st["stages"]

    out = tmp_path / "pkg"
    with pytest.raises(PermissionDenied, match="where on the server"):
        export_package(ctx, SAM, cid, out_dir=out)  # a folder on the server: the operator's
    assert not out.exists()
    res = export_package(ctx, Actor.operator("sam"), cid, out_dir=out)
    names = set(res["files"])
    assert {"captions.srt", "captions.vtt", "caption.txt", "transcript.txt",
            "metadata.json"} <= names
    assert sum(n.endswith(".mp4") for n in names) == 2
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["flaggers"][0]["by"] == "ann" and len(meta["renders"]) == 2
    assert meta["start"] == pytest.approx(st["start"] + 1.0)
    with zipfile.ZipFile(res["zip"]) as z:
        assert {Path(n).name for n in z.namelist()} >= names - {"metadata.json"}
    assert clip_status(ctx, ANN, cid)["status"] == "exported"

    with pytest.raises(InvalidInput):
        mark_published(ctx, SAM, cid, platform="x", url="not a url")
    mark_published(ctx, SAM, cid, platform="x", url="https://x.com/team/status/1")
    st = clip_status(ctx, ANN, cid)
    assert st["status"] == "published" and st["published"][0]["platform"] == "x"
    actions = [e["action"] for e in clip_events(ctx, ANN, cid)]
    assert {"render.requested", "package.exported", "clip.published"} <= set(actions)


def test_export_before_render_is_refused(sqlite_ctx, ready_clip):
    with pytest.raises(Conflict, match="no renders"):
        export_package(sqlite_ctx, SAM, ready_clip)


def test_approve_style_render_exports_automatically(sqlite_ctx, ready_clip, run_jobs):
    request_render(sqlite_ctx, SAM, ready_clip, formats=["1x1"], captions="none", export=True)
    run_jobs(sqlite_ctx)
    st = clip_status(sqlite_ctx, ANN, ready_clip)
    assert st["status"] == "exported", st["error"]
    assert Path(st["export_path"], "metadata.json").exists()
