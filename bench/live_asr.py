"""Watch-list alerts on live channels: alert latency, transcriber capacity, memory, live WER.

A loopback live server (testmedia/live.py, 2 s HLS segments with program-date-time) airs a
reference programme of espeak-ng speech on N channels per Whisper window geometry (default
30/25 as shipped, with the quick pass that hears a watched channel's newest 8 s every 4 s for
alerts, and 30/25 with it off: `30/25/q0`; `10/8` and the like work too) and on N
WebVTT-captioned channels: five sentences that end in a
phrase a watch looks for, five near-misses that must not alert (the phrase's words in another
order, or beside the watch's excluded word), six other sentences. The programme starts with 10 s
of silence (the recorder joins within it); channels alternate between two orders of the
sentences. The real processes run as `clipper up` runs them: `clipper record` (captions and their
watch matcher inside), one `clipper live-asr --window W --hop H [--quick-hop Q]` per geometry,
and the outbox deliverer (`DeliveryLoop`, every second) posting to a loopback webhook that
stamps arrivals. The run ends when every channel's transcript has passed the programme's last
sentence.

Printed, per geometry and for captions:
- alert latency p50/p95/max: air time of the last matched word (the end of its sentence, known
  from the generated audio and the server's program-date-time) -> webhook received. A cue holds
  its whole sentence and is stored when the subtitle segment it starts in is published, so a
  captions alert may come before the last word is said: its latency from the cue shown is
  printed too;
- alerts, missed phrases (with what the live transcript heard there), and false alerts (not on
  a phrase airing of that watch: must be 0);
- the transcriber's CPU seconds (ffmpeg children included) per audio second per channel, measured
  from every channel's first window to its last, its compute/elapsed, the per-window load it
  stores (LiveAsrState.load: wall seconds per audio second, what the System page shows), and the
  channels one core keeps up with at compute/elapsed <= 0.7 (extrapolated);
- live WER of each Whisper channel against the known text, beside the offline WER (the clip
  engine, tiny.en, on the same programme's audio decoded from the same segments), and the
  difference in points; and how many phrases the watches' matcher finds in the offline
  transcript (a phrase missed live that offline finds is the live path's loss);
- peak RSS (0.25 s samples) of the recorder, each transcriber and the whole tree of them (their
  ffmpeg children included; the bench process, which serves the channels, is not).
`--capacity N` then measures directly: N Whisper channels on one transcriber (the first geometry)
for `--capacity-seconds`, its compute/elapsed and the lag at the end.
Usage: python bench/live_asr.py [--channels 2] [--geometry 30/25,10/8] [--capacity 8]
       [--capacity-seconds 150] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the shipped tiny.en; never the network

from figures import percentile  # noqa: E402  (bench/figures.py, beside this script)
from sqlalchemy import select  # noqa: E402

from clipper.context import Context  # noqa: E402
from clipper.media.extract_audio import extract_audio  # noqa: E402
from clipper.media.live import first_pts  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.pipeline.notifications import DeliveryLoop  # noqa: E402
from clipper.search.query import parse_query  # noqa: E402
from clipper.services.channels import add_channel  # noqa: E402
from clipper.services.watches import Word, add_watch, find_matches  # noqa: E402
from clipper.settings import Settings  # noqa: E402
from clipper.storage.tables import Alert, Channel, LiveAsrState, LiveSegment  # noqa: E402
from testmedia.live import FFMPEG, PTS_HZ, LiveChannel, LiveMedia, LiveServer  # noqa: E402
from testmedia.speechgen import RATE, normalise, speak  # noqa: E402

CACHE = ROOT / "bench" / "out" / "live_asr"
SEG = 2.0
LEAD, GAP, TAIL = 10.0, 2.0, 3.0  # seconds of silence: before the first sentence, between, after
VERSION = 1  # bump when the generated programme changes
OP = Actor.operator("bench")

#: The watches: name -> query. Each phrase ends a sentence below, so the air time of the last
#: matched word is where that sentence ends.
WATCHES = {
    "flood": '"flood warning"',
    "strike": '"go on strike"',
    "rates": '"interest rates"',
    "airport": "airport closed -drill",
    "quit": '"prime minister quit"',
}
#: (sentence, the watch it must alert, or "" for none). Near-misses are at least 15 s and ten
#: words from their watch's phrase in both orders of the programme, so neither can reach the
#: other; words tiny.en hears in espeak-ng's voice (checked on the sentences alone).
SENTENCES: tuple[tuple[str, str], ...] = (
    ("Good evening, I am Maria Lopez and this is the evening news.", ""),
    ("The weather service has issued a flood warning.", "flood"),
    ("The strike will go on, the union said.", ""),  # near-miss: strike
    ("The city council voted twelve to three on Tuesday to approve the new budget.", ""),
    ("The central bank decided to raise interest rates.", "rates"),
    ("The airport was closed for a safety drill.", ""),  # near-miss: airport (excluded word)
    ("Police said forty two people were evacuated from the station in London.", ""),
    ("Train drivers voted to go on strike.", "strike"),
    ("There is no warning of a flood tonight.", ""),  # near-miss: flood
    ("Our reporter David Miller spoke to the minister in Berlin this morning.", ""),
    ("Snow has closed the airport.", "airport"),
    ("The prime minister will not quit, his office said.", ""),  # near-miss: quit
    ("John Smith, the mayor, promised three hundred new homes by next summer.", ""),
    ("Savers showed little interest in the new rates.", ""),  # near-miss: rates
    ("Late tonight the prime minister quit.", "quit"),
    ("The match ended two to one after ninety minutes of rain.", ""),
)
# Two phrases and a near-miss (of another watch's phrase): the test's run, shorter than the
# programme's first six sentences. (The airport near-miss is left out: tiny.en now and then
# hears it as a phrase, and the check is that the bench runs, not the model.)
QUICK = (SENTENCES[1], SENTENCES[2], SENTENCES[4])


# ---------------------------------------------------------------- the programme

@dataclass(frozen=True)
class Said:
    text: str
    watch: str
    start: float  # seconds from the loop's first video frame
    end: float


@dataclass(frozen=True)
class Programme:
    media: LiveMedia
    said: tuple[Said, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.said)

    @property
    def lead(self) -> float:
        """Seconds from the run's first sample (the cues' zero) to the first video frame."""
        return (self.media.video_pts - self.media.first_pts) / PTS_HZ

    def cues(self) -> list[tuple[float, float, str]]:
        """The sentences as WebVTT cues (seconds on the server's run, from its first sample)."""
        return [(s.start + self.lead, s.end + self.lead, s.text) for s in self.said]


def programme(sentences: Sequence[tuple[str, str]]) -> Programme:
    """The sentences as a loop of 2 s MPEG-TS segments (320x180 testsrc2 under the speech),
    generated once into bench/out/live_asr."""
    key = json.dumps([VERSION, list(sentences), LEAD, GAP, TAIL, SEG])
    folder = CACHE / hashlib.sha256(key.encode()).hexdigest()[:12]
    info = folder / "programme.json"
    if not info.exists():
        _generate(folder, sentences)
    meta = json.loads(info.read_text())
    data = tuple((folder / name).read_bytes() for name in meta["segments"])
    media = LiveMedia(folder, data, tuple(first_pts(d) for d in data), SEG, 25, meta["video_pts"])
    return Programme(media, tuple(Said(*s) for s in meta["said"]))


def _generate(folder: Path, sentences: Sequence[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    parts, said, cursor = [np.zeros(int(LEAD * RATE), np.int16)], [], LEAD
    for i, (text, watch) in enumerate(sentences):
        if i:
            parts.append(np.zeros(int(GAP * RATE), np.int16))
            cursor += GAP
        samples = speak(text)
        said.append((text, watch, round(cursor, 4), round(cursor + len(samples) / RATE, 4)))
        parts.append(samples)
        cursor += len(samples) / RATE
    # Whole segments, and one more that is dropped: the encoder's last segment may run short,
    # and the server needs equal ones.
    count = int(np.ceil((cursor + TAIL) / SEG))
    total = (count + 1) * SEG
    audio = np.concatenate(parts)
    audio = np.concatenate([audio, np.zeros(int(total * RATE) - len(audio), np.int16)])
    wav = folder / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    gop = str(round(SEG * 25))
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={total}",
                    "-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset",
                    "veryfast", "-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop,
                    "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000", "-ac", "1", "-t",
                    str(total), "-f", "segment", "-segment_time", str(SEG), "-segment_format",
                    "mpegts", str(folder / "seg%03d.ts")], check=True, capture_output=True)
    names = sorted(p.name for p in folder.glob("seg*.ts"))[:count]
    with (folder / "source.ts").open("wb") as source:  # the loop as one file: the offline run
        for name in names:
            source.write((folder / name).read_bytes())
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=start_pts", "-of", "csv=p=0", str(folder / names[0])],
                           capture_output=True, text=True, check=True)
    wav.unlink()
    (folder / "programme.json").write_text(json.dumps(
        {"segments": names, "video_pts": int(probe.stdout.split()[0]), "said": said}))


