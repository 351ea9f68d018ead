"""Test speech with known text at known times: espeak-ng sentences joined by silences."""

from __future__ import annotations

import re
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import ffmpeg
import numpy as np

from clipper.media import ffrun

RATE = 22050  # espeak-ng's native output rate
NEWS = (
    "Good evening, I am Maria Lopez and this is the evening news.",
    "The city council voted twelve to three on Tuesday to approve the new budget.",
    "Police said forty two people were evacuated from the station in London.",
    "John Smith, the mayor, promised three hundred new homes by next summer.",
    "Schools will stay closed for seven days after the storm.",
    "Our reporter David Miller spoke to the minister in Berlin this morning.",
    "The match ended two to one after ninety minutes of rain.",
)
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def speak(text: str, *, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """One sentence as int16 samples at RATE, leading and trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True).stdout
    # espeak-ng writes a streaming WAV header with bogus sizes: skip the 44-byte header.
    samples = np.frombuffer(wav[44:], dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return samples[loud[0]: loud[-1] + 1] if loud.size else samples[:0]


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def make_speech(out: Path, sentences: Sequence[str] = NEWS, *, lead: float = 1.0, gap: float = 1.2,
                tail: float = 1.0, video: bool = False, size: str = "320x180",
                speed: int = 150) -> tuple[Path, list[tuple[str, float]]]:
    """Write `out` (WAV, or MP4 with a testsrc2 picture when `video`); return it and the placements.

        path, placed = make_speech(tmp / "talk.mp4", SENTENCES, video=True)
        # placed == [(sentence, start_seconds), ...]; the first audible sample of each
        # sentence lies exactly at its start time.

    Sentence i starts `lead` seconds in (i = 0) or `gap` seconds after sentence i-1 ends.
    With no sentences the file is `lead + tail` seconds of silence.
    """
    out = Path(out)
    parts = [np.zeros(int(lead * RATE), np.int16)]
    placed: list[tuple[str, float]] = []
    cursor = len(parts[0])
    for i, text in enumerate(sentences):
        if i:
            parts.append(np.zeros(int(gap * RATE), np.int16))
            cursor += len(parts[-1])
        placed.append((text, cursor / RATE))
        parts.append(speak(text, speed=speed))
        cursor += len(parts[-1])
    parts.append(np.zeros(int(tail * RATE), np.int16))
    audio = np.concatenate(parts)
    wav_path = out if not video else out.with_suffix(".speech.wav")
    _write_wav(wav_path, audio)
    if video:
        seconds = len(audio) / RATE
        picture = ffmpeg.input(f"testsrc2=size={size}:rate=25:duration={seconds:.3f}", f="lavfi")
        sound = ffmpeg.input(str(wav_path))
        stream = ffmpeg.output(picture, sound, str(out), vcodec="libx264", preset="ultrafast",
                               pix_fmt="yuv420p", acodec="aac", shortest=None)
        ffrun.run(stream, what="mux test speech under testsrc2")
        wav_path.unlink()
    return out, placed


def number_words(n: int) -> str:
    """0..999999 in English words ("forty two", "three hundred five")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" " + number_words(rest) if rest else "")
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + (" " + number_words(rest) if rest else "")


def normalise(text: str) -> str:
    """Lowercase, no punctuation, numbers spelled out: so "42" and "forty-two" score equal."""
    text = re.sub(r"\$(\d+)", r"\1 dollars", text.lower())
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    tokens = re.sub(r"[^\w\s]|_", " ", text).split()
    return " ".join(number_words(int(t)) if t.isdigit() and len(t) < 7 else t for t in tokens)


def onset_errors(words: Sequence, placed: Sequence[tuple[str, float]]) -> list[float]:
    """For each placed sentence, transcript start of its first word minus where it was placed.

    The first word is the first whose start is at most 0.6 s before the placement (gaps
    between sentences are longer, so it cannot be the previous sentence's last word).
    """
    errors = []
    for _, at in placed:
        first = next((w for w in words if w.start >= at - 0.6), None)
        errors.append(float("inf") if first is None else round(first.start - at, 3))
    return errors
