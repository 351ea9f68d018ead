"""Channels service and channel flags on both databases: validation, the list, pause/resume/
remove, refusals that store nothing, merging, previews."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from channel_segments import Part, make_broadcast, store_pieces, store_spans
from sqlalchemy import func, select

from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UnsafeURL
from clipper.media.probe import probe_media
from clipper.permissions import Actor
from clipper.services.channels import (
    add_channel,
    channel_status,
    list_channels,
    pause_channel,
    preview_clip,
    remove_channel,
    resume_channel,
    set_transcribe,
)
from clipper.services.clips import clip_status
from clipper.services.flags import flag_channel
from clipper.storage.tables import (
    Channel,
    ChannelSegment,
    Clip,
    Event,
    Flag,
    LiveAsrState,
    LiveSegment,
    Source,
)
from clipper.timecode import format_wallclock as z

OP = Actor.operator("ops")
VOL = Actor("vera", "volunteer")
URL = "http://127.0.0.1:9/live/index.m3u8"


def iso(unix: float) -> str:
    """An ISO time with an offset, as the Live page sends them."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")


def counts(ctx) -> tuple[int, int, int]:
    with ctx.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t))
                     for t in (Flag, Clip, Source))


def test_add_checks_name_duplicate_and_url_and_stores_nothing_when_refused(ctx):
    assert add_channel(ctx, OP, "bbc-news_1", URL) == {
        "name": "bbc-news_1", "url": URL, "retention_hours": 24.0, "transcribe": None}
    assert add_channel(ctx, OP, "itv", URL, retention_hours="48")["retention_hours"] == 48.0
    for name in ("", "a b", "x" * 41, "../etc", "news!"):
        with pytest.raises(InvalidInput, match="channel name"):
            add_channel(ctx, OP, name, URL)
    with pytest.raises(Conflict, match="already exists"):
        add_channel(ctx, OP, "BBC-news_1", URL)
    with pytest.raises(UnsafeURL, match="private"):
        add_channel(ctx, OP, "lan", "http://192.168.1.20/live.m3u8")
    with pytest.raises(InvalidInput):
        add_channel(ctx, OP, "ftp", "ftp://127.0.0.1/live")
    with pytest.raises(InvalidInput, match="Retention"):
        add_channel(ctx, OP, "short", URL, retention_hours=0)
    with pytest.raises(PermissionDenied):
        add_channel(ctx, VOL, "mine", URL)
    assert [c["name"] for c in list_channels(ctx, VOL)] == ["bbc-news_1", "itv"]


def test_list_shows_status_range_lag_gaps_and_disk(ctx):
    add_channel(ctx, OP, "news", URL)
    add_channel(ctx, OP, "empty", URL)
    now = time.time()
    base = now - 3600
    spans = [(base + 2 * i, 2.0) for i in range(10)] + [(base + 30 + 2 * i, 2.0)
                                                      for i in range(5)]
    spans.append((now - 88000.0, 2.0))  # a day old: its gap to the rest starts before 24 h
    store_spans(ctx, "news", spans, size=1500)
    news, empty = (channel_status(ctx, VOL, n) for n in ("news", "empty"))
    assert {"name", "url", "status", "clock", "recorded_from", "recorded_to", "lag_seconds",
            "gaps", "disk_bytes"} <= set(news)
    assert news["status"] == "recording" and news["clock"] in ("arrival", "program-date-time")
    assert news["recorded_from"] == z(now - 88000.0)
    assert news["recorded_to"] == z(base + 40)
    assert news["lag_seconds"] == pytest.approx(now - (base + 40), abs=5)
    assert news["disk_bytes"] == 16 * 1500
    assert len(news["gaps"]) == 2 and news["gaps"][1] == [z(base + 20), z(base + 30)]
    assert news["gaps"][0][1] == z(base)  # cut to the last 24 h
    assert empty["recorded_from"] is None and empty["lag_seconds"] is None
    assert empty["gaps"] == [] and empty["disk_bytes"] == 0

    assert pause_channel(ctx, OP, "news")["status"] == "paused"
    assert [c["status"] for c in list_channels(ctx, VOL)] == ["recording", "paused"]
    assert resume_channel(ctx, OP, "news")["status"] == "recording"
    for fn in (pause_channel, resume_channel, remove_channel):
        with pytest.raises(PermissionDenied):
            fn(ctx, VOL, "news")
        with pytest.raises(NotFound):
            fn(ctx, OP, "nope")