def rotated(sentences: Sequence[tuple[str, str]], by: int) -> tuple[tuple[str, str], ...]:
    return tuple(sentences[by:]) + tuple(sentences[:by])


@dataclass(frozen=True)
class Offline:
    wer: float
    found: int  # phrases the watches find in the offline transcript
    false: int  # and matches elsewhere


def offline(prog: Programme, settings: Settings, scratch: Path) -> Offline:
    """The clip engine on the whole programme's audio, decoded from the same segments: its WER,
    and what the watches' matcher finds in it (the live transcript's yardstick)."""
    from clipper.transcribe import get_engine

    wav = extract_audio(prog.media.source, 0.0, prog.media.loop_seconds, scratch / "prog.wav")
    transcript = get_engine(settings).transcribe(wav)
    words = [Word(w.start, w.end, w.word, True) for w in transcript.words()]
    found = false = 0
    for name, query in WATCHES.items():
        for m in find_matches(words, parse_query(query)):
            if any(s.watch == name and m.start < s.end + 1 and m.end > s.start - 1
                   for s in prog.said):
                found += 1
            else:
                false += 1
    return Offline(jiwer.wer(normalise(prog.text), normalise(transcript.text)), found, false)


# ---------------------------------------------------------------- the stack

class Hook(http.server.ThreadingHTTPServer):
    """The team's webhook: every body with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict]] = []
        super().__init__(("127.0.0.1", 0), _HookHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def alerts(self) -> list[tuple[float, dict]]:
        return [(t, b) for t, b in list(self.received) if b.get("event") == "watch.alert"]


@contextlib.contextmanager
def hook_server() -> Iterator[Hook]:
    hook = Hook()
    thread = threading.Thread(target=hook.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.shutdown()
        hook.server_close()


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((time.time(), body))  # stamped before answering
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Geometry:
    window: float
    hop: float
    quick_hop: float | None = None
    """The quick pass's hop (`clipper live-asr --quick-hop`; 0: off); None: the product's."""

    @property
    def label(self) -> str:
        quick = "" if self.quick_hop is None else f"/q{self.quick_hop:g}"
        return f"{self.window:g}/{self.hop:g}{quick}"

    @property
    def prefix(self) -> str:
        quick = "" if self.quick_hop is None else f"q{self.quick_hop:g}"
        return f"w{self.window:g}{quick}".replace(".", "_")

    @property
    def args(self) -> list[str]:
        """The transcriber's options."""
        quick = [] if self.quick_hop is None else ["--quick-hop", f"{self.quick_hop:g}"]
        return ["--window", str(self.window), "--hop", str(self.hop), *quick]


