"""Broadcast captions as a live transcript: WebVTT, CEA-608 and teletext on the wall clock.

Pure helpers for the channel recorder (no network, no subprocess, no database):

- `subtitle_rendition` finds the WebVTT subtitle rendition (EXT-X-MEDIA TYPE=SUBTITLES) of an
  HLS master playlist; `parse_vtt` reads one WebVTT segment (cues and its X-TIMESTAMP-MAP);
  `place_vtt` puts its cues on the wall clock, through the video's PTS (RFC 8216 section 3.5: a
  cue time maps to the MPEG-TS timestamp the map names; no map means cue time 0 is PTS 0) or,
  for cues timed from their own segment, the segment's EXT-X-PROGRAM-DATE-TIME.
- `CaptionDeduper` drops cues repeated across segments and the lines roll-up captions repeat.
- `spread_words` gives a caption's words times: captions carry none per word, so each word
  gets a share of the cue's time in proportion to its length in characters (plus one for the
  space); roll-up and paint-on 608 captions do better, timing each word by when it arrived.
- `TsCaptions` reads in-band captions from recorded MPEG-TS segments, keeping its state across
  them: CEA-608 (field 1, CC1) from ATSC A/53 `GA94` user data in H.264 SEI or MPEG-2 user
  data, and DVB teletext subtitle pages (EN 300 472 / ETS 300 706). CEA-708 service blocks
  (cc_type 2/3) are not decoded; most broadcasters carry 608 inside 708 as well, and that is read.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import m3u8
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from clipper.media.h264 import unescape
from clipper.media.live import (
    PTS_HZ,
    PTS_WRAP,
    SYNC_BYTE,
    TS_PACKET,
    _payload_start,
    _section,
    parse_pat,
    parse_pmt,
    pts_delta,
)

SEGMENT_SLACK = 1.0
"""Seconds a cue may run past its segment and still count as timed from the segment's start."""

ADJACENT = 1.0
"""A cue starting within this many seconds of the last one's end may repeat its lines
(roll-up): only the lines it adds are new."""

MEMORY = 300.0
"""Seconds of emitted cues remembered to recognise a repeat."""

Word = list[float | str]  # [start, end, word] (wall-clock seconds), as LiveSegment.words stores


# ---------------------------------------------------------------- cues on the wall clock

@dataclass(frozen=True)
class Cue:
    """A caption: its lines (cleaned text) from `start` to `end` seconds (the source's clock:
    cue time for WebVTT, wall clock once placed). `words`: per-word wall times when the source
    gave them (608 roll-up, paint-on), else None."""

    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[tuple[float, float, str], ...] | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True)
class PtsAnchor:
    """A stored video segment: the sample with PTS `pts` (90 kHz) aired at `wall`."""

    pts: int
    wall: float

    def wall_of(self, pts: int) -> float:
        """When the sample with PTS `pts` aired (within half a PTS wrap of the anchor)."""
        return self.wall + pts_delta(self.pts, pts % PTS_WRAP) / PTS_HZ


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def clean_line(raw: str) -> str:
    """A caption line as plain text: cue tags (<v Bob>, <c.yellow>, <00:01.000>) and entities
    gone, spaces collapsed."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", raw))).strip()


def is_word(token: str) -> bool:
    """Whether a caption token is a word (not ">>", "-" or a music note)."""
    return any(ch.isalnum() for ch in token)


def spread_words(text: str, start: float, end: float) -> list[Word]:
    """The words of `text` spread over [start, end] in proportion to their length (+1 for the
    space after each): a caption says when it was shown, not when each word was spoken."""
    words = [t for t in text.split() if is_word(t)]
    if not words:
        return []
    end = max(end, start + 0.1 * len(words))
    weights = [len(w) + 1 for w in words]
    total, at, out = sum(weights), start, []
    for word, weight in zip(words, weights, strict=True):
        step = (end - start) * weight / total
        out.append([round(at, 3), round(at + step, 3), word])
        at += step
    return out


def cue_words(cue: Cue) -> list[Word]:
    """A placed cue's words: those the source timed, else spread over the cue."""
    if cue.words is not None:
        return [[round(s, 3), round(e, 3), w] for s, e, w in cue.words if is_word(w)]
    return spread_words(cue.text, cue.start, cue.end)


def cue_text(cue: Cue) -> str:
    """A placed cue's text as stored: its words, without speaker marks and symbols."""
    return " ".join(str(w[2]) for w in cue_words(cue))