def test_remove_deletes_rows_and_folder_but_not_clips(ctx):
    add_channel(ctx, OP, "news", URL)
    folder = ctx.settings.media_dir / "channels" / "news" / "2026-01-01" / "00"
    folder.mkdir(parents=True)
    (folder / "0-1.ts").write_bytes(b"\0" * 10)
    other = ctx.settings.media_dir / "channels" / "news-2"
    other.mkdir(parents=True)
    store_spans(ctx, "news", [(time.time() - 100, 2.0)])
    res = remove_channel(ctx, OP, "news")
    assert res == {"name": "news", "removed": True, "segments": 1, "bytes": 1000}
    assert not (ctx.settings.media_dir / "channels" / "news").exists() and other.exists()
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ChannelSegment)) == 0
        assert session.scalars(select(Event.action).where(Event.clip_id.is_(None))).all()[-1] \
            == "channel.removed"
    assert list_channels(ctx, OP) == []


def test_live_transcript_switch_on_add_and_later_and_its_lag(ctx):
    assert add_channel(ctx, OP, "news", URL, transcribe="auto")["transcribe"] == "auto"
    assert add_channel(ctx, OP, "sport", URL, transcribe="Whisper")["transcribe"] == "whisper"
    assert add_channel(ctx, OP, "plain", URL)["transcribe"] is None
    for bad in ("yes", "on", "subtitles"):
        with pytest.raises(InvalidInput, match="Transcribe mode"):
            add_channel(ctx, OP, f"bad-{bad}", URL, transcribe=bad)
        with pytest.raises(InvalidInput, match="Transcribe mode"):
            set_transcribe(ctx, OP, "plain", bad)
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Channel)) == 3
        assert session.scalar(select(func.count()).select_from(LiveAsrState)) == 0
    with pytest.raises(NotFound):
        set_transcribe(ctx, OP, "nope", "auto")
    with pytest.raises(PermissionDenied):
        set_transcribe(ctx, VOL, "plain", "auto")

    now = time.time()
    store_spans(ctx, "plain", [(now - 100 + 2 * i, 2.0) for i in range(40)])  # up to now - 20
    plain = channel_status(ctx, VOL, "plain")
    assert (plain["transcribe"], plain["transcript_source"], plain["asr_lag_seconds"],
            plain["asr_load"]) == (None, None, None, None)
    # Switched on, it starts now: nothing recorded before is behind.
    on = set_transcribe(ctx, OP, "plain", "whisper")
    assert on["transcribe"] == "whisper" and on["asr_lag_seconds"] == 0
    with ctx.db.session() as session:
        st = session.get(LiveAsrState, session.scalar(select(Channel.id).where(
            Channel.name == "plain")))
        assert st.done_until == pytest.approx(now, abs=5)
        st.done_until, st.load, st.error = now - 50, 0.05, "ffmpeg said no"
    listed = {c["name"]: c for c in list_channels(ctx, VOL)}
    assert listed["plain"]["asr_lag_seconds"] == pytest.approx(30, abs=0.01)
    assert listed["plain"]["asr_load"] == 0.05 and listed["plain"]["asr_error"] == "ffmpeg said no"
    assert listed["plain"]["asr_done_until"] == z(now - 50)
    # Nothing transcribed yet: all that was recorded is behind; before any recording, nothing.
    assert listed["news"]["asr_lag_seconds"] is None
    with ctx.db.session() as session:
        session.add(LiveAsrState(channel_id=session.scalar(select(Channel.id).where(
            Channel.name == "news"))))
    store_spans(ctx, "news", [(now - 10, 2.0)])
    assert channel_status(ctx, VOL, "news")["asr_lag_seconds"] == pytest.approx(2)
    # Another mode keeps the progress; off keeps the transcript but shows no lag.
    assert set_transcribe(ctx, OP, "plain", "auto")["asr_done_until"] == z(now - 50)
    off = set_transcribe(ctx, OP, "plain", None)
    assert off["transcribe"] is None and off["asr_lag_seconds"] is None
    with ctx.db.session() as session:
        actions = session.scalars(select(Event.action).where(
            Event.action == "channel.transcribe")).all()
    assert len(actions) == 3


def test_remove_takes_the_live_transcript_with_it(ctx):
    add_channel(ctx, OP, "news", URL, transcribe="whisper")
    with ctx.db.session() as session:
        cid = session.scalar(select(Channel.id))
        session.add(LiveAsrState(channel_id=cid, done_until=1.0))
        session.add(LiveSegment(channel_id=cid, wall_start=0.5, wall_end=1.0, text="hello",
                                words=[[0.5, 1.0, "hello"]], source="whisper"))
    remove_channel(ctx, OP, "news")
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LiveSegment)) == 0
        assert session.scalar(select(func.count()).select_from(LiveAsrState)) == 0


def recorded(ctx, now: float) -> float:
    """Channel "news": 2 s segments over [now-600, now-300] and [now-200, now-10]."""
    add_channel(ctx, OP, "news", URL)
    spans = [(now - 600 + 2 * i, 2.0) for i in range(150)]
    spans += [(now - 200 + 2 * i, 2.0) for i in range(95)]
    store_spans(ctx, "news", spans)
    return now


