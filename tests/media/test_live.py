"""Live-source parsing: timestamps across the wrap, playlists, TS timestamps and TS chopping."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipper.media.live import (
    PTS_WRAP,
    ArrivalClock,
    TsChopper,
    earliest,
    first_pts,
    looks_like_playlist,
    looks_like_ts,
    parse_playlist,
    pts_delta,
)

HALF = 1 << 32
VIDEO_PID, AUDIO_PID, PMT_PID = 0x100, 0x101, 0x1000
pts_values = st.integers(0, PTS_WRAP - 1)


# ---------------------------------------------------------------- building TS by hand

def packet(pid: int, payload: bytes, *, pusi: bool = False, rai: bool = False) -> bytes:
    """One 188-byte packet; an adaptation field stuffs short payloads (and carries RAI)."""
    head = bytes([0x47, (0x40 if pusi else 0) | pid >> 8, pid & 0xFF])
    if len(payload) >= 184 and not rai:
        return head + b"\x10" + payload[:184]
    payload = payload[:182] if rai else payload[:183]
    af_len = 183 - len(payload)
    field = bytes([af_len]) + (bytes([0x40 if rai else 0]) + b"\xff" * (af_len - 1)
                               if af_len else b"")
    return head + b"\x30" + field + payload


def _section(table: bytes) -> bytes:
    """A PSI payload: pointer field, the table, a (dummy) CRC, stuffing."""
    return (b"\x00" + table + b"\x00\x00\x00\x00").ljust(184, b"\xff")


def pat() -> bytes:
    body = bytes([0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xE0 | PMT_PID >> 8, PMT_PID & 0xFF])
    return packet(0, _section(body), pusi=True)


def pmt(streams: list[tuple[int, int]]) -> bytes:
    entries = b"".join(bytes([kind, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, 0]) for kind, pid in
                       streams)
    length = 9 + len(entries) + 4
    body = bytes([0x02, 0xB0, length, 0, 1, 0xC1, 0, 0, 0xE0 | VIDEO_PID >> 8, VIDEO_PID & 0xFF,
                  0xF0, 0]) + entries
    return packet(PMT_PID, _section(body), pusi=True)


def timestamp(value: int, prefix: int = 0x2) -> bytes:
    return bytes([(prefix << 4) | ((value >> 29) & 0x0E) | 1, (value >> 22) & 0xFF,
                  ((value >> 14) & 0xFE) | 1, (value >> 7) & 0xFF, ((value << 1) & 0xFE) | 1])


def pes(pid: int, stream_id: int, pts: int, *, rai: bool = False, body: bytes = b"") -> bytes:
    header = b"\x00\x00\x01" + bytes([stream_id, 0, 0, 0x80, 0x80, 5]) + timestamp(pts)
    return packet(pid, header + body, pusi=True, rai=rai)


def filler(pid: int) -> bytes:
    return packet(pid, b"\xaa" * 184)


STREAMS = [(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]


# ---------------------------------------------------------------- timestamps

@given(pts_values, st.integers(-HALF + 1, HALF - 1))
def test_pts_delta_undoes_an_addition_across_the_wrap(a: int, d: int) -> None:
    b = (a + d) % PTS_WRAP
    assert pts_delta(a, b) == d
    assert pts_delta(b, a) == -d


@given(pts_values, st.lists(st.integers(0, 90_000 * 3600), min_size=1, max_size=8))
def test_earliest_is_the_first_in_time_even_across_the_wrap(base: int, offsets: list[int]) -> None:
    values = [(base + o) % PTS_WRAP for o in offsets]
    assert earliest(values) == (base + min(offsets)) % PTS_WRAP


# ---------------------------------------------------------------- TS timestamps

@given(pts_values, st.integers(-90_000, 90_000), st.lists(st.integers(-9000, 9000), min_size=2,
                                                         max_size=4),
       st.integers(0, 30), st.booleans())
def test_first_pts_is_the_earliest_audio_or_video_timestamp(
        video: int, audio_lead: int, later: list[int], fill: int, audio_first: bool) -> None:
    audio = (video + audio_lead) % PTS_WRAP
    video_pes = [pes(VIDEO_PID, 0xE0, video, rai=True)] + [
        pes(VIDEO_PID, 0xE0, (video + d) % PTS_WRAP) for d in later]
    audio_pes = [pes(AUDIO_PID, 0xC0, audio)]
    body = [filler(VIDEO_PID)] * fill
    parts = ([*audio_pes, *body, *video_pes] if audio_first else
             [video_pes[0], *body, *audio_pes, *video_pes[1:]])
    data = pat() + pmt(STREAMS) + b"".join(parts)
    shown = [video, *((video + d) % PTS_WRAP for d in later[:2]), audio]  # 3 video PES count
    assert first_pts(data) == earliest(shown)


def test_first_pts_ignores_data_streams_and_bytes_before_the_first_packet() -> None:
    data = (b"\x00garbage" + pat() + pmt([*STREAMS, (0x15, 0x102)])
            + pes(0x102, 0xBD, 100) + pes(VIDEO_PID, 0xE0, 9000) + pes(AUDIO_PID, 0xC0, 8000))
    assert first_pts(data) == 8000
    assert first_pts(data[:-1]) == 9000  # a cut-off last packet is ignored


def test_first_pts_without_a_pmt_uses_audio_and_video_stream_ids() -> None:
    data = pes(0x200, 0xBD, 5) + pes(0x201, 0xE0, 700) + pes(0x202, 0xC0, 650)
    assert first_pts(data) == 650
    assert first_pts(pat() + pmt(STREAMS) + filler(VIDEO_PID)) is None
    assert first_pts(b"") is None


def test_ts_and_playlist_are_told_apart_by_their_first_bytes() -> None:
    assert looks_like_ts(pat() + pmt(STREAMS))
    assert not looks_like_ts(b"\x47" + b"\x00" * 400)
    assert looks_like_playlist(b"\xef\xbb\xbf\n#EXTM3U\n")
    assert not looks_like_playlist(b"<html>")


# ---------------------------------------------------------------- playlists

segment_lists = st.lists(st.tuples(st.floats(0.5, 10, allow_nan=False), st.booleans()),
                         min_size=1, max_size=12)


@given(st.integers(0, 10**9), segment_lists,
       st.one_of(st.none(), st.integers(1_500_000_000_000, 2_000_000_000_000)))
def test_playlist_segments_carry_sequence_pdt_and_discontinuity(
        first_seq: int, segments: list[tuple[float, bool]], pdt_ms: int | None) -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10", f"#EXT-X-MEDIA-SEQUENCE:{first_seq}"]
    for i, (duration, disc) in enumerate(segments):
        if disc:
            lines.append("#EXT-X-DISCONTINUITY")
        if pdt_ms is not None and i == 0:
            at = datetime.fromtimestamp(pdt_ms / 1000, UTC)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{at.isoformat(timespec='milliseconds')}")
        lines += [f"#EXTINF:{duration:.3f},", f"seg/{first_seq + i}.ts?x=1"]
    pl = parse_playlist("\n".join(lines) + "\n", "https://cdn.example/live/index.m3u8")
    assert not pl.is_master and pl.target_duration == 10 and not pl.endlist
    assert [s.seq for s in pl.segments] == list(range(first_seq, first_seq + len(segments)))
    assert [s.discontinuity for s in pl.segments] == [d for _, d in segments]
    assert pl.segments[0].uri == f"https://cdn.example/live/seg/{first_seq}.ts?x=1"
    assert pl.has_program_date_time == (pdt_ms is not None)
    if pdt_ms is not None:  # carried forward by the (rounded) durations
        expected = pdt_ms / 1000
        for seg, (duration, _) in zip(pl.segments, segments, strict=True):
            assert seg.program_date_time == pytest.approx(expected, abs=1e-3)
            expected += round(duration, 3)


def test_master_playlist_offers_its_variants_best_first() -> None:
    text = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=4000000\nhttp://other.example/high.m3u8\n")
    pl = parse_playlist(text, "http://tv.example/master.m3u8")
    assert pl.is_master and not pl.segments
    assert pl.pick_variant() == "http://other.example/high.m3u8"
    assert pl.variants[1] == (800000, "http://tv.example/low/index.m3u8")


def test_pdt_without_a_zone_is_utc_and_endlist_is_seen() -> None:
    text = ("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PROGRAM-DATE-TIME:2026-11-30T19:42:10.250\n"
            "#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n")
    pl = parse_playlist(text, "http://tv.example/x.m3u8")
    at = datetime(2026, 11, 30, 19, 42, 10, 250_000, tzinfo=UTC).timestamp()
    assert pl.endlist and pl.segments[0].program_date_time == pytest.approx(at)


# ---------------------------------------------------------------- chopping a TS stream

FRAME = 0.04


def _stream(frames: int, gop: int, per_frame: int) -> tuple[bytes, list[int]]:
    """A TS stream of `frames` video frames (a keyframe every `gop`, RAI set, PAT and PMT
    before it) plus audio, `per_frame` packets each; also where each frame's packets begin."""
    out, starts = [], []
    for f in range(frames):
        if f % gop == 0:
            out += [pat(), pmt(STREAMS)]
        starts.append(len(out))
        out.append(pes(VIDEO_PID, 0xE0, 90_000 + f * 3600, rai=f % gop == 0))
        out += [filler(VIDEO_PID)] * (per_frame - 2)
        out.append(pes(AUDIO_PID, 0xC0, 90_000 + f * 3600))
    return b"".join(out), starts