# ---------------------------------------------------------------- HLS subtitle renditions

@dataclass(frozen=True)
class SubtitleRendition:
    """A WebVTT subtitle rendition named by a master playlist."""

    uri: str  # absolute
    name: str
    language: str
    group_id: str


def subtitle_rendition(text: str, url: str) -> SubtitleRendition | None:
    """The WebVTT subtitle rendition to follow for the variant the recorder records (the highest
    bandwidth): one of its SUBTITLES group, DEFAULT=YES first, then AUTOSELECT=YES, then the
    first listed. None when the master has none (or only IMSC, `stpp` in CODECS)."""
    pl = m3u8.loads(text, uri=url)
    if not pl.is_variant:
        return None
    variants = sorted(pl.playlists, key=lambda v: -(v.stream_info.bandwidth or 0))
    best = variants[0].stream_info if variants else None
    if best is not None and "stpp" in (best.codecs or ""):
        return None
    group = (best.subtitles or "").strip('"') if best is not None else ""
    media = [m for m in pl.media if (m.type or "").upper() == "SUBTITLES" and m.uri]
    if group and any(m.group_id == group for m in media):
        media = [m for m in media if m.group_id == group]
    if not media:
        return None
    media.sort(key=lambda m: ((m.default or "").upper() != "YES",
                              (m.autoselect or "").upper() != "YES"))
    chosen = media[0]
    return SubtitleRendition(chosen.absolute_uri, chosen.name or "", chosen.language or "",
                             chosen.group_id or "")


# ---------------------------------------------------------------- WebVTT segments

@dataclass(frozen=True)
class VttSegment:
    """One WebVTT segment: its cues on cue time and its X-TIMESTAMP-MAP, if any, as
    (MPEG-TS timestamp, cue time in seconds) naming the same instant."""

    cues: tuple[Cue, ...]
    timestamp_map: tuple[int, float] | None


_MAP = re.compile(r"X-TIMESTAMP-MAP\s*=\s*(.*)", re.IGNORECASE)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})\.(\d{1,3})$")


def vtt_seconds(stamp: str) -> float:
    """Seconds of a WebVTT timestamp (`01:02:03.456` or `02:03.456`)."""
    m = _CLOCK.match(stamp.strip())
    if not m:
        raise ValueError(f"{stamp!r} is not a WebVTT timestamp")
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_timestamp_map(value: str) -> tuple[int, float] | None:
    """`MPEGTS:900000,LOCAL:00:00:00.000` as (900000, 0.0); None when malformed."""
    parts = dict(p.split(":", 1) for p in value.replace(" ", "").split(",") if ":" in p)
    try:
        return int(parts["MPEGTS"]) % PTS_WRAP, vtt_seconds(parts["LOCAL"])
    except (KeyError, ValueError):
        return None


def parse_vtt(text: str) -> VttSegment:
    """Cues (cleaned; empty ones dropped) and the X-TIMESTAMP-MAP of one WebVTT segment.
    ValueError when it is not WebVTT."""
    body = text.lstrip("\ufeff")
    if not body.startswith("WEBVTT"):
        raise ValueError("not a WebVTT file")
    head = body.split("\n\n", 1)[0]
    tmap = None
    for line in head.splitlines():
        if m := _MAP.match(line.strip()):
            tmap = parse_timestamp_map(m.group(1))
    try:
        doc = webvtt.from_string(body)
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise ValueError(f"malformed WebVTT: {exc}") from exc
    cues = []
    for c in doc.captions:
        lines = tuple(ln for ln in (clean_line(raw) for raw in c.lines) if ln)
        if lines:
            cues.append(Cue(_stamp(c.start_time), _stamp(c.end_time), lines))
    return VttSegment(tuple(cues), tmap)


def _stamp(t: webvtt.models.Timestamp) -> float:
    h, m, s, ms = t.to_tuple()
    return h * 3600 + m * 60 + s + ms / 1000


