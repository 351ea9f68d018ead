"""Audio for the engines: decode to 16 kHz mono float32, find speech, snap word times to it."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from clipper.domain import Segment, Word
from clipper.errors import PermanentError
from clipper.subtitles import SENTENCE_END

SAMPLE_RATE = 16000
# Like ffrun: a media file must never make the decoder open network protocols.
_OPEN_OPTIONS = {"protocol_whitelist": "file,pipe"}


@dataclass(frozen=True)
class Audio:
    """Decoded samples; sample 0 lies `offset` seconds into the media's timeline."""

    samples: np.ndarray
    offset: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def load_audio(media: Path, span: tuple[float, float] | None = None) -> Audio:
    """Decode the first audio stream with PyAV (about 2x faster than an ffmpeg pipe here).

    `span` (start, seconds) on the media's presentation timeline (ffmpeg's `-ss`, as the cut
    uses): only that part, sample 0 at `start` (offset > 0 where the audio begins later); far
    into a file it is sought, so a long programme is never decoded whole. A file without an
    audio stream gives no samples; a missing or unreadable file is a PermanentError.
    """
    try:
        with av.open(str(media), mode="r", metadata_errors="ignore", options=_OPEN_OPTIONS) as box:
            if not box.streams.audio:
                return Audio(np.zeros(0, np.float32))
            stream = box.streams.audio[0]
            if span is not None:
                return _span(box, stream, *span)
            offset = _stream_offset(box, stream)
            pcm = _pcm(_valid_frames(box, stream))
    except av.error.FileNotFoundError as exc:
        raise PermanentError(f"No media file at {media}.") from exc
    except av.error.FFmpegError as exc:
        raise PermanentError(f"Cannot read {media} as media: {exc}") from exc
    return Audio(pcm, offset)


#: A span starting further in than this seeks rather than decodes its way there.
SEEK_AFTER = 30.0


def _span(box: av.container.InputContainer, stream: av.audio.AudioStream, start: float,
          seconds: float) -> Audio:
    origin = (box.start_time or 0) / 1_000_000  # where the -ss timeline's zero lies
    tb = stream.time_base
    if start > SEEK_AFTER and tb:  # a little early: the seek lands on a packet at or before
        box.seek(int((start - 1.0 + origin) / tb), stream=stream)
    first: float | None = None
    frames = []
    for frame in _valid_frames(box, stream):
        at = float(frame.pts * tb) - origin if frame.pts is not None and tb else None
        if first is None:
            first = at if at is not None else (0.0 if start <= SEEK_AFTER else start)
        if at is not None and at >= start + seconds:
            break
        frames.append(frame)
    if first is None:
        return Audio(np.zeros(0, np.float32))
    pcm, lead = _pcm(frames), round((start - first) * SAMPLE_RATE)
    size = round(seconds * SAMPLE_RATE)
    if lead >= 0:
        return Audio(pcm[lead:lead + size])
    return Audio(pcm[:size + lead], -lead / SAMPLE_RATE)


def _pcm(frames: Iterable[av.AudioFrame]) -> np.ndarray:
    """Frames resampled to 16 kHz mono float32."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    for frame in itertools.chain(frames, [None]):
        if frame is not None:
            frame.pts = None  # the resampler only needs the samples
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def _stream_offset(box: av.container.InputContainer, stream: av.audio.AudioStream) -> float:
    """Where the audio starts relative to the start of the file (usually 0)."""
    if stream.start_time is None or stream.time_base is None or box.start_time is None:
        return 0.0
    return max(0.0, float(stream.start_time * stream.time_base) - box.start_time / 1_000_000)


def _valid_frames(box: av.container.InputContainer,
                  stream: av.audio.AudioStream) -> Iterator[av.AudioFrame]:
    frames = box.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue  # one damaged packet should not lose the whole transcript
        yield frame


class SharedProbabilities:
    """faster-whisper's Silero model, remembering its answer for the last samples it was given.

    The speech regions and the batched pass's VAD filter ask about the same audio (with other
    options: the probabilities are the same, the regions drawn from them differ), and running
    the model is most of a VAD's cost: ~0.12 CPU s a minute of audio, on the critical path of
    every clip. The samples are known by a digest, not kept."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._last: tuple[tuple[Any, ...], np.ndarray] | None = None

    def __call__(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        audio = np.ascontiguousarray(audio)
        key = (audio.shape, str(audio.dtype), args, tuple(sorted(kwargs.items())),
               hashlib.blake2b(memoryview(audio).cast("B"), digest_size=16).digest())
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
        probs = self.model(audio, *args, **kwargs)
        with self._lock:
            self._last = (key, probs)
        return probs


def _share_vad_model() -> None:
    """Make faster-whisper's VAD (which finds its model through `vad.get_vad_model`, a cached
    function) use one SharedProbabilities; a faster-whisper without that function keeps its
    own."""
    from faster_whisper import vad

    current = getattr(vad, "get_vad_model", None)
    if current is None or getattr(current, "shared", False):
        return
    shared = SharedProbabilities(current())

    def get_vad_model() -> SharedProbabilities:
        return shared

    get_vad_model.shared = True  # type: ignore[attr-defined]
    vad.get_vad_model = get_vad_model


def speech_regions(samples: np.ndarray) -> list[tuple[float, float]]:
    """Speech (start, end) in seconds found by Silero VAD, tight (30 ms pad, 300 ms gaps)."""
    if samples.size == 0:
        return []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    _share_vad_model()
    opts = VadOptions(min_silence_duration_ms=300, speech_pad_ms=30)
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE)
            for r in get_speech_timestamps(samples, opts, sampling_rate=SAMPLE_RATE)]


