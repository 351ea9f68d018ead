"""Watch-lists end to end: a phrase aired on a loopback live channel is recorded by the real
recorder, heard by the live transcriber (real tiny.en) or read from the channel's WebVTT
captions, matched, alerted once through the outbox to a loopback webhook, and auto-flagged into
a clip that becomes ready and says it. Time is the real clock: the server airs segments as they
are due and the test polls with deadlines."""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import redis
from polling import poll
from sqlalchemy import func, select

from clipper.cli.live_asr import watch_matcher
from clipper.context import Context
from clipper.media.live import first_pts
from clipper.permissions import Actor
from clipper.pipeline.live_asr import LiveTranscriber
from clipper.pipeline.notifications import deliver_due
from clipper.pipeline.recorder import Recorder
from clipper.services import watches
from clipper.services.channels import add_channel
from clipper.services.clips import clip_status
from clipper.services.watches import add_watch, list_alerts
from clipper.storage.tables import Channel, ChannelSegment, Clip, LiveAsrState
from testmedia.live import FFMPEG, PTS_HZ, LiveChannel, LiveMedia, LiveServer
from testmedia.speechgen import RATE, normalise, speak

# About 35 s, most of it real airtime: the phrase is heard once the first 30 s window is
# recorded, and the clip waits for the AUTO_PAD seconds after it to air.
pytestmark = pytest.mark.services

OP = Actor.operator("ops")
SEG = 2.0
LEAD, GAP = 2.0, 1.5  # seconds of silence before the first sentence, and between sentences
LOOP_SEGMENTS = 20  # a 40 s loop: the phrase airs again after 40 s, within the 60 s rate limit
SENTENCES = (
    "Good evening, I am Maria Lopez and this is the evening news.",
    "The city council voted twelve to three on Tuesday to approve the new budget.",
    "Police said forty two people were evacuated from the station in London.",
    "Schools will stay closed for seven days.",
    # Ends ~26 s into the loop: inside the first 30/25 window (kept up to 27.5 s after the
    # recording's start), and late enough that the auto-flag's 20 s before it were recorded.
    "The central bank decided to raise interest rates.",
    "John Smith, the mayor, promised three hundred new homes by next summer.",
    "The match ended two to one after ninety minutes of rain.",
)
PHRASE = 4  # the sentence that ends in the watched phrase
#: The auto-flag's seconds either side of the phrase, here: the product's 20 s would only add
#: airtime to wait for (the span it makes is checked in tests/services/test_watches.py).
AUTO_PAD = 6.0


@dataclass(frozen=True)
class Programme:
    """The sentences as a loop of equal TS segments; `said[i]` = (text, start, end), seconds
    from the loop's first video frame (the speech starts with the video)."""

    media: LiveMedia
    said: tuple[tuple[str, float, float], ...]

    def cues(self) -> list[tuple[float, float, str]]:
        """The sentences as WebVTT cues, on the server's run time (from its first sample)."""
        lead = (self.media.video_pts - self.media.first_pts) / PTS_HZ
        return [(start + lead, end + lead, text) for text, start, end in self.said]


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Programme:
    folder = tmp_path_factory.mktemp("programme")
    parts, said, cursor = [np.zeros(int(LEAD * RATE), np.int16)], [], LEAD
    for i, text in enumerate(SENTENCES):
        if i:
            parts.append(np.zeros(int(GAP * RATE), np.int16))
            cursor += GAP
        samples = speak(text)
        said.append((text, cursor, cursor + len(samples) / RATE))
        parts.append(samples)
        cursor += len(samples) / RATE
    # One segment more than the loop: the encoder's last one may run short; it is dropped.
    total = (LOOP_SEGMENTS + 1) * SEG
    assert cursor < LOOP_SEGMENTS * SEG and 22.0 < said[PHRASE][2] < 27.0  # see SENTENCES
    audio = np.concatenate(parts)
    audio = np.concatenate([audio, np.zeros(int(total * RATE) - len(audio), np.int16)])
    with wave.open(str(folder / "speech.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    gop = str(round(SEG * 25))
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={total}",
                    "-i", str(folder / "speech.wav"), "-map", "0:v", "-map", "1:a",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", gop,
                    "-keyint_min", gop, "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000",
                    "-ac", "1", "-t", str(total), "-f", "segment", "-segment_time", str(SEG),
                    "-segment_format", "mpegts", str(folder / "seg%03d.ts")],
                   capture_output=True, check=True)
    files = sorted(folder.glob("seg*.ts"))[:LOOP_SEGMENTS]
    data = tuple(f.read_bytes() for f in files)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=start_pts", "-of", "csv=p=0", str(files[0])],
                           capture_output=True, text=True, check=True)
    media = LiveMedia(folder, data, tuple(first_pts(d) for d in data), SEG, 25,
                      int(probe.stdout.split()[0]))
    return Programme(media, tuple(said))