def place_vtt(seg: VttSegment, *, anchor: PtsAnchor | None, segment_pdt: float | None,
              segment_duration: float) -> list[Cue] | None:
    """The segment's cues on the wall clock; None when they cannot be placed yet (they go
    through the video's PTS and no video segment is stored yet).

    - With an X-TIMESTAMP-MAP: cue time t is PTS `MPEGTS + (t - LOCAL) * 90 kHz`, aired when the
      video anchor says.
    - Without one, in a segment with a program-date-time whose cues all lie within the
      segment's own length: cue times count from the segment's start (some packagers do this).
    - Otherwise cue time 0 is PTS 0 (RFC 8216, 3.5).
    """
    if not seg.cues:
        return []
    if seg.timestamp_map is None and segment_pdt is not None and \
            max(c.start for c in seg.cues) <= segment_duration + SEGMENT_SLACK:
        return [Cue(segment_pdt + c.start, segment_pdt + c.end, c.lines) for c in seg.cues]
    if anchor is None:
        return None
    mpegts, local = seg.timestamp_map or (0, 0.0)

    def wall(t: float) -> float:
        return anchor.wall_of(mpegts + round((t - local) * PTS_HZ))

    out = []
    for c in seg.cues:
        start = wall(c.start)
        out.append(Cue(start, start + max(0.0, c.end - c.start), c.lines))
    return out


# ---------------------------------------------------------------- repeats

@dataclass
class CaptionDeduper:
    """Passes each caption once: a cue already seen (same times and text: HLS repeats a cue in
    every segment it overlaps) is dropped, and a cue that starts within `ADJACENT` seconds of
    the last one's end loses the lines that repeat the end of what was passed (roll-up shows
    the previous lines again above the new one; a line that grew keeps only its new words).
    A cue whose first line merely begins with a whole earlier line is also trimmed: rare in
    pop-on captions, and the cost is one repeated word lost."""

    memory: float = MEMORY
    _seen: dict[tuple[int, int, str], float] = field(default_factory=dict)
    _tail: list[str] = field(default_factory=list)
    _last_end: float | None = None

    def feed(self, cues: Iterable[Cue]) -> list[Cue]:
        """The new part of each cue, in time order (cues with nothing new are left out)."""
        out = []
        for cue in sorted(cues, key=lambda c: (c.start, c.end)):
            key = (round(cue.start * 20), round(cue.end * 20), "\n".join(cue.lines))
            if key in self._seen:  # 50 ms buckets: the same cue placed from two segments
                continue
            self._seen[key] = cue.end
            new = self._trim(cue)
            if new is not None:
                out.append(new)
        if out:
            horizon = max(c.end for c in out) - self.memory
            self._seen = {k: end for k, end in self._seen.items() if end >= horizon}
        return out

    def _trim(self, cue: Cue) -> Cue | None:
        lines = list(cue.lines)
        adjacent = self._last_end is not None and cue.start <= self._last_end + ADJACENT
        self._last_end = cue.end if self._last_end is None else max(self._last_end, cue.end)
        k = _repeat(self._tail, lines) if adjacent else 0
        if k == 0:
            self._tail = (self._tail + lines)[-8:]
            return cue
        last = self._tail[-1]
        grown = lines[k - 1][len(last):].strip()
        new_lines = ([grown] if grown else []) + lines[k:]
        self._tail = (self._tail[:-1] + lines[k - 1:])[-8:]
        if not new_lines:
            return None
        repeated = len(" ".join([*lines[:k - 1], last]).split())
        words = None if cue.words is None else cue.words[repeated:]
        return Cue(cue.start, cue.end, tuple(new_lines), words)


def _repeat(tail: Sequence[str], lines: Sequence[str]) -> int:
    """The most lines k such that lines[:k-1] repeat the tail's last lines but one and
    lines[k-1] is (or grows, at a word boundary) the tail's last line; 0 if none."""
    if not tail or not tail[-1]:
        return 0
    for k in range(min(len(tail), len(lines)), 0, -1):
        if list(lines[:k - 1]) != list(tail[len(tail) - k:-1]):
            continue
        line, last = lines[k - 1], tail[-1]
        if line == last or (line.startswith(last) and line[len(last)] == " "):
            return k
    return 0



# ---------------------------------------------------------------- CEA-608

_MISC = {0x20: "RCL", 0x21: "BS", 0x24: "DER", 0x25: "RU2", 0x26: "RU3", 0x27: "RU4",
         0x29: "RDC", 0x2C: "EDM", 0x2D: "CR", 0x2E: "ENM", 0x2F: "EOC"}
# Basic characters that differ from ASCII (CEA-608 table 50).
_BASIC = {0x2A: "á", 0x5C: "é", 0x5E: "í", 0x5F: "ó", 0x60: "ú", 0x7B: "ç", 0x7C: "÷",
          0x7D: "Ñ", 0x7E: "ñ", 0x7F: "█"}
