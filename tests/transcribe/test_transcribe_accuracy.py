"""The default engine on generated speech: what it hears, when, and the captions it feeds."""

from __future__ import annotations

import jiwer

from clipper.subtitles import build_cues
from testmedia.speechgen import normalise, onset_errors

# Measured on the seven NEWS sentences (espeak-ng, tiny.en int8, beam 5): WER 0.024
# (2 of 83 words: "two to one" -> "due to well"); openai-whisper greedy: 0.036.
# Allowed: 0.10 (about 4x: int8 kernels, and so words, differ a little between CPUs).
MAX_WER = 0.10


def test_word_error_rate_is_low(news_run, news_clip) -> None:
    transcript, _ = news_run
    reference = normalise(" ".join(text for text, _ in news_clip[1]))
    wer = jiwer.wer(reference, normalise(transcript.text))
    assert wer <= MAX_WER, (wer, transcript.text)
    assert transcript.engine == "faster-whisper" and transcript.model == "tiny.en"
    assert transcript.language == "en"


def test_each_sentence_starts_on_time(news_run, news_clip) -> None:
    words = news_run[0].words()
    errors = onset_errors(words, news_clip[1])
    # Measured: |error| <= 0.073 s (words are snapped to Silero VAD onsets).
    assert all(abs(e) <= 0.3 for e in errors), errors


def test_words_are_ordered_with_positive_durations(news_run) -> None:
    transcript, _ = news_run
    words = transcript.words()
    assert len(words) >= 70
    for a, b in zip(words, words[1:], strict=False):
        assert a.start <= b.start and a.end <= b.start + 0.05, (a, b)
    assert all(w.end >= w.start and w.word == w.word.strip() and w.word for w in words)
    for seg in transcript.segments:
        assert seg.start == seg.words[0].start and seg.end == seg.words[-1].end


def test_progress_rises_to_one(news_run) -> None:
    _, seen = news_run
    assert len(seen) >= 3
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1


def test_cues_from_real_words_respect_limits(news_run) -> None:
    cues = build_cues(news_run[0].words())
    assert len(cues) >= 7  # at least one per sentence
    for cue in cues:
        assert 0 < cue.end - cue.start <= 6.0
        assert len(cue.lines) <= 2 and all(len(line) <= 42 for line in cue.lines)
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start
