"""Speech clips and engines built once per session for the transcription tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper.domain import Transcript
from clipper.settings import Settings
from clipper.transcribe import convert_shipped_model, get_engine
from testmedia.speechgen import NEWS, make_speech


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def news_clip(speech_dir: Path) -> tuple[Path, list[tuple[str, float]]]:
    """About 38 s: seven news sentences under a 320x180 testsrc2 picture (H.264 + AAC)."""
    return make_speech(speech_dir / "news.mp4", NEWS, video=True)


@pytest.fixture(scope="session")
def short_clip(speech_dir: Path) -> tuple[Path, list[tuple[str, float]]]:
    """About 15 s, three sentences, audio only."""
    return make_speech(speech_dir / "short.wav", NEWS[1:4], lead=0.7, gap=1.0)


@pytest.fixture(scope="session")
def one_sentence(speech_dir: Path) -> tuple[Path, list[tuple[str, float]]]:
    return make_speech(speech_dir / "one.wav", NEWS[4:5], lead=0.5, tail=0.5)


@pytest.fixture(scope="session")
def silent_clip(speech_dir: Path) -> Path:
    path, placed = make_speech(speech_dir / "silent.mp4", [], lead=4.0, tail=0.0, video=True)
    assert placed == []
    return path


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clipper-home")


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings.from_env({"CLIPPER_HOME": str(home)})


@pytest.fixture(scope="session")
def news_run(settings: Settings, news_clip) -> tuple[Transcript, list[float]]:
    """The default engine's transcript of the news clip, and the progress values it reported."""
    seen: list[float] = []
    transcript = get_engine(settings).transcribe(news_clip[0], progress=seen.append)
    return transcript, seen


@pytest.fixture(scope="session")
def openai_settings(home: Path) -> Settings:
    """openai-whisper on tiny.en converted from the shipped CTranslate2 model (into tmp)."""
    convert_shipped_model(Settings.from_env({"CLIPPER_HOME": str(home)}))
    return Settings.from_env({"CLIPPER_HOME": str(home), "CLIPPER_WHISPER_ENGINE": "openai-whisper",
                              "CLIPPER_WHISPER_BEAM_SIZE": "1"})