_SPECIAL = "®°½¿™¢£♪à èâêîôû"  # 0x11 0x30-0x3F (0x39: transparent space)
_EXTENDED = ("ÁÉÓÚÜü‘¡*’—©℠•“”ÀÂÇÈÊËëÎÏïÔÙùÛ«»"  # 0x12 0x20-0x3F
             "ÃãÍÌìÒòÕõ{}\\^_|~ÄäÖöß¥¤¦ÅåØø┌┐└┘")  # 0x13 0x20-0x3F
# PAC row by (first byte & 7, second byte & 0x20): CEA-608 table 53.
_PAC_ROWS = {(1, 0): 1, (1, 1): 2, (2, 0): 3, (2, 1): 4, (5, 0): 5, (5, 1): 6, (6, 0): 7,
             (6, 1): 8, (7, 0): 9, (7, 1): 10, (0, 0): 11, (3, 0): 12, (3, 1): 13, (4, 0): 14,
             (4, 1): 15}
POPON_CPS = 15.0
"""Reading speed assumed for how long a pop-on caption stays up when its erase is not seen yet
(characters per second; at least 1 s, at most 6 s)."""


@dataclass
class _Line:
    """A roll-up or paint-on line being typed: its characters and when each arrived."""

    chars: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    sent: int = 0  # characters already passed on as words


class Cea608Decoder:
    """CEA-608 captions of data channel 1 (CC1, field 1) as cues on the wall clock.

    `feed(t, b1, b2)` takes each byte pair (parity bits as broadcast) at the wall time of its
    frame, in presentation order; `flush(t)` at the end of each segment returns the finished
    cues. Pop-on captions (RCL ... EOC) become a cue when shown, lasting until erased (or, not
    erased yet, a reading-speed estimate); roll-up and paint-on text becomes cues of its
    finished words, each timed by when its characters arrived. Control codes sent twice (as
    broadcasters do) count once; CC2 and field 2 are ignored.
    """

    def __init__(self) -> None:
        self.mode = ""  # "popon" | "rollup" | "painton" | "" (none yet)
        self.found = False
        self._channel = 1
        self._last_control: tuple[int, int] | None = None
        self._loading: dict[int, list[str]] = {}  # pop-on non-displayed memory, by row
        self._row = 15
        self._shown: tuple[float, tuple[str, ...]] | None = None  # pop-on caption up since
        self._line = _Line()
        self._out: list[Cue] = []

    def feed(self, t: float, b1: int, b2: int) -> None:
        b1, b2 = b1 & 0x7F, b2 & 0x7F
        if b1 == 0 and b2 == 0:
            return  # padding
        if 0x10 <= b1 <= 0x1F:
            pair = (b1, b2)
            if pair == self._last_control:
                self._last_control = None  # the second of a doubled code
                return
            self._last_control = pair
            self._channel = 2 if b1 & 0x08 else 1
            if self._channel == 1:
                self._control(t, b1 & 0x17, b2)
            return
        self._last_control = None
        if self._channel != 1 or b1 < 0x20:
            return
        for b in (b1, b2):
            if b >= 0x20:
                self._char(t, _BASIC.get(b, chr(b)))

    def flush(self, t: float) -> list[Cue]:
        """The cues finished by now (pop-on captions shown; roll-up words typed, the last word
        too once nothing came for half a second)."""
        if self._shown is not None:
            self._emit_shown(None)
        self._send_words(idle=t - self._line.times[-1] >= 0.5 if self._line.times else False)
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------ codes

    def _control(self, t: float, b1: int, b2: int) -> None:
        if b1 in (0x14, 0x15) and 0x20 <= b2 <= 0x2F:
            self._misc(t, _MISC.get(b2, ""))
        elif b1 == 0x11 and 0x30 <= b2 <= 0x3F:
            self._char(t, " " if b2 == 0x39 else _SPECIAL[b2 - 0x30])
        elif b1 in (0x12, 0x13) and 0x20 <= b2 <= 0x3F:
            self._backspace()  # an extended character replaces the standard one before it
            self._char(t, _EXTENDED[(b1 - 0x12) * 32 + b2 - 0x20])
        elif b1 == 0x11 and 0x20 <= b2 <= 0x2F:
            self._char(t, " ")  # a mid-row style change shows as a space
        elif b2 >= 0x40:  # preamble address code: a row (and indent)
            row = _PAC_ROWS.get((b1 & 0x07, (b2 >> 5) & 1), self._row)
            if self.mode != "popon" and row != self._row:
                self._end_line()
            elif self.mode != "popon" and self._line.chars:
                self._char(t, " ")
            self._row = row

    def _misc(self, t: float, code: str) -> None:
        if code == "RCL":
            self._end_line()
            self.mode = "popon"
        elif code in ("RU2", "RU3", "RU4"):
            if self.mode == "popon":
                self._hide(t)
            self.mode = "rollup"
        elif code == "RDC":
            if self.mode == "popon":
                self._hide(t)
            self.mode = "painton"
        elif code == "EOC":
            self._hide(t)
            lines = tuple(text for _, row in sorted(self._loading.items())
                          if (text := "".join(row).strip()))
            self._loading = {}
            if lines:
                self._shown = (t, lines)
                self.found = True
        elif code == "ENM":
            self._loading = {}
        elif code == "EDM":
            self._hide(t)
            self._end_line()
        elif code == "CR":
            self._end_line()
        elif code == "BS":
            self._backspace()
        elif code == "DER" and self.mode == "popon":
            self._loading.get(self._row, []).clear()

    def _char(self, t: float, ch: str) -> None:
        if self.mode == "popon":
            self._loading.setdefault(self._row, []).append(ch)
        elif self.mode in ("rollup", "painton"):
            self._line.chars.append(ch)
            self._line.times.append(t)
            self.found = True

    def _backspace(self) -> None:
        if self.mode == "popon":
            row = self._loading.get(self._row)
            if row:
                row.pop()
        elif len(self._line.chars) > self._line.sent:
            self._line.chars.pop()
            self._line.times.pop()

    # ------------------------------------------------------------ cues

    def _hide(self, t: float) -> None:
        """The pop-on caption on screen (if any) goes at `t`."""
        if self._shown is not None:
            self._emit_shown(t)

    def _emit_shown(self, end: float | None) -> None:
        start, lines = self._shown  # type: ignore[misc]
        chars = sum(len(line) for line in lines)
        if end is None:
            end = start + min(6.0, max(1.0, chars / POPON_CPS))
        self._out.append(Cue(start, max(end, start + 0.1), lines))
        self._shown = None

    def _end_line(self) -> None:
        self._send_words(idle=True)
        self._line = _Line()

    def _send_words(self, *, idle: bool) -> None:
        """Pass on the line's finished words (all of them when the line ended or went idle)."""
        line = self._line
        text = "".join(line.chars)
        end = len(text) if idle else text.rfind(" ") + 1
        words: list[tuple[float, float, str]] = []
        i = line.sent
        while i < end:
            if text[i] == " ":
                i += 1
                continue
            j = text.find(" ", i)
            j = end if j < 0 or j > end else j
            words.append((line.times[i], line.times[j - 1] + 1 / 30, text[i:j]))
            i = j
        line.sent = max(line.sent, end)
        if words:
            self._out.append(Cue(words[0][0], words[-1][1],
                                 (" ".join(w for _, _, w in words),), tuple(words)))