# ---------------------------------------------------------------- the rig

class Hook(http.server.ThreadingHTTPServer):
    """The team's webhook on loopback: every body, with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict]] = []
        super().__init__(("127.0.0.1", 0), _HookHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/team"

    def alerts(self, channel: str) -> list[tuple[float, dict]]:
        return [(t, b) for t, b in list(self.received)
                if b.get("event") == "watch.alert" and b.get("channel") == channel]


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((time.time(), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def webhook() -> Iterator[Hook]:
    hook = Hook()
    thread = threading.Thread(target=hook.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.shutdown()
        hook.server_close()


@contextlib.contextmanager
def live_desk(ctx: Context) -> Iterator[None]:
    """The recorder (captions matched as they are stored) and the live transcriber (its
    windows matched as they are stored), each in its thread, wired as `clipper up` wires them."""
    recorder = Recorder(ctx, refresh=0.2, tick=0.1, retention_every=3600,
                        on_caption_segments=watch_matcher(ctx, "recorder"))
    asr = LiveTranscriber(ctx, on_segments=watch_matcher(ctx), idle=0.2)
    stop = threading.Event()
    threads = [threading.Thread(target=recorder.run, name="recorder", daemon=True),
               threading.Thread(target=asr.run, args=(stop,), name="live-asr", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        recorder.stop.set()
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads), "the recorder or transcriber hung"


def aired(channel: LiveChannel, t: float, loop_seconds: float) -> float:
    """When programme time `t` aired in the channel's first loop (wall clock)."""
    epoch = channel.runs[-1].epoch
    at, = channel.airings(t, epoch - 1, epoch - 1 + loop_seconds)
    return at


def recorded_to(ctx: Context, name: str) -> float:
    with ctx.db.read() as session:
        return session.scalar(
            select(func.max(ChannelSegment.wall_start + ChannelSegment.duration))
            .join(Channel, Channel.id == ChannelSegment.channel_id)
            .where(Channel.name == name)) or 0.0


def captions_until(ctx: Context, name: str) -> float:
    with ctx.db.read() as session:
        cid = session.scalar(select(Channel.id).where(Channel.name == name))
        state = session.get(LiveAsrState, cid)
        return (state.done_until or 0.0) if state is not None else 0.0


def flagged_alerts(ctx: Context, count: int) -> dict[str, dict] | None:
    """The alerts by channel once there are `count` and each has its auto-flag's outcome."""
    alerts = {a["channel"]: a for a in list_alerts(ctx, OP)}
    settled = all(a["clip_id"] is not None or a.get("flag_problem") for a in alerts.values())
    return alerts if len(alerts) == count and settled else None


# ---------------------------------------------------------------- the test

