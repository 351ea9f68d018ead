"""Broadcast captions: WebVTT parsing and placing on the wall clock, repeats, word timings,
CEA-608 and teletext decoding (and the test streams checked against ffmpeg's own decoders)."""

from __future__ import annotations

import re
import subprocess

import pytest

from clipper.media.captions_live import (
    CaptionDeduper,
    Cea608Decoder,
    Cue,
    PtsAnchor,
    TeletextDecoder,
    TsCaptions,
    a53_cc_data,
    cc_pairs,
    clean_line,
    cue_text,
    cue_words,
    parse_timestamp_map,
    parse_vtt,
    place_vtt,
    spread_words,
    subtitle_rendition,
    teletext_pages,
)
from clipper.media.live import PTS_WRAP, parse_pmt
from testmedia.live import (
    CEA608_CUES,
    TELETEXT_CUES,
    _crc32_mpeg,
    _odd,
    _pmt_with_teletext,
    cc_sei,
    cea608_pairs,
    make_live_media,
    teletext_pes,
)

# ---------------------------------------------------------------- master playlists

MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="lo",NAME="Low",LANGUAGE="en",URI="lo/subs.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="hi",NAME="Welsh",LANGUAGE="cy",URI="hi/cy.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="hi",NAME="English",LANGUAGE="en",DEFAULT=YES,URI="hi/en.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=300000,SUBTITLES="lo"
lo.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,SUBTITLES="hi",CLOSED-CAPTIONS="cc"
hi.m3u8
"""


def test_the_subtitle_rendition_of_the_recorded_variant_default_first() -> None:
    got = subtitle_rendition(MASTER, "http://tv.example/live/master.m3u8")
    assert got is not None
    assert (got.uri, got.language, got.group_id) == (
        "http://tv.example/live/hi/en.m3u8", "en", "hi")


def test_no_rendition_without_subtitles_in_a_media_playlist_or_for_imsc() -> None:
    plain = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
    assert subtitle_rendition(plain, "http://h/m.m3u8") is None
    media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n"
    assert subtitle_rendition(media, "http://h/m.m3u8") is None
    imsc = MASTER.replace('SUBTITLES="hi",', 'SUBTITLES="hi",CODECS="avc1.64001f,stpp.ttml.im1t",')
    assert subtitle_rendition(imsc, "http://h/m.m3u8") is None


# ---------------------------------------------------------------- WebVTT segments

VTT = """WEBVTT
X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000

1
00:00:10.000 --> 00:00:12.500 align:start line:90%
<v Anna>Hello &amp; <c.yellow>welcome</c></v>
>> to the   news

00:11.000 --> 00:11.000

NOTE a comment

