"""Choosing the engine the settings ask for, built once per process through the engine cache."""

from __future__ import annotations

from clipper.settings import Settings
from clipper.transcribe.engine import Engine, cached_engine


def engine_key(settings: Settings) -> tuple:
    # An unset openai-whisper model means "the converted one under CLIPPER_HOME": home matters.
    model = settings.whisper_model or (str(settings.home)
                                       if settings.whisper_engine == "openai-whisper" else "")
    return (settings.whisper_engine, model, settings.whisper_device,
            settings.whisper_threads, settings.whisper_beam_size)


def get_engine(settings: Settings) -> Engine:
    """The engine `settings` ask for; its model is loaded once per process and reused.

    Thread-safe. In a process forked after loading, the model is loaded afresh rather
    than reused (see FACTS.md: ctranslate2 does not survive fork).
    """
    return cached_engine(engine_key(settings), lambda: _build(settings))


def _build(settings: Settings) -> Engine:
    if settings.whisper_engine == "openai-whisper":
        from clipper.transcribe.openai_engine import OpenAIWhisperEngine

        return OpenAIWhisperEngine.from_settings(settings)
    from clipper.transcribe.faster import FasterWhisperEngine

    return FasterWhisperEngine.from_settings(settings)