@dataclass
class Feed:
    """One channel: on the server, in Clipper, and what it airs."""

    name: str
    kind: str  # a Geometry label, or "captions"
    prog: Programme
    live: LiveChannel
    id: int = 0


def tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def rss(pid: int) -> int:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def cpu(pid: int) -> float:
    """CPU seconds of a process and its waited-for children (the transcriber's ffmpeg runs)."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class Sampler(threading.Thread):
    """Peak RSS of each named process with its children, and of all of them together."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak, self.done = pids, dict.fromkeys([*pids, "tree"], 0), False

    def run(self) -> None:
        while not self.done:
            sizes = {name: rss(pid) for name, pid in self.pids.items()}
            for name, size in [*sizes.items(), ("tree", sum(sizes.values()))]:
                self.peak[name] = max(self.peak[name], size)
            time.sleep(0.25)


@dataclass
class Stack:
    """`clipper record` and one `clipper live-asr` per geometry, on one CLIPPER_HOME."""

    home: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> int:
        log = (self.home / f"{name.replace('/', '-')}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", *args], env=self.env,
                                stdout=log, stderr=log)
        self.procs[name] = proc
        return proc.pid

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in 30 s: killed", flush=True)
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def desk(hook_url: str) -> Iterator[tuple[Context, Path, dict[str, str]]]:
    """A fresh CLIPPER_HOME (SQLite, migrated) and the environment its processes run with."""
    home = Path(tempfile.mkdtemp(prefix="clipper-live-asr-bench-"))
    env = {**os.environ, "CLIPPER_HOME": str(home), "CLIPPER_URL_ALLOWLIST": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "CLIPPER_WEBHOOK_URL": hook_url}
    for key in ("REDIS_URL", "DATABASE_URL", "CLIPPER_WHISPER_MODEL", "CLIPPER_WHISPER_THREADS",
                "CLIPPER_WHISPER_BEAM_SIZE"):
        env.pop(key, None)  # the product's defaults: tiny.en, beam 1, one thread
    ctx = Context.build(Settings.from_env(env))
    try:
        yield ctx, home, env
    except BaseException:
        print(f"(the processes' logs are kept in {home})", flush=True)
        raise
    else:
        shutil.rmtree(home, ignore_errors=True)  # recordings: a few MB a channel-minute
    finally:
        ctx.close()


