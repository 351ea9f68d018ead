"""Silero's speech probabilities are computed once per audio for the speech regions and the
batched pass's VAD filter, with the same regions as when each ran the model itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipper.transcribe.speech import SharedProbabilities, load_audio, speech_regions


class Counted:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, audio: np.ndarray, num_samples: int = 512) -> np.ndarray:
        self.calls += 1
        return audio.reshape(-1, num_samples).mean(axis=1)


def test_the_same_samples_are_answered_from_memory_others_are_heard():
    model = Counted()
    shared = SharedProbabilities(model)
    audio = np.linspace(0, 1, 4096, dtype=np.float32)
    first = shared(audio)
    again = shared(audio.copy())  # the VAD pads the samples into a new array each time
    assert model.calls == 1 and again is first
    other = audio.copy()
    other[-1] = 0.5
    assert not np.array_equal(shared(other), first) and model.calls == 2
    shared(other, num_samples=256)  # other arguments: asked again
    assert model.calls == 3


@pytest.mark.services
def test_the_regions_and_the_batched_vad_run_the_model_once_and_see_what_it_says(news_clip):
    from faster_whisper import vad

    samples = load_audio(Path(news_clip[0])).samples[:-1000]  # audio no other test gave it
    speech_regions(samples)  # makes faster-whisper's VAD use the shared model
    shared = vad.get_vad_model()
    assert isinstance(shared, SharedProbabilities)
    real, calls = shared.model, []

    def counted(audio: np.ndarray, *args, **kwargs) -> np.ndarray:
        calls.append(len(audio))
        return real(audio, *args, **kwargs)

    shared.model = counted
    try:
        regions = speech_regions(samples[:-512])
        batched = vad.get_speech_timestamps(samples[:-512], vad.VadOptions(
            max_speech_duration_s=30, min_silence_duration_ms=160))  # as the batched pass asks
    finally:
        shared.model = real
    assert len(calls) == 1 and regions and batched
    padded = np.pad(samples[:-512], (0, 512 - (len(samples) - 512) % 512))
    # What it remembered is what the model says (so the regions drawn from it are too).
    assert np.array_equal(shared(padded), real(padded))
