"""The stage table agrees with the clip state machine (pure: no database, Redis or ffmpeg)."""

from __future__ import annotations

import inspect

import pytest

from clipper.pipeline.lifecycle import STATUSES, can_move
from clipper.pipeline.stages import (
    QUEUES,
    STAGES,
    WORKER_ORDER,
    WORKING_STATUSES,
    Stage,
    queue_for,
    stage_for_status,
    with_later,
    worker_queues,
)

FIRST = "queued"  # a new or re-queued clip waits here for the first stage


def entered(stage: Stage, status: str) -> str:
    """The status a stage's job runs under: the first stage takes a clip out of `queued`."""
    return stage.status if status == FIRST else status


@pytest.mark.parametrize("stage", STAGES.values(), ids=list(STAGES))
def test_every_status_a_stage_names_exists(stage: Stage) -> None:
    named = {stage.status, *stage.starts_in, *stage.finishes_as}
    assert named <= set(STATUSES), named - set(STATUSES)


@pytest.mark.parametrize("stage", STAGES.values(), ids=list(STAGES))
def test_a_stage_can_finish_and_fail_from_every_status_it_starts_in(stage: Stage) -> None:
    for status in stage.starts_in:
        if status == FIRST:
            assert can_move(FIRST, stage.status), f"{stage.name} cannot take a clip out of queued"
        here = entered(stage, status)
        for after in stage.finishes_as:
            assert here == after or can_move(here, after), f"{stage.name}: {here} -> {after}"
        assert can_move(here, "failed"), f"{stage.name} cannot fail from {here}"


@pytest.mark.parametrize("stage", STAGES.values(), ids=list(STAGES))
def test_followers_can_start_where_a_stage_leaves_the_clip(stage: Stage) -> None:
    for name in stage.then:
        follower = STAGES[name]
        assert stage.finishes_as & follower.starts_in or stage.status in follower.starts_in, (
            f"{name} never finds a clip that {stage.name} finished")


@pytest.mark.parametrize("stage", STAGES.values(), ids=list(STAGES))
def test_each_stage_has_a_queue_a_share_of_progress_and_functions(stage: Stage) -> None:
    lo, hi = stage.progress
    assert 0.0 <= lo < hi <= 1.0
    assert stage.queue in QUEUES
    assert list(inspect.signature(stage.work).parameters) == ["ctx", "inp"]
    assert len(inspect.signature(stage.advance).parameters) == 2
    assert stage.timeout is None or stage.timeout > 0


def test_work_that_can_wait_has_a_twin_queue_taken_after_every_queue_s_own() -> None:
    assert queue_for("fetch", first=True) == "fetch"
    assert queue_for("fetch", first=False) == "fetch-later"
    # A new moment's fetch comes before a widened clip's transcription, on any worker.
    assert with_later(["asr", "media", "fetch"]) == [
        "asr", "media", "fetch", "asr-later", "media-later", "fetch-later"]
    for queues in (worker_queues(i, 2) for i in range(2)):
        order = with_later(queues)
        assert max(order.index(q) for q in queues) < min(order.index(q + "-later") for q in queues)


def test_a_worker_on_all_queues_serves_each_queue_once() -> None:
    assert sorted(WORKER_ORDER) == sorted(QUEUES)


@pytest.mark.parametrize("count", [2, 3, 5])
def test_several_workers_cover_every_queue_and_one_transcribes(count: int) -> None:
    sets = [worker_queues(i, count) for i in range(count)]
    assert set().union(*sets) == set(QUEUES)
    assert [i for i, queues in enumerate(sets) if "asr" in queues] == [0]  # one Whisper model
    assert "render" not in sets[0]  # a long render never holds up a transcription
    assert all(len(set(q)) == len(q) and set(q) <= set(QUEUES) for q in sets)
    assert worker_queues(0, 1) == WORKER_ORDER  # alone, it does everything


def test_every_working_status_names_the_stage_it_waits_on() -> None:
    for status in WORKING_STATUSES:
        stage = stage_for_status(status)
        assert stage is not None and status in {stage.status, *stage.starts_in}
    assert stage_for_status(FIRST) is STAGES["fetch"]
    assert stage_for_status("ready") is None and stage_for_status("failed") is None


def test_the_pipeline_reaches_ready_from_queued() -> None:
    """Walking the table from a new clip (following every finish) reaches `ready`."""
    seen, todo = set(), [s for s in STAGES.values() if FIRST in s.starts_in]
    reached = set()
    while todo:
        stage = todo.pop()
        if stage.name in seen:
            continue
        seen.add(stage.name)
        reached |= stage.finishes_as
        todo += [STAGES[n] for n in stage.then]
    assert "ready" in reached and {"fetch", "cut", "asr"} <= seen
