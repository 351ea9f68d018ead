"""A merge that widens a clip transcribes only what is new and re-encodes only the edge that
moved (real ffmpeg and tiny.en)."""

from __future__ import annotations

import difflib
from pathlib import Path

from sqlalchemy import select

from clipper.media.extract_audio import extract_audio
from clipper.permissions import Actor
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from clipper.storage.tables import StageRun
from clipper.transcribe import get_engine

ANN, BOB = Actor.operator("ann"), Actor.operator("bob")


def whisper_seconds(ctx, clip_id: int) -> list[float]:
    with ctx.db.read() as session:
        runs = session.scalars(select(StageRun).where(StageRun.clip_id == clip_id,
                                                      StageRun.stage == "asr")
                               .order_by(StageRun.id)).all()
        return [r.detail["whisper_seconds"] for r in runs if r.detail]


def stage_details(ctx, clip_id: int, stage: str) -> list[dict]:
    with ctx.db.read() as session:
        return [r.detail for r in session.scalars(
            select(StageRun).where(StageRun.clip_id == clip_id, StageRun.stage == stage,
                                   StageRun.error.is_(None)).order_by(StageRun.id))]


def words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


def test_a_widened_clip_reuses_what_was_heard(ctx, broadcast, run_jobs, tmp_path: Path):
    a = file_flag(ctx, ANN, str(broadcast), "2", "20")
    run_jobs(ctx)
    b = file_flag(ctx, BOB, str(broadcast), "4", "28")  # the same moment: the clip widens
    assert b.merged and b.clip_id == a.clip_id
    run_jobs(ctx)
    st = clip_status(ctx, ANN, a.clip_id)
    assert st["status"] == "ready", st["error"]
    first, second = whisper_seconds(ctx, a.clip_id)
    assert first == 18.0
    assert 0 < second <= 12.0  # [17, 28]: the new end and 2 s of what was heard before it
    # As good as hearing the whole 26 s afresh.
    wav = extract_audio(broadcast, 2.0, 26.0, tmp_path / "whole.wav")
    fresh = get_engine(ctx.settings).transcribe(wav)
    got, want = words(st["transcript"]["text"]), words(fresh.text)
    ratio = difflib.SequenceMatcher(a=want, b=got).ratio()
    assert ratio >= 0.9, (got, want)
    times = [(w["start"], w["end"]) for s in st["transcript"]["segments"] for w in s["words"]]
    assert times == sorted(times) and all(0 <= s <= e <= 26.0 for s, e in times)


def test_a_widened_clip_reencodes_only_the_edge_that_moved(ctx, broadcast, run_jobs):
    a = file_flag(ctx, ANN, str(broadcast), "5.3", "12.7")
    run_jobs(ctx)
    b = file_flag(ctx, BOB, str(broadcast), "3.1", "12.7")  # an earlier start, the same end
    assert b.merged and b.clip_id == a.clip_id
    run_jobs(ctx)
    st = clip_status(ctx, ANN, a.clip_id)
    assert st["status"] == "ready", st["error"]
    assert abs(st["duration"] - 9.6) < 0.05
    cuts = stage_details(ctx, a.clip_id, "cut")
    assert [(d["method"], d["edges_lent"]) for d in cuts] == [("smart", 0), ("smart", 1)]
