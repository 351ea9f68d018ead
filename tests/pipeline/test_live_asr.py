"""Live transcription of recorded channels: real segments of espeak-ng speech at known wall-clock
times, the real tiny.en model and ffmpeg; windows, restarts, gaps, backlog and lag."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channel_segments import Piece, pts_delta, store_pieces
from polling import poll
from sqlalchemy import func, select, update

from clipper.context import Context
from clipper.media.live import first_pts
from clipper.permissions import Actor
from clipper.pipeline.live_asr import (
    CPU_HISTORY,
    KEEP_UP_SHARE,
    QUICK_HEADROOM,
    QUICK_SHARE,
    QUICK_SPAN,
    CpuMeter,
    LiveTranscriber,
    Outcome,
    live_rows,
    quick_allowed,
    quick_share,
    wants_whisper,
)
from clipper.pipeline.recorder import Recorder
from clipper.services.channels import add_channel, channel_status, set_transcribe
from clipper.storage.tables import Channel, ChannelSegment, LiveAsrState, LiveSegment
from clipper.transcribe import load_count
from clipper.transcribe.windows import Window
from testmedia.live import LiveMedia, LiveServer
from testmedia.mediagen import FFMPEG
from testmedia.speechgen import NEWS, make_speech, normalise, onset_errors

pytestmark = pytest.mark.services

OP = Actor.operator("ops")
URL = "http://127.0.0.1:9/live/index.m3u8"
BASE = 1_790_000_000.0  # wall clock of the broadcast's first sample (Unix seconds)
SEG = 2.0
PAUSE = 3.0  # seconds of silence between sentences
#: Words in NEWS that tiny.en hears reliably in espeak-ng's voice: each must be there as often
#: as it was said (a seam neither repeats nor drops one).
ONCE = ("evacuated", "london", "budget", "berlin", "minister", "summer", "storm", "rain",
        "evening", "council")


# ---------------------------------------------------------------- media

@dataclass(frozen=True)
class Speech:
    """The NEWS sentences as ~2 s MPEG-TS segments; sentence i starts `placed[i][1]` seconds
    after the broadcast's first sample."""

    pieces: list[Piece]
    placed: list[tuple[str, float]]
    folder: Path

    @property
    def end(self) -> float:
        """Where the last segment ends (seconds after the first video frame)."""
        return self.pieces[-1].start + self.pieces[-1].duration


def _probe(path: Path, entries: str, *select_: str) -> float:
    args = ["ffprobe", "-v", "error", *select_, "-show_entries", entries, "-of", "csv=p=0"]
    out = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    folder = tmp_path_factory.mktemp("live-speech")
    talk, placed = make_speech(folder / "talk.mp4", NEWS, lead=1.0, gap=PAUSE, tail=2.0,
                               video=True)
    args = [*FFMPEG, "-i", str(talk), "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
            "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-ar", "48000", "-ac", "1", "-f", "segment", "-segment_time", str(SEG),
            "-segment_format", "mpegts", str(folder / "seg%03d.ts")]
    subprocess.run(args, capture_output=True, check=True)
    files = sorted(folder.glob("seg*.ts"))
    video0 = _probe(files[0], "stream=start_time", "-select_streams", "v:0")
    pieces = []
    for i, f in enumerate(files):
        t = _probe(f, "format=start_time")
        pieces.append(Piece(f, pts_delta(t, video0), _probe(f, "format=duration"),
                            round(t * 90000), i == 0))
    return Speech(pieces, placed, folder)


# ---------------------------------------------------------------- helpers

def new_channel(ctx: Context, name: str = "news", mode: str = "whisper") -> int:
    add_channel(ctx, OP, name, URL, transcribe=mode)
    with ctx.db.session() as session:
        return session.scalar(select(Channel.id).where(Channel.name == name))


def record(ctx: Context, speech: Speech, name: str = "news", *, base: float = BASE,
           keep: Any = lambda piece: True) -> None:
    """Store the speech's segments (those `keep` accepts) as channel `name`'s recording."""
    store_pieces(ctx, name, [p for p in speech.pieces if keep(p)], base)