# ---------------------------------------------------------------- teletext

_HAMM84 = (0x15, 0x02, 0x49, 0x5E, 0x64, 0x73, 0x38, 0x2F,
           0xD0, 0xC7, 0x8C, 0x9B, 0xA1, 0xB6, 0xFD, 0xEA)
"""Hamming 8/4 codes of 0-15 (ETS 300 706, 8.2), bits in transmission order (LSB first)."""
_UNHAM = {code: value for value, code in enumerate(_HAMM84)}
_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
# G0 Latin, English national option (ETS 300 706, 15.2): where it differs from ASCII.
_G0_ENGLISH = {0x23: "£", 0x5B: "←", 0x5C: "½", 0x5D: "→", 0x5E: "↑", 0x5F: "#", 0x60: "—",
               0x7B: "¼", 0x7C: "‖", 0x7D: "¾", 0x7E: "÷", 0x7F: "■"}


def unham84(code: int) -> int | None:
    """The 4 bits a Hamming 8/4 byte carries (no correction: a damaged byte is None)."""
    return _UNHAM.get(code)


class TeletextDecoder:
    """DVB teletext subtitle pages (EN 300 472 PES, ETS 300 706 packets) as cues.

    `feed(t, payload)` takes each teletext PES payload (from the data_identifier on) at the wall
    time of its PTS; `flush(t)` returns the cues finished. A subtitle page is taken as received
    at the next header of its magazine (or at the end of a segment); when its rows (the text,
    attributes as spaces) differ from what is on screen they become a cue from its header's
    time until the page changes (or, not changed yet, a reading-speed estimate). Pages sent
    again unchanged (broadcasters repeat them) count once. `page` (e.g. 0x888) is the page to
    read; None: the first page whose header has the subtitle flag (C6).
    """

    def __init__(self, page: int | None = None) -> None:
        self.page = page
        self.found = False
        self._rows: dict[int, str] = {}
        self._receiving = False
        self._since: float | None = None
        self._current: tuple[str, ...] = ()  # what is on screen
        self._shown: tuple[float, tuple[str, ...]] | None = None  # on screen, not passed on
        self._out: list[Cue] = []

    def feed(self, t: float, payload: bytes) -> None:
        if not payload or not 0x10 <= payload[0] <= 0x1F:
            return
        i = 1
        while i + 2 <= len(payload):
            unit_id, length = payload[i], payload[i + 1]
            unit = payload[i + 2:i + 2 + length]
            i += 2 + length
            if unit_id in (0x02, 0x03) and len(unit) == 44:
                self._packet(t, bytes(_REVERSED[b] for b in unit[2:44]))

    def flush(self, t: float) -> list[Cue]:
        if self._receiving:
            self._complete(t)
        if self._shown is not None:
            self._emit(None)
        out, self._out = self._out, []
        return out

    def _packet(self, t: float, pkt: bytes) -> None:
        lo, hi = unham84(pkt[0]), unham84(pkt[1])
        if lo is None or hi is None:
            return
        magazine, row = lo & 0x07 or 8, (hi << 1 | lo >> 3) & 0x1F
        if row == 0:
            self._header(t, magazine, pkt[2:])
        elif 1 <= row <= 23 and self._receiving and self.page is not None \
                and magazine == self.page >> 8:
            self._rows[row] = _teletext_text(pkt[2:42])

    def _header(self, t: float, magazine: int, data: bytes) -> None:
        values = [unham84(b) for b in data[:8]]
        if any(v is None for v in values):
            return
        units, tens, _, s2, _, s4, _, _ = (v or 0 for v in values)
        page = magazine << 8 | tens << 4 | units
        subtitle, erase = bool(s4 & 0x08), bool(s2 & 0x08)
        if self.page is None and subtitle and tens <= 9 and units <= 9:
            self.page = page
        if self.page is None or magazine != self.page >> 8:
            return
        if self._receiving:
            self._complete(t)  # the next header of its magazine ends a page's transmission
        self._receiving = page == self.page
        if self._receiving:
            self._since = t
            if erase:
                self._rows = {}

    def _complete(self, t: float) -> None:
        """The page was received whole: show it (unless it is what is shown already)."""
        self._receiving = False
        lines = tuple(text for _, text in sorted(self._rows.items()) if text)
        since = self._since if self._since is not None else t
        if lines == self._current:
            return
        if self._shown is not None:
            self._emit(since)
        self._current = lines
        if lines:
            self._shown = (since, lines)
            self.found = True

    def _emit(self, end: float | None) -> None:
        start, lines = self._shown  # type: ignore[misc]
        chars = sum(len(line) for line in lines)
        if end is None:
            end = start + min(6.0, max(1.0, chars / POPON_CPS))
        self._out.append(Cue(start, max(end, start + 0.1), lines))
        self._shown = None


