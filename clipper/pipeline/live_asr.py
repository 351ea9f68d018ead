"""Live transcription of recorded channels: overlapping Whisper windows on each channel's clock."""

from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from clipper.context import Context
from clipper.domain import Segment, Word
from clipper.errors import PermanentError
from clipper.media.concat import SegmentFile, join_segments
from clipper.media.extract_audio import extract_audio
from clipper.pipeline.channel_media import GAP_TOLERANCE
from clipper.storage.tables import Channel, ChannelSegment, LiveAsrState, LiveSegment
from clipper.timecode import format_wallclock
from clipper.transcribe.windows import (
    DEFAULT_HOP,
    DEFAULT_WINDOW,
    SEAM_SLACK,
    Interval,
    Said,
    Skip,
    Window,
    check_geometry,
    merge_spans,
    next_window,
    seam_slack,
    stitch,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
OnSegments = Callable[[int, list[int]], None]
#: The quick pass: (channel id, words heard lately on the wall clock, where the audio heard
#: ends) -> None; and which channel ids it listens to (those a watch applies to).
OnHeard = Callable[[int, list[Said], float], None]
Watched = Callable[[], set[int]]

SOURCE = "whisper"
#: Seconds a process waits when no channel had a window ready.
IDLE_SECONDS = 1.0
#: Longest wait between rounds while every channel fails (the database or the model is away).
MAX_BACKOFF = 30.0
#: Attempts at a window whose media fails before it is skipped (its reason kept).
MAX_TRIES = 3
#: Windows `load` is averaged over.
LOAD_WINDOWS = 10
#: The longest segment looked for behind a window's start (stored segments are a few seconds).
MAX_SEGMENT_SECONDS = 60.0
#: Taking over a channel another source (captions) transcribed: no further back than this.
TAKEOVER_SECONDS = 300.0
#: Steps (Skip over a gap) taken for one channel within one round, before the next channel.
MAX_SKIPS = 20
#: The quick pass over a watched channel's newest audio (for alerts only; not stored): seconds
#: heard each time, and how often. A phrase up to QUICK_WINDOW - QUICK_HOP seconds long lies
#: whole in one of them. Measured in bench/live_asr.py: alert p95 from the stored 30/25 windows
#: 26-28 s; with the quick pass every 4 s 10.4-15.5 s, every 3 s 10.3-10.9 s, every 2 s 7.7 s.
QUICK_WINDOW = 8.0
QUICK_HOP = 2.0
#: The quick pass never hears more than this at once (after a busy spell it skips ahead: the
#: stored transcript still matches what it skipped).
QUICK_MAX = 20.0
#: Words of its earlier windows the quick pass hands on with a new one (the context before a
#: match: an excluded word said just before it cancels it).
QUICK_KEEP = 20.0
#: Lag beyond a window that counts as falling behind (the newest segment's own length).
BEHIND_MARGIN = 5.0
#: The quick pass takes at most this share of one core (measured over QUICK_SPAN seconds):
#: with many watched channels each is heard less often, and clips and the stored transcripts
#: keep their CPU. Measured: ~0.21 CPU s per second per watched channel at 8/2 (0.14 at 8/3).
QUICK_SHARE = 0.5
QUICK_SPAN = 20.0
#: The share of one core the whole transcriber aims to stay under (stored transcripts plus the
#: quick pass): the quick pass has only what the stored transcripts leave of it, so adding
#: watched channels never makes the transcriber the one that cannot keep up.
KEEP_UP_SHARE = 0.7


#: The quick pass stops this far under KEEP_UP_SHARE of measured CPU: a window it starts just
#: under the line still costs ~0.02 of QUICK_SPAN (8 s heard: ~0.4 CPU s in 20 s), and a stored
#: window that falls due meanwhile more. bench/live_asr.py --capacity 8: at 0.03 compute/elapsed
#: 0.678, at 0.05 0.655 (before the measured check: 0.83-0.87).
QUICK_HEADROOM = 0.05
#: Seconds of CPU history needed before the measured share is trusted (the estimate before).
CPU_HISTORY = 5.0


def quick_share(stored_loads: Iterable[float | None]) -> float:
    """Pure: the share of a core the quick pass may take, given each Whisper channel's stored
    transcript load (CPU seconds per audio second; None before its first window)."""
    stored = sum(load for load in stored_loads if load)
    return round(min(QUICK_SHARE, max(0.0, KEEP_UP_SHARE - stored)), 4)


def quick_allowed(quick_spent: float, cpu_share: float | None,
                  stored_loads: Iterable[float | None], *, span: float = QUICK_SPAN) -> bool:
    """Pure: whether the quick pass may hear one more window, given the seconds it spent over
    the last `span`, the whole transcriber's measured CPU share over it (its ffmpeg included;
    None before CPU_HISTORY seconds of it) and the stored transcripts' loads. The estimate
    (`quick_share`) misses what the loads leave out (database reads, decoding, the quick pass's
    own ffmpeg-free decode); the measured share catches it."""
    if quick_spent >= quick_share(stored_loads) * span:
        return False
    return cpu_share is None or cpu_share < KEEP_UP_SHARE - QUICK_HEADROOM


class CpuMeter:
    """This process's CPU share (its threads and the children it waited for, i.e. its ffmpeg)
    over about the last `span` seconds of the monotonic clock."""

    def __init__(self, span: float = QUICK_SPAN, *,
                 cpu: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.span, self._cpu, self._clock = span, cpu or _cpu_seconds, clock
        self._marks: collections.deque = collections.deque()  # (monotonic, cpu seconds)

    def share(self) -> float | None:
        """CPU seconds per second since the oldest mark within `span` (one mark older kept as
        the baseline); None until CPU_HISTORY seconds are known."""
        now, cpu = self._clock(), self._cpu()
        self._marks.append((now, cpu))
        while len(self._marks) > 2 and self._marks[1][0] <= now - self.span:
            self._marks.popleft()
        then, cpu0 = self._marks[0]
        return (cpu - cpu0) / (now - then) if now - then >= CPU_HISTORY else None


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wants_whisper(transcribe: str | None, transcript_source: str | None) -> bool:
    """Pure: whether Whisper transcribes a channel with these settings."""
    return transcribe == "whisper" or (transcribe == "auto" and transcript_source != "captions")


def live_rows(segments: Iterable[Segment], win: Window, stored: Sequence[Said] = (), *,
              slack: float = SEAM_SLACK) -> list[tuple[float, float, str, list]]:
    """Pure: the rows a window stores, (wall_start, wall_end, text, [[start, end, word], ...]),
    from its transcript (times from the window's start): the words `stitch` keeps given the
    words `stored` before its seam, on the wall clock, grouped as Whisper's segments were;
    segments left with none are left out."""
    heard = []  # (start, end, word, which segment)
    for i, seg in enumerate(segments):
        words = list(seg.words) or [Word(seg.start, seg.end, seg.text.strip())]
        heard += [(round(win.start + w.start, 3), round(win.start + w.end, 3), w.word.strip(), i)
                  for w in words if w.word.strip()]
    groups: dict[int, list[list]] = {}
    for start, end, word, i in stitch(heard, win, stored, slack=slack):
        groups.setdefault(i, []).append([start, end, word])
    return [(words[0][0], words[-1][1], " ".join(w[2] for w in words), words)
            for _, words in sorted(groups.items())]


@dataclass(frozen=True)
class Job:
    """A channel Whisper transcribes."""

    id: int
    name: str


@dataclass(frozen=True)
class Outcome:
    """What one step did for one channel: a window transcribed (with the new rows' ids), a gap
    skipped, a window given up on, or nothing yet."""

    channel_id: int
    step: Window | Skip | None
    segment_ids: tuple[int, ...] = ()
    seconds: float = 0.0
    error: str | None = None


@dataclass
class _Recording:
    """What a channel has stored around its transcript's progress."""

    spans: list[Interval]
    newest_end: float | None
    files: list[SegmentFile]


@dataclass
class _Progress:
    loads: collections.deque = field(default_factory=lambda: collections.deque(
        maxlen=LOAD_WINDOWS))
    failures: dict[float, int] = field(default_factory=dict)


class LiveTranscriber:
    """Transcribes every channel that wants Whisper, a window at a time.

    `step(now)` does one round (at most one window per channel) and returns what it did;
    `run(stop)` repeats it until `stop` is set, back to back while windows are ready.
    `only`: just these channel names. `clock`: "now" in Unix seconds (tests move it).

    One process (`clipper live-asr`, or the `live-asr` child of `clipper up`) transcribes every
    channel whose `transcribe` is "whisper", or "auto" while its `transcript_source` is not
    "captions" (captions come from elsewhere). It loads one Whisper model, the first time a window
    is due, and keeps it. For each channel, when the next window (`clipper.transcribe.windows`) is
    wholly recorded, the stored segments under it are joined (stream copy) and its audio extracted
    as 16 kHz mono WAV in the process's scratch folder, transcribed, and the words the window is
    sure of are stored as `LiveSegment` rows (source "whisper") on the channel's wall clock, with
    `LiveAsrState.done_until` moved on in the same transaction; then `on_segments(channel_id, ids)`
    is called (the watch-list matcher).

    - Backlog (after an outage of this process): windows are taken oldest first and back to back,
      one window per channel per round (round robin), so no channel starves the others. Nothing is
      dropped to catch up: when the windows cost more time than they cover, the lag grows and the
      System page says so (`lag_seconds`, and `load`: seconds of compute per second of audio over
      the channel's last windows; the sum over channels above 1 means one core cannot keep up).
    - Gaps in the recording are skipped: a window never spans one; the last window before it keeps
      everything up to the gap, and the transcript moves on to where recording resumed. The tail of
      a recording that stopped (nothing arrived for CLIPPER_STALL_SECONDS) is transcribed too.
    - Restarts: the transcript resumes from `done_until`. A window's rows are stored only if
      `done_until` is still what the window was planned from (a compare-and-set in the same
      transaction), so a window is never stored twice, even by two processes at once.
    - A window whose media cannot be read (ffmpeg or the decoder fails) is tried MAX_TRIES times,
      then skipped with the reason kept in `LiveAsrState.error` — visible, never silent.

    Seams: Whisper times a word differently in two windows, so besides its sure words (midpoint in
    its own region) a window also looks SEAM_SLACK s before its seam and leaves out words that
    repeat one already stored there (`clipper.transcribe.windows.stitch`).

    Measured here (2 vCPU, tiny.en int8, beam 1, one thread). Whisper alone on 138 s and 180 s of
    espeak-ng news; CPU s per audio s / word error rate / mean and worst wait of a word:

        window/hop   cost          WER          word waits
        30 / 25      0.033-0.049   0.04-0.06    16-18 s, 30-34 s
        20 / 16      0.034-0.046   0.08-0.09    11-12 s, 20-26 s
        10 / 8       0.048-0.076   0.10         5 s, 9-10 s

    The cost barely depends on the window (decoding dominates; each window also re-hears its
    overlap), but short windows give Whisper less context: errors roughly double. End to end (a
    720p 2.5 Mbps channel in 4 s segments, the ffmpeg join and audio cut included), 1 and 2
    channels: 30/25 costs 0.055-0.058 CPU s per audio s (ffmpeg 0.011 of it), wall RTF
    0.054-0.073, so one core keeps up with ~15 channels; 10/8 costs 0.093-0.098 (~10 channels).
    30/25 is the default; `clipper live-asr --window 10 --hop 8` trades accuracy for a third of
    the wait.
    """

    def __init__(self, ctx: Context, *, on_segments: OnSegments | None = None,
                 window: float = DEFAULT_WINDOW, hop: float = DEFAULT_HOP,
                 only: Iterable[str] = (), clock: Clock = time.time,
                 scratch: Path | None = None, idle: float = IDLE_SECONDS,
                 on_heard: OnHeard | None = None, watched: Watched | None = None,
                 quick_window: float = QUICK_WINDOW, quick_hop: float = QUICK_HOP) -> None:
        check_geometry(window, hop)
        self.ctx, self.on_segments, self.window, self.hop = ctx, on_segments, window, hop
        self.on_heard, self.watched = on_heard, watched
        self.quick_window, self.quick_hop = quick_window, quick_hop
        self._quick: dict[int, float] = {}  # channel id -> end of its last quick window
        self._heard: dict[int, list[Said]] = {}  # channel id -> words its quick pass heard
        self._quick_spent: collections.deque = collections.deque()  # (monotonic, seconds)
        self._cpu = CpuMeter()
        self.slack = seam_slack(window, hop)
        self.only, self.clock, self.idle = frozenset(only), clock, idle
        self._scratch_parent = scratch
        self._scratch: Path | None = None
        self._engine: Any = None
        self._turn = 0
        self._progress: dict[int, _Progress] = {}

    # ------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Transcribe until `stop` is set; errors are logged and retried after a pause."""
        failing = 0  # rounds in a row in which every channel failed
        try:
            while not stop.is_set():
                try:
                    outcomes = self.step()
                except Exception as exc:  # noqa: BLE001 - the database may be away a while
                    log.warning("live transcription round failed: %s", exc)
                    outcomes = [Outcome(0, None, error=str(exc))]
                failed = bool(outcomes) and all(o.error for o in outcomes)
                failing = failing + 1 if failed else 0
                if failing:  # back off: 1, 2, 4 ... 30 s, not a warning a second
                    stop.wait(min(MAX_BACKOFF, self.idle * 2 ** (failing - 1)))
                elif not any(o.step is not None for o in outcomes):
                    stop.wait(self.idle)
        finally:
            self.close()

    def close(self) -> None:
        """Delete the scratch folder."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def jobs(self) -> list[Job]:
        """The channels Whisper transcribes now, by id."""
        with self.ctx.db.read() as session:
            rows = session.execute(select(Channel.id, Channel.name, Channel.transcribe,
                                          Channel.transcript_source)
                                   .where(Channel.transcribe.is_not(None))
                                   .order_by(Channel.id)).all()
        return [Job(r.id, r.name) for r in rows if wants_whisper(r.transcribe, r.transcript_source)
                and (not self.only or r.name in self.only)]

    def step(self, now: float | None = None) -> list[Outcome]:
        """One round: for each channel in turn (starting one further each round), its next
        window if it is wholly recorded, after skipping any gap before it."""
        now = self.clock() if now is None else now
        jobs = self.jobs()
        known = {j.id for j in jobs}
        for gone in set(self._progress) - known:
            del self._progress[gone]
        if not jobs:
            return []
        self._turn %= len(jobs)
        order = jobs[self._turn:] + jobs[:self._turn]
        self._turn += 1
        listening = self._listening(jobs)
        # The quick pass goes first while the stored transcripts keep up; once one falls behind
        # it only uses the time they leave, so watching never makes a transcript fall behind.
        first = bool(listening) and not self._behind(jobs)
        quick = self._quick_round(jobs, order, listening) if first else []
        stored = [self._channel_step(job, now) for job in order]
        if listening and not first and not any(o.step is not None for o in stored):
            quick = self._quick_round(jobs, order, listening)
        return stored + quick

    # ------------------------------------------------------------ the quick pass

    def _quick_round(self, jobs: Sequence[Job], order: Sequence[Job],
                     listening: set[int]) -> list[Outcome]:
        """A quick window for each listened channel in turn, while the budget has room: checked
        before each one, since eight of them at once would overshoot it by seconds of CPU."""
        out = []
        for job in order:
            if job.id not in listening:
                continue
            if not self._quick_room(jobs):
                break
            outcome = self._quick_step(job)
            if outcome is not None:
                out.append(outcome)
        return out

    def _quick_room(self, jobs: Sequence[Job]) -> bool:
        now = time.monotonic()
        while self._quick_spent and self._quick_spent[0][0] < now - QUICK_SPAN:
            self._quick_spent.popleft()
        loads = [_load(self._progress[j.id].loads) if j.id in self._progress else None
                 for j in jobs]
        return quick_allowed(sum(s for _, s in self._quick_spent), self._cpu.share(), loads)

    def _listening(self, jobs: Sequence[Job]) -> set[int]:
        """The channels the quick pass hears this round: those a watch applies to, unless it
        has no room in the CPU budget (`quick_allowed`) now."""
        if self.on_heard is None or self.watched is None or self.quick_hop <= 0:
            return set()
        if not self._quick_room(jobs):
            return set()
        try:
            return self.watched() & {j.id for j in jobs}
        except Exception as exc:  # noqa: BLE001 - alerts wait for the stored transcript then
            log.warning("could not read which channels are watched: %s", exc)
            return set()

    def _quick_step(self, job: Job) -> Outcome | None:
        """Hear the channel's newest QUICK_WINDOW seconds (once QUICK_HOP more have been
        recorded) and hand the words to `on_heard`; nothing is stored. Skipped where the stored
        transcript has already reached the newest audio (it is matched as it is stored)."""
        try:
            files = self._newest_files(job.id)
            if not files:
                return None
            end = files[-1].wall_start + files[-1].duration
            last = self._quick.get(job.id)
            if last is not None and end - last < self.quick_hop - GAP_TOLERANCE / 10:
                return None
            done = self._stored_to(job.id)
            if done is not None and done >= end - 1e-3:
                self._quick[job.id] = end
                return None
            start = end - self.quick_window
            if last is not None:  # overlap the last one: a phrase across its end is heard whole
                start = min(start, last - (self.quick_window - self.quick_hop))
            start = max(start, files[0].wall_start, end - QUICK_MAX)
            win = Window(start, end, start, end)
            began = time.perf_counter()
            segments = self._hear_quick([f for f in files
                                         if f.wall_start + f.duration > start], win)
            self._quick[job.id] = end
            words = [(round(start + w.start, 3), round(start + w.end, 3), w.word.strip())
                     for seg in segments for w in seg.words if w.word.strip()]
            # This window's words replace what earlier ones heard of the same seconds.
            kept = [w for w in self._heard.get(job.id, [])
                    if (w[0] + w[1]) / 2 < start and w[1] > end - QUICK_KEEP - self.quick_window]
            self._heard[job.id] = kept + words
            if words and self.on_heard is not None:
                # All of them are matched again: a match heard before with too little after it
                # to count (`match_heard`) counts now; one that was alerted is not alerted again.
                self.on_heard(job.id, self._heard[job.id], end)
            seconds = time.perf_counter() - began
            self._quick_spent.append((time.monotonic(), seconds))
            return Outcome(job.id, win, seconds=seconds)
        except Exception as exc:  # noqa: BLE001 - the stored transcript still comes
            log.warning("channel %s: the quick pass failed: %s", job.name, exc)
            return Outcome(job.id, None, error=str(exc))

    def _behind(self, jobs: Sequence[Job]) -> bool:
        """Whether a channel's stored transcript has a whole window waiting (it lags by more
        than a window: while it keeps up the lag stays under one)."""
        with self.ctx.db.read() as session:
            worst = session.scalar(select(func.max(LiveAsrState.lag_seconds)).where(
                LiveAsrState.channel_id.in_([j.id for j in jobs])))
        return worst is not None and worst > self.window + BEHIND_MARGIN

    def _stored_to(self, channel_id: int) -> float | None:
        """How far the channel's stored Whisper transcript reaches (None: not begun)."""
        with self.ctx.db.read() as session:
            state = session.get(LiveAsrState, channel_id)
            ok = state is not None and state.source in (None, SOURCE)
            return state.done_until if ok else None

    def _newest_files(self, channel_id: int) -> list[SegmentFile]:
        """The newest stored segments, back to QUICK_MAX seconds or the last gap before them."""
        seg = ChannelSegment
        with self.ctx.db.read() as session:
            newest = session.scalar(select(func.max(seg.wall_start))
                                    .where(seg.channel_id == channel_id))
            if newest is None:
                return []
            rows = session.execute(
                select(seg.path, seg.wall_start, seg.duration)
                .where(seg.channel_id == channel_id,
                       seg.wall_start > float(newest) - QUICK_MAX - MAX_SEGMENT_SECONDS)
                .order_by(seg.wall_start)).all()
        files = [f for f in (SegmentFile(Path(p), float(w), float(d)) for p, w, d in rows)
                 if f.path.is_file()]
        run: list[SegmentFile] = []
        for f in files:  # the last contiguous run
            if run and f.wall_start - (run[-1].wall_start + run[-1].duration) > GAP_TOLERANCE:
                run = []
            run.append(f)
        return run

    # ------------------------------------------------------------ one channel

    def _channel_step(self, job: Job, now: float) -> Outcome:
        """The channel's next window (gaps before it skipped); an error is kept on its state
        and the channel is tried again next round, while the others go on."""
        try:
            return self._next(job, now)
        except Exception as exc:  # noqa: BLE001 - one channel's trouble must not stop the rest
            log.warning("channel %s: live transcription failed: %s", job.name, exc)
            self._note_error(job.id, str(exc))
            return Outcome(job.id, None, error=str(exc))

    def _next(self, job: Job, now: float) -> Outcome:
        done = self._done_until(job)
        stopped = self._stopped(job.id, now)
        for _ in range(MAX_SKIPS):
            rec = self._recording(job.id, done)
            step = next_window(rec.spans, done, window=self.window, hop=self.hop,
                               final=stopped)
            if step is None:
                return Outcome(job.id, None)
            if isinstance(step, Window):
                return self._transcribe(job, done, step, rec)
            if not self._advance(job, done, step.to, rec.newest_end):
                return Outcome(job.id, None)  # someone else moved it: look again next round
            done = step.to
        return Outcome(job.id, step)

    def _done_until(self, job: Job) -> float | None:
        """Where the channel's transcript stands. Without a state row (a channel added with its
        transcript on) it starts where the recording starts; `set_transcribe` makes one that
        starts when the transcript was switched on. Taking over from another source (captions
        that stopped), it carries on where that left off, if that was recent."""
        with self.ctx.db.session() as session:
            state = session.get(LiveAsrState, job.id)
            if state is not None and state.source in (None, SOURCE):
                return state.done_until
            if state is None:
                session.add(LiveAsrState(channel_id=job.id, done_until=None, source=SOURCE))
                try:
                    session.flush()
                except IntegrityError:  # made by another process meanwhile: read it next round
                    session.rollback()
                return None
            newest = _newest_end(session, job.id)
            floor = None if newest is None else newest - TAKEOVER_SECONDS
            start = state.done_until
            if floor is not None and (start is None or start < floor):
                start = floor
            state.done_until, state.source, state.error = start, SOURCE, None
            return start

    def _recording(self, channel_id: int, done: float | None) -> _Recording:
        """Segments on disk from a little before `done` to a few windows after it (or, when
        nothing lies there, up to the next segment after it), as spans."""
        seg, ends = ChannelSegment, ChannelSegment.wall_start + ChannelSegment.duration
        mine = seg.channel_id == channel_id
        with self.ctx.db.read() as session:
            newest = _newest_end(session, channel_id)
            query = select(seg.path, seg.wall_start, seg.duration).where(mine)
            if done is not None:
                lo = done - self.window
                hi = done + 3 * self.window
                query = query.where(seg.wall_start >= lo - MAX_SEGMENT_SECONDS, ends > lo,
                                    seg.wall_start < hi)
            else:
                first = session.scalar(select(seg.wall_start).where(mine)
                                       .order_by(seg.wall_start).limit(1))
                if first is None:
                    return _Recording([], None, [])
                hi = first + 3 * self.window
                query = query.where(seg.wall_start < hi)
            rows = session.execute(query.order_by(seg.wall_start)).all()
            later = session.execute(
                select(seg.path, seg.wall_start, seg.duration).where(mine, seg.wall_start >= hi)
                .order_by(seg.wall_start).limit(1)).first()
        files = [f for f in (SegmentFile(Path(p), float(w), float(d)) for p, w, d in rows)
                 if f.path.is_file()]  # a file retention removed counts as a gap
        pieces = [(f.wall_start, f.wall_start + f.duration) for f in files]
        if later is not None:
            # More was recorded after what was read: a span read that does not reach it is
            # complete, and the empty stretch before it a gap to skip.
            pieces.append((float(later.wall_start), float(later.wall_start + later.duration)))
        return _Recording(merge_spans(pieces, tolerance=GAP_TOLERANCE), newest, files)

    def _stopped(self, channel_id: int, now: float) -> bool:
        """Whether the channel's recording has stopped (nothing arrived for the stall time), so
        its tail is transcribed without waiting for a whole window."""
        with self.ctx.db.read() as session:
            last = session.scalar(select(Channel.last_segment_at).where(Channel.id == channel_id))
        return last is None or last.timestamp() < now - self.ctx.settings.stall_seconds

    # ------------------------------------------------------------ a window

    def _transcribe(self, job: Job, done: float | None, win: Window,
                    rec: _Recording) -> Outcome:
        files = [f for f in rec.files
                 if f.wall_start < win.end and f.wall_start + f.duration > win.start]
        progress = self._progress.setdefault(job.id, _Progress())
        began = time.perf_counter()
        try:
            segments = self._hear(files, win)
        except PermanentError as exc:
            tries = progress.failures.get(win.start, 0) + 1
            progress.failures = {win.start: tries}
            reason = (f"could not transcribe {format_wallclock(win.start)} to "
                      f"{format_wallclock(win.end)}: {exc}")
            log.warning("channel %s: %s (try %d of %d)", job.name, reason, tries, MAX_TRIES)
            if tries < MAX_TRIES:
                self._note_error(job.id, reason)
                return Outcome(job.id, win, error=reason)
            # Given up: the window is skipped, and the reason stays on the System page.
            self._advance(job, done, win.keep_to, rec.newest_end, error=f"skipped: {reason}")
            progress.failures.clear()
            return Outcome(job.id, win, error=reason)
        seconds = time.perf_counter() - began
        progress.failures.clear()
        progress.loads.append((seconds, win.keep_to - win.keep_from))
        rows = live_rows(segments, win, self._stored_before(job.id, win), slack=self.slack)
        ids = self._store(job, done, win, rows, rec.newest_end, _load(progress.loads))
        if ids is None:
            return Outcome(job.id, None, seconds=seconds)  # stored by someone else meanwhile
        if ids and self.on_segments is not None:
            try:
                self.on_segments(job.id, ids)
            except Exception as exc:  # noqa: BLE001 - the transcript is stored; alerts may fail
                log.warning("channel %s: on_segments failed: %s", job.name, exc)
        return Outcome(job.id, win, tuple(ids), seconds)

    def _hear(self, files: Sequence[SegmentFile], win: Window) -> list[Segment]:
        """The window's transcript, times from its start: its segments joined (stream copy),
        its audio cut out as 16 kHz mono WAV, both in the scratch folder and deleted after."""
        if not files:
            return []
        scratch = self._scratch_dir()
        token = f"{round(win.start * 1000)}-{os.urandom(4).hex()}"
        section = scratch / f"{token}.mp4"
        wav = scratch / f"{token}.wav"
        try:
            joined = join_segments(files, section, timeout=120)
            extract_audio(joined.path, win.start - joined.offset, win.seconds, wav)
            return list(self._engine_once().transcribe(wav, batched=False).segments)
        finally:
            section.unlink(missing_ok=True)
            wav.unlink(missing_ok=True)

    def _hear_quick(self, files: Sequence[SegmentFile], win: Window) -> list[Segment]:
        """A quick window's transcript, cheaper than `_hear`: the segments' audio is decoded in
        this process, not joined and cut by two ffmpeg runs. (Whisper keeps its temperature
        fallback: one greedy pass was 3x cheaper on 8 s cut mid-speech, but missed phrases.)"""
        if not files:
            return []
        wav = self._scratch_dir() / f"quick-{round(win.start * 1000)}-{os.urandom(4).hex()}.wav"
        try:
            _write_wav(wav, _segments_audio(files, win.start, win.end))
            return list(self._engine_once().transcribe(wav, batched=False).segments)
        finally:
            wav.unlink(missing_ok=True)

    def _stored_before(self, channel_id: int, win: Window) -> list[Said]:
        """The words stored just before the window's seam (a word heard again is left out)."""
        lo = win.keep_from - 4 * self.slack
        with self.ctx.db.read() as session:
            rows = session.scalars(select(LiveSegment.words).where(
                LiveSegment.channel_id == channel_id, LiveSegment.source == SOURCE,
                LiveSegment.wall_end >= lo, LiveSegment.wall_start < win.keep_from))
            return [(float(a), float(b), str(w)) for words in rows for a, b, w in words
                    if b >= lo]

    def _engine_once(self) -> Any:
        if self._engine is None:
            from clipper.transcribe import get_engine

            self._engine = get_engine(self.ctx.settings)  # loaded once, kept for the process
        return self._engine

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            parent = self._scratch_parent or self.ctx.settings.media_dir / "tmp"
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_scratch(parent)
            self._scratch = Path(tempfile.mkdtemp(prefix=f"live-asr-{os.getpid()}-",
                                                  dir=parent))
        return self._scratch

    # ------------------------------------------------------------ storing

    def _claim(self, session: Any, job: Job, done: float | None, to: float,
               newest: float | None, **values: Any) -> bool:
        """Move `done_until` from `done` to `to` if it is still `done` (compare-and-set)."""
        was = (LiveAsrState.done_until.is_(None) if done is None
               else LiveAsrState.done_until == done)
        lag = None if newest is None else round(max(0.0, newest - to), 3)
        result = session.execute(
            update(LiveAsrState)
            .where(LiveAsrState.channel_id == job.id, was,
                   or_(LiveAsrState.source.is_(None), LiveAsrState.source == SOURCE))
            .values(done_until=to, lag_seconds=lag, source=SOURCE,
                    updated_at=datetime.now(UTC), **values))
        return bool(result.rowcount)

    def _advance(self, job: Job, done: float | None, to: float, newest: float | None, *,
                 error: str | None = None) -> bool:
        """Done up to `to` without storing words (a gap, or a window given up on)."""
        extra = {"error": error[:500]} if error else {}
        with self.ctx.db.session() as session:
            return self._claim(session, job, done, to, newest, **extra)

    def _store(self, job: Job, done: float | None, win: Window,
               rows: Sequence[tuple[float, float, str, list]], newest: float | None,
               load: float | None) -> list[int] | None:
        """The window's rows and its progress, in one transaction; None (nothing stored) when
        `done_until` moved meanwhile (this window was stored already)."""
        with self.ctx.db.session() as session:
            if not self._claim(session, job, done, win.keep_to, newest, load=load, error=None):
                return None
            added = [LiveSegment(channel_id=job.id, wall_start=a, wall_end=b, text=text,
                                 words=words, source=SOURCE) for a, b, text, words in rows]
            session.add_all(added)
            session.flush()
            return [row.id for row in added]

    def _note_error(self, channel_id: int, message: str) -> None:
        try:
            with self.ctx.db.session() as session:
                session.execute(update(LiveAsrState).where(LiveAsrState.channel_id == channel_id)
                                .values(error=message[:500], updated_at=datetime.now(UTC)))
        except Exception as exc:  # noqa: BLE001 - the database itself may be what failed
            log.debug("could not note the error: %s", exc)