def add_feeds(ctx: Context, server: LiveServer,
              plan: list[tuple[str, str, Programme]]) -> list[Feed]:
    """Each (name, kind, programme) as a server channel and a Clipper channel; the server's
    run starts three segments before now, so the recorder's first look (the newest three)
    begins at the programme's start, or a few seconds into its silence."""
    feeds = []
    for name, kind, prog in plan:
        captions = kind == "captions"
        live = server.add(name, media=prog.media, window=3,
                          subtitles=prog.cues() if captions else None)
        add_channel(ctx, OP, name, server.url(name, "master.m3u8" if captions else "index.m3u8"),
                    transcribe="captions" if captions else "whisper")
        feeds.append(Feed(name, kind, prog, live))
    with ctx.db.read() as session:
        ids = dict(session.execute(select(Channel.name, Channel.id)).all())
    for feed in feeds:
        feed.id = ids[feed.name]
    return feeds


def states(ctx: Context) -> dict[int, LiveAsrState]:
    with ctx.db.read() as session:
        rows = list(session.scalars(select(LiveAsrState)))
        for row in rows:
            session.expunge(row)
        return {row.channel_id: row for row in rows}


def air(feed: Feed, t: float, loop: int = 0) -> float:
    """Wall time at which programme time `t` aired in loop `loop` of the channel's run."""
    epoch, length = feed.live.runs[-1].epoch, feed.prog.media.loop_seconds
    lo = epoch - 1 + loop * length
    return feed.live.airings(t, lo, lo + length)[0]


# ---------------------------------------------------------------- the run