def _teletext_text(data: bytes) -> str:
    """A row's text: odd-parity 7-bit characters; spacing attributes (0x00-0x1F) show as
    spaces, as do characters with a parity error."""
    out = []
    for b in data:
        if bin(b).count("1") % 2 == 0:
            out.append(" ")
            continue
        c = b & 0x7F
        out.append(" " if c < 0x20 else _G0_ENGLISH.get(c, chr(c)))
    return _SPACE.sub(" ", "".join(out)).strip()


# ---------------------------------------------------------------- in-band captions in TS

_A53 = b"GA94\x03"
_H264_SEI, _HEVC_SEI_PREFIX, _MPEG2_USER_DATA = 6, 39, 0xB2


def cc_pairs(cc_data: bytes) -> list[tuple[int, int]]:
    """The CEA-608 field-1 byte pairs of an ATSC A/53 cc_data() (after "GA94" 0x03)."""
    if len(cc_data) < 2 or not cc_data[0] & 0x40:  # process_cc_data_flag
        return []
    count = cc_data[0] & 0x1F
    out = []
    for i in range(2, min(len(cc_data) - 2, 2 + 3 * count), 3):
        head = cc_data[i]
        if head & 0x04 and head & 0x03 == 0:  # cc_valid, NTSC field 1
            out.append((cc_data[i + 1], cc_data[i + 2]))
    return out