00:00:13.250 --> 00:00:14.000
<00:00:13.500>tonight
"""


def test_a_webvtt_segment_gives_clean_cues_and_its_timestamp_map() -> None:
    seg = parse_vtt("\ufeff" + VTT)
    assert seg.timestamp_map == (900_000, 0.0)
    assert seg.cues == (Cue(10.0, 12.5, ("Hello & welcome", ">> to the news")),
                        Cue(13.25, 14.0, ("tonight",)))
    assert parse_vtt("WEBVTT\n\n").cues == ()
    with pytest.raises(ValueError):
        parse_vtt("<html>not found</html>")


def test_timestamp_maps_and_lines() -> None:
    assert parse_timestamp_map("LOCAL:00:01:00.500,MPEGTS:181800") == (181_800, 60.5)
    assert parse_timestamp_map(f"MPEGTS:{PTS_WRAP + 5},LOCAL:00:00.000") == (5, 0.0)
    assert parse_timestamp_map("MPEGTS:x,LOCAL:00:00.000") is None
    assert parse_timestamp_map("LOCAL:00:00.000") is None
    assert clean_line("  <i>It&#39;s</i>   <b>late</b> ") == "It's late"


def test_cues_are_placed_through_the_video_pts() -> None:
    seg = parse_vtt(VTT)
    # The stored video segment whose first sample (PTS 900000 + 9 s) aired at 1000.0.
    anchor = PtsAnchor(900_000 + 9 * 90_000, 1000.0)
    placed = place_vtt(seg, anchor=anchor, segment_pdt=None, segment_duration=4.0)
    assert placed is not None
    assert [(c.start, c.end) for c in placed] == [(1001.0, 1003.5), (1004.25, 1005.0)]
    # Not placeable before any video is stored.
    assert place_vtt(seg, anchor=None, segment_pdt=None, segment_duration=4.0) is None


def test_cue_pts_past_the_33_bit_wrap_still_map_forward() -> None:
    near = PTS_WRAP - 90_000  # one second before the wrap
    seg = parse_vtt(VTT.replace("MPEGTS:900000", f"MPEGTS:{near}"))
    anchor = PtsAnchor(near, 500.0)  # a video sample at the map's PTS aired at 500
    placed = place_vtt(seg, anchor=anchor, segment_pdt=None, segment_duration=4.0)
    assert placed is not None and placed[0].start == pytest.approx(510.0)
    # The anchor itself after the wrap: cue PTS before it map backwards correctly.
    after = PtsAnchor(90_000 * 12, 512.0 + 1)  # PTS 12 s past 0 is 13 s after `near`
    placed = place_vtt(seg, anchor=after, segment_pdt=None, segment_duration=4.0)
    assert placed is not None and placed[0].start == pytest.approx(510.0)


def test_without_a_map_cues_count_from_the_segment_pdt_or_from_pts_zero() -> None:
    relative = parse_vtt("WEBVTT\n\n00:00.500 --> 00:01.500\nHi\n")
    placed = place_vtt(relative, anchor=None, segment_pdt=2000.0, segment_duration=2.0)
    assert placed == [Cue(2000.5, 2001.5, ("Hi",))]
    # Cue times far beyond the segment: RFC 8216 says cue time 0 is PTS 0.
    absolute = parse_vtt("WEBVTT\n\n01:00:00.000 --> 01:00:01.000\nLater\n")
    anchor = PtsAnchor(3600 * 90_000 - 90_000, 7000.0)
    placed = place_vtt(absolute, anchor=anchor, segment_pdt=2000.0, segment_duration=2.0)
    assert placed == [Cue(7001.0, 7002.0, ("Later",))]


# ---------------------------------------------------------------- repeats

def test_a_cue_repeated_in_several_segments_passes_once() -> None:
    dedupe = CaptionDeduper()
    cue = Cue(10.0, 13.0, ("Good evening",))
    assert dedupe.feed([cue]) == [cue]
    assert dedupe.feed([cue, Cue(13.5, 14.0, ("and welcome",))]) == [
        Cue(13.5, 14.0, ("and welcome",))]
    assert dedupe.feed([cue]) == []


def test_roll_up_lines_repeated_above_the_new_one_are_dropped() -> None:
    dedupe = CaptionDeduper()
    got = dedupe.feed([Cue(1, 2, ("THE MINISTER",)),
                       Cue(2, 3, ("THE MINISTER", "SAID TODAY")),
                       Cue(3, 4, ("THE MINISTER", "SAID TODAY", "THAT LISTS")),
                       Cue(4, 5, ("SAID TODAY", "THAT LISTS", "WILL FALL"))])
    assert [c.lines for c in got] == [("THE MINISTER",), ("SAID TODAY",), ("THAT LISTS",),
                                      ("WILL FALL",)]


def test_a_growing_line_keeps_only_its_new_words_with_their_times() -> None:
    dedupe = CaptionDeduper()
    words = ((5.0, 5.2, "WAITING"), (5.2, 5.4, "LISTS"), (5.4, 5.6, "WILL"))
    got = dedupe.feed([Cue(4, 5, ("WAITING",), words[:1]), Cue(5, 6, ("WAITING LISTS WILL",),
                                                                 words)])
    assert got[1].lines == ("LISTS WILL",) and got[1].words == words[1:]


def test_the_same_words_later_or_not_whole_are_not_repeats() -> None:
    dedupe = CaptionDeduper()
    got = dedupe.feed([Cue(1, 2, ("Yes",)), Cue(2, 3, ("Yesterday it rained",)),
                       Cue(3, 4, ("it rained",)), Cue(40, 41, ("it rained",))])
    assert [c.text for c in got] == ["Yes", "Yesterday it rained", "it rained", "it rained"]


# ---------------------------------------------------------------- words

def test_words_are_spread_over_the_cue_by_length() -> None:
    words = spread_words(">> Hi there ♪", 10.0, 11.0)
    assert [w[2] for w in words] == ["Hi", "there"]
    assert words[0][:2] == [10.0, pytest.approx(10.333, abs=0.001)]
    assert words[1][:2] == [pytest.approx(10.333, abs=0.001), 11.0]
    assert spread_words("♪ ♪", 1, 2) == []
    # A cue too short for its words still gives each some time.
    assert spread_words("a b c d", 5.0, 5.0)[-1][1] == pytest.approx(5.4)
    timed = Cue(1, 2, ("A >> B",), ((1.0, 1.1, "A"), (1.2, 1.3, ">>"), (1.4, 1.5, "B")))
    assert cue_words(timed) == [[1.0, 1.1, "A"], [1.4, 1.5, "B"]]
    assert cue_text(timed) == "A B"


# ---------------------------------------------------------------- CEA-608

def _feed(decoder: Cea608Decoder, pairs: list[tuple[int, int]], start: float = 0.0,
          rate: int = 25) -> None:
    for i, (a, b) in enumerate(pairs):
        decoder.feed(start + i / rate, a, b)


def test_cea608_pop_on_roll_up_and_doubled_codes() -> None:
    cues = (("popon", 1.0, 2.0, "HELLO"), ("rollup", 3.0, 0.0, "SO IT GOES"))
    decoder = Cea608Decoder()
    _feed(decoder, cea608_pairs(cues, 25, 125))
    got = decoder.flush(5.0)
    assert got[0] == Cue(1.0, 2.0, ("HELLO",))  # shown at EOC, erased at EDM
    assert got[1].lines == ("SO IT GOES",) and got[1].start == pytest.approx(3.0)
    assert [w[2] for w in got[1].words] == ["SO", "IT", "GOES"]
    assert got[1].words[1][0] == pytest.approx(3.04)  # "IT" came in the second frame
    assert decoder.found


def test_cea608_special_extended_backspace_and_other_channels() -> None:
    odd = _odd
    pairs = [(0x14, 0x29), (0x14, 0x29),  # RDC: paint-on
             (odd(ord("C")), odd(ord("A"))), (odd(ord("F")), odd(ord("E"))),
             (0x12, 0x30), (0x12, 0x30),  # extended "À" replaces the "E" before it
             (0x11, 0x37), (0x11, 0x37),  # special "♪"
             (0x14, 0x21), (0x14, 0x21),  # BS removes the note
             (0x1C, 0x29), (odd(ord("X")), odd(ord("Y"))),  # CC2: ignored
             (0x14, 0x2D), (0x14, 0x2D)]  # CR on CC1 again ends the line
    decoder = Cea608Decoder()
    _feed(decoder, [(odd(a), odd(b)) for a, b in pairs])
    assert [c.text for c in decoder.flush(1.0)] == ["CAFÀ"]


def test_a53_cc_data_is_read_from_h264_sei() -> None:
    sei = cc_sei(_odd(0x14), _odd(0x20))
    access_unit = b"\x00\x00\x00\x01\x09\xf0" + sei + b"\x00\x00\x01\x65\x88\x84"
    carried = a53_cc_data(access_unit, 0x1B)
    assert cc_pairs(carried[0]) == [(_odd(0x14), _odd(0x20))]
    assert a53_cc_data(access_unit, 0x24) == []  # not HEVC SEI
    mpeg2 = b"\x00\x00\x01\xb2GA94\x03" + bytes([0x41, 0xFF, 0xFC, 0x94, 0x2F, 0xFF])
    assert cc_pairs(a53_cc_data(mpeg2, 0x02)[0]) == [(0x94, 0x2F)]
    # Field 2 and invalid triplets are not CC1.
    assert cc_pairs(bytes([0x42, 0xFF, 0xFD, 1, 2, 0xF8, 3, 4, 0xFF])) == []


# ---------------------------------------------------------------- teletext

def test_teletext_pages_shown_once_and_erased() -> None:
    decoder = TeletextDecoder()
    for t, rows in ((1.0, ("HELLO THERE",)), (2.0, ("HELLO THERE",)),
                    (3.0, ("NEWS AT TEN", "TONIGHT")), (4.5, ())):
        pes = teletext_pes(round(t * 90_000), 0x888, rows)
        decoder.feed(t, pes[9 + pes[8]:])
    assert decoder.page == 0x888  # found by its subtitle flag
    assert decoder.flush(5.0) == [Cue(1.0, 3.0, ("HELLO THERE",)),
                                  Cue(3.0, 4.5, ("NEWS AT TEN", "TONIGHT"))]


def test_the_teletext_stream_and_page_are_read_from_the_pmt() -> None:
    # A PMT (PID 0x1000) naming one H.264 stream (PID 0x100); the test media add teletext to it.
    section = bytes([0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00,
                     0x1B, 0xE1, 0x00, 0xF0, 0x00])
    section += _crc32_mpeg(section).to_bytes(4, "big")
    packet = bytes([0x47, 0x50, 0x00, 0x10, 0x00]) + section
    packet += b"\xff" * (188 - len(packet))
    assert teletext_pages(packet, 0) == {}
    with_teletext = _pmt_with_teletext(packet, 0x200, 0x888)
    assert teletext_pages(with_teletext, 0) == {0x200: 0x888}
    assert parse_pmt(with_teletext, 0) == {0x100: ("video", 0x1B), 0x200: ("other", 0x06)}


@pytest.mark.services
def test_cea608_test_stream_read_by_us_and_by_ffmpeg() -> None:
    media = make_live_media(seg_seconds=1.0, captions="cea608")
    reader = TsCaptions()
    zero = 100.0
    got = []
    for data, pts in zip(media.segments, media.seg_pts, strict=True):
        got += reader.feed(data, pts, zero + (pts - media.first_pts) / 90_000)
    lead = (media.video_pts - media.first_pts) / 90_000
    assert [(round(c.start - zero - lead, 2), c.text) for c in got] == [
        (start, text) for _, start, _, text in CEA608_CUES]
    # ffmpeg's own CEA-608 decoder reads the pop-on captions at the same times. (It emits
    # roll-up text only at the next carriage return, and ignores ENM outside its real-time
    # mode, so an old roll-up row can show beside a later pop-on caption: hence "in".)
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                          f"movie={media.source}[out0+subcc]", "-map", "0:1", "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    shown = _srt(out)
    for style, start, _, text in CEA608_CUES:
        if style == "popon":
            assert any(text in got and abs(at - start) < 0.05 for got, at in shown), text


@pytest.mark.services
def test_teletext_test_stream_read_by_us_and_by_ffmpeg() -> None:
    media = make_live_media(seg_seconds=1.0, captions="teletext")
    reader = TsCaptions()
    got = []
    for data, pts in zip(media.segments, media.seg_pts, strict=True):
        got += reader.feed(data, pts, (pts - media.video_pts) / 90_000)
    assert [(round(c.start, 2), c.lines) for c in got] == [
        (start, rows) for start, _, rows in TELETEXT_CUES]
    # ffmpeg's teletext decoder (libzvbi) reads the same pages, the same time apart.
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-txt_format", "text",
                          "-i", str(media.source), "-map", "0:s:0", "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    pages = _srt(out)
    firsts = {}
    for text, start in pages:
        firsts.setdefault(text, start)
    base = firsts[" ".join(TELETEXT_CUES[0][2])]
    for start, _, rows in TELETEXT_CUES:
        assert firsts[" ".join(rows)] - base == pytest.approx(start - TELETEXT_CUES[0][0],
                                                              abs=0.05)


def _srt(text: str) -> list[tuple[str, float]]:
    """(text with lines joined, start seconds) of each SRT cue, tags removed."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        h, m, s, ms = map(int, re.split(r"[:,]", lines[1].split(" --> ")[0]))
        words = re.sub(r"<[^>]*>|\{[^}]*\}", "", " ".join(lines[2:])).split()
        out.append((" ".join(words), h * 3600 + m * 60 + s + ms / 1000))
    return out
