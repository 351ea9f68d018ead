"""The System page's figures: disk use counts recordings from their index, not by walking them."""

from __future__ import annotations

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.system import disk_usage
from clipper.storage.tables import Channel, ChannelSegment

ADMIN = Actor("ada", "admin")


def test_disk_use_counts_recorded_segments_from_the_index(sqlite_ctx: Context) -> None:
    media = sqlite_ctx.settings.media_dir
    (media / "clips" / "1").mkdir(parents=True)
    (media / "clips" / "1" / "clip.mp4").write_bytes(b"x" * 300)
    recorded = media / "channels" / "news" / "2026-11-30" / "19"
    recorded.mkdir(parents=True)
    (recorded / "1-0.ts").write_bytes(b"y" * 50)  # on disk; the index says how big it is
    with sqlite_ctx.db.session() as session:
        channel = Channel(name="news", url="http://127.0.0.1/news.m3u8")
        session.add(channel)
        session.flush()
        session.add(ChannelSegment(channel_id=channel.id, seq=1, wall_start=0.0, duration=2.0,
                                   bytes=7000, path=str(recorded / "1-0.ts")))
    usage = disk_usage(sqlite_ctx, ADMIN)
    assert usage.media == 300 + 7000
    assert usage.free > 0