def test_a_phrase_aired_live_alerts_once_and_its_auto_flag_becomes_a_ready_clip(
        sqlite_url: str, make_settings: Callable, redis_conn: redis.Redis,
        run_jobs: Callable[[Context], None], programme: Programme,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watches, "FLAG_PAD_SECONDS", AUTO_PAD)
    loop = programme.media.loop_seconds
    _, start, end = programme.said[PHRASE]
    with webhook() as hook, LiveServer(programme.media) as live:
        ctx = Context.build(make_settings(sqlite_url, CLIPPER_WEBHOOK_URL=hook.url,
                                          CLIPPER_PAD_SECONDS="0.5"), redis_conn=redis_conn)
        # Each run starts three segments before now: the recorder's first look (the newest
        # three) begins at the loop's start, the phrase ~20 s ahead.
        talk = live.add("talk", window=3)
        cc = live.add("cc", window=3, subtitles=programme.cues())
        add_channel(ctx, OP, "talk", live.url("talk"), transcribe="whisper")
        add_channel(ctx, OP, "cc", live.url("cc", "master.m3u8"), transcribe="captions")
        add_watch(ctx, OP, "rates", '"interest rates"', auto_flag=True)
        add_watch(ctx, OP, "strike", '"general strike"')  # never said

        def delivered(channel: str) -> list[tuple[float, dict]]:
            deliver_due(ctx)  # the outbox, as `clipper up`'s deliverer runs it
            return hook.alerts(channel)

        try:
            with live_desk(ctx):
                # Captions: the cue is stored when the subtitle segment it starts in is
                # published (its 2 s aired), and alerts at once.
                (at, body), = poll(lambda: delivered("cc"), 40, "the captions alert")
                cue_shown = aired(cc, start, loop)
                print(f"captions: cue shown -> webhook {at - cue_shown:.2f} s, last word "
                      f"-> webhook {at - aired(cc, end, loop):.2f} s")
                assert at - cue_shown <= 5.0
                assert body["watch"] == "rates" and "interest rates" in body["context"]
                # Whisper: heard once the first 30 s window is recorded and transcribed.
                (at, body), = poll(lambda: delivered("talk"), 75, "the Whisper alert")
                print(f"whisper: last word -> webhook {at - aired(talk, end, loop):.2f} s")
                assert body["watch"] == "rates"
                assert "interest rates" in normalise(body["context"])
                # The alert goes out before its auto-flag is filed (speed first), so the
                # flag is noted on it a moment after the webhook: wait for that.
                alerts = poll(lambda: flagged_alerts(ctx, 2), 20, "the auto-flags noted")
                assert set(alerts) == {"talk", "cc"}
                for name, channel in (("talk", talk), ("cc", cc)):
                    alert = alerts[name]
                    # On the channel's clock: where the server aired the phrase.
                    assert abs(alert["end"] - aired(channel, end, loop)) < 1.0
                    assert alert["clip_id"] is not None, alert.get("flag_problem")
                # The auto-flags run AUTO_PAD past the phrase: wait for that to be recorded
                # (and captioned), then run the clips' jobs here.
                with ctx.db.read() as session:
                    until = {name: session.get(Clip, alerts[name]["clip_id"]).end
                             for name in alerts}
                poll(lambda: all(recorded_to(ctx, n) >= until[n] + 0.5 for n in until)
                     and captions_until(ctx, "cc") >= until["cc"], 60,
                     "the 20 s after the phrase recorded")
                run_jobs(ctx)
                for name, engine in (("talk", "faster-whisper"), ("cc", "captions")):
                    st = clip_status(ctx, OP, alerts[name]["clip_id"])
                    assert st["status"] == "ready", (name, st["status"], st["error"])
                    assert st["transcript"]["engine"] == engine
                    said = st["transcript"]["text"]
                    assert "interest rates" in normalise(said), (name, said)
            # Stopped: whatever else was transcribed or captioned raised nothing more.
            deliver_due(ctx)
            alerts = list_alerts(ctx, OP)
            assert sorted((a["watch"], a["channel"]) for a in alerts) == [
                ("rates", "cc"), ("rates", "talk")]
            assert len(hook.alerts("talk")) == len(hook.alerts("cc")) == 1
        finally:
            ctx.db.dispose()
