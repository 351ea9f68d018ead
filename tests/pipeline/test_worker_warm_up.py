"""A worker loads what its first job would otherwise load on a volunteer's flag."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clipper.errors import InvalidInput
from clipper.pipeline.worker import warm_up
from clipper.settings import Settings


class _Ctx:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def test_a_worker_loads_the_model_and_yt_dlps_patterns_for_its_queues(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clipper.media.fetch as fetch
    import clipper.transcribe as transcribe

    loaded, compiled = [], []
    monkeypatch.setattr(transcribe, "get_engine", loaded.append)
    monkeypatch.setattr(fetch, "warm_up", lambda: compiled.append(True))
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path)})
    warm_up(_Ctx(settings), ["asr", "media", "fetch"])  # type: ignore[arg-type]
    assert loaded == [settings] and compiled == [True]
    warm_up(_Ctx(settings), ["media", "render"])  # type: ignore[arg-type]
    assert loaded == [settings] and compiled == [True]  # nothing these queues need


def test_a_model_that_will_not_load_is_left_to_the_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path),
                                  "CLIPPER_WHISPER_MODEL": str(tmp_path / "no-such-model")})
    with caplog.at_level(logging.WARNING, logger="clipper.pipeline.worker"):
        warm_up(_Ctx(settings), ["asr"])  # type: ignore[arg-type]
    assert "not a faster-whisper model directory" in caplog.text
    with pytest.raises(InvalidInput):  # the job still says what is wrong
        from clipper.transcribe import get_engine

        get_engine(settings)


def test_the_warm_up_runs_once_when_the_worker_first_looks_for_work(sqlite_ctx, redis_conn):
    """After `work()` has forked RQ's scheduler (a fork of a worker holding the model counted
    its memory twice), before the first job: once."""
    from rq import Queue

    from clipper.pipeline.worker import make_worker

    worker = make_worker(sqlite_ctx, ["fetch"], redis_conn)
    calls: list[int] = []
    worker.before_work = lambda: calls.append(len(Queue("fetch", connection=redis_conn)))
    Queue("fetch", connection=redis_conn).enqueue("clipper.pipeline.jobs.run_stage_job",
                                                  "fetch", 1, 1, job_id="one")
    Queue("fetch", connection=redis_conn).enqueue("clipper.pipeline.jobs.run_stage_job",
                                                  "fetch", 2, 1, job_id="two")
    taken = [worker.dequeue_job_and_maintain_ttl(timeout=5)[0].id for _ in range(2)]
    assert taken == ["one", "two"] and calls == [2]  # before the first was taken, only then