def stored_words(ctx: Context, channel_id: int) -> list[list]:
    with ctx.db.session() as session:
        rows = session.scalars(select(LiveSegment).where(LiveSegment.channel_id == channel_id)
                               .order_by(LiveSegment.wall_start)).all()
        assert all(r.source == "whisper" for r in rows)
        assert all(r.wall_start == r.words[0][0] and r.wall_end == r.words[-1][1] for r in rows)
        # Each word with its row's id (a row is one Whisper segment of one window).
        return [[*w, r.id] for r in rows for w in r.words]


def state(ctx: Context, channel_id: int) -> LiveAsrState:
    with ctx.db.session() as session:
        return session.get(LiveAsrState, channel_id)


def drain(asr: LiveTranscriber, now: float, limit: int = 60) -> list:
    """Step until no channel has a window ready; every outcome."""
    seen = []
    for _ in range(limit):
        outcomes = asr.step(now)
        seen += outcomes
        if not any(o.step is not None for o in outcomes):
            return seen
    raise AssertionError("the transcriber never ran out of work")


@dataclass(frozen=True)
class At:
    start: float


def check_words(words: list[list], placed: list[tuple[str, float]], base: float,
                sentences: Any = None, misheard: int = 0) -> None:
    """The words say the sentences, none twice, each at the time it was spoken. `misheard`:
    how many of the ONCE words tiny.en may get wrong (short windows hear less context)."""
    chosen = placed if sentences is None else sentences
    text = normalise(" ".join(w[2] for w in words)).split()
    said = normalise(" ".join(s for s, _ in chosen)).split()
    missing = 0
    for word in ONCE:
        assert text.count(word) <= said.count(word), (word, " ".join(text))
        missing += said.count(word) - text.count(word)
    assert missing <= misheard, " ".join(text)
    words = sorted(words)
    # No word twice: windows time a word differently, never store it again. (One segment of one
    # window saying a word twice is Whisper's hearing, not the seams': "two to one" heard as
    # "to to one" under load, once in a full suite.)
    twice = [(a, b) for a, b in zip(words, words[1:], strict=False)
             if normalise(a[2]) == normalise(b[2]) and b[0] - a[0] < 0.6
             and not (len(a) > 3 and len(b) > 3 and a[3] == b[3])]
    assert not twice, twice
    errors = onset_errors([At(w[0] - base) for w in words], chosen)
    assert max(map(abs, errors)) < 1.0, errors


# ---------------------------------------------------------------- pure

def test_which_channels_whisper_transcribes():
    assert wants_whisper("whisper", None) and wants_whisper("whisper", "captions")
    assert wants_whisper("auto", None) and wants_whisper("auto", "whisper")
    assert not wants_whisper("auto", "captions")
    assert not wants_whisper("captions", None) and not wants_whisper(None, None)


def test_the_quick_pass_has_what_the_stored_transcripts_leave_of_the_budget():
    assert quick_share([]) == QUICK_SHARE == quick_share([None, 0.05])  # 2 channels: all of it
    # 8 channels at 0.055 each take 0.44 of a core: the quick pass gets the rest of 0.7.
    assert quick_share([0.055] * 8) == pytest.approx(KEEP_UP_SHARE - 0.44)
    assert quick_share([0.055] * 8) + 8 * 0.055 <= KEEP_UP_SHARE + 1e-9
    assert quick_share([0.06] * 14) == 0.0  # no room: alerts come from the stored transcript


def test_the_quick_pass_stops_at_the_measured_cpu_share_too():
    two = [0.05, 0.05]
    assert quick_allowed(0.0, None, two)  # nothing measured yet: the estimate alone
    assert quick_allowed(QUICK_SHARE * QUICK_SPAN - 0.1, 0.5, two)
    assert not quick_allowed(QUICK_SHARE * QUICK_SPAN, 0.5, two)  # its own share used
    # The loads say there is room, but the process (decoding, its ffmpeg) measures more.
    assert quick_allowed(0.0, KEEP_UP_SHARE - QUICK_HEADROOM - 0.01, [0.055] * 8)
    assert not quick_allowed(0.0, KEEP_UP_SHARE - QUICK_HEADROOM, [0.055] * 8)
    assert not quick_allowed(0.0, 0.1, [0.06] * 14)  # no room in the estimate either


