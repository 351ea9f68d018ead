"""Speech the batched pass may jump over, heard beforehand on an idle core."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clipper.settings import Settings
from clipper.transcribe.prehear import PreHearing, at_risk_regions


def test_the_region_holding_each_chunks_last_segment_is_at_risk_but_the_last_chunks() -> None:
    chunks = [[(0.0, 5.0), (6.0, 12.0)], [(13.0, 20.0), (21.0, 29.5)], [(30.0, 41.0)]]
    regions = [(0.2, 4.9), (6.1, 11.8), (13.0, 19.5), (20.9, 29.6), (30.2, 40.8)]
    assert at_risk_regions(chunks, regions) == [(6.1, 11.8), (20.9, 29.6)]
    assert at_risk_regions(chunks[:1], regions) == []  # one chunk: its end is the clip's
    assert at_risk_regions([[], [(13.0, 20.0)]], regions) == []  # no segments listed
    assert at_risk_regions(chunks, [(11.0, 12.0), (50.0, 55.0)]) == []  # too short; elsewhere


def _wait_until(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    ticks = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if cond():
            return True
        ticks.wait(0.005)
    return cond()


def test_regions_are_heard_in_a_thread_once_a_core_is_idle() -> None:
    idle, heard = threading.Event(), []

    def hear(region):  # type: ignore[no-untyped-def]
        heard.append((region, threading.current_thread().name))
        return [("heard", region)]

    pre = PreHearing(hear, idle=idle.is_set, poll=0.005)
    pre.start([(1.0, 3.0), (5.0, 8.0)])
    assert not _wait_until(lambda: heard, timeout=0.1)  # busy machine: nothing starts
    idle.set()
    assert _wait_until(lambda: len(heard) == 2)
    pre.finish()
    assert pre.result((1.0, 3.0)) == [("heard", (1.0, 3.0))]
    assert pre.result((5.0, 8.0)) == [("heard", (5.0, 8.0))]
    assert [name for _, name in heard] == ["prehear", "prehear"]
    assert pre.result((9.0, 9.5)) is None  # never asked for


def test_nothing_starts_on_a_busy_machine_or_after_finish() -> None:
    heard: list = []
    busy = PreHearing(lambda r: heard.append(r) or [], idle=lambda: False, poll=0.005)
    busy.start([(1.0, 3.0)])
    busy.finish()
    assert busy.result((1.0, 3.0)) is None and heard == []
    late = PreHearing(lambda r: heard.append(r) or [], idle=lambda: True, poll=0.005)
    late.finish()
    late.start([(1.0, 3.0)])
    assert late.result((1.0, 3.0)) is None and heard == []


def test_a_failed_hearing_is_heard_again_by_the_caller() -> None:
    def hear(region):  # type: ignore[no-untyped-def]
        raise RuntimeError("model gone")

    started = threading.Event()

    def fail(region):  # type: ignore[no-untyped-def]
        started.set()
        return hear(region)

    pre = PreHearing(fail, idle=lambda: True, poll=0.005)
    pre.start([(1.0, 3.0)])
    assert started.wait(5)
    pre.finish()
    assert pre.result((1.0, 3.0)) is None


@pytest.fixture(scope="module")
def programme(speech_dir: Path) -> Path:
    """~55 s of the demo's news read with short pauses: two chunks for the batched pass (and
    tiny.en, on this machine's CPUs, jumps over the last sentence of the first)."""
    from clipper.cli.demo import SCRIPT
    from testmedia.speechgen import make_speech

    return make_speech(speech_dir / "programme.wav", SCRIPT, gap=0.7)[0]


def test_hearing_beforehand_gives_the_same_transcript(settings: Settings, programme: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With a core idle, the last sentence of the first chunk is heard beside the batched pass
    (once its encoder has run); a region the pass jumped over is taken from there, and the
    words are the same. No hearing outlives the transcription."""
    from clipper.transcribe import faster
    from clipper.transcribe.faster import FasterWhisperEngine

    engine = FasterWhisperEngine.from_settings(settings)
    real, calls = faster.FasterWhisperEngine._hear_alone, []

    def watch(self, samples, region, english_only):  # type: ignore[no-untyped-def]
        calls.append((region, threading.current_thread().name == "prehear"))
        order.append("heard beforehand" if calls[-1][1] else "heard")
        return real(self, samples, region, english_only)

    monkeypatch.setattr(faster.FasterWhisperEngine, "_hear_alone", watch)
    real_encode, order = faster._Encoding.encode, []

    def encode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_encode(self, *args, **kwargs)
        order.append("encoded")
        return out

    monkeypatch.setattr(faster._Encoding, "encode", encode)
    runs = {}
    for idle in (False, True):
        monkeypatch.setattr(faster, "idle_core", lambda idle=idle: idle)
        calls.clear()
        order.clear()
        runs[idle] = (engine.transcribe(programme), list(calls))
    (alone, plain_calls), (beside, pre_calls) = runs[False], runs[True]
    assert beside == alone
    assert not any(pre for _, pre in plain_calls)
    beforehand = {region for region, pre in pre_calls if pre}
    assert beforehand  # the first chunk's last sentence
    # What was heard beforehand is not heard again afterwards (here, on this machine's CPUs,
    # it is what the pass jumped over: the same region the run without a helper heard again).
    assert not [region for region, pre in pre_calls if not pre and region in beforehand]
    assert not [t for t in threading.enumerate() if t.name == "prehear"]
    # Only once the pass's encoder has run: the two encoders are never in memory together.
    assert order.index("encoded") < order.index("heard beforehand")


def test_regions_given_after_the_thread_ended_are_heard_too() -> None:
    pre = PreHearing(lambda r: [r], idle=lambda: True, poll=0.005)
    pre.start([(1.0, 3.0)])
    assert _wait_until(lambda: pre._thread is not None and not pre._thread.is_alive())
    pre.start([(5.0, 8.0)])
    assert _wait_until(lambda: (5.0, 8.0) in pre._futures and pre._futures[(5.0, 8.0)].done())
    pre.close()
    assert pre.result((5.0, 8.0)) == [(5.0, 8.0)]