def _sei_a53(rbsp: bytes) -> list[bytes]:
    """cc_data() of the A/53 user data messages of an SEI payload (after the NAL header)."""
    out, i = [], 0
    while i < len(rbsp) and rbsp[i] != 0x80:  # rbsp_trailing_bits
        kind = size = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            kind, i = kind + 255, i + 1
        if i >= len(rbsp):
            break
        kind, i = kind + rbsp[i], i + 1
        while i < len(rbsp) and rbsp[i] == 0xFF:
            size, i = size + 255, i + 1
        if i >= len(rbsp):
            break
        size, i = size + rbsp[i], i + 1
        body = rbsp[i:i + size]
        i += size
        # user_data_registered_itu_t_t35: USA (0xB5), ATSC (0x0031), "GA94", cc_data (0x03)
        if kind == 4 and body[:3] == b"\xb5\x00\x31" and body[3:8] == _A53:
            out.append(body[8:])
    return out


def a53_cc_data(payload: bytes, stream_type: int) -> list[bytes]:
    """Every A/53 cc_data() in one video access unit (a PES payload): H.264 and HEVC SEI, or
    MPEG-2 user data."""
    out: list[bytes] = []
    i = payload.find(b"\x00\x00\x01")
    while 0 <= i < len(payload) - 4:
        j = payload.find(b"\x00\x00\x01", i + 3)
        head = payload[i + 3]  # the unit's type, read before copying it (slices are large)
        end = j if j >= 0 else len(payload)
        if stream_type == 0x1B and head & 0x1F == _H264_SEI:
            out += _sei_a53(unescape(payload[i + 4:end]))
        elif stream_type == 0x24 and (head >> 1) & 0x3F == _HEVC_SEI_PREFIX:
            out += _sei_a53(unescape(payload[i + 5:end]))
        elif stream_type in (0x01, 0x02) and head == _MPEG2_USER_DATA and \
                payload[i + 4:i + 9] == _A53:
            out.append(payload[i + 9:end])
        i = j
    return out


@dataclass
class _Pes:
    pid: int
    data: bytearray = field(default_factory=bytearray)


def _pes_parts(pes: bytes) -> tuple[int | None, bytes]:
    """(PTS, payload) of a whole PES packet."""
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
        return None, b""
    start = 9 + pes[8]
    pts = _read_pts(pes, 9) if pes[7] & 0x80 and len(pes) >= 14 else None
    return pts, pes[start:]


def _read_pts(buf: bytes, i: int) -> int:
    return (((buf[i] >> 1) & 0x07) << 30 | buf[i + 1] << 22 | (buf[i + 2] >> 1) << 15
            | buf[i + 3] << 7 | buf[i + 4] >> 1)