def test_the_cpu_meter_measures_over_its_span():
    clock, cpu = [0.0], [0.0]
    meter = CpuMeter(20.0, cpu=lambda: cpu[0], clock=lambda: clock[0])
    assert meter.share() is None
    clock[0], cpu[0] = CPU_HISTORY - 1, 2.0
    assert meter.share() is None  # too little history to trust
    for t in range(int(CPU_HISTORY), 60):  # busy 0.9 of a core until 30 s, then 0.3
        clock[0] = float(t)
        cpu[0] += 0.9 if t <= 30 else 0.3
        share = meter.share()
    assert share == pytest.approx(0.3, abs=0.02)  # the busy spell has left the span
    clock[0] += 1
    assert meter.share() == pytest.approx(0.3 * 20 / 21, abs=0.02)  # an idle second counts


def test_live_rows_keep_sure_words_on_the_wall_clock():
    from clipper.domain import Segment, Word

    win = Window(1000.0, 1030.0, 1002.5, 1027.5)
    segs = [Segment(0.5, 3.0, "cut off", (Word(0.5, 1.0, "cut"), Word(2.0, 3.0, "off"))),
            Segment(10.0, 11.0, "hello there", (Word(10.0, 10.4, "hello"),
                                                 Word(10.5, 11.0, "there"))),
            Segment(29.0, 30.0, "tail", (Word(29.0, 30.0, "tail"),))]
    assert live_rows(segs, win) == [
        (1002.0, 1003.0, "off", [[1002.0, 1003.0, "off"]]),
        (1010.0, 1011.0, "hello there", [[1010.0, 1010.4, "hello"], [1010.5, 1011.0, "there"]])]


# ---------------------------------------------------------------- real speech

def test_a_recording_is_transcribed_on_its_wall_clock(sqlite_ctx, speech):
    """Default 30/25 windows: the first while the recording is live; the tail once it stopped.
    Every sentence is there once, its first word within a second of when it was spoken."""
    ctx = sqlite_ctx
    cid = new_channel(ctx)
    record(ctx, speech)
    calls: list[tuple[int, list[int]]] = []
    loads = load_count()
    asr = LiveTranscriber(ctx, on_segments=lambda c, ids: calls.append((c, ids)))
    live = time.time()  # the segments just arrived: the recording is live
    t0, end = BASE + speech.pieces[0].start, BASE + speech.end
    try:
        first = drain(asr, live)
        windows = [o.step for o in first if isinstance(o.step, Window)]
        assert windows == [Window(t0, t0 + 30, t0, t0 + 27.5)]
        st = state(ctx, cid)
        assert st.done_until == t0 + 27.5 and st.error is None
        assert st.lag_seconds == pytest.approx(end - st.done_until, abs=0.01)
        assert 0 < st.load < 1
        status = channel_status(ctx, OP, "news")
        assert status["transcribe"] == "whisper" and status["asr_lag_seconds"] == \
            pytest.approx(end - t0 - 27.5, abs=0.01)
        # Nothing arrives for longer than CLIPPER_STALL_SECONDS: the tail is transcribed.
        tail = drain(asr, live + ctx.settings.stall_seconds + 1)
        assert [o.step for o in tail if isinstance(o.step, Window)] == [
            Window(t0 + 25, end, t0 + 27.5, end)]
        assert state(ctx, cid).done_until == end and state(ctx, cid).lag_seconds == 0
        assert drain(asr, live + 3600) == [Outcome(cid, None)]
    finally:
        asr.close()
    assert load_count() - loads <= 1  # one model for the process, not one per window
    words = stored_words(ctx, cid)
    check_words(words, speech.placed, BASE)
    with ctx.db.session() as session:
        ids = list(session.scalars(select(LiveSegment.id).order_by(LiveSegment.id)))
    assert [c for c, _ in calls] == [cid] * len(calls) and sum((i for _, i in calls), []) == ids
    assert asr._scratch is None and not list((ctx.settings.media_dir / "tmp").glob("live-*"))