@pytest.mark.parametrize(("when", "words"), [
    ({"start": -7200, "end": -7190}, "wholly before it"),
    ({"start": -250, "end": -240}, "wholly inside a gap"),
    ({"start": -90000, "end": -89990}, "older than that"),
])
def test_refusals_store_nothing(ctx, when, words):
    now = recorded(ctx, time.time())
    before = counts(ctx)
    with pytest.raises(InvalidInput, match=words):
        flag_channel(ctx, VOL, "news", start=iso(now + when["start"]), end=iso(now + when["end"]))
    with pytest.raises(InvalidInput, match="no channel named"):
        flag_channel(ctx, VOL, "nope", last=30)
    with pytest.raises(InvalidInput, match="not both"):
        flag_channel(ctx, VOL, "news", last=30, start="19:00:00")
    with pytest.raises(InvalidInput, match="needs a start and an end"):
        flag_channel(ctx, VOL, "news", start="19:00:00")
    with pytest.raises(InvalidInput, match="longest"):
        flag_channel(ctx, VOL, "news", start=iso(now - 100), end=iso(now + 600))
    assert counts(ctx) == before == (0, 0, 0)


def test_overlapping_channel_flags_merge_and_credit_both_and_gaps_are_shown(ctx):
    now = recorded(ctx, time.time())
    a = flag_channel(ctx, VOL, "news", start=iso(now - 320), end=iso(now - 290), note="first",
                     tags="economy", urgency="high")
    b = flag_channel(ctx, OP, "news", start=now - 310, end=now - 280, note="second")
    assert (a.merged, b.merged, b.clip_id) == (False, True, a.clip_id)
    # The volunteer sees the clip their flag made, with its wall-clock view.
    st = clip_status(ctx, VOL, a.clip_id)
    assert [f["by"] for f in st["flaggers"]] == ["vera", "ops"]
    assert (st["start"], st["end"]) == (pytest.approx(now - 320, abs=1e-3),
                                        pytest.approx(now - 280, abs=1e-3))
    assert st["channel"] == "news" and st["source"] == "news" and st["gaps"] == []
    assert st["wall_start"] == z(st["start"])
    assert st["wall_end"].endswith("Z") and len(st["wall_end"]) == len("2026-11-30T19:42:10.250Z")
    last = flag_channel(ctx, VOL, "news", last=30)  # the newest 30 s: not recorded yet, waits
    assert not last.merged and clip_status(ctx, VOL, last.clip_id)["status"] == "queued"
    with ctx.db.session() as session:
        src = session.get(Clip, a.clip_id).source
        assert (src.kind, src.key, src.location) == ("channel", "channel:news", "news")


def test_bare_clock_times_use_the_zone_and_date(ctx):
    now = recorded(ctx, time.time())
    day = datetime.fromtimestamp(now - 400, UTC)
    start, end = day.strftime("%H:%M:%S.%f"), datetime.fromtimestamp(now - 380, UTC).strftime(
        "%H:%M:%S")
    res = flag_channel(ctx, VOL, "news", start=start, end=end, date=day.strftime("%Y-%m-%d"),
                       tz="UTC")
    st = clip_status(ctx, VOL, res.clip_id)
    assert st["start"] == pytest.approx(now - 400, abs=1e-3)
    assert st["end"] == pytest.approx(int(now - 380), abs=1)
    with pytest.raises(InvalidInput, match="time zone"):
        flag_channel(ctx, VOL, "news", start=start, end=end, tz="Nowhere/Land")


@pytest.fixture(scope="session")
def short_broadcast(tmp_path_factory):
    """6 s of a test broadcast as three ~2 s TS segments."""
    return make_broadcast(tmp_path_factory.mktemp("short"), [Part(0, 150, 10.0)], 6)


def test_preview_remuxes_what_was_recorded(sqlite_ctx, short_broadcast):
    _, pieces = short_broadcast
    add_channel(sqlite_ctx, OP, "news", URL)
    now = time.time()
    store_pieces(sqlite_ctx, "news", pieces, now - 30)
    path = preview_clip(sqlite_ctx, VOL, "news", ago=40, seconds=20)
    assert path is not None and path.parent == sqlite_ctx.settings.media_dir / "previews" / "news"
    info = probe_media(path)
    assert info.format_name.startswith("mov") and abs(info.duration - 6.0) < 0.2
    assert preview_clip(sqlite_ctx, VOL, "news", ago=40, seconds=20) == path  # cached
    assert preview_clip(sqlite_ctx, VOL, "news", ago=5, seconds=5) is None  # nothing there
    with pytest.raises(NotFound):
        preview_clip(sqlite_ctx, VOL, "nope", ago=5)
