"""Plain dataclasses that cross module boundaries (never raw yt-dlp or ffprobe dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a local media file."""

    path: Path
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""
    format_name: str = ""
    start_time: float = 0.0
    sar: float = 1.0  # pixel aspect: anamorphic SD broadcasts (720x576 shown as 16:9) have 64/45
    coding: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """The video's codec_name, profile, pix_fmt, field_order, has_b_frames, level and time_base
    as ffprobe names them: what a smart cut's re-encoded edges must match."""

    @property
    def display_width(self) -> int:
        """Width in square pixels (even): what a player shows."""
        width = round(self.width * self.sar)
        return width - width % 2


@dataclass(frozen=True)
class FetchedSection:
    """A downloaded piece of a source: file time t corresponds to source time `offset + t`."""

    path: Path
    offset: float
    duration: float
    title: str = ""
    info: MediaInfo | None = None
    """What ffprobe said of the file, when the fetch probed it (the cut then need not)."""


@dataclass(frozen=True)
class CutResult:
    """A finished cut: `method` is "smart" (partial re-encode) or "reencode" (the fallback)."""

    path: Path
    method: str
    duration: float
    edges_lent: int = 0
    """Re-encoded edges an earlier cut of the source lent this one (see `media.cut.EdgeStore`)."""


@dataclass(frozen=True)
class Word:
    """One word on the clip's timeline (seconds)."""

    start: float
    end: float
    word: str


@dataclass(frozen=True)
class Segment:
    """One transcript segment on the clip's timeline, with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """A whole transcript of one clip."""

    text: str
    language: str
    engine: str
    model: str
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]
