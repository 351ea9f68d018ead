"""Which pieces of a fragmented-MP4 HLS playlist hold a section (pure)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from clipper.media.fmp4 import SLACK, Piece, fragment_plan

BASE = "http://cdn.example/show/index.m3u8"


def _playlist(durations: list[float], *, head: str = '#EXT-X-MAP:URI="init.mp4"\n',
              segment: str = "seg{i}.m4s") -> str:
    body = "".join(f"#EXTINF:{d:.3f},\n{segment.format(i=i)}\n" for i, d in enumerate(durations))
    return f"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:7\n{head}{body}#EXT-X-ENDLIST\n"


def _urls(pieces: tuple[Piece, ...]) -> list[str]:
    return [p.url.rsplit("/", 1)[1] for p in pieces]


def test_the_segments_around_the_section_the_init_and_the_first() -> None:
    plan = fragment_plan(_playlist([6.0] * 10), BASE, (20.0, 31.0))
    assert plan is not None
    assert plan.init == Piece("http://cdn.example/show/init.mp4")
    assert plan.first == Piece("http://cdn.example/show/seg0.m4s")
    assert _urls(plan.pieces) == ["seg3.m4s", "seg4.m4s", "seg5.m4s"]
    assert plan.duration == 60.0 and not plan.from_start and not plan.to_end


def test_a_section_just_after_a_boundary_takes_the_segment_before_too() -> None:
    """18.2 s may lie before seg3's first frame when the EXTINFs are rounded."""
    plan = fragment_plan(_playlist([6.0] * 10), BASE, (18.2, 20.0))
    assert plan is not None and _urls(plan.pieces) == ["seg2.m4s", "seg3.m4s"]


def test_widening_adds_segments_on_both_sides_within_the_playlist() -> None:
    plan = fragment_plan(_playlist([6.0] * 10), BASE, (20.0, 31.0), widen=2)
    assert plan is not None and _urls(plan.pieces) == [f"seg{i}.m4s" for i in range(1, 8)]
    whole = fragment_plan(_playlist([6.0] * 10), BASE, (20.0, 31.0), widen=8)
    assert whole is not None and whole.from_start and whole.to_end and len(whole.pieces) == 10


def test_byte_ranges_follow_on_where_no_offset_is_given() -> None:
    head = '#EXT-X-MAP:URI="all.mp4",BYTERANGE="700@0"\n'
    body = ("#EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@700\nall.mp4\n"
            "#EXTINF:2.0,\n#EXT-X-BYTERANGE:500\nall.mp4\n"
            "#EXTINF:2.0,\n#EXT-X-BYTERANGE:300\nall.mp4\n")
    text = f"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n{head}{body}#EXT-X-ENDLIST\n"
    plan = fragment_plan(text, BASE, (0.0, 6.0))
    assert plan is not None
    assert plan.init == Piece("http://cdn.example/show/all.mp4", "bytes=0-699")
    assert [p.byte_range for p in plan.pieces] == ["bytes=700-1699", "bytes=1700-2199",
                                                   "bytes=2200-2499"]


def test_playlists_it_does_not_read() -> None:
    ts = _playlist([6.0] * 3, head="", segment="seg{i}.ts")
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n"
    locked = _playlist([6.0] * 3, head='#EXT-X-KEY:METHOD=AES-128,URI="k.bin"\n'
                                        '#EXT-X-MAP:URI="init.mp4"\n')
    two_inits = (_playlist([6.0], head='#EXT-X-MAP:URI="a.mp4"\n').replace("#EXT-X-ENDLIST\n", "")
                 + '#EXT-X-MAP:URI="b.mp4"\n#EXTINF:6.0,\nlater.m4s\n#EXT-X-ENDLIST\n')
    for text in (ts, master, locked, two_inits):
        assert fragment_plan(text, BASE, (0.0, 5.0)) is None


@given(st.lists(st.floats(0.5, 12.0), min_size=1, max_size=40),
       st.floats(0.0, 1.0), st.floats(0.01, 60.0), st.integers(0, 3))
def test_pieces_are_contiguous_and_cover_the_section(durations: list[float], at: float,
                                                     length: float, widen: int) -> None:
    total = sum(durations)
    lo = at * total * 0.999
    plan = fragment_plan(_playlist(durations), BASE, (lo, lo + length), widen)
    assert plan is not None
    names = _urls(plan.pieces)
    index = [int(n[3:-4]) for n in names]
    assert index == list(range(index[0], index[-1] + 1))
    starts = [round(sum(round(d, 3) for d in durations[:i]), 6) for i in range(len(durations) + 1)]
    # Begins at least SLACK before the section (or at the first segment), ends past it (or last).
    assert index[0] == 0 or starts[index[0]] <= lo - SLACK + 1e-6
    assert index[-1] == len(durations) - 1 or starts[index[-1] + 1] >= lo + length + SLACK - 1e-6
    assert plan.from_start == (index[0] == 0) and plan.to_end == (index[-1] == len(durations) - 1)


def test_first_pts_of_stored_fragments_is_ffprobes_start(fmp4_hls: Path) -> None:
    """A live fMP4 segment stored with its init segment: its earliest presentation time, in
    MPEG-TS ticks, read from the fragment's boxes as ffprobe reads it."""
    import subprocess

    from clipper.media.fmp4 import first_pts, looks_like_fmp4

    folder = fmp4_hls.parent
    init = (folder / "init.mp4").read_bytes()
    for k in (0, 3, 11):
        data = init + (folder / f"seg{k:04d}.m4s").read_bytes()
        stored = folder / f"stored{k}.mp4"
        stored.write_bytes(data)
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time",
                                "-of", "csv=p=0", str(stored)], capture_output=True, text=True,
                               check=True)
        assert looks_like_fmp4(data) and not looks_like_fmp4(b"\x47" * 188)
        assert abs(first_pts(data) - float(probe.stdout) * 90_000) <= 2
    assert first_pts(init) is None and first_pts(b"not an mp4") is None