def _segments_audio(files: Sequence[SegmentFile], start: float, end: float) -> Any:
    """Wall-clock [start, end) of recorded segments as 16 kHz mono samples, each segment's audio
    laid where its wall clock and its audio's own start put it; silence where none covers.
    (Close enough for the quick pass, which only matches; stored windows are cut by ffmpeg.)"""
    import numpy as np

    from clipper.transcribe.speech import SAMPLE_RATE, load_audio

    pcm = np.zeros(max(0, round((end - start) * SAMPLE_RATE)), np.float32)
    for f in files:
        audio = load_audio(f.path)
        at = round((f.wall_start + audio.offset - start) * SAMPLE_RATE)
        lo, hi = max(0, -at), min(len(audio.samples), len(pcm) - at)
        if hi > lo:
            pcm[at + lo:at + hi] = audio.samples[lo:hi]
    return pcm


def _write_wav(path: Path, samples: Any) -> None:
    """16 kHz mono float samples as 16-bit PCM WAV."""
    import numpy as np

    from clipper.transcribe.speech import SAMPLE_RATE

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes())


def _load(windows: Iterable[tuple[float, float]]) -> float | None:
    """Seconds of compute per second of audio over recent windows."""
    spent = covered = 0.0
    for seconds, audio in windows:
        spent, covered = spent + seconds, covered + audio
    return round(spent / covered, 4) if covered > 0 else None