class TsCaptions:
    """In-band captions of a channel's consecutive TS segments, as new cues on the wall clock.

    `feed(data, first_pts, wall_start)` reads one segment: its PMT says which PID is video (for
    A/53 CEA-608 in SEI or user data) and which carries DVB teletext (stream type 6 with a
    teletext descriptor, whose subtitle page is read); each caption byte pair and teletext
    packet is timed by its PES timestamp, mapped to the wall clock through the segment's first
    PTS and wall start. State carries across segments (a caption loaded in one and shown in the
    next). `carriage`: caption data or a teletext stream was seen at all; `found`: text was.
    """

    def __init__(self) -> None:
        self.cc = Cea608Decoder()
        self.teletext = TeletextDecoder()
        self.dedupe = CaptionDeduper()
        self.carriage = False
        self._video: tuple[int, int] | None = None  # (PID, stream type)
        self._teletext_pid: int | None = None
        self._pmt_pid: int | None = None
        self._open: dict[int, _Pes] = {}  # PES in progress, by PID

    @property
    def found(self) -> bool:
        return self.cc.found or self.teletext.found

    def feed(self, data: bytes, first_pts: int | None, wall_start: float) -> list[Cue]:
        """The new cues of one segment (placed; repeats dropped)."""
        anchor = PtsAnchor(first_pts, wall_start) if first_pts is not None else None
        video: list[tuple[int, bytes]] = []
        text: list[tuple[int, bytes]] = []
        for pid, pes in self._pes(data):
            pts, payload = _pes_parts(pes)
            if pts is None:
                continue
            if self._video is not None and pid == self._video[0]:
                video.append((pts, payload))
            elif pid == self._teletext_pid:
                text.append((pts, payload))
        if anchor is None:
            return []
        frames = []
        for pts, payload in video:
            carried = a53_cc_data(payload, self._video[1])  # type: ignore[index]
            self.carriage = self.carriage or bool(carried)
            pairs = [p for cc in carried for p in cc_pairs(cc)]
            if pairs:
                frames.append((pts_delta(anchor.pts, pts), pairs))
        frames.sort(key=lambda f: f[0])  # decode order -> presentation order
        for ticks, pairs in frames:
            for b1, b2 in pairs:
                self.cc.feed(anchor.wall + ticks / PTS_HZ, b1, b2)
        for pts, payload in text:
            self.teletext.feed(anchor.wall_of(pts), payload)
        end = anchor.wall + max((f[0] for f in frames), default=0) / PTS_HZ
        cues = self.cc.flush(end) + self.teletext.flush(end)
        return self.dedupe.feed(cues)

    def _pes(self, data: bytes) -> Iterable[tuple[int, bytes]]:
        """Whole PES packets of the video and teletext PIDs, as the segment completes them
        (at the segment's end, those of unbounded length too)."""
        for off in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
            if data[off] != SYNC_BYTE:
                continue
            pid = ((data[off + 1] & 0x1F) << 8) | data[off + 2]
            start = data[off + 1] & 0x40
            payload = _payload_start(data, off)
            if payload is None:
                continue
            if pid == 0 and start:
                self._pmt_pid = parse_pat(data, off) or self._pmt_pid
            elif pid == self._pmt_pid and start:
                self._read_pmt(data, off)
            elif self._video is not None and pid in (self._video[0], self._teletext_pid):
                if start:
                    if (done := self._open.pop(pid, None)) is not None:
                        yield pid, bytes(done.data)
                    self._open[pid] = _Pes(pid)
                pes = self._open.get(pid)
                if pes is not None:
                    pes.data += data[payload:off + TS_PACKET]
                    if _pes_complete(pes.data):
                        del self._open[pid]
                        yield pid, bytes(pes.data)
        for pid, pes in list(self._open.items()):
            if len(pes.data) >= 6 and pes.data[4:6] == b"\x00\x00":  # unbounded: ends here
                del self._open[pid]
                yield pid, bytes(pes.data)

    def _read_pmt(self, data: bytes, off: int) -> None:
        streams = parse_pmt(data, off)
        if not streams:
            return
        self._video = next(((pid, kind) for pid, (cls, kind) in streams.items()
                            if cls == "video"), self._video)
        for pid, page in teletext_pages(data, off).items():
            self._teletext_pid, self.carriage = pid, True
            if page is not None and self.teletext.page is None:
                self.teletext.page = page
            break


def _pes_complete(pes: bytearray) -> bool:
    """Whether a PES with a PES_packet_length has all its bytes."""
    if len(pes) < 6:
        return False
    length = pes[4] << 8 | pes[5]
    return length > 0 and len(pes) >= 6 + length


def teletext_pages(buf: bytes, off: int) -> dict[int, int | None]:
    """{PID: subtitle page (e.g. 0x888) or None} of the teletext streams a PMT packet at `off`
    names (stream type 6 with a teletext descriptor, 0x56 or VBI teletext 0x46)."""
    sec = _section(buf, off)
    if sec is None or buf[sec[0]] != 0x02:
        return {}
    s, end = sec
    i = s + 12 + (((buf[s + 10] & 0x0F) << 8) | buf[s + 11])
    found: dict[int, int | None] = {}
    while i + 5 <= end:
        kind, pid = buf[i], ((buf[i + 1] & 0x1F) << 8) | buf[i + 2]
        info_end = min(i + 5 + (((buf[i + 3] & 0x0F) << 8) | buf[i + 4]), end)
        j = i + 5
        while kind == 0x06 and j + 2 <= info_end:
            tag, length = buf[j], buf[j + 1]
            if tag in (0x56, 0x46):
                found[pid] = _subtitle_page(buf[j + 2:j + 2 + length])
            j += 2 + length
        i = info_end
    return found


def _subtitle_page(entries: bytes) -> int | None:
    """The first subtitle page (type 2, or 5 for the hard of hearing) a teletext descriptor
    lists, e.g. 0x888."""
    for k in range(0, len(entries) - 4, 5):
        kind, magazine, page = entries[k + 3] >> 3, entries[k + 3] & 0x07, entries[k + 4]
        if kind in (0x02, 0x05):
            return (magazine or 8) << 8 | page
    return None
