"""Turning what a volunteer typed (a URL or a file path) into a checked source key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from clipper.config import Settings
from clipper.errors import InvalidInput
from clipper.media.probe import probe_media
from clipper.urls import check_url, normalize_url


@dataclass(frozen=True)
class SourceRef:
    kind: str  # url | file
    key: str
    location: str
    title: str = ""


def looks_like_url(text: str) -> bool:
    return "://" in text or text.lower().startswith(("www.", "http"))


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, streamed (never the whole programme in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_source(text: str, settings: Settings) -> SourceRef:
    """Check a URL's safety or a file's media-ness; InvalidInput before anything is stored."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("No source given.", "Give a URL (https://…) or a path to a recording.")
    if looks_like_url(text):
        check_url(text, settings.url_allowlist)
        return SourceRef("url", "url:" + normalize_url(text), text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise InvalidInput(f"{text} is neither a URL nor an existing file.",
                           "Give an http(s) URL or the path of a video/audio recording.")
    info = probe_media(path)
    if info.duration <= 0:
        raise InvalidInput(f"{path.name} has no duration; it does not look like a recording.")
    return SourceRef("file", "file:" + file_digest(path), str(path.resolve()), path.stem)