@dataclass
class Found:
    feed: Feed
    watch: str
    wall_start: float
    wall_end: float
    text: str
    arrived: float | None
    said: Said | None = None  # the phrase airing it is for; None: a false alert
    loop: int = 0

    @property
    def latency(self) -> float | None:
        if self.said is None or self.arrived is None:
            return None
        return self.arrived - air(self.feed, self.said.end, self.loop)

    @property
    def from_start(self) -> float | None:
        """From the air time of the phrase's sentence's start (a caption cue is shown then)."""
        if self.said is None or self.arrived is None:
            return None
        return self.arrived - air(self.feed, self.said.start, self.loop)


def classify(feeds: list[Feed], ctx: Context, hook: Hook) -> list[Found]:
    """Every stored alert with its webhook arrival and the phrase airing it belongs to."""
    arrived = {b["alert_id"]: t for t, b in hook.alerts()}
    by_name = {f.name: f for f in feeds}
    with ctx.db.read() as session:
        rows = [(a.id, a.watch, a.channel, a.wall_start, a.wall_end, a.text)
                for a in session.scalars(select(Alert).order_by(Alert.id))]
    out = []
    for alert_id, watch, channel, start, end, text in rows:
        feed = by_name[channel]
        found = Found(feed, watch, start, end, text, arrived.get(alert_id))
        for loop in (0, 1):
            for s in feed.prog.said:
                lo, hi = air(feed, s.start, loop) - 1.0, air(feed, s.end, loop) + 1.0
                if s.watch == watch and start < hi and end > lo:
                    found.said, found.loop = s, loop
        out.append(found)
    return out


def live_wer(ctx: Context, feed: Feed) -> float:
    """WER of the channel's live transcript of the programme's first airing."""
    lo = air(feed, feed.prog.said[0].start) - 1.0
    hi = air(feed, feed.prog.said[-1].end) + 1.0
    with ctx.db.read() as session:
        rows = session.scalars(select(LiveSegment.words).where(
            LiveSegment.channel_id == feed.id, LiveSegment.wall_end > lo,
            LiveSegment.wall_start < hi)).all()
    words = sorted((float(a), str(w)) for ws in rows for a, b, w in ws
                   if lo <= (float(a) + float(b)) / 2 < hi)
    return jiwer.wer(normalise(feed.prog.text), normalise(" ".join(w for _, w in words)))


def heard_text(ctx: Context, feed: Feed, said: Said) -> str:
    """The live transcript's words over a sentence's first airing."""
    lo, hi = air(feed, said.start) - 0.5, air(feed, said.end) + 0.5
    with ctx.db.read() as session:
        rows = session.scalars(select(LiveSegment.words).where(
            LiveSegment.channel_id == feed.id, LiveSegment.wall_end > lo,
            LiveSegment.wall_start < hi)).all()
    return " ".join(w for _, w in sorted((float(a), str(w)) for ws in rows for a, b, w in ws
                                         if lo <= (float(a) + float(b)) / 2 < hi))


@dataclass
class Cost:
    """The transcriber's CPU between two moments, and the audio it transcribed meanwhile."""

    cpu0: float
    t0: float
    done0: dict[int, float]
    cpu1: float = 0.0
    t1: float = 0.0
    done1: dict[int, float] = field(default_factory=dict)

    @property
    def audio(self) -> float:
        return sum(self.done1[c] - self.done0[c] for c in self.done0)

    @property
    def per_audio_second(self) -> float:
        return (self.cpu1 - self.cpu0) / self.audio if self.audio > 0 else float("nan")

    @property
    def utilisation(self) -> float:
        return (self.cpu1 - self.cpu0) / (self.t1 - self.t0) if self.t1 > self.t0 else float("nan")


def measure_cost(ctx: Context, pid: int, feeds: list[Feed], costs: dict[str, Cost], key: str,
                 finished: bool) -> None:
    """Start the geometry's cost once every channel has its first window (the model loaded);
    end it when the channels are finished."""
    st = states(ctx)
    done = {f.id: st[f.id].done_until for f in feeds if f.id in st and st[f.id].done_until}
    if key not in costs and len(done) == len(feeds):
        costs[key] = Cost(cpu(pid), time.monotonic(), done)
    elif key in costs and finished and not costs[key].done1:
        c = costs[key]
        c.cpu1, c.t1, c.done1 = cpu(pid), time.monotonic(), done


