"""ffrun.run: picture work yields the CPU to a transcription; failures name what was tried."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil
import pytest
from polling import poll

from clipper.media import ffrun

pytestmark = pytest.mark.services

# About two seconds of ffmpeg reading at its real pace: long enough to look at it.
SLOW = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
        "-i", "testsrc2=size=64x36:rate=25:duration=2", "-f", "null", "-"]


def _niceness_of_ffmpeg_while_it_runs(yield_cpu: bool) -> int:
    me = psutil.Process()
    done = threading.Event()

    def go() -> None:
        try:
            ffrun.run(SLOW, what="run slowly", yield_cpu=yield_cpu)
        finally:
            done.set()

    thread = threading.Thread(target=go)
    thread.start()
    try:
        child = poll(lambda: next((c for c in me.children() if c.name() == "ffmpeg"), None),
                     10, "ffmpeg to start")
        # Its threads (x264's, in a real encode) inherit the niceness set before they start.
        nice, = poll(lambda: (child.nice(),) if child.nice() != me.nice() or not yield_cpu
                     else None, 5, "the niceness to be set")
        return nice
    finally:
        thread.join(30)
        assert done.is_set()


def test_picture_work_runs_at_a_lower_priority() -> None:
    assert _niceness_of_ffmpeg_while_it_runs(True) == min(19, os.nice(0) + ffrun.YIELD_NICENESS)
    assert _niceness_of_ffmpeg_while_it_runs(False) == os.nice(0)


def test_a_failing_run_says_what_it_tried(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="could not read a missing file"):
        ffrun.run(["ffmpeg", "-nostdin", "-i", str(tmp_path / "none.mp4"), "-f", "null", "-"],
                  what="read a missing file", yield_cpu=True)
