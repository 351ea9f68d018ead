"""Which span of a playlist with discontinuities holds a section (pure)."""

from __future__ import annotations

from clipper.media.spans import span_plan

BASE = "http://cdn.example/show/index.m3u8"


def _playlist(parts: list[list[float]], head: str = "") -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:6", head]
    for p, durations in enumerate(parts):
        if p:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [x for i, d in enumerate(durations) for x in (f"#EXTINF:{d:.3f},", f"p{p}s{i}.ts")]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def _names(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.url.rsplit("/", 1)[1] for p in plan.pieces]


def test_a_section_in_a_later_span_reads_that_span_from_its_first_segment() -> None:
    plan = span_plan(_playlist([[6.0] * 4, [4.0] * 5]), BASE, (33.0, 37.0))
    assert plan is not None
    assert _names(plan) == ["p1s2.ts", "p1s3.ts"] and plan.start == 24.0
    assert plan.first.url == "http://cdn.example/show/p1s0.ts"


def test_the_first_span_and_plain_playlists_are_left_to_ffmpeg() -> None:
    assert span_plan(_playlist([[6.0] * 4, [4.0] * 5]), BASE, (3.0, 9.0)) is None
    assert span_plan(_playlist([[6.0] * 9]), BASE, (30.0, 33.0)) is None
    locked = _playlist([[6.0] * 2, [6.0] * 2], head='#EXT-X-KEY:METHOD=AES-128,URI="k"')
    assert span_plan(locked, BASE, (13.0, 15.0)) is None
    fmp4 = _playlist([[6.0] * 2, [6.0] * 2], head='#EXT-X-MAP:URI="init.mp4"')
    assert span_plan(fmp4, BASE, (13.0, 15.0)) is None


def test_a_section_across_a_discontinuity_is_read_from_the_span_holding_more_of_it() -> None:
    text = _playlist([[6.0] * 4, [4.0] * 5])
    later = span_plan(text, BASE, (23.5, 27.0))  # a pad reaching back over the break
    assert later is not None and _names(later) == ["p1s0.ts"] and later.start == 24.0
    earlier = span_plan(text, BASE, (20.0, 25.0))  # mostly before it: the first span, read here
    assert earlier is not None and _names(earlier) == ["p0s3.ts"] and earlier.start == 0.0
