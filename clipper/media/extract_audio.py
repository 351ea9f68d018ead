"""Audio windows: the part of a section Whisper needs, decoded to 16 kHz mono WAV."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import ffmpeg

from clipper.media import ffrun


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
