"""Assertions for frame-exact clips, shared by the media tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipper.media.probe import probe_media, video_frames
from testmedia.mediagen import decode_gray, match_frame

IRREGULAR = [0, 1.3, 4.7, 5.1, 9.9, 13.2, 17.6, 21.05]


def expected_span(src: Path, start: float, end: float) -> tuple[int, int]:
    """Indices (presentation order) of the first and last source frames with start <= t < end."""
    pts = [f.pts for f in video_frames(src, probe_media(src).start_time)]
    inside = [i for i, t in enumerate(pts) if start - 1e-3 <= t < end - 1e-3]
    return inside[0], inside[-1]


def assert_frame_exact(clip: Path, src: Path, start: float, end: float) -> None:
    """The clip's first/last frames are the source frames at start/end
    (and not their neighbours)."""
    full, frames = decode_gray(src), decode_gray(clip)
    first, last = expected_span(src, start, end)
    for got, want in ((frames[0], first), (frames[-1], last)):
        idx, best, _ = match_frame(got, full)
        neighbours = [np.abs(full[j] - got).mean() for j in (want - 1, want + 1)
                      if 0 <= j < len(full)]
        assert idx == want, f"clip frame matches source frame {idx}, expected {want}"
        assert best < 0.5 * min(neighbours), (best, neighbours)
    assert len(frames) == last - first + 1, f"{len(frames)} frames, expected {last - first + 1}"
    assert np.abs(frames[1] - frames[0]).mean() > 0.3, "frozen lead-in: first two frames identical"
    info = probe_media(clip)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    fps = probe_media(src).fps or 25
    assert abs(info.duration - (last - first + 1) / fps) < 0.045 + 0.03
