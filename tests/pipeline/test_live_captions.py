"""Broadcast captions as the live transcript: the real recorder and loopback live channels.

WebVTT renditions, CEA-608 and teletext end to end, and a clip of a captioned channel through real
workers."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from polling import poll
from sqlalchemy import select

from clipper.context import Context
from clipper.errors import StageDeferred
from clipper.media.captions_live import Cue
from clipper.permissions import Actor
from clipper.pipeline.recorder import Recorder, store_captions
from clipper.pipeline.work import caption_transcript
from clipper.pipeline.worker import make_worker
from clipper.services.clips import clip_status
from clipper.services.flags import flag_channel
from clipper.settings import Settings
from clipper.storage.tables import Channel, ChannelSegment, LiveAsrState, LiveSegment
from testmedia.live import LiveServer, make_live_media

pytestmark = pytest.mark.services

SEG = 1.0
ANN = Actor.operator("ann")
REDIS_URL = os.environ.get("CLIPPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUES = ("asr", "media", "fetch")

#: Cues of the WebVTT channels, seconds into the 24 s loop: one across two segment boundaries
#: (repeated in three .vtt files), tags and entities, a roll-up run that repeats lines.
CUES = [
    (5.2, 7.4, "Good evening and welcome"),
    (7.6, 8.9, "to the <c.yellow>nine</c> o&#39;clock &amp; news"),
    (9.0, 10.0, ">> THE MINISTER SAID"),
    (10.0, 11.0, ">> THE MINISTER SAID\nWAITING LISTS WILL FALL"),
    (11.0, 12.5, "WAITING LISTS WILL FALL\nBY SPRING"),
    (13.1, 14.6, "Flooding closes the coastal road"),
]
#: What each becomes in the live transcript: (start, end, text), repeats and marks gone.
EXPECTED = [
    (5.2, 7.4, "Good evening and welcome"),
    (7.6, 8.9, "to the nine o'clock news"),
    (9.0, 10.0, "THE MINISTER SAID"),
    (10.0, 11.0, "WAITING LISTS WILL FALL"),
    (11.0, 12.5, "BY SPRING"),
    (13.1, 14.6, "Flooding closes the coastal road"),
]


# ---------------------------------------------------------------- the rig

@dataclass
class Rig:
    ctx: Context
    settings: Settings
    live: LiveServer
    recorder: Recorder
    calls: list[tuple[int, list[int]]] = field(default_factory=list)

    def channel(self, name: str) -> Channel:
        with self.ctx.db.session() as session:
            return session.scalars(select(Channel).where(Channel.name == name)).one()

    def rows(self, name: str) -> list[LiveSegment]:
        with self.ctx.db.session() as session:
            return list(session.scalars(
                select(LiveSegment).join(Channel, Channel.id == LiveSegment.channel_id)
                .where(Channel.name == name).order_by(LiveSegment.wall_start)))

    def done_until(self, name: str) -> float:
        with self.ctx.db.session() as session:
            state = session.get(LiveAsrState, self.channel(name).id)
            return state.done_until if state is not None and state.done_until else 0.0


CHANNELS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    # name: (path, transcribe, server options)
    "vtt": ("master.m3u8", "captions", {"subtitles": CUES}),
    "vttpdt": ("master.m3u8", "auto", {"subtitles": CUES, "subtitle_timing": "segment"}),
    "plain": ("master.m3u8", "auto", {}),
    "ignored": ("master.m3u8", "whisper", {"subtitles": CUES}),
    "off": ("master.m3u8", None, {"subtitles": CUES}),
    "cc608": ("index.m3u8", "auto", {"media": "cea608"}),
    "teletext": ("stream.ts", "captions", {"media": "teletext"}),
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Rig]:
    """Every caption channel recorded by one recorder from the start (each joins its source
    three segments after the source's start, so the cues above are all still to come)."""
    home = tmp_path_factory.mktemp("captions")
    shutil.copy(sqlite_template, home / "clipper.db")
    settings = Settings.from_env({
        "CLIPPER_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'clipper.db'}",
        "CLIPPER_URL_ALLOWLIST": "127.0.0.1", "REDIS_URL": REDIS_URL, "HF_HUB_OFFLINE": "1",
        "CLIPPER_PAD_SECONDS": "0.5", "PATH": os.environ.get("PATH", "")})
    ctx = Context.build(settings)
    media = {"": make_live_media(seg_seconds=SEG),
             "cea608": make_live_media(seg_seconds=SEG, captions="cea608"),
             "teletext": make_live_media(seg_seconds=SEG, captions="teletext")}
    with LiveServer(media[""]) as live:
        for name, (path, transcribe, options) in CHANNELS.items():
            options = dict(options)
            live.add(name, window=3, media=media[options.pop("media", "")], **options)
            with ctx.db.session() as session:
                session.add(Channel(name=name, url=live.url(name, path), transcribe=transcribe))
        calls: list[tuple[int, list[int]]] = []
        recorder = Recorder(ctx, refresh=0.3, tick=0.1, ts_seconds=2.0,
                            on_caption_segments=lambda cid, ids: calls.append((cid, ids)))
        thread = threading.Thread(target=recorder.run, name="recorder", daemon=True)
        thread.start()
        try:
            yield Rig(ctx, settings, live, recorder, calls)
        finally:
            recorder.stop.set()
            thread.join(15)
    ctx.close()
    assert not thread.is_alive(), "the recorder did not stop"


def epoch(rig: Rig, name: str) -> float:
    return rig.live.channels[name].runs[-1].epoch


def wait_for_captions(rig: Rig, name: str, until: float) -> list[LiveSegment]:
    """Rows of `name` once its captions have reached loop time `until` (of the first loop)."""
    poll(lambda: rig.done_until(name) >= epoch(rig, name) + until, 40,
         f"{name}'s captions up to {until} s")
    return rig.rows(name)


def first_stored(rig: Rig, name: str, *, end: bool = False) -> float:
    """Wall start (or end) of the first segment the recorder stored of a channel."""
    with rig.ctx.db.session() as session:
        first = session.scalars(select(ChannelSegment).where(
            ChannelSegment.channel_id == rig.channel(name).id)
            .order_by(ChannelSegment.id)).first()
        assert first is not None
        return first.wall_start + (first.duration if end else 0.0)


def assert_words_spread(row: LiveSegment) -> None:
    """Words in order, back to back, covering the cue, longer words longer."""
    words = row.words
    assert words[0][0] == pytest.approx(row.wall_start, abs=0.002)
    assert words[-1][1] == pytest.approx(row.wall_end, abs=0.002)
    for (_, end, _), (start, _, _) in zip(words, words[1:], strict=False):
        assert start == pytest.approx(end, abs=0.002)
    per_char = [(e - s) / (len(w) + 1) for s, e, w in words]
    assert max(per_char) - min(per_char) < 0.01


# ---------------------------------------------------------------- WebVTT renditions

def test_webvtt_cues_become_the_live_transcript_once_at_their_air_times(rig: Rig) -> None:
    rows = wait_for_captions(rig, "vtt", 15.0)
    zero = epoch(rig, "vtt")
    assert [(round(r.wall_start - zero, 1), round(r.wall_end - zero, 1), r.text)
            for r in rows] == EXPECTED
    for row, (start, end, _) in zip(rows, EXPECTED, strict=True):
        assert abs(row.wall_start - (zero + start)) < 0.5 and abs(row.wall_end - (zero + end)) < 0.5
        assert row.source == "captions"
        assert [w[2] for w in row.words] == row.text.split()
        assert_words_spread(row)
    channel = rig.channel("vtt")
    assert channel.transcript_source == "captions"
    # The watch-list hook was told of every row, once.
    told = [i for cid, ids in rig.calls if cid == channel.id for i in ids]
    assert sorted(told) == [r.id for r in sorted(rows, key=lambda r: r.id)]
    # Stored promptly: a cue is in the database within a segment (1 s) and a poll of airing.
    latency = [r.created_at.timestamp() - r.wall_start for r in rows]
    print(f"WebVTT cue start -> row stored: {', '.join(f'{x:.2f}' for x in latency)} s")
    assert max(latency) <= 3.0


def test_subtitles_timed_from_their_segments_program_date_time(rig: Rig) -> None:
    """No X-TIMESTAMP-MAP: cue times count from each .vtt segment's EXT-X-PROGRAM-DATE-TIME."""
    rows = wait_for_captions(rig, "vttpdt", 15.0)
    zero = epoch(rig, "vttpdt")
    assert [r.text for r in rows] == [text for _, _, text in EXPECTED]
    for row, (start, _, _) in zip(rows, EXPECTED, strict=True):
        assert abs(row.wall_start - (zero + start)) < 0.5
    assert rig.channel("vttpdt").transcript_source == "captions"  # "auto" found subtitles


def test_auto_without_captions_is_whisper_and_whisper_or_off_ignore_subtitles(
        rig: Rig) -> None:
    poll(lambda: rig.channel("plain").transcript_source == "whisper", 20, "auto -> whisper")
    poll(lambda: rig.channel("ignored").transcript_source == "whisper", 20, "whisper")
    wait_for_captions(rig, "vtt", 6.0)  # the captioned channels have had time to store rows
    for name in ("plain", "ignored", "off"):
        assert rig.rows(name) == []
    assert rig.live.channels["ignored"].subtitle_requests == 0
    assert rig.live.channels["off"].subtitle_requests == 0
    assert rig.channel("off").transcript_source is None


# ---------------------------------------------------------------- CEA-608 and teletext

def test_cea608_in_the_video_becomes_the_live_transcript(rig: Rig) -> None:
    from testmedia.live import CEA608_CUES

    live = rig.live.channels["cc608"]
    last = CEA608_CUES[-1][1]
    poll(lambda: any(r.text == CEA608_CUES[-1][3] for r in rig.rows("cc608")), 40,
         "the last CEA-608 caption")
    rows = rig.rows("cc608")
    assert rig.channel("cc608").transcript_source == "captions"
    zero = live.runs[-1].epoch
    # Every caption sent after the recording began (a pop-on caption is sent the second
    # before it shows): the first is missed if the recorder joined late.
    began = first_stored(rig, "cc608")
    expected = [cue for cue in CEA608_CUES
                if live.airings(cue[1] - 1.0, zero, zero + last)[0] >= began]
    assert len(expected) >= len(CEA608_CUES) - 1
    first_loop = [r for r in rows if r.wall_start < zero + last + 1]
    assert [r.text for r in first_loop] == [text for *_, text in expected]
    for row, (style, start, _, _) in zip(first_loop, expected, strict=True):
        aired, = live.airings(start, zero, zero + last + 1)
        assert abs(row.wall_start - aired) < 0.5, (row.text, row.wall_start - aired)
        if style == "rollup":  # typed in real time, two characters a frame: each word timed
            first = row.words[0][2]  # by when its characters came
            assert row.words[1][0] - row.words[0][0] == pytest.approx(
                (len(first) + 1) // 2 / 25, abs=0.01)
    latency = [r.created_at.timestamp() - r.wall_start for r in first_loop]
    print(f"CEA-608 caption start -> row stored: {', '.join(f'{x:.2f}' for x in latency)} s")
    assert max(latency) <= 3.0


def test_teletext_subtitles_of_a_ts_stream_become_the_live_transcript(rig: Rig) -> None:
    from testmedia.live import TELETEXT_CUES

    live = rig.live.channels["teletext"]
    last = TELETEXT_CUES[-1][0]
    wanted = {" ".join(rows): start for start, _, rows in TELETEXT_CUES}
    poll(lambda: any(r.text == " ".join(TELETEXT_CUES[-1][2]) for r in rig.rows("teletext")),
         40, "the last teletext page")
    assert rig.channel("teletext").transcript_source == "captions"
    zero = live.runs[-1].epoch
    rows = [r for r in rig.rows("teletext") if r.wall_start < zero + last + 1]
    texts = [r.text for r in rows]
    assert len(texts) == len(set(texts))  # pages sent again unchanged count once
    assert set(texts) <= set(wanted) and len(rows) >= len(wanted) - 1  # the first may be early
    settled = first_stored(rig, "teletext", end=True)  # the first is late: the server bursts it
    for row in rows:
        aired, = live.airings(wanted[row.text], zero, zero + last + 1)
        if row.wall_start >= settled:
            assert -0.1 <= row.wall_start - aired < 0.5  # arrival clock: late, never early


# ---------------------------------------------------------------- clips

def test_a_clip_of_a_captioned_channel_takes_its_transcript_from_the_captions(
        rig: Rig, redis_conn: redis.Redis) -> None:
    wait_for_captions(rig, "vtt", 13.0)
    ctx = Context.build(rig.settings, redis_conn=redis_conn)
    zero = epoch(rig, "vtt")
    res = flag_channel(ctx, ANN, "vtt", start=zero + 9.0, end=zero + 12.5)
    deadline = time.monotonic() + 60
    st = clip_status(ctx, ANN, res.clip_id)
    while st["status"] not in ("ready", "failed") and time.monotonic() < deadline:
        make_worker(ctx, QUEUES).work(burst=True, with_scheduler=True)
        st = clip_status(ctx, ANN, res.clip_id)
        if st["status"] not in ("ready", "failed"):
            time.sleep(0.2)  # poll interval while the fetch waits for the end to be recorded
    assert st["status"] == "ready", st["error"]
    transcript = st["transcript"]
    assert (transcript["engine"], transcript["model"]) == ("captions", "broadcast")
    assert transcript["text"] == "THE MINISTER SAID WAITING LISTS WILL FALL BY SPRING"
    words = [w for s in transcript["segments"] for w in s["words"]]
    starts = {w["word"]: w["start"] for w in words}
    for word, at in (("THE", 0.0), ("WAITING", 1.0), ("BY", 2.0)):
        assert abs(starts[word] - at) < 0.5
    assert words[-1]["end"] == pytest.approx(3.5, abs=0.5)
    assert Path(st["vtt_path"]).read_text().count("MINISTER") == 1
    ctx.db.dispose()


def test_caption_rows_make_a_clip_transcript_on_both_databases(db_url: str,
                                                               make_settings: Any) -> None:
    """Stored cues become a clip's transcript when they cover it; otherwise Whisper's turn."""
    ctx = Context.build(make_settings(db_url))
    with ctx.db.session() as session:
        channel = Channel(name="news", url="http://127.0.0.1:9/x.m3u8",
                          transcript_source="captions")
        session.add(channel)
        session.flush()
        cid = channel.id
    base = round(time.time()) - 3600.0
    cues = [Cue(base - 10, base - 9, ("Before",)), Cue(base + 1, base + 2, ("Hello there",)),
            Cue(base + 3, base + 4, ("Bye now",))]
    ids = store_captions(ctx, cid, cues, done_until=base + 5, recorded_to=base + 6)
    assert len(ids) == 3
    got = caption_transcript(ctx, "news", base + 0.5, base + 3.6)
    assert got is not None and got.engine == "captions"
    assert [(w.word, w.start) for w in got.words()] == [
        ("Hello", 0.5), ("there", 1.0), ("Bye", 2.5)]
    assert caption_transcript(ctx, "news", base + 0.5, base + 9) is None  # never reached
    with pytest.raises(StageDeferred):  # captions still flowing: wait for them, not Whisper
        caption_transcript(ctx, "news", base + 0.5, time.time())
    assert caption_transcript(ctx, "news", base - 15, base + 3) is None  # before they began
    with ctx.db.session() as session:
        session.get(Channel, cid).transcript_source = "whisper"
    assert caption_transcript(ctx, "news", base + 0.5, base + 3.6) is None
    ctx.db.dispose()

