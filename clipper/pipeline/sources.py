"""Source kinds: what a flag can point at, how each is checked, and how each yields a section.

A kind checks what a person gave before anything is stored (`check`) and later, in the fetch
stage, brings the flagged section `[start, end]` to a local file (`section`, given the Context:
a recorded channel's sections come from segments the database indexes). The fetch stage only
ever calls those two, so a new kind is one more class in `SOURCE_KINDS`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clipper.context import Context
from clipper.domain import FetchedSection
from clipper.errors import ClipperError, InvalidInput, PermanentError
from clipper.settings import Settings


@dataclass(frozen=True)
class SourceRef:
    """A checked source, ready to be stored: its kind, dedupe key, location and title."""

    kind: str
    key: str
    location: str
    title: str = ""


@dataclass(frozen=True)
class Section:
    """A section on local disk, the source-timeline range it is known to cover, and the parts
    of the flagged interval the source lacks (a recorded channel's gaps; else none)."""

    media: FetchedSection
    covers: tuple[float, float]
    gaps: tuple[tuple[float, float], ...] = ()


class SourceKind(Protocol):
    """One kind of source."""

    name: str

    def claims(self, text: str) -> bool:
        """Whether what a person typed is meant as this kind (a URL, a path...)."""
        ...

    def check(self, text: str, settings: Settings) -> SourceRef:
        """InvalidInput unless `text` is a usable source of this kind; nothing is stored."""
        ...

    def section(self, location: str, start: float, end: float, *, ctx: Context,
                dest_dir: Path) -> Section:
        """The section `[start, end]` (padded as the kind sees fit) as a local file.

        May raise StageDeferred when the section cannot exist yet (a live recording)."""
        ...


def looks_like_url(text: str) -> bool:
    return "://" in text or text.lower().startswith(("www.", "http"))


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, streamed (never the whole programme in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class UrlSource:
    """Anything yt-dlp handles, fetched section-only through the guard proxy."""

    name = "url"

    def claims(self, text: str) -> bool:
        return looks_like_url(text)

    def check(self, text: str, settings: Settings) -> SourceRef:
        from clipper.net.urls import check_url, normalize_url

        check_url(text, settings.url_allowlist)
        return SourceRef(self.name, "url:" + normalize_url(text), text)

    def section(self, location: str, start: float, end: float, *, ctx: Context,
                dest_dir: Path) -> Section:
        from clipper.media.fetch import fetch_section
        from clipper.net.guard import GuardProxy

        settings = ctx.settings
        # Every request yt-dlp and ffmpeg make (redirects, HLS segments) goes through the
        # guard, which re-checks the address it actually connects to.
        with GuardProxy(settings.url_allowlist) as proxy:
            try:
                media = fetch_section(location, start, end, dest_dir=dest_dir,
                                      pad=settings.pad_seconds, proxy=proxy.url,
                                      tries=settings.fetch_tries)
            except ClipperError:
                _raise_refusal(proxy)
                raise
            _raise_refusal(proxy)  # ffmpeg can exit 0 after a refused segment was skipped
        lo = max(0.0, start - settings.pad_seconds)
        return Section(media, (lo, media.offset + media.duration))


def _raise_refusal(proxy: object) -> None:
    err = proxy.unsafe_error()  # type: ignore[attr-defined]
    if err is not None:
        raise PermanentError(err.message, err.hint)


class FileSource:
    """A recording already on the server's disk: the CLI operator's paths, and uploads."""

    name = "file"

    def claims(self, text: str) -> bool:
        return not looks_like_url(text)

    def check(self, text: str, settings: Settings) -> SourceRef:
        from clipper.media.probe import probe_media

        path = Path(text).expanduser()
        if not path.is_file():
            raise InvalidInput(f"{text} is neither a URL nor an existing file.",
                               "Give an http(s) URL or the path of a video/audio recording.")
        info = probe_media(path)
        if info.duration <= 0:
            raise InvalidInput(f"{path.name} has no duration; it does not look like a recording.")
        return self.ref(path)

    def ref(self, path: Path) -> SourceRef:
        """The SourceRef of a file already known to be a recording (an upload)."""
        return SourceRef(self.name, "file:" + file_digest(path), str(path.resolve()), path.stem)

    def section(self, location: str, start: float, end: float, *, ctx: Context,
                dest_dir: Path) -> Section:
        from clipper.media.fetch import local_section

        media = local_section(Path(location))
        return Section(media, (0.0, media.duration))


CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def check_channel_name(name: str) -> str:
    """The name, stripped; InvalidInput unless it is 1-40 letters, digits, '-' or '_'."""
    text = (name or "").strip()
    if not CHANNEL_NAME.match(text):
        raise InvalidInput(f"{name!r} is not a channel name.",
                           "A channel name is 1-40 letters, digits, '-' or '_', e.g. bbc-news.")
    return text


class ChannelSource:
    """A live channel Clipper records: sections come from its stored segments, not the network.

    Flagged by name (`flag_channel`, `clipper flag --channel`), never by typing into the source
    field, so it claims no typed text. Its timeline is Unix time: start/end are wall-clock.
    """

    name = "channel"

    def claims(self, text: str) -> bool:
        return False

    def check(self, text: str, settings: Settings) -> SourceRef:
        name = check_channel_name(text)
        return SourceRef(self.name, f"channel:{name}", name, name)

    def section(self, location: str, start: float, end: float, *, ctx: Context,
                dest_dir: Path) -> Section:
        from clipper.pipeline.channel_media import channel_section

        got = channel_section(ctx, location, start, end, dest_dir=dest_dir)
        return Section(got.media, got.covers, got.gaps)


#: Every source kind by name (the `kind` stored on a source row), in the order `resolve_source`
#: asks them whether they claim what was typed.
SOURCE_KINDS: dict[str, SourceKind] = {
    kind.name: kind for kind in (UrlSource(), FileSource(), ChannelSource())}
#: Kinds only the local operator may name by typing (a path on the server).
SERVER_SIDE_KINDS = frozenset({"file"})


def resolve_source(text: str, settings: Settings, *, server_paths: bool = False) -> SourceRef:
    """Check what a person gave as a source; InvalidInput before anything is stored.

    Paths on the server are for the local operator (`server_paths`); to everyone else a
    non-URL is refused with the same words whether or not such a file exists.
    """
    text = (text or "").strip()
    if not text:
        raise InvalidInput("No source given.", "Give a URL (https://…) or a recording.")
    for kind in SOURCE_KINDS.values():
        if not kind.claims(text):
            continue
        if kind.name in SERVER_SIDE_KINDS and not server_paths:
            raise InvalidInput(f"{text!r} is not a URL.",
                               "Give an http(s) URL, or upload the recording.")
        return kind.check(text, settings)
    raise InvalidInput(f"{text!r} is not a source Clipper knows.", "Give an http(s) URL.")


def source_kind(name: str) -> SourceKind:
    try:
        return SOURCE_KINDS[name]
    except KeyError:
        raise PermanentError(f"Unknown source kind {name!r}.") from None
