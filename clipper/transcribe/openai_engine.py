"""openai-whisper (PyTorch) engine: optional extra, loaded from a local checkpoint."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipper.domain import Segment, Transcript, Word
from clipper.errors import InvalidInput
from clipper.settings import Settings
from clipper.transcribe.convert import default_openai_checkpoint_path
from clipper.transcribe.engine import Progress, cached_model
from clipper.transcribe.speech import load_audio, place_segments, speech_regions

NAME = "openai-whisper"
_FIX = "Run `clipper models convert-openai` to make one from the shipped tiny.en model."


def checkpoint_path(settings: Settings) -> Path:
    """The checkpoint file `whisper_model` names, or the converted tiny.en under CLIPPER_HOME."""
    path = (Path(settings.whisper_model).expanduser() if settings.whisper_model
            else default_openai_checkpoint_path(settings))
    if not path.is_file():
        raise InvalidInput(f"No openai-whisper checkpoint at {path}.", _FIX)
    return path


def import_whisper() -> Any:
    """The `whisper` module, or InvalidInput saying how to install the extra."""
    try:
        import whisper
    except ImportError as exc:
        raise InvalidInput(
            "CLIPPER_WHISPER_ENGINE=openai-whisper but openai-whisper is not installed.",
            "Install a CPU torch first, then `pip install 'clipper[openai-whisper]'` "
            "(see scripts/setup.sh), or use CLIPPER_WHISPER_ENGINE=faster-whisper.",
        ) from exc
    return whisper


def load_model(path: Path, device: str, threads: int) -> Any:
    """Load a checkpoint; give it tiny.en's alignment heads when its dimensions are tiny.en's."""
    whisper = import_whisper()
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        model = whisper.load_model(str(path), device=device)
    except (RuntimeError, KeyError, OSError, EOFError) as exc:
        raise InvalidInput(f"{path} is not a usable openai-whisper checkpoint ({exc}).",
                           _FIX) from exc
    if _dims(model) == _TINY_EN_DIMS:
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    return model


_TINY_EN_DIMS = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
                 "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
                 "n_text_head": 6, "n_text_layer": 4}


def _dims(model: Any) -> dict[str, int]:
    return {k: getattr(model.dims, k) for k in _TINY_EN_DIMS}


@dataclass
class OpenAIWhisperEngine:
    """Same contract as the faster-whisper engine; about 2.4x slower at beam 5 on CPU."""

    model: Any
    model_name: str
    beam_size: int = 5
    device: str = "cpu"
    name: str = NAME
    # Decoding installs kv-cache hooks on the shared model's modules: one decode at a time.
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIWhisperEngine:
        import_whisper()
        path = checkpoint_path(settings)
        key = (NAME, str(path.resolve()), settings.whisper_device, settings.whisper_threads)
        model = cached_model(key, lambda: load_model(path, settings.whisper_device,
                                                     settings.whisper_threads))
        label = "tiny.en" if _dims(model) == _TINY_EN_DIMS else path.stem
        return cls(model=model, model_name=label, beam_size=settings.whisper_beam_size,
                   device=settings.whisper_device)

    def transcribe(self, media: Path, *, progress: Progress | None = None,
                   batched: bool = True, span: tuple[float, float] | None = None) -> Transcript:  # noqa: ARG002 - one pass at a time
        """Transcript of `media`; a file with no speech (or no audio) gives an empty one."""
        audio = load_audio(media, span)
        regions = speech_regions(audio.samples)
        english_only = not self.model.is_multilingual
        segments: list[Segment] = []
        language = "en" if english_only else ""
        if regions:  # on silence Whisper without VAD tends to invent words
            import whisper

            with self._busy:
                result = whisper.transcribe(
                    self.model, audio.samples, word_timestamps=True, verbose=None,
                    language="en" if english_only else None, fp16=self.device == "cuda",
                    beam_size=self.beam_size if self.beam_size > 1 else None)
            language = result.get("language") or language
            raw = [(float(s["start"]), float(s["end"]), s["text"],
                    [Word(float(w["start"]), float(w["end"]), w["word"])
                     for w in s.get("words", ())])
                   for s in result["segments"]]
            segments = place_segments(raw, regions, audio.offset)
        if progress:
            progress(1.0)  # openai-whisper offers no per-segment hook
        return Transcript(text=" ".join(s.text for s in segments).strip(), language=language,
                          engine=self.name, model=self.model_name, segments=tuple(segments))