def snap_to_speech(words: Sequence[Word], regions: Sequence[tuple[float, float]], *,
                   max_shift: float = 1.0) -> list[Word]:
    """Fit word times to the speech regions Silero VAD found.

    Whisper's alignment often starts the first word after a pause a few hundred ms off
    (early, inside the silence, or late) and lets words run on into silence; captions
    then flash up before anyone speaks. Each word is trimmed to the region it overlaps
    most, and the first word heard in a region starts where that region starts (unless
    that is more than `max_shift` seconds earlier: then words were probably missed).
    Words that overlap no region are left as they are. Pass all words of a transcript.
    """
    out = []
    opened: set[int] = set()
    for w in words:
        # Whisper emits zero-length words; they still lie somewhere
        end = max(w.end, w.start + 0.01)
        overlaps = [min(end, r[1]) - max(w.start, r[0]) for r in regions]
        best = max(range(len(regions)), key=overlaps.__getitem__, default=None)
        if best is None or overlaps[best] <= 0:
            out.append(w)
            continue
        region_start, region_end = regions[best]
        start, end = max(w.start, region_start), min(w.end, region_end)
        if best not in opened and start - region_start <= max_shift:
            start = region_start
        opened.add(best)
        out.append(Word(round(start, 3), round(end, 3), w.word))
    return out


RawSegment = tuple[float, float, str, Sequence[Word]]

def skipped_speech(regions: Sequence[tuple[float, float]], words: Sequence[Word], *,
                   shortest: float = 1.5, heard: float = 0.3) -> list[tuple[float, float]]:
    """Speech regions of at least `shortest` s whose words cover less than `heard` of them:
    speech Whisper jumped over (normal speech is covered nearly end to end by its words)."""
    out = []
    for a, b in regions:
        if b - a < shortest:
            continue
        covered = sum(max(0.0, min(b, w.end) - max(a, w.start)) for w in words)
        if covered < heard * (b - a):
            out.append((a, b))
    return out


def replace_region(raw: Sequence[RawSegment], region: tuple[float, float],
                   again: Sequence[RawSegment]) -> list[RawSegment]:
    """`raw` with the words of `region` (by their middle) replaced by those heard `again`, in
    time order; unchanged when `again` has no words (the region held no speech after all)."""
    if not any(words for *_, words in again):
        return list(raw)
    a, b = region
    kept: list[RawSegment] = []
    for start, end, text, words in raw:
        rest = [w for w in words if not a <= (w.start + w.end) / 2 < b]
        if len(rest) == len(words):
            kept.append((start, end, text, words))
        elif rest:
            kept.append(_joined(rest))
    return sorted([*kept, *(seg for seg in again if seg[3])], key=lambda seg: seg[0])


def sentence_segments(raw: Sequence[RawSegment], *, longest: float = 12.0) -> list[RawSegment]:
    """Engine segments longer than `longest` s split after sentence ends (or, in a sentence
    that runs on, before the word that would take it past `longest`).

    Batched Whisper returns one segment per ≤ 30 s chunk; reviewers correct, search and read
    transcripts a sentence at a time. Every word is kept once, in order; a segment without
    words is kept as it is.
    """
    out: list[RawSegment] = []
    for start, end, text, words in raw:
        if not words or end - start <= longest:
            out.append((start, end, text, words))
            continue
        piece: list[Word] = []
        for w in words:
            if piece and w.end - piece[0].start > longest:
                out.append(_joined(piece))
                piece = []
            piece.append(w)
            if w.word.strip().endswith(SENTENCE_END):
                out.append(_joined(piece))
                piece = []
        if piece:
            out.append(_joined(piece))
    return out


def _joined(words: Sequence[Word]) -> RawSegment:
    return (words[0].start, words[-1].end, "".join(w.word for w in words).strip(), tuple(words))


def place_segments(raw: Sequence[RawSegment], regions: Sequence[tuple[float, float]],
                   offset: float) -> list[Segment]:
    """Engine segments (start, end, text, words) -> Segments on the media timeline.

    Words are stripped and snapped to speech; a segment spans its words when it has any.
    """
    kept = [(start, end, text.strip(),
             [Word(w.start, w.end, w.word.strip()) for w in words if w.word.strip()])
            for start, end, text, words in raw if text.strip()]
    snapped = iter(snap_to_speech([w for *_, words in kept for w in words], regions))
    segments = []
    for start, end, text, words in kept:
        moved = [next(snapped) for _ in words]
        placed = tuple(Word(round(w.start + offset, 3), round(w.end + offset, 3), w.word)
                       for w in moved)
        if placed:
            start, end = placed[0].start, placed[-1].end
        else:
            start, end = round(start + offset, 3), round(end + offset, 3)
        segments.append(Segment(start=start, end=end, text=text, words=placed))
    return segments