def test_restarts_resume_and_never_store_a_window_twice(ctx, speech):
    """Short windows (10/8): a new process resumes where the last stopped; a window stored
    meanwhile by another is not stored again."""
    cid = new_channel(ctx)
    record(ctx, speech)
    now = time.time() + 3600  # the recording stopped long ago: everything is transcribed
    t0 = BASE + speech.pieces[0].start
    one = LiveTranscriber(ctx, window=10, hop=8)
    try:
        assert [o.step.keep_to for o in one.step(now)] == [t0 + 9]
        assert [o.step.keep_to for o in one.step(now)] == [t0 + 17]
    finally:
        one.close()
    two = LiveTranscriber(ctx, window=10, hop=8)  # a restarted process
    try:
        outcomes = drain(two, now)
        assert isinstance(outcomes[0].step, Window) and outcomes[0].step.keep_from == t0 + 17
        # A third process planned the first window before any of this was stored: too late.
        job = two.jobs()[0]
        assert two._store(job, None, Window(t0, t0 + 10, t0, t0 + 9),
                          [(BASE + 1, BASE + 2, "again", [[BASE + 1, BASE + 2, "again"]])],
                          None, None) is None
    finally:
        two.close()
    words = stored_words(ctx, cid)
    assert "again" not in {w[2] for w in words}
    check_words(words, speech.placed, BASE, misheard=1)
    assert state(ctx, cid).done_until == pytest.approx(BASE + speech.end)


def test_a_gap_is_skipped_and_times_after_it_stay_right(sqlite_ctx, speech):
    """Segments in a pause between two sentences are missing: no window spans the gap, nothing
    is stored in it, and the sentences after it are placed right (the gap is not squeezed
    out)."""
    ctx = sqlite_ctx
    cid = new_channel(ctx)
    # Lose what was recorded wholly inside the pause before sentence 4 (index 3).
    lo, hi = speech.placed[3][1] - PAUSE, speech.placed[3][1]
    lost = [p for p in speech.pieces if p.start >= lo and p.start + p.duration <= hi]
    assert lost
    record(ctx, speech, keep=lambda p: p not in lost)
    kept = [p for p in speech.pieces if p not in lost]
    gap = (BASE + max(p.start + p.duration for p in kept if p.start < lost[0].start),
           BASE + min(p.start for p in kept if p.start > lost[-1].start))
    asr = LiveTranscriber(ctx, window=10, hop=8)
    try:
        outcomes = drain(asr, time.time() + 3600)
    finally:
        asr.close()
    windows = [o.step for o in outcomes if isinstance(o.step, Window)]
    assert not [w for w in windows if w.start < gap[1] - 0.01 and w.end > gap[0] + 0.01]
    assert any(w.end == pytest.approx(gap[0], abs=0.01) for w in windows)
    assert any(w.start == pytest.approx(gap[1], abs=0.01) for w in windows)
    words = stored_words(ctx, cid)
    assert not [w for w in words if gap[0] < (w[0] + w[1]) / 2 < gap[1]]
    check_words(words, speech.placed, BASE, misheard=1)


def test_a_backlog_is_worked_round_robin_and_lag_reported(sqlite_ctx, speech):
    """Two channels with a backlog each (the transcriber was down): one window per channel per
    round, oldest first, each channel's lag shrinking to nothing; channels not transcribed with
    Whisper are left alone."""
    ctx = sqlite_ctx
    a, b = new_channel(ctx, "one"), new_channel(ctx, "two", "auto")
    new_channel(ctx, "three", "captions")
    for name in ("one", "two", "three"):
        record(ctx, speech, name)
    with ctx.db.session() as session:  # "two" shows captions for now: Whisper leaves it
        session.execute(update(Channel).where(Channel.id == b).values(transcript_source="captions"))
    asr = LiveTranscriber(ctx, window=20, hop=16)
    now = time.time() + 3600
    try:
        assert [o.channel_id for o in asr.step(now)] == [a]
        with ctx.db.session() as session:
            session.execute(update(Channel).where(Channel.id == b).values(transcript_source=None))
        lags, firsts = [], []
        for _ in range(2):
            outcomes = asr.step(now)
            assert sorted(o.channel_id for o in outcomes) == [a, b]
            assert all(isinstance(o.step, Window) for o in outcomes)
            firsts.append(outcomes[0].channel_id)
            lags.append({n: channel_status(ctx, OP, n)["asr_lag_seconds"] for n in ("one", "two")})
        assert firsts[0] != firsts[1]  # each round starts one channel further on
        last = asr.step(now)  # "one" is done; "two", which started a window later, is not
        assert {o.channel_id: isinstance(o.step, Window) for o in last} == {a: False, b: True}
        assert all(o.step is None for o in asr.step(now))
    finally:
        asr.close()
    assert lags[0]["one"] > lags[1]["one"] == 0 and lags[0]["two"] > lags[1]["two"] > 0
    for cid in (a, b):
        assert state(ctx, cid).done_until == pytest.approx(BASE + speech.end)
        check_words(stored_words(ctx, cid), speech.placed, BASE, misheard=1)
    three = channel_status(ctx, OP, "three")
    assert three["transcribe"] == "captions" and three["asr_done_until"] is None
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LiveSegment).join(
            Channel).where(Channel.name == "three")) == 0