def fmt(values: Sequence[float], unit: str = " s") -> str:
    if not values:
        return "n/a"
    return (f"p50 {statistics.median(values):5.1f}{unit}, p95 {percentile(values, 0.95):5.1f}"
            f"{unit}, max {max(values):5.1f}{unit}")


def geometry(text: str) -> Geometry:
    """"30/25" or "30/25/q4" -> a Geometry."""
    window, hop, *quick = text.split("/")
    return Geometry(float(window), float(hop), float(quick[0].lstrip("q")) if quick else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=2, help="channels per geometry, and captioned")
    ap.add_argument("--geometry", default="30/25,30/25/q0",
                    help="Whisper window/hop seconds, one transcriber each; /qN sets the quick "
                         "pass's hop, /q0 turns it off (default 30/25 as shipped, with its quick "
                         "pass over watched channels, and 30/25/q0 without it)")
    ap.add_argument("--capacity", type=int, default=0, metavar="N",
                    help="then measure N Whisper channels on one transcriber")
    ap.add_argument("--capacity-seconds", type=float, default=150.0)
    ap.add_argument("--quick", action="store_true",
                    help="a ~25 s programme, one channel, 10/8 only (checks the bench runs)")
    a = ap.parse_args()
    if a.quick:
        a.channels, a.geometry, a.capacity = 1, "10/8", 0
    geometries = [geometry(g) for g in a.geometry.split(",")]
    load0 = os.getloadavg()
    print(f"Load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)
    print("Preparing the programmes (cached after the first run)...", flush=True)
    base = QUICK if a.quick else SENTENCES
    progs = [programme(base)] if a.quick else [programme(base), programme(rotated(base, 8))]
    print(f"  {len(base)} sentences, {sum(1 for _, w in base if w)} phrases, loop "
          f"{progs[0].media.loop_seconds:.0f} s", flush=True)
    with hook_server() as hook, desk(hook.url) as (ctx, home, env):
        wers = []
        for i, prog in enumerate(progs):
            t0 = time.process_time()
            off = offline(prog, ctx.settings, home)
            wers.append(off.wer)
            print(f"  offline (order {'AB'[i]}): WER {off.wer:.3f}, the watches find "
                  f"{off.found} of {sum(1 for s in prog.said if s.watch)} phrases and "
                  f"{off.false} false ({time.process_time() - t0:.1f} CPU s)", flush=True)
        watch_run(a, geometries, progs, wers, ctx, home, env, hook)
    if a.capacity:
        with hook_server() as hook, desk(hook.url) as (ctx, home, env):
            capacity_run(a, geometries[0], progs, ctx, home, env)
    load1 = os.getloadavg()
    print(f"\nLoad average at the end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def watch_run(a: argparse.Namespace, geometries: list[Geometry], progs: list[Programme],
              offline: list[float], ctx: Context, home: Path, env: dict[str, str],
              hook: Hook) -> None:
    plan = [(f"{g.prefix}-{i}", g.label, progs[i % len(progs)])
            for g in geometries for i in range(a.channels)]
    plan += [(f"cc-{i}", "captions", progs[i % len(progs)]) for i in range(a.channels)]
    for name, query in WATCHES.items():
        add_watch(ctx, OP, name, query)
    stack = Stack(home, env)
    with LiveServer(progs[0].media) as server:
        feeds = add_feeds(ctx, server, plan)
        pids = {"recorder": stack.start("recorder", "record")}
        for g in geometries:
            names = ",".join(f.name for f in feeds if f.kind == g.label)
            pids[g.label] = stack.start(g.label, "live-asr", "--channels", names, *g.args)
        sampler = Sampler(pids)
        sampler.start()
        deliverer = DeliveryLoop(ctx)  # as `clipper up` runs it: the outbox every second
        deliverer.start()
        began = time.monotonic()
        kinds = [g.label for g in geometries] + ["captions"]
        print(f"Airing {len(feeds)} channels ({a.channels} per geometry "
              f"{', '.join(kinds)})...", flush=True)
        costs: dict[str, Cost] = {}
        try:
            # The end: every channel's transcript past its programme's last sentence.
            ends = {f.id: air(f, f.prog.said[-1].end) + 0.5 for f in feeds}
            deadline = began + progs[0].media.loop_seconds + 120
            shown = began
            while time.monotonic() < deadline:
                st = states(ctx)
                finished = {f.id for f in feeds
                            if f.id in st and (st[f.id].done_until or 0) >= ends[f.id]}
                for g in geometries:
                    mine = [f for f in feeds if f.kind == g.label]
                    measure_cost(ctx, pids[g.label], mine, costs, g.label,
                                 all(f.id in finished for f in mine))
                if len(finished) == len(feeds):
                    break
                if time.monotonic() - shown > 20:
                    shown = time.monotonic()
                    lags = ", ".join(f"{f.name} {st[f.id].lag_seconds or 0:.0f}" for f in feeds
                                     if f.id in st and f.kind != "captions")
                    print(f"  {shown - began:4.0f} s: {len(hook.alerts())} alerts delivered; "
                          f"transcript lag (s) {lags}", flush=True)
                time.sleep(0.5)
            else:
                print("  (deadline: not every channel finished)", flush=True)
            with ctx.db.read() as session:
                stored = len(session.scalars(select(Alert.id)).all())
            settle = time.monotonic() + 15  # the outbox posts within a second or two
            while len(hook.alerts()) < stored and time.monotonic() < settle:
                time.sleep(0.2)
            took = time.monotonic() - began
        finally:
            sampler.done = True
            deliverer.stop()
            stack.stop()
        report(a, geometries, feeds, progs, offline, ctx, hook, costs, sampler.peak, took)


def report(a: argparse.Namespace, geometries: list[Geometry], feeds: list[Feed],
           progs: list[Programme], offline: list[float], ctx: Context, hook: Hook,
           costs: dict[str, Cost], peak: dict[str, int], took: float) -> None:
    found = classify(feeds, ctx, hook)
    st = states(ctx)
    print(f"\nRun: {took:.0f} s; {len(found)} alerts stored, {len(hook.alerts())} delivered")
    for f in found:
        if f.said is None:
            print(f"  FALSE ALERT {f.watch} on {f.feed.name}: {f.text!r}")
    print(f"\n{'':10} {'alerts':>6} {'missed':>6} {'false':>5}  latency (last word -> webhook)"
          f"{'':11} live WER  offline  diff (points)")
    for kind in [g.label for g in geometries] + ["captions"]:
        mine = [f for f in feeds if f.kind == kind]
        alerts = [x for x in found if x.feed.kind == kind]
        true = [x for x in alerts if x.said is not None]
        false = len(alerts) - len(true)
        heard = {(x.feed.name, x.said.text, x.loop) for x in true}
        missed = [(f.name, s.text) for f in mine for s in f.prog.said
                  if s.watch and (f.name, s.text, 0) not in heard]
        lat = [x.latency for x in true if x.latency is not None]
        label = "captions" if kind == "captions" else f"whisper {kind}"
        if kind == "captions":
            wer = ""
        else:
            lives = [live_wer(ctx, f) for f in mine]
            offs = [offline[next(i for i, p in enumerate(progs) if p is f.prog)]
                    for f in mine]
            diff = [100 * (lv - of) for lv, of in zip(lives, offs, strict=True)]
            wer = (f"{statistics.mean(lives):.3f}    {statistics.mean(offs):.3f}    "
                   f"{statistics.mean(diff):+.1f} (per channel "
                   f"{', '.join(f'{d:+.1f}' for d in diff)})")
        print(f"{label:16} {len(alerts):>3} {len(missed):>6} {false:>5}  {fmt(lat)}  {wer}")
        if kind == "captions":
            shown = [x.from_start for x in true if x.from_start is not None]
            print(f"{'':36}from the cue shown: {fmt(shown)}")
        for name, text in missed:
            feed = next(f for f in mine if f.name == name)
            said = next(s for s in feed.prog.said if s.text == text)
            print(f"    missed on {name}: {text!r}; heard {heard_text(ctx, feed, said)!r}")
    print("\nTranscriber cost (CPU s per audio s includes its ffmpeg; from each channel's first "
          "window to its last):")
    for g in geometries:
        c = costs.get(g.label)
        loads = [st[f.id].load for f in feeds if f.kind == g.label and f.id in st
                 and st[f.id].load is not None]
        if c is None or not c.done1 or c.audio <= 0:
            print(f"  {g.label}: not measured (the run ended first)")
            continue
        per = c.per_audio_second
        print(f"  {g.label}: {per:.3f} CPU s per audio s per channel over {c.audio:.0f} s of "
              f"audio; compute/elapsed {c.utilisation:.3f} for {a.channels} channels "
              f"({c.utilisation / a.channels:.3f} each); stored load (wall) "
              f"{statistics.mean(loads) if loads else float('nan'):.3f}; one core at <= 0.7: "
              f"~{0.7 / per:.0f} channels")
    mb = {k: v / 2**20 for k, v in peak.items()}
    print("Peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in mb.items() if k != "tree")
          + f"; whole tree {mb['tree']:.0f} MB")


def capacity_run(a: argparse.Namespace, g: Geometry, progs: list[Programme], ctx: Context,
                 home: Path, env: dict[str, str]) -> None:
    """N Whisper channels on one transcriber: its compute/elapsed while it keeps up."""
    n = a.capacity
    print(f"\nCapacity: {n} channels on one transcriber ({g.label}), measured for "
          f"{a.capacity_seconds:.0f} s after every channel's first window...", flush=True)
    for name, query in WATCHES.items():
        add_watch(ctx, OP, name, query)  # the matcher's cost belongs to the transcriber's
    stack = Stack(home, env)
    with LiveServer(progs[0].media) as server:
        feeds = add_feeds(ctx, server, [(f"cap-{i}", g.label, progs[i % len(progs)])
                                        for i in range(n)])
        pids = {"recorder": stack.start("recorder", "record"),
                "transcriber": stack.start("capacity", "live-asr", *g.args)}
        sampler = Sampler(pids)
        sampler.start()
        costs: dict[str, Cost] = {}
        began = time.monotonic()
        try:
            deadline = began + g.window + 120  # the first windows, however loaded
            while "n" not in costs and time.monotonic() < deadline:
                measure_cost(ctx, pids["transcriber"], feeds, costs, "n", False)
                time.sleep(0.5)
            if "n" not in costs:
                print("  not every channel got its first window: no figure", flush=True)
                return
            c = costs["n"]
            time.sleep(a.capacity_seconds)  # the measurement window itself
            st = states(ctx)
            c.cpu1, c.t1 = cpu(pids["transcriber"]), time.monotonic()
            c.done1 = {f.id: st[f.id].done_until for f in feeds}
            lags = [st[f.id].lag_seconds or 0.0 for f in feeds]
        finally:
            sampler.done = True
            stack.stop()
    keeps = c.utilisation <= 0.7 and max(lags) <= g.window + g.hop + 10
    print(f"  {n} channels: compute/elapsed {c.utilisation:.3f} (CPU {c.cpu1 - c.cpu0:.1f} s in "
          f"{c.t1 - c.t0:.0f} s); {c.per_audio_second:.3f} CPU s per audio s per channel; "
          f"audio transcribed {c.audio / n / (c.t1 - c.t0):.2f} s per second per channel; "
          f"lag at the end max {max(lags):.0f} s (a window and a hop: {g.window + g.hop:.0f} s)")
    print(f"  keeps up at <= 0.7: {'yes' if keeps else 'NO'}; peak RSS transcriber "
          f"{sampler.peak['transcriber'] / 2**20:.0f} MB, recorder "
          f"{sampler.peak['recorder'] / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
