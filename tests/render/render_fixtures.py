"""Constants and helpers shared by the render tests: spoken text, word timings, ffmpeg."""

from __future__ import annotations

import subprocess

from clipper.domain import Word

SPEECH = ("the minister said the budget would be published next week "
          "and that the council must act now on housing and transport")


def _words(start: float, texts: str, step: float = 0.5) -> list[Word]:
    return [Word(start + i * step, start + i * step + 0.4, t) for i, t in enumerate(texts.split())]


# Two cues: A shown 1.0-2.9 s, B shown 5.0-6.9 s on the clip's timeline; silence in between.
WORDS = _words(1.0, "council votes on budget") + _words(5.0, "homes promised by summer")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True)
