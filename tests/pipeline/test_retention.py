"""Retention: which recorded segments go (pure), and one sweep on a real database."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from clipper.context import Context
from clipper.pipeline.recorder import segment_path
from clipper.pipeline.retention import GB, Limits, SegmentRef, plan, read_disk_note, sweep
from clipper.storage.tables import Channel, ChannelSegment, Clip, Source

NOW = 1_800_000_000.0
HOUR = 3600.0


def seg(i: int, channel: int, hours_ago: float, size: int = 100) -> SegmentRef:
    return SegmentRef(i, channel, NOW - hours_ago * HOUR, 4.0, size)


def test_segments_past_their_channels_retention_go_oldest_first() -> None:
    segments = [seg(3, 1, 30), seg(1, 1, 40), seg(2, 2, 29), seg(4, 2, 10), seg(5, 1, 1)]
    limits = Limits(default_hours=24, hours={1: None, 2: 12})
    result = plan(segments, now=NOW, limits=limits, free_bytes=10 * GB)
    assert result.expired == (1, 3, 2) and result.for_disk == ()
    assert plan(segments, now=NOW, limits=Limits(24, {2: 5}), free_bytes=10 * GB).ids == (
        1, 3, 2, 4)


def test_protected_segments_stay_however_old() -> None:
    segments = [seg(1, 1, 40), seg(2, 1, 39), seg(3, 2, 40)]
    wall = segments[1].wall_start
    result = plan(segments, now=NOW, limits=Limits(24), free_bytes=0,
                  protected={1: [(wall + 3.9, wall + 60)]})
    assert result.expired == (1, 3) and 2 not in result.ids


def test_short_of_disk_the_oldest_of_all_channels_go_whatever_their_retention() -> None:
    segments = [seg(1, 1, 5, 400), seg(2, 2, 4, 400), seg(3, 1, 3, 400), seg(4, 2, 2, 400),
                seg(5, 2, 30, 50)]
    limits = Limits(default_hours=24, min_free_bytes=1000)
    result = plan(segments, now=NOW, limits=limits, free_bytes=200,
                  protected={2: [(segments[1].wall_start, segments[1].wall_start + 1)]})
    assert result.expired == (5,)  # 50 bytes of the 800 needed
    assert result.for_disk == (1, 3) and result.freed_for_disk == 800
    assert result.ids == (5, 1, 3)


refs = st.lists(st.tuples(st.integers(1, 3), st.floats(0, 72), st.integers(1, 10_000)),
                max_size=40)


@given(refs, st.integers(0, 50_000), st.integers(0, 50_000), st.floats(1, 48),
       st.lists(st.tuples(st.integers(1, 3), st.floats(0, 72), st.floats(0, 2)), max_size=3))
def test_a_plan_frees_enough_if_it_can_and_never_touches_what_clips_need(
        rows: list[tuple[int, float, int]], free: int, minimum: int, hours: float,
        clips: list[tuple[int, float, float]]) -> None:
    segments = [seg(i, ch, ago, size) for i, (ch, ago, size) in enumerate(rows)]
    protected: dict[int, list[tuple[float, float]]] = {}
    for ch, ago, length in clips:
        protected.setdefault(ch, []).append((NOW - ago * HOUR, NOW - ago * HOUR + length * HOUR))
    limits = Limits(default_hours=hours, min_free_bytes=minimum)
    result = plan(segments, now=NOW, limits=limits, free_bytes=free, protected=protected)
    chosen = {s.id: s for s in segments if s.id in result.ids}
    assert len(chosen) == len(result.ids)  # no id twice
    for s in chosen.values():
        assert not any(s.wall_start < b and s.wall_end > a for a, b in protected.get(
            s.channel_id, ()))
    for i in result.expired:
        assert chosen[i].wall_end < NOW - hours * HOUR
    free_after = free + sum(s.bytes for s in chosen.values())
    unprotected = [s for s in segments if not any(
        s.wall_start < b and s.wall_end > a for a, b in protected.get(s.channel_id, ()))]
    assert free_after >= minimum or len(chosen) == len(unprotected)
    kept_disk = [s for s in unprotected if s.id not in chosen]
    if result.for_disk and kept_disk:  # the disk took the oldest first
        assert max(chosen[i].wall_start for i in result.for_disk) <= min(
            s.wall_start for s in kept_disk)


# ---------------------------------------------------------------- a sweep on a database

def _stored(ctx: Context, channel: Channel, hours_ago: float, seq: int) -> ChannelSegment:
    wall = NOW - hours_ago * HOUR
    path = segment_path(ctx.settings.media_dir, channel.name, seq, wall)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x47" * 188 * 10)
    return ChannelSegment(channel_id=channel.id, seq=seq, wall_start=wall, duration=4.0,
                          first_pts=0, discontinuity=False, bytes=1880, path=str(path))


def test_a_sweep_deletes_files_then_rows_and_notes_disk_pressure(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    with ctx.db.session() as session:
        news = Channel(name="news", url="http://tv.example/news.m3u8")
        session.add(news)
        session.flush()
        rows = [_stored(ctx, news, ago, seq) for seq, ago in enumerate([30, 29, 28, 2, 1])]
        session.add_all(rows)
        source = Source(kind="channel", key="channel:news", location="news")
        session.add(source)
        session.flush()
        for status, ago in (("cutting", 29), ("ready", 28)):  # only the uncut clip protects
            start = NOW - ago * HOUR + 1
            session.add(Clip(source_id=source.id, start=start, end=start + 10, status=status))
    paths = [Path(r.path) for r in rows]

    result = sweep(ctx, now=NOW, free_bytes=100 * GB)
    assert result.expired == (rows[0].id, rows[2].id) and not result.for_disk
    assert [p.exists() for p in paths] == [False, True, False, True, True]
    assert read_disk_note(ctx.settings.media_dir) is None

    result = sweep(ctx, now=NOW, free_bytes=int(ctx.settings.min_free_gb * GB) - 100)
    assert result.for_disk == (rows[3].id,)  # the oldest unprotected one frees enough
    with ctx.db.session() as session:
        left = session.scalars(select(ChannelSegment.path).order_by(ChannelSegment.id)).all()
    assert left == [str(paths[1]), str(paths[4])]
    assert [p.exists() for p in paths] == [False, True, False, False, True]
    note = read_disk_note(ctx.settings.media_dir)
    assert note is not None and note["deleted"] == 1 and "CLIPPER_MIN_FREE_GB" in note["message"]
    assert not paths[0].parent.exists()  # emptied hour folders go too
