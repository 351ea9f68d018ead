"""Speech to text: one Engine interface, faster-whisper (default) and openai-whisper behind it."""

from clipper.transcribe.convert import (
    convert_ct2_to_openai,
    convert_shipped_model,
    default_openai_checkpoint_path,
)
from clipper.transcribe.engine import Engine, load_count
from clipper.transcribe.loader import get_engine

__all__ = [
    "Engine",
    "convert_ct2_to_openai",
    "convert_shipped_model",
    "default_openai_checkpoint_path",
    "get_engine",
    "load_count",
]
