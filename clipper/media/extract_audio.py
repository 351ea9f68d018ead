"""Audio windows: the part of a section Whisper needs, decoded to 16 kHz mono WAV."""

from __future__ import annotations

import os
import uuid
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ffmpeg

from clipper.errors import PermanentError
from clipper.media import ffrun
from clipper.media.concat import SegmentFile


def extract_audio(src: Path, start: float, seconds: float, out: Path) -> Path:
    """[start, start + seconds) of `src`'s first audio stream (presentation timeline, as the cut
    uses) as 16 kHz mono PCM WAV; a source without audio gives a short silent file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two runs extracting the same clip's audio never truncate each other.
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part.wav")
    inp = ffmpeg.input(str(src), ss=f"{max(0.0, start):.6f}")
    stream = ffmpeg.output(inp["a:0?"], str(tmp), t=f"{seconds:.6f}", vn=None, ac=1, ar=16000,
                           acodec="pcm_s16le", f="wav")
    try:
        ffrun.run(stream, what="extract the clip's audio")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


SEGMENT_RATE = 16000


def segments_audio(files: Sequence[SegmentFile], start: float, end: float, out: Path) -> Path:
    """Wall-clock [start, end) of recorded segments as 16 kHz mono PCM WAV, decoded in this
    process (PyAV: no ffmpeg join and cut, a third of their cost), each segment's audio laid at
    its wall-clock start — to within the few tens of ms its audio may start after its video,
    which is close enough for the live quick pass (matching only; the stored transcript is cut
    by `extract_audio`). Silence where no segment covers."""
    import numpy as np

    total = max(0, int(round((end - start) * SEGMENT_RATE)))
    pcm = np.zeros(total, np.int16)
    for f in files:
        samples = _decoded(f.path)
        at = int(round((f.wall_start - start) * SEGMENT_RATE))
        lo, hi = max(0, -at), min(len(samples), total - at)
        if hi > lo:
            pcm[at + lo:at + hi] = samples[lo:hi]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part.wav")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SEGMENT_RATE)
            w.writeframes(pcm.tobytes())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _decoded(path: Path) -> Any:
    """A media file's first audio stream as 16 kHz mono int16 samples (none without audio)."""
    import av
    import numpy as np

    try:
        with av.open(str(path), options={"protocol_whitelist": "file,pipe"}) as box:
            if not box.streams.audio:
                return np.zeros(0, np.int16)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SEGMENT_RATE)
            chunks = []
            for frame in box.decode(box.streams.audio[0]):
                frame.pts = None
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise PermanentError(f"Cannot read the audio of {path.name}: {exc}") from exc
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