def test_switching_on_starts_now_and_a_bad_file_is_skipped_visibly(sqlite_ctx, speech):
    """`set_transcribe` on a recorded channel starts at the live edge, not hours back; a window
    whose media is unreadable is tried three times, then skipped with its reason kept."""
    ctx = sqlite_ctx
    add_channel(ctx, OP, "news", URL)
    base = time.time() - speech.end  # recorded up to now
    record(ctx, speech, base=base)
    res = set_transcribe(ctx, OP, "news", "whisper")
    cid = state_id(ctx, "news")
    assert res["transcribe"] == "whisper" and res["asr_lag_seconds"] == pytest.approx(0, abs=5)
    assert state(ctx, cid).done_until >= base + speech.end - 5
    # Rewind, to a window whose segments are all damaged (a disk error, say).
    with ctx.db.session() as session:
        session.execute(update(LiveAsrState).values(done_until=base + 10))
        paths = session.scalars(select(ChannelSegment.path).where(
            ChannelSegment.wall_start > base + 6, ChannelSegment.wall_start < base + 22)).all()
    for path in paths:
        Path(path).write_bytes(b"\x47" + b"\x00" * 2000)  # a sync byte, then nothing playable
    asr = LiveTranscriber(ctx, window=10, hop=8)
    try:
        tries = [asr.step(base + 3600)[0] for _ in range(3)]
    finally:
        asr.close()
    assert all(t.error and "could not transcribe" in t.error for t in tries)
    st = state(ctx, cid)
    assert st.done_until == pytest.approx(tries[-1].step.keep_to) and "skipped" in st.error
    assert channel_status(ctx, OP, "news")["asr_error"].startswith("skipped")
    assert set_transcribe(ctx, OP, "news", None)["asr_lag_seconds"] is None


def state_id(ctx: Context, name: str) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(Channel.id).where(Channel.name == name))


# ---------------------------------------------------------------- with the recorder

class Clock:
    """A clock tests move: the live server and the recorder read it."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def speech_live_media(speech: Speech) -> LiveMedia:
    """The speech segments as the live server's loop (it needs equal segments: drop the last)."""
    pieces = [p for p in speech.pieces if abs(p.duration - SEG) < 0.1]
    data = tuple(p.path.read_bytes() for p in pieces)
    video = round(_probe(pieces[0].path, "stream=start_time", "-select_streams", "v:0") * 90000)
    return LiveMedia(speech.folder, data, tuple(first_pts(d) for d in data), SEG, 25, video)


@contextlib.contextmanager
def recording(ctx: Context, clock: Clock) -> Iterator[Recorder]:
    recorder = Recorder(ctx, refresh=0.2, tick=0.1, clock=clock, retention_every=3600)
    thread = threading.Thread(target=recorder.run, name="recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.stop.set()
        thread.join(15)


def test_recorded_by_the_recorder_and_transcribed_live(sqlite_ctx, speech):
    """A loopback live HLS channel with program-date-time airs the speech; the real recorder
    stores it; the transcriber places its words where the server says they aired."""
    ctx = sqlite_ctx
    media = speech_live_media(speech)
    loop = len(media.segments)
    window = loop + 4
    clock = Clock(BASE)
    with LiveServer(media) as server:
        # The run begins `window` segments before "now"; move on so the recorder's first look
        # (the newest three) starts exactly at a loop's start.
        channel = server.add("talk", window=window, clock=clock)
        clock.advance((2 * loop + 3 - window) * SEG)
        add_channel(ctx, OP, "talk", server.url("talk"), transcribe="whisper")
        cid = state_id(ctx, "talk")
        with recording(ctx, clock):
            poll(lambda: count_segments(ctx) >= 3, 30, "the live edge")
            clock.advance(loop * SEG)  # one whole loop airs
            poll(lambda: count_segments(ctx) >= loop + 3, 30, "a loop recorded")
        aired = {a.seq: a for a in channel.published()}
    with ctx.db.session() as session:
        first = session.scalars(select(ChannelSegment).order_by(ChannelSegment.wall_start)
                                .limit(1)).one()
    start = aired[first.seq]
    assert start.k % loop == 0 and first.wall_start == pytest.approx(start.wall, abs=0.002)
    asr = LiveTranscriber(ctx)
    try:
        drain(asr, clock())
    finally:
        asr.close()
    words = stored_words(ctx, cid)
    # The loop's speech is transcribed up to the last whole window; its sentences are where
    # the live server aired them.
    done = state(ctx, cid).done_until
    said = [(s, at) for s, at in speech.placed if start.wall + at + 5 < done]
    assert len(said) >= 4
    until = start.wall + speech.placed[len(said)][1] - 0.5  # before the next sentence begins
    check_words([w for w in words if w[0] < until], speech.placed, start.wall, sentences=said)


def count_segments(ctx: Context) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count()).select_from(ChannelSegment))


