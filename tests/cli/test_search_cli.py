"""`clipper search` finds words said on a recorded channel beside clip hits (JSON contract of both
kinds, text output, --channel and --in), and `clipper clip-from-hit --channel` flags the channel
around a channel hit (both databases, real Redis)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from channel_segments import store_spans
from sqlalchemy import select

from clipper.cli import main
from clipper.context import Context
from clipper.storage.tables import (
    Channel,
    Clip,
    Flag,
    LiveSegment,
    SegmentRow,
    Source,
    TranscriptRow,
)
from clipper.timecode import format_wallclock

CLIP_KEYS = {"clip_id", "start", "end", "source_start", "source_end", "snippet", "source",
             "status", "score"}
CHANNEL_KEYS = {"kind", "channel", "clip_id", "wall_start", "wall_end", "at", "at_utc",
                "snippet", "transcript", "score"}


@pytest.fixture
def cli(ctx: Context, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run `clipper ARGS...` against `ctx`'s database and Redis: (exit code, stdout, stderr)."""
    s = ctx.settings
    for key, value in {"CLIPPER_HOME": str(s.home), "DATABASE_URL": s.database_url,
                       "REDIS_URL": s.redis_url, "CLIPPER_TIMEZONE": "Europe/London"}.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def said(ctx: Context) -> float:
    """Channel bbc-news recorded the last ten minutes and said "waiting lists" 5 minutes ago; a
    clip of another source said it too. Returns when the live line began."""
    at = round(time.time() - 300, 3)
    with ctx.db.session() as s:
        channel = Channel(name="bbc-news", url="https://tv.example/bbc.m3u8")
        src = Source(kind="url", key="https://news.example/x", location="https://news.example/x")
        s.add_all([channel, src])
        s.flush()
        text = "the waiting lists keep growing"
        s.add(LiveSegment(channel_id=channel.id, wall_start=at, wall_end=at + 5.0, text=text,
                          words=[[at + k, at + k + 0.8, w] for k, w in enumerate(text.split())],
                          source="whisper"))
        clip = Clip(source_id=src.id, start=10.0, end=16.0, status="ready")
        s.add(clip)
        s.flush()
        s.add(TranscriptRow(clip_id=clip.id, clip_version=1, text="waiting lists",
                            engine="test", model="none"))
        s.add(SegmentRow(clip_id=clip.id, idx=0, start=0.0, end=6.0, text="waiting lists again",
                         words=[]))
    now = time.time()
    store_spans(ctx, "bbc-news", [(now - 600 + 2 * k, 2.0) for k in range(300)])
    return at


def test_search_json_lists_clip_and_channel_hits(cli, said: float) -> None:
    code, out, _ = cli("search", '"waiting lists"', "--json")
    assert code == 0
    hits = json.loads(out)
    clip_hits = [h for h in hits if "kind" not in h]
    [channel_hit] = [h for h in hits if h.get("kind") == "channel"]
    assert len(clip_hits) == 1 and set(clip_hits[0]) == CLIP_KEYS  # unchanged contract
    assert set(channel_hit) == CHANNEL_KEYS
    assert channel_hit["channel"] == "bbc-news" and channel_hit["transcript"] == "whisper"
    assert channel_hit["clip_id"] is None
    assert channel_hit["wall_start"] == format_wallclock(said)  # ISO 8601 UTC
    assert channel_hit["at"] == pytest.approx(said + 1.0)  # "waiting", the second word
    assert channel_hit["at_utc"].endswith("Z") and "**waiting lists**" in channel_hit["snippet"]

    code, out, _ = cli("search", "waiting", "--in", "channels", "--json")
    assert code == 0 and [h.get("kind") for h in json.loads(out)] == ["channel"]
    code, out, _ = cli("search", "waiting", "--in", "clips", "--json")
    assert code == 0 and [set(h) for h in json.loads(out)] == [CLIP_KEYS]
    code, out, _ = cli("search", "waiting", "--channel", "bbc-news", "--json")
    assert code == 0 and [h["channel"] for h in json.loads(out)] == ["bbc-news"]
    code, out, _ = cli("search", "waiting", "--status", "ready", "--json")
    assert code == 0 and [set(h) for h in json.loads(out)] == [CLIP_KEYS]
    code, _, err = cli("search", "waiting", "--in", "channels", "--tag", "health")
    assert code != 0 and "only narrows clips" in err


def test_search_text_names_the_channel_and_wall_time(cli, said: float) -> None:
    code, out, _ = cli("search", "growing")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "1-1 of 1 matches for growing"
    assert lines[1].startswith("channel bbc-news  ") and "Europe/London" in lines[1]
    assert "[live, whisper]" in lines[1] and lines[2].strip().endswith("**growing**")


def test_clip_from_a_channel_hit_flags_the_channel_around_it(cli, ctx: Context,
                                                             said: float) -> None:
    code, out, _ = cli("search", "waiting", "--in", "channels", "--json")
    [hit] = json.loads(out)
    code, out, err = cli("clip-from-hit", "--channel", hit["channel"], "--at", str(hit["at"]),
                         "--by", "ed", "--json")
    assert code == 0, err
    filed = json.loads(out)
    assert set(filed) == {"flag_id", "clip_id", "status", "merged"} and not filed["merged"]
    with ctx.db.session() as s:
        flag = s.get(Flag, filed["flag_id"])
        source = s.scalar(select(Source.key).join(Clip, Clip.source_id == Source.id)
                          .where(Clip.id == flag.clip_id))
        assert (flag.start, flag.end) == pytest.approx((hit["at"] - 5.0, hit["at"] + 15.0))
        assert (flag.by, flag.tags, source) == ("ed", ["from-search"], "channel:bbc-news")
    # The same moment by its ISO time, with other margins: it joins that clip.
    code, out, err = cli("clip-from-hit", "--channel", "bbc-news", "--at", hit["at_utc"],
                         "--before", "2", "--after", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["clip_id"] == filed["clip_id"] and json.loads(out)["merged"]


@pytest.mark.parametrize("args", [
    ("clip-from-hit", "--at", "5"),                                   # neither
    ("clip-from-hit", "1", "--channel", "bbc-news", "--at", "5"),     # both
    ("clip-from-hit", "--channel", "nowhere", "--at", "1764531730"),  # no such channel
    ("clip-from-hit", "--channel", "bbc-news", "--at", "soon"),       # not a time
    ("clip-from-hit", "--channel", "bbc-news", "--at", "1000"),       # long before recording
])
def test_clip_from_hit_refuses_what_it_cannot_clip(cli, ctx: Context, said: float,
                                                   args: tuple[str, ...]) -> None:
    code, _, err = cli(*args)
    assert code != 0 and err.startswith("error: ")
    with ctx.db.session() as s:
        assert s.scalars(select(Flag)).all() == []
