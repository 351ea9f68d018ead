"""The channel recorder against a live loopback server: clocks, faults, pausing, stalls."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from polling import poll
from sqlalchemy import delete, select, update

from clipper.context import Context
from clipper.media.live import PTS_WRAP, first_pts, pts_delta
from clipper.pipeline.notifications import deliver_due
from clipper.pipeline.recorder import Recorder, segment_path
from clipper.settings import Settings
from clipper.storage.tables import Channel, ChannelSegment
from testmedia.live import LiveMedia, LiveServer, make_live_media
from testmedia.mediagen import decode_gray, match_frame

pytestmark = pytest.mark.services

SEG = 1.0  # the test channels' segment length (s)


# ---------------------------------------------------------------- helpers



def add_channel(ctx: Context, name: str, url: str, *, paused: bool = False) -> None:
    with ctx.db.session() as session:
        session.add(Channel(name=name, url=url, paused=paused))


def channel_row(ctx: Context, name: str) -> Channel:
    with ctx.db.session() as session:
        return session.scalars(select(Channel).where(Channel.name == name)).one()


def stored(ctx: Context, name: str) -> list[ChannelSegment]:
    with ctx.db.session() as session:
        return list(session.scalars(
            select(ChannelSegment).join(Channel).where(Channel.name == name)
            .order_by(ChannelSegment.id)))


def at_least(ctx: Context, name: str, n: int,
             keep: Callable[[ChannelSegment], bool] = lambda s: True) -> Callable[[], Any]:
    def check() -> list[ChannelSegment] | None:
        rows = stored(ctx, name)
        return rows if sum(map(keep, rows)) >= n else None
    return check


@contextlib.contextmanager
def recording(ctx: Context, **options: Any) -> Iterator[Recorder]:
    """A recorder running in a thread (fast refresh) until the block ends."""
    recorder = Recorder(ctx, refresh=0.3, tick=0.1, ts_seconds=2.0, **options)
    thread = threading.Thread(target=recorder.run, name="recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the recorder did not stop"


def channel_thread_alive(name: str) -> bool:
    return any(t.name == f"record-{name}" and t.is_alive() for t in threading.enumerate())


@pytest.fixture(scope="module")
def media() -> LiveMedia:
    return make_live_media(seg_seconds=SEG)


@pytest.fixture(scope="module")
def server(media: LiveMedia) -> Iterator[LiveServer]:
    with LiveServer(media) as live:
        yield live


@pytest.fixture(scope="module")
def source_frames(media: LiveMedia) -> Any:
    return decode_gray(media.source)


# ---------------------------------------------------------------- one recorder, many channels

@dataclass
class Rig:
    ctx: Context
    live: LiveServer
    recorder: Recorder


@pytest.fixture(scope="module")
def rig(server: LiveServer, tmp_path_factory: pytest.TempPathFactory,
        sqlite_template: Path) -> Iterator[Rig]:
    """Every fault channel recorded by one recorder from the start, side by side."""
    home = tmp_path_factory.mktemp("recorder")
    shutil.copy(sqlite_template, home / "clipper.db")
    ctx = Context.build(Settings.from_env({
        "CLIPPER_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'clipper.db'}",
        "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}))
    wrap_after = 12  # seconds into the run (which began a window, 6 s, before now)
    server.add("wrap", pdt=False, pts_start=PTS_WRAP - wrap_after * 90_000)
    server.add("nopdt", pdt=False)
    for name in ("pdt", "restart", "dropout", "ts", "page"):
        server.add(name)
    paths = {"pdt": "index.m3u8", "restart": "index.m3u8", "dropout": "index.m3u8",
             "wrap": "index.m3u8", "nopdt": "master.m3u8", "ts": "stream.ts",
             "page": "page.html"}
    for name, path in paths.items():
        add_channel(ctx, name, server.url(name, path))
    with recording(ctx) as recorder:
        yield Rig(ctx, server, recorder)
    ctx.close()


def _contiguous(rows: list[ChannelSegment], slack: float = 0.1) -> bool:
    return all(abs(b.wall_start - a.wall_start - a.duration) < slack
               for a, b in zip(rows, rows[1:], strict=False))


def test_pdt_channel_is_stored_whole_at_the_broadcasters_times(
        rig: Rig, media: LiveMedia, source_frames: Any) -> None:
    rows = poll(at_least(rig.ctx, "pdt", 5), 20, "5 segments")
    live = rig.live.channels["pdt"]
    aired = {a.seq: a for a in live.published()}
    assert rows[0].seq >= 3  # the live edge, not the 6-segment window it joined
    assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + len(rows)))
    assert _contiguous(rows)
    for row in rows:
        assert abs(row.wall_start - aired[row.seq].wall) < 0.002  # PDT has milliseconds
        assert row.first_pts == aired[row.seq].pts and not row.discontinuity
        path = Path(row.path)
        assert path == segment_path(rig.ctx.settings.media_dir, "pdt", row.seq, row.wall_start)
        assert path.read_bytes() == live.segment(0, row.seq)  # stored unchanged
        assert row.bytes == path.stat().st_size
    ch = channel_row(rig.ctx, "pdt")
    assert (ch.state, ch.clock, ch.error) == ("recording", "program-date-time", None)
    assert abs(ch.last_segment_at.timestamp() - time.time()) < 5
    # The first frame of a stored segment is the frame that aired at the time it maps to.
    row = rows[1]
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=start_pts", "-of", "csv=p=0", row.path],
                           capture_output=True, text=True, check=True)
    wall = row.wall_start + pts_delta(row.first_pts, int(probe.stdout.split()[0])) / 90_000
    index, diff, _ = match_frame(decode_gray(Path(row.path))[0], source_frames)
    assert index == live.frame_at(wall) and diff < 1.0


def test_a_source_restart_is_marked_as_a_discontinuity(rig: Rig, media: LiveMedia) -> None:
    live = rig.live.channels["restart"]
    poll(at_least(rig.ctx, "restart", 2), 20, "2 segments before the restart")
    restarted = live.restart() - 0.5  # (the program-date-times are rounded to milliseconds)
    rows = poll(at_least(rig.ctx, "restart", 3, lambda r: r.wall_start >= restarted),
                    20, "3 segments after the restart")
    new = [r for r in rows if r.wall_start >= restarted]
    old = rows[:len(rows) - len(new)]
    assert [r.discontinuity for r in rows] == [False] * len(old) + [True] + [False] * (
        len(new) - 1)
    assert [r.seq for r in new] == list(range(len(new)))  # the sequence started again
    assert new[0].first_pts == media.first_pts  # and so did the PTS
    aired = {(a.run, a.seq): a for a in live.published()}
    assert all(abs(r.wall_start - aired[(1, r.seq)].wall) < 0.002 for r in new)
    assert len({r.path for r in rows}) == len(rows)


def test_a_dropout_is_recorded_as_a_gap_and_recording_resumes(rig: Rig) -> None:
    live = rig.live.channels["dropout"]
    poll(at_least(rig.ctx, "dropout", 2), 20, "2 segments before the dropout")
    _, back = live.dropout(10, "503")
    error = poll(lambda: channel_row(rig.ctx, "dropout").error, 5, "the error shown")
    assert "503" in error
    rows = poll(at_least(rig.ctx, "dropout", 2, lambda r: r.wall_start >= back), 25,
                    "2 segments after the dropout")
    gaps = [b.wall_start - (a.wall_start + a.duration) for a, b in zip(rows, rows[1:],
                                                                       strict=False)]
    assert len([g for g in gaps if g > 0.5]) == 1 and 9.5 <= max(gaps) <= 12.5
    ch = channel_row(rig.ctx, "dropout")
    assert (ch.state, ch.error) == ("recording", None)


def test_pts_wrap_on_the_arrival_clock_keeps_times_continuous(rig: Rig) -> None:
    live = rig.live.channels["wrap"]
    wrapped = lambda r: r.first_pts < PTS_WRAP // 2  # noqa: E731
    rows = poll(at_least(rig.ctx, "wrap", 3, wrapped), 30, "3 segments after the wrap")
    first = next(i for i, r in enumerate(rows) if wrapped(r))
    assert first > 0 and rows[first - 1].first_pts > PTS_WRAP - 3 * 90_000
    assert not any(r.discontinuity for r in rows)
    assert channel_row(rig.ctx, "wrap").clock == "arrival"
    for a, b in zip(rows, rows[1:], strict=False):  # spaced as their PTS, across the wrap too
        assert abs(b.wall_start - a.wall_start - pts_delta(a.first_pts, b.first_pts) / 90_000) \
            < 0.15
    late = [r.wall_start - live.wall_at(r.first_pts) for r in rows]
    assert all(-0.1 <= x <= SEG + 0.2 for x in late)  # never early; at first late by < 1 poll
    assert late[-1] <= 0.6  # then by the least lateness seen (polls are SEG / 2 apart)


def test_master_playlist_without_pdt_records_its_variant_by_arrival(rig: Rig) -> None:
    live = rig.live.channels["nopdt"]
    rows = poll(at_least(rig.ctx, "nopdt", 4), 20, "4 segments")
    assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + len(rows)))
    assert channel_row(rig.ctx, "nopdt").clock == "arrival"
    assert all(-0.1 <= r.wall_start - live.wall_at(r.first_pts) <= SEG + 0.2 for r in rows)


def test_http_ts_stream_is_cut_at_keyframes_and_survives_a_reset(rig: Rig) -> None:
    live = rig.live.channels["ts"]
    rows = poll(at_least(rig.ctx, "ts", 3), 20, "3 segments of the TS stream")
    assert channel_row(rig.ctx, "ts").clock == "arrival"
    assert [r.seq for r in rows] == list(range(len(rows)))
    for row in rows:
        data = Path(row.path).read_bytes()
        assert data[0] == 0x47 and data[1] & 0x1F == 0 and data[2] == 0  # PAT first
        assert first_pts(data) == row.first_pts
    for row in rows[1:-1]:
        assert 1.7 <= row.duration <= 3.1
    for row in rows[1:]:  # the first is late: the server bursts what already aired
        assert -0.1 <= row.wall_start - live.wall_at(row.first_pts) <= 0.5
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                            "-of", "csv=p=0", rows[1].path], capture_output=True, text=True,
                           check=True)
    assert set(probe.stdout.split()) == {"audio", "video"}
    count = len(stored(rig.ctx, "ts"))
    assert live.drop_connections() == 1
    poll(at_least(rig.ctx, "ts", count + 2), 20, "segments after the connection reset")
    assert channel_row(rig.ctx, "ts").state == "recording"


def test_a_page_is_resolved_by_ytdlp_and_its_stream_recorded(rig: Rig) -> None:
    live = rig.live.channels["page"]
    rows = poll(at_least(rig.ctx, "page", 2), 30, "2 segments from the page's stream")
    aired = {a.seq: a for a in live.published()}
    assert all(abs(r.wall_start - aired[r.seq].wall) < 0.002 for r in rows)
    assert rig.recorder.threads["page"].resolved == rig.live.url("page")


# ---------------------------------------------------------------- recorders of their own

def test_paused_resumed_and_removed_channels_take_effect_while_recording(
        sqlite_ctx: Context, server: LiveServer) -> None:
    quiet, busy = server.add("quiet"), server.add("busy")
    add_channel(sqlite_ctx, "quiet", server.url("quiet"), paused=True)
    add_channel(sqlite_ctx, "busy", server.url("busy"))
    with recording(sqlite_ctx) as recorder:
        poll(at_least(sqlite_ctx, "busy", 2), 20, "the active channel's segments")
        assert stored(sqlite_ctx, "quiet") == [] and quiet.requests == 0
        with sqlite_ctx.db.session() as session:
            session.execute(update(Channel).where(Channel.name == "quiet").values(paused=False))
            session.execute(update(Channel).where(Channel.name == "busy").values(paused=True))
        poll(at_least(sqlite_ctx, "quiet", 2), 20, "the resumed channel's segments")
        poll(lambda: not channel_thread_alive("busy"), 10, "the paused channel to stop")
        requests = busy.requests
        with sqlite_ctx.db.session() as session:
            session.execute(delete(Channel).where(Channel.name == "quiet"))
        poll(lambda: not channel_thread_alive("quiet"), 10, "the removed channel to stop")
        assert set(recorder.threads) == set()
    assert busy.requests == requests  # nothing fetched while paused


class _Hook(http.server.BaseHTTPRequestHandler):
    posts: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"posts": posts})
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{hook.server_address[1]}/hook", posts
    hook.shutdown()
    hook.server_close()


def test_a_silent_channel_is_marked_stalled_and_the_team_told_once(
        sqlite_url: str, make_settings: Callable[..., Settings], server: LiveServer,
        webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, posts = webhook
    ctx = Context.build(make_settings(sqlite_url, CLIPPER_WEBHOOK_URL=url,
                                      CLIPPER_STALL_SECONDS="60"))
    live = server.add("silent")
    add_channel(ctx, "silent", server.url("silent"))
    moved = [0.0]
    with recording(ctx, clock=lambda: time.time() + moved[0]):
        poll(at_least(ctx, "silent", 1), 20, "a first segment")
        _, back = live.dropout(5, "stall")  # the playlist stops changing
        poll(lambda: stored(ctx, "silent")[-1].seq == live.published()[-1].seq, 5,
                 "the recorder to store all that aired")
        moved[0] = 61.0  # a minute passes (for the recorder)
        poll(lambda: channel_row(ctx, "silent").state == "stalled", 5, "state stalled")
        poll(lambda: deliver_due(ctx)["delivered"] or posts, 5, "the webhook")  # the outbox
        assert posts[0]["event"] == "channel.stalled" and posts[0]["channel"] == "silent"
        poll(at_least(ctx, "silent", 1, lambda r: r.wall_start >= back), 15,
                 "segments once the source is back")
        assert channel_row(ctx, "silent").state == "recording"
    assert deliver_due(ctx) == {"delivered": 0, "retrying": 0, "given_up": 0}
    assert len(posts) == 1
    ctx.close()


def test_a_restarted_recorder_resumes_without_duplicates(ctx: Context,
                                                         server: LiveServer) -> None:
    name = f"again-{ctx.db.dialect}"
    server.add(name)
    add_channel(ctx, name, server.url(name))
    with recording(ctx):
        before = poll(at_least(ctx, name, 3), 20, "3 segments")
    with recording(ctx):
        rows = poll(at_least(ctx, name, len(before) + 2), 20, "2 more segments")
    assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + len(rows)))
    assert len({r.path for r in rows}) == len(rows)
    on_disk = {str(p) for p in (ctx.settings.media_dir / "channels" / name).rglob("*.ts")}
    assert on_disk == {r.path for r in rows}


# ---------------------------------------------------------------- fragmented MP4

@contextlib.contextmanager
def fmp4_live(folder: Path, *, aired: float = 3.0) -> Iterator[tuple[str, float]]:
    """An fMP4 live channel on loopback: a 20 s programme in 1 s segments, segment k airing
    over [epoch + k, epoch + k + 1) and published (with its program-date-time) once aired; a
    sliding window of 6. Yields (playlist URL, epoch); `aired` seconds have aired at the start."""
    from testmedia.mediagen import make_hls, make_video

    vod = make_hls(make_video(folder / "src.mp4", 20, gop=25), folder / "vod", hls_time=1,
                   fmp4=True)
    lines = vod.read_text().splitlines()
    names = [line for line in lines if line.endswith(".m4s")]
    epoch = time.time() - aired

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(vod.parent), **kwargs)

        def log_message(self, format: str, *args: Any) -> None: ...

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/live.m3u8":
                return super().do_GET()
            done = min(len(names), int(time.time() - epoch))
            first = max(0, done - 6)
            body = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1",
                    f"#EXT-X-MEDIA-SEQUENCE:{first}", '#EXT-X-MAP:URI="init.mp4"']
            for k in range(first, done):
                moment = datetime.fromtimestamp(epoch + k, UTC).isoformat(timespec="milliseconds")
                body += [f"#EXT-X-PROGRAM-DATE-TIME:{moment}", "#EXTINF:1.000,", names[k]]
            data = ("\n".join(body) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/live.m3u8", epoch
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_fragmented_mp4_channel_is_stored_playable_and_joins(
        sqlite_ctx: Context, tmp_path: Path) -> None:
    """Each fMP4 segment is stored with its init segment in front (`.mp4`: it plays alone), at
    the broadcaster's times; its first PTS is read from its fragment; a section joins them."""
    from clipper.media.concat import SegmentFile, join_segments

    ctx = sqlite_ctx
    with fmp4_live(tmp_path) as (url, epoch):
        add_channel(ctx, "fmp4", url)
        init = (tmp_path / "vod" / "init.mp4").read_bytes()
        with recording(ctx):
            rows = poll(at_least(ctx, "fmp4", 4), 20, "4 segments")
    assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + len(rows)))
    for row in rows:
        path = Path(row.path)
        assert path.suffix == ".mp4" and abs(row.wall_start - (epoch + row.seq)) < 0.002
        assert path.read_bytes() == init + (tmp_path / "vod" / f"seg{row.seq:04d}.m4s").read_bytes()
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time",
                                "-of", "csv=p=0", row.path], capture_output=True, text=True,
                               check=True)
        assert abs(row.first_pts - float(probe.stdout) * 90_000) <= 2  # a tick of rounding
    assert channel_row(ctx, "fmp4").clock == "program-date-time"
    joined = join_segments([SegmentFile(Path(r.path), r.wall_start, r.duration) for r in rows],
                           tmp_path / "joined.mp4")
    frames = decode_gray(joined.path)
    assert joined.offset == rows[0].wall_start and len(frames) == 25 * len(rows)