def test_scratch_folders_of_dead_processes_are_removed(sqlite_ctx, tmp_path):
    parent = tmp_path / "tmp"
    dead = parent / "live-asr-999999999-abc"  # no such pid
    mine = parent / "live-asr-1-abc"  # pid 1 is alive
    for folder in (dead, mine):
        folder.mkdir(parents=True)
    asr = LiveTranscriber(sqlite_ctx, scratch=parent)
    made = asr._scratch_dir()
    assert made.is_dir() and not dead.exists() and mine.exists()
    asr.close()
    assert not made.exists()
    shutil.rmtree(mine)



def test_the_quick_pass_hears_a_watched_channels_newest_seconds(sqlite_ctx, speech):
    """For alerts within seconds: the newest 8 s of a watched channel are heard (nothing is
    stored) as soon as they are recorded, then again each 4 s more, overlapping; an unwatched
    channel, or one whose stored transcript is already there, is not."""
    ctx = sqlite_ctx
    cid = new_channel(ctx)
    new_channel(ctx, "other")  # recorded as well, but no watch applies to it
    t0 = BASE + speech.pieces[0].start
    half = [p for p in speech.pieces if p.start + p.duration <= 20.0]
    record(ctx, speech, keep=lambda p: p in half)
    record(ctx, speech, "other", keep=lambda p: p in half)
    heard: list[tuple[int, list]] = []
    asr = LiveTranscriber(ctx, on_heard=lambda c, words, to: heard.append((c, words)),
                          watched=lambda: {cid})
    live = time.time()
    end = BASE + half[-1].start + half[-1].duration
    try:
        first = asr.step(live)
        quick = [o for o in first if o.channel_id == cid and isinstance(o.step, Window)]
        assert [o.step for o in quick][0] == Window(end - 8, end, end - 8, end)
        assert [c for c, _ in heard] == [cid]  # the other channel is not watched
        words = heard[0][1]
        assert words and all(end - 8 - 0.1 <= a <= b <= end + 0.1 for a, b, _ in words)
        said = [s for s, at in speech.placed if end - 8 <= BASE + at < end - 3]
        text = normalise(" ".join(w[2] for w in words)).split()
        sure = [w for w in normalise(" ".join(said)).split() if w in ONCE]
        assert sure and all(w in text for w in sure), (sure, text)
        assert count(ctx, LiveSegment, cid) == 0 or all(  # only the stored pass stores
            w[0] < t0 + 27.5 for w in stored_words(ctx, cid))
        heard.clear()
        asr.step(live)  # nothing new recorded: not heard again
        assert heard == []
        # 4 s more (or a little over) arrive: heard again, overlapping the previous one.
        more = [p for p in speech.pieces if 20.0 < p.start + p.duration <= 25.0]
        store_pieces(ctx, "news", more, BASE, first_seq=len(half))
        end2 = BASE + more[-1].start + more[-1].duration
        asr.step(live)
        assert [c for c, _ in heard] == [cid]
        assert min(w[0] for w in heard[0][1]) < end  # it heard across the last one's end
        assert max(w[1] for w in heard[0][1]) <= end2 + 0.1
    finally:
        asr.close()


def count(ctx: Context, table: Any, channel_id: int) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(table)
                              .where(table.channel_id == channel_id))
