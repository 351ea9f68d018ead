"""`clipper up`'s recorder killed -9 in the middle of a segment, with two live channels on a
loopback server (an HLS playlist and a continuous MPEG-TS stream cut into ~4 s segments): the
half-read segment is never stored (no file under its name, no row, no temporary file left),
`clipper up` starts the recorder again and both channels resume where they were, the TS
channel's list shows exactly the one gap the kill made (and the HLS channel none: what it missed
was still in the playlist), and a flag on each channel around the kill, filed while the
recorder was down, becomes a ready clip — the TS one listing the same gap."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from faultparts import channel_gaps, channel_segments, recorder_pid, unix
from polling import poll

from clipper.context import Context
from clipper.media.live import PTS_HZ, first_pts, pts_delta
from clipper.permissions import Actor
from clipper.pipeline.recorder import TS_SEGMENT_SECONDS
from clipper.services.channels import add_channel, channel_status
from clipper.services.clips import clip_status
from clipper.services.flags import flag_channel
from clipper.settings import Settings
from clipper.timecode import format_wallclock
from testmedia.faults import all_done, check_invariants, problems, stack_env
from testmedia.live import TS_PACKET, LiveServer, make_live_media

pytestmark = [pytest.mark.faults, pytest.mark.services, pytest.mark.slow]
OP = Actor.operator("ops")
SEG = 2.0  # the live channels' segment length (and the TS stream's keyframe interval), s
#: The flags: from this long before the kill to this long after it (past the first segment
#: the new recorder stores, into the next).
BEFORE, AFTER = 6.0, 14.0


def probed_duration(path: str) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "csv=p=0", path], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def assert_whole(rows: list[Any]) -> None:
    """Every stored segment is a whole one: its file under its own name, as long as its row
    says, TS packets from a sync byte on, its first PTS as recorded."""
    for r in rows:
        path = Path(r.path)
        assert not path.name.startswith(".") and path.suffix == ".ts", r.path
        data = path.read_bytes()
        assert len(data) == r.bytes and len(data) % TS_PACKET == 0, (r.path, len(data), r.bytes)
        assert data[0] == 0x47 and first_pts(data) == r.first_pts, r.path


def test_the_recorder_killed_mid_segment_resumes_reports_the_gap_and_clips_the_flags(
        tmp_path, private_redis, up, stack_ctx):
    with LiveServer(make_live_media(seg_seconds=SEG)) as live:
        live.add("hls")
        live.add("ts")
        stack = up(stack_env(tmp_path / "home", redis_url=private_redis.url()))
        ctx = Context.build(Settings.from_env(stack.env))
        stack_ctx.append(ctx)
        add_channel(ctx, OP, "hls", live.url("hls"))
        add_channel(ctx, OP, "ts", live.url("ts", "stream.ts"))
        # Enough recorded before the kill for a flag that starts BEFORE s before it.
        poll(lambda: len(channel_segments(ctx, "ts")) >= 3
             and len(channel_segments(ctx, "hls")) >= 6, 60, "both channels recording")

        def mid_segment() -> bool:
            """The TS recorder is well into its next segment: the newest was stored 2-3 s
            ago, and the next comes TS_SEGMENT_SECONDS after it. Not sooner: the server sends
            a new connection the SEG-long piece airing now from its start, so a recorder back
            within the piece it was killed in (it restarts in ~0.5 s) would miss nothing."""
            since = time.time() - unix(channel_segments(ctx, "ts")[-1].arrived_at)
            return SEG <= since <= 3.0
        poll(mid_segment, 20, "the recorder half-way through a TS segment", every=0.05)
        old = recorder_pid(stack)
        before = {name: channel_segments(ctx, name) for name in ("hls", "ts")}
        os.kill(old, signal.SIGKILL)
        killed = time.time()

        # Flags around the kill, filed while no recorder runs (their ends not aired yet).
        clips = {name: flag_channel(ctx, OP, name, start=killed - BEFORE, end=killed + AFTER,
                                    note=f"around the kill on {name}").clip_id
                 for name in ("hls", "ts")}
        new = poll(lambda: (p := recorder_pid(stack)) not in (None, old)
                   and psutil.pid_exists(p) and p, 15, "clipper up to start a new recorder")
        restarted = time.time() - killed
        assert new != old

        def resumed() -> bool:
            return all(len(channel_segments(ctx, n)) >= len(before[n]) + 2 for n in before)
        poll(resumed, 30, "both channels recording again")
        poll(lambda: all_done(ctx, len(clips)), 120, "both flags' clips ready")
        # Read once, while the channels still air (they record on meanwhile).
        after = {name: channel_segments(ctx, name) for name in ("hls", "ts")}
        found = {name: channel_gaps(ctx, name) for name in ("hls", "ts")}
        listed = {name: channel_status(ctx, OP, name) for name in ("hls", "ts")}

    # No half segment stored as a whole one, and nothing half-written left behind.
    for rows in after.values():
        assert_whole(rows)
    inv = check_invariants(ctx)
    assert not problems(inv), inv
    assert not list((stack.settings.media_dir / "channels").rglob(".*")), "a temporary file"

    # TS: the segment stored before the kill is a whole ~4 s one (no tail flushed by a
    # dying recorder), and the segment the kill interrupted was dropped, not stored short.
    ts = after["ts"]
    last = before["ts"][-1]
    assert TS_SEGMENT_SECONDS - 0.5 <= last.duration <= TS_SEGMENT_SECONDS + 0.5, last.duration
    assert abs(probed_duration(last.path) - last.duration) < 0.3
    resumed_at = next(r for r in ts if r.wall_start > last.wall_start)
    # Each TS segment's row spans its media, the first after each connection too (the server
    # sends what already aired at once): none overlaps the next one's time, so a section
    # joined across them has no frame twice.
    for a, b in zip(ts, ts[1:], strict=False):
        assert abs(probed_duration(a.path) - a.duration) < 0.15, (a.seq, a.duration)
        if b is not resumed_at:
            media = pts_delta(a.first_pts, b.first_pts) / PTS_HZ
            assert abs(b.wall_start - a.wall_start - media) < 0.15, (a.seq, media)
    # The new recorder numbers on from the newest stored segment: none reused, none skipped.
    assert [r.seq for r in ts] == list(range(ts[0].seq, ts[0].seq + len(ts)))
    assert resumed_at.seq == last.seq + 1

    # The one gap of the TS channel is the kill's: from the end of the last whole segment
    # (at least SEG before the kill: the half segment) to the first one after the restart,
    # exactly as long as the media missing by the stream's own (continuous) timestamps.
    [(gap_from, gap_to)] = found["ts"]
    assert abs(gap_from - (last.wall_start + last.duration)) < 0.01
    assert abs(gap_to - resumed_at.wall_start) < 0.01
    assert gap_from <= killed - 1.0, (gap_from, killed)
    missing = pts_delta(last.first_pts, resumed_at.first_pts) / PTS_HZ - last.duration
    assert abs((gap_to - gap_from) - missing) < 0.15, (gap_to - gap_from, missing)
    assert gap_to - killed < 15, "the recorder took too long to come back"
    assert listed["ts"]["gaps"] == [[format_wallclock(gap_from), format_wallclock(gap_to)]]
    assert listed["ts"]["status"] == "recording" and listed["ts"]["error"] is None

    # HLS: what the dead recorder missed was still in the playlist's window: no gap at all,
    # every segment that aired since recording began stored once.
    hls = after["hls"]
    assert found["hls"] == [] and listed["hls"]["gaps"] == []
    seqs = [r.seq for r in hls]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs

    # Both flags became clips; the TS one lists the kill's gap inside it, the HLS one none.
    ts_clip = clip_status(ctx, OP, clips["ts"])
    assert ts_clip["status"] == "ready"
    assert ts_clip["gaps"] == [[format_wallclock(max(gap_from, killed - BEFORE)),
                                format_wallclock(gap_to)]]
    hls_clip = clip_status(ctx, OP, clips["hls"])
    assert hls_clip["status"] == "ready" and hls_clip["gaps"] == []
    print(f"recorder restarted {restarted:.1f} s after the kill; TS gap {gap_to - gap_from:.1f}"
          f" s (media missing {missing:.2f} s); both clips ready")