def _newest_end(session: Any, channel_id: int) -> float | None:
    """End of the channel's newest segment (by wall clock; the index orders them)."""
    row = session.execute(
        select(ChannelSegment.wall_start, ChannelSegment.duration)
        .where(ChannelSegment.channel_id == channel_id)
        .order_by(ChannelSegment.wall_start.desc()).limit(1)).first()
    return None if row is None else float(row.wall_start) + float(row.duration)


def _remove_stale_scratch(parent: Path) -> None:
    """Scratch folders of live-asr processes that are gone (killed before their clean-up)."""
    for folder in parent.glob("live-asr-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_live_asr(ctx: Context, *, on_segments: OnSegments | None = None,
                 only: Iterable[str] = (), window: float = DEFAULT_WINDOW,
                 hop: float = DEFAULT_HOP, on_heard: OnHeard | None = None,
                 watched: Watched | None = None, quick_window: float = QUICK_WINDOW,
                 quick_hop: float = QUICK_HOP) -> int:
    """The `clipper live-asr` process: transcribe until SIGTERM or SIGINT (Ctrl-C)."""
    from clipper.pipeline.worker import lower_priority

    logging.getLogger().setLevel(ctx.settings.log_level)
    lower_priority()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    LiveTranscriber(ctx, on_segments=on_segments, only=only, window=window, hop=hop,
                    on_heard=on_heard, watched=watched, quick_window=quick_window,
                    quick_hop=quick_hop).run(stop)
    return 0