@settings(max_examples=40, deadline=None)
@given(st.integers(60, 240), st.sampled_from([10, 25, 50]), st.integers(3, 6),
       st.lists(st.integers(50, 1500), min_size=1, max_size=60), st.floats(1.5, 3.0))
def test_chopped_segments_start_at_keyframes_and_lose_nothing(
        frames: int, gop: int, per_frame: int, sizes: list[int], factor: float) -> None:
    target = gop * FRAME * factor  # a keyframe falls between 0.9 and 2 targets, as on air
    data, starts = _stream(frames, gop, per_frame)
    skip = 2 * 188 + 37  # join mid-stream, mid-packet: before the first keyframe is useless
    data = data[skip:]
    frame_bytes = per_frame * 188
    chopper, pieces, pos, i = TsChopper(target=target), [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        i += 1
        chunk, pos = data[pos:pos + size], pos + size
        # a chunk arrives when its last byte has aired
        pieces += chopper.feed(chunk, (pos + skip) // frame_bytes * FRAME)
    tail = chopper.flush(frames * FRAME)
    pieces += [tail] if tail else []
    psi = pat() + pmt(STREAMS)
    for piece in pieces:
        assert piece.data.startswith(psi)
        first = piece.data[len(psi):len(psi) + 188]
        assert first[1] & 0x40 and (first[1] & 0x1F) << 8 | first[2] == VIDEO_PID
        assert first[5] & 0x40  # random access indicator: a keyframe
    for piece in pieces[:-1]:
        assert piece.duration >= 0.9 * target - 1e-9
    body = b"".join(p.data[len(psi):] for p in pieces)
    assert body == data[starts[gop] * 188 - skip:]  # from the first whole keyframe on


def test_a_stream_without_video_is_cut_at_audio_pes() -> None:
    stream = [pat(), pmt([(0x0F, AUDIO_PID)])]
    for f in range(100):
        stream += [pes(AUDIO_PID, 0xC0, f * 1920), filler(AUDIO_PID)]
    chopper = TsChopper(target=1.0)
    pieces = []
    for f in range(0, len(stream), 2):
        pieces += chopper.feed(b"".join(stream[f:f + 2]), f * 0.0107)
    assert len(pieces) >= 1 and all(0.9 <= p.duration <= 1.2 for p in pieces)


# ---------------------------------------------------------------- the arrival clock

@given(pts_values, st.lists(st.floats(0, 1.5), min_size=1, max_size=30),
       st.floats(0.5, 6))
def test_arrival_clock_keeps_the_least_late_arrival_and_the_stream_spacing(
        pts0: int, lateness: list[float], spacing: float) -> None:
    clock, start = ArrivalClock(tolerance=2.0), 1_800_000_000.0
    for i, late in enumerate(lateness):
        true = start + i * spacing
        pts = (pts0 + round(i * spacing * 90_000)) % PTS_WRAP
        wall = clock.place(pts, true + late)
        assert wall - true == pytest.approx(min(lateness[:i + 1]), abs=1e-4)


def test_arrival_clock_reanchors_on_a_discontinuity_or_a_late_gap() -> None:
    clock = ArrivalClock(tolerance=2.0)
    assert clock.place(1000, 100.0) == 100.0
    assert clock.place(1000 + 90_000, 101.3) == pytest.approx(101.0)
    assert clock.place(5, 150.0) == 150.0  # 49 s later than the PTS says: a gap
    assert clock.place(90_005, 151.5, discontinuity=True) == 151.5
    assert clock.place(None, 160.0) == 160.0


# ---------------------------------------------------------------- against ffprobe

@pytest.mark.services
def test_first_pts_matches_ffprobe_start_time_also_across_the_wrap(tmp_path) -> None:
    from testmedia.live import make_live_media, shift_timestamps

    media = make_live_media(seg_seconds=1)
    for i, shift in [(0, 0), (3, PTS_WRAP - media.seg_pts[3] - 20_000), (5, 12345)]:
        path = tmp_path / f"{i}.ts"
        path.write_bytes(shift_timestamps(media.segments[i], shift))
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time",
                              "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                             check=True).stdout
        # ffprobe unwraps a segment straddling the wrap into negative time: equal modulo 2^33
        assert first_pts(path.read_bytes()) == round(float(out) * 90_000) % PTS_WRAP
