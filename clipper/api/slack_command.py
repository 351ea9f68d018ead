"""Pure parts of the Slack app: the `/clip` command's words, and Slack's request signatures."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from clipper.errors import InvalidInput
from clipper.timecode import parse_timecode

#: Slack refuses nothing older; we refuse requests signed further than this from our clock,
#: either way, so a captured request cannot be replayed later (`SlackSeen` covers the window).
MAX_AGE_SECONDS = 300
SIGNATURE_VERSION = "v0"
#: Longer "times" are refused before they are read (Python will not read a 5,000-digit number).
MAX_TIME_CHARS = 32

USAGE = ("`/clip CHANNEL last 45 note…`, `/clip CHANNEL 19:42:10-19:43:05 note…`, "
         "`/clip URL 1:07-1:41 note…`, `/clip link CODE`, `/clip help`")
HELP = (
    "*Flag a moment with /clip*\n"
    "• `/clip bbc-news last 45 PM on nurses`: the last 45 seconds of a recorded channel "
    "(`last 2m` works too)\n"
    "• `/clip bbc-news 19:42:10-19:43:05 PM on nurses`: a channel by the clock, in your time zone "
    "(the dashboard's Account page sets it)\n"
    "• `/clip https://example.org/news.mp4 1:07-1:41 waiting lists`: a stretch of a video online "
    "(times like `67.5`, `1:07` or `01:01:15`)\n"
    "• `/clip link CODE`: link your Slack account to Clipper, with the code from the "
    "dashboard's Account page (*Link Slack*)\n"
    "The clip is posted back here when it is ready, or the reason if it fails."
)

_CHANNEL = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_WALL = re.compile(r"^\d{1,2}:\d{2}:\d{2}(?:\.\d+)?$")
_HOUR_MINUTE = re.compile(r"^\d{1,2}:\d{2}$")
_DASHES = re.compile(r"[-\u2013\u2014]")  # -, en dash, em dash (phones turn one into another)
_LAST = re.compile(r"^(\d+(?:\.\d+)?|\d+:\d{2}(?::\d{2})?(?:\.\d+)?)([a-z]*)$")
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
          "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0}
_LINK_CODE = re.compile(r"^[A-Za-z0-9-]{4,32}$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")
#: `<https://…>` or `<https://…|label>`: how Slack sends a link when the command escapes them.
_LINK_MARKUP = re.compile(r"^<(https?://[^|>\s]+)(?:\|[^>]*)?>$", re.I)
#: `<#C0123|bbc-news>`: a Slack channel mention, when a Slack channel has the same name.
_CHANNEL_MARKUP = re.compile(r"^<#[A-Z0-9]+\|([^>]*)>$")


class CommandError(InvalidInput):
    """The `/clip` text cannot be understood; `message` and `hint` are shown in Slack."""


@dataclass(frozen=True)
class ChannelClip:
    """`/clip CHANNEL last N` (`last` in seconds) or `/clip CHANNEL START-END` (wall-clock
    times as typed: the service reads them in the person's own time zone)."""

    channel: str
    last: float | None = None
    start: str | None = None
    end: str | None = None
    note: str = ""


@dataclass(frozen=True)
class UrlClip:
    """`/clip URL START-END`: seconds on the video's own timeline."""

    url: str
    start: float
    end: float
    note: str = ""


@dataclass(frozen=True)
class LinkSlack:
    """`/clip link CODE`: the one-time code from the dashboard's Account page."""

    code: str


@dataclass(frozen=True)
class Help:
    """`/clip`, `/clip help`."""


Command = ChannelClip | UrlClip | LinkSlack | Help


def slack_unescape(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>` in what a person typed (`&amp;` last)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _take(text: str) -> tuple[str, str]:
    """The first whitespace-separated word of `text` and the rest (stripped)."""
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def parse_command(text: str) -> Command:
    """What `/clip TEXT` asks for (TEXT as Slack sends it: `&`, `<`, `>` escaped, links maybe
    as `<url|label>`). CommandError, in words for Slack, for anything else; never another
    exception."""
    first, rest = _take(text or "")
    if not first or (first.lower() == "help" and not rest):
        return Help()
    if first.lower() == "link" and len(rest.split()) <= 1:
        return _link(rest)
    url = _url(first)
    if url is not None:
        return _url_clip(url, rest)
    return _channel_clip(_channel(first), rest)


def _link(code: str) -> LinkSlack:
    if not _LINK_CODE.match(code):
        raise CommandError("Give the code from the dashboard: `/clip link CODE`.",
                           "Open the dashboard's Account page and press *Link Slack* to get one.")
    return LinkSlack(code.upper())


def _url(word: str) -> str | None:
    """The URL a first word is, or None when it is not one."""
    markup = _LINK_MARKUP.match(word)
    if markup:
        return slack_unescape(markup[1])
    if word.lower().startswith(("http://", "https://")):
        return slack_unescape(word)
    return None


def _channel(word: str) -> str:
    markup = _CHANNEL_MARKUP.match(word)
    name = slack_unescape(markup[1] if markup else word).lstrip("#")
    if not _CHANNEL.match(name):
        raise CommandError(f"I don't know what `{name[:60]}` is: start with a recorded "
                           "channel's name or a video's https:// address.",
                           f"For example {USAGE}.")
    return name


def _interval(rest: str) -> tuple[str, str, str] | None:
    """`A-B note`, `A - B note` or `A to B note` as (A, B, note); None when `rest` does not
    open with two times joined so."""
    first, after = _take(rest)
    ends = _DASHES.split(first)
    if len(ends) == 2 and all(ends):
        return ends[0], ends[1], after
    middle, after2 = _take(after)
    if first and not _DASHES.search(first) and (_DASHES.fullmatch(middle)
                                                 or middle.lower() == "to"):
        second, note = _take(after2)
        if second:
            return first, second, note
    return None


def _channel_clip(channel: str, rest: str) -> ChannelClip:
    word, after = _take(rest)
    if word.lower() == "last":
        seconds, note = _last(after)
        return ChannelClip(channel, last=seconds, note=slack_unescape(note))
    span = _interval(rest)
    if span is None:
        raise CommandError(f"Say which moment of {channel}: the last N seconds or a start and "
                           "an end by the clock.",
                           f"For example `/clip {channel} last 45 note` or "
                           f"`/clip {channel} 19:42:10-19:43:05 note`.")
    start, end, note = span
    for value in (start, end):
        if _HOUR_MINUTE.match(value):
            raise CommandError(f"`{value}` has no seconds: {channel} is a recorded channel, "
                               "flagged by the clock in hours, minutes and seconds.",
                               f"For example `/clip {channel} {value}:00-…` or "
                               f"`/clip {channel} last 45`.")
        if not _WALL.match(value):
            raise CommandError(f"`{value[:40]}` is not a time of day; {channel} is a recorded "
                               "channel, flagged by the clock.",
                               f"For example `/clip {channel} 19:42:10-19:43:05` or "
                               f"`/clip {channel} last 45`.")
    return ChannelClip(channel, start=start, end=end, note=slack_unescape(note))


def _last(rest: str) -> tuple[float, str]:
    """`45`, `45s`, `2m`, `2 min`, `1:30` and the note after it."""
    word, note = _take(rest)
    found = _LAST.match(word.lower()) if len(word) <= MAX_TIME_CHARS else None
    if not found or found[2] not in _UNITS:
        said = f", not `{word[:40]}`" if word else ""
        raise CommandError(f"`last` needs a number of seconds{said}.",
                           "For example `last 45`, `last 90s` or `last 2m`.")
    number, unit = found[1], found[2]
    unit_word, after = _take(note)
    if not unit and unit_word.lower() in _UNITS:  # `last 2 min`: the unit as its own word
        unit, note = unit_word.lower(), after
    try:
        seconds = parse_timecode(number, field="last") * _UNITS[unit]
    except InvalidInput as exc:
        raise CommandError(exc.message, "For example `last 45`.") from None
    if seconds <= 0:
        raise CommandError("`last` must be more than 0 seconds.", "For example `last 45`.")
    return seconds, note


def _url_clip(url: str, rest: str) -> UrlClip:
    span = _interval(rest)
    if span is None:
        raise CommandError("Say which stretch of the video: a start and an end on its own "
                           "timeline.", f"For example `/clip {url[:200]} 1:07-1:41 note`.")
    start, end, note = span
    if max(len(start), len(end)) > MAX_TIME_CHARS:
        raise CommandError("Those times are too long to be times.", "For example `1:07-1:41`.")
    try:
        s = parse_timecode(start, field="Start")
        e = parse_timecode(end, field="End")
    except InvalidInput as exc:
        raise CommandError(exc.message, "Write times like `67.5`, `1:07` or `01:01:15`, "
                           "e.g. `1:07-1:41`.") from None
    if e <= s:
        raise CommandError(f"The end (`{end}`) must come after the start (`{start}`).",
                           "For example `1:07-1:41`.")
    return UrlClip(url, s, e, slack_unescape(note))


def _number(seconds: float) -> str:
    """Seconds as a plain decimal, to the millisecond: `45`, `67.5` (never `1e+06`)."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def command_text(command: Command) -> str:
    """The `/clip` text that asks for `command` (as a person types it, before Slack escapes
    it); `parse_command` reads it back to the same command."""
    if isinstance(command, Help):
        return "help"
    if isinstance(command, LinkSlack):
        return f"link {command.code}"
    if isinstance(command, UrlClip):
        words = [command.url, f"{_number(command.start)}-{_number(command.end)}"]
    elif command.last is not None:
        words = [command.channel, "last", f"{_number(command.last)}s"]
    else:
        words = [command.channel, f"{command.start}-{command.end}"]
    return " ".join(words + ([command.note] if command.note else []))


# ---- request signatures -----------------------------------------------------------------------

class RequestRefused(Exception):
    """A request that is not provably Slack's, now: no or a wrong signature, a stale time."""


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}` under the app's signing secret."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_request(secret: str, timestamp: str | None, body: bytes, signature: str | None, *,
                   now: float) -> None:
    """RequestRefused unless `signature` is Slack's for this `timestamp` and raw `body`, and
    `timestamp` (Unix seconds) is within MAX_AGE_SECONDS of `now` (either way)."""
    if not secret:
        raise RequestRefused("no signing secret is configured")
    if not timestamp or not signature:
        raise RequestRefused("the request is not signed")
    if not _TIMESTAMP.match(timestamp):
        raise RequestRefused("the request's timestamp is not a time")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise RequestRefused("the request's timestamp is too old (or in the future)")
    expected = slack_signature(secret, timestamp, body)
    # Bytes on both sides: compare_digest refuses str with non-ASCII characters (a header may
    # carry any), and bytes compare in constant time whatever they hold.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise RequestRefused("the signature is wrong")
