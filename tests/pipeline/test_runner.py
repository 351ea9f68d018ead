"""The cut and the transcription run side by side; the clip is ready only when both are done."""

from __future__ import annotations

import pytest

from clipper.permissions import Actor
from clipper.pipeline.worker import make_worker
from clipper.services.clips import clip_events, clip_status
from clipper.services.flags import file_flag

ANN = Actor.operator("ann")  # the local command-line operator, as `--by ann`


@pytest.mark.parametrize("order", [("fetch", "media", "asr"), ("fetch", "asr", "media")])
def test_ready_needs_both_cut_and_transcript_in_either_order(sqlite_ctx, broadcast, order):
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "3.3", "9.7")
    make_worker(sqlite_ctx, order).work(burst=True)
    st = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["media_path"] and st["transcript"]["segments"]
    moves = [e["details"].get("from") for e in clip_events(sqlite_ctx, ANN, res.clip_id)
             if e["action"].startswith("stage.") and "from" in e["details"]]
    # Whichever finishes second makes the clip ready; "transcribing" shows only when the cut won.
    assert moves[-1] in ("cutting", "transcribing")
    words = [w for s in st["transcript"]["segments"] for w in s["words"]]
    assert all(0 <= w["start"] <= w["end"] <= st["duration"] + 0.05 for w in words)


def test_each_finished_run_records_the_cpu_it_took(sqlite_ctx, broadcast):
    from sqlalchemy import select

    from clipper.storage.tables import StageRun

    res = file_flag(sqlite_ctx, ANN, str(broadcast), "3.3", "9.7")
    make_worker(sqlite_ctx, ("fetch", "media", "asr")).work(burst=True)
    with sqlite_ctx.db.read() as session:
        cpu = {r.stage: r.detail["cpu_seconds"] for r in session.scalars(
            select(StageRun).where(StageRun.clip_id == res.clip_id))}
    assert set(cpu) == {"fetch", "cut", "asr"}
    assert cpu["cut"] > 0.05 and cpu["asr"] > 0.05  # ffmpeg's and Whisper's work, not zero


def test_the_cut_takes_what_the_fetch_probed_of_the_section(sqlite_ctx, broadcast, monkeypatch):
    """An ffprobe is ~0.1 CPU s, mostly its start-up: the fetch records what it probed of the
    section and the cut reads it instead of probing the same file again."""
    from sqlalchemy import select

    from clipper.media import probe
    from clipper.storage.tables import StageRun

    probed: list[str] = []
    real = probe.probe_media
    monkeypatch.setattr(probe, "probe_media", lambda path: probed.append(str(path)) or real(path))
    res = file_flag(sqlite_ctx, ANN, str(broadcast), "3.3", "9.7")
    make_worker(sqlite_ctx, ("fetch", "media", "asr")).work(burst=True)
    st = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    with sqlite_ctx.db.read() as session:
        media = session.scalars(select(StageRun.detail).where(
            StageRun.clip_id == res.clip_id, StageRun.stage == "fetch")).one()["media"]
    assert media["path"] == str(broadcast) and media["has_video"] and media["duration"] > 29
    assert probed.count(str(broadcast)) == 1  # the fetch's only
    assert st["duration"] == pytest.approx(6.4, abs=0.05)
