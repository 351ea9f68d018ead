"""The Search page finds words said on a recorded channel where nobody flagged a clip: the hit
names the channel and the time in the viewer's zone, Play opens Live on the channel, and
`Clip this` files a flag on the channel around the moment (AppTest, real SQLite and Redis)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from channel_segments import store_spans
from sqlalchemy import select, update

from clipper.permissions import Actor
from clipper.services.clips import clip_status
from clipper.storage.tables import Channel, Flag, LiveSegment, User

SEARCH = Path(__file__).resolve().parents[2] / "dashboard" / "editor" / "search.py"
OPERATOR = Actor.operator("test")
ZONE = "America/New_York"


def on_air(ctx, name: str, text: str, at: float) -> None:
    """A channel that recorded the last ten minutes and said `text` at `at` (its live
    transcript, as the live transcriber writes it: one segment, timed words)."""
    with ctx.db.session() as s:
        channel = Channel(name=name, url=f"https://tv.example/{name}.m3u8")
        s.add(channel)
        s.flush()
        words = [[at + 0.5 * k, at + 0.5 * k + 0.4, w] for k, w in enumerate(text.split())]
        s.add(LiveSegment(channel_id=channel.id, wall_start=at, wall_end=at + 0.5 * len(words),
                          text=text, words=words, source="whisper"))
    now = time.time()
    store_spans(ctx, name, [(now - 600 + 2 * k, 2.0) for k in range(300)])


def open_search(open_app, query: str, name: str = "eddie"):
    """The app (so page links resolve) on the Search page, searching `query`."""
    at = open_app(name)
    at.run()
    at.switch_page(str(SEARCH)).run()
    at.text_input(key="s_query").input(query).run()
    assert not at.exception
    return at


def test_a_channel_hit_shows_the_channel_and_time_and_plays_on_live(open_app, desk, page_text):
    said = time.time() - 300
    on_air(desk, "bbc-news", "the minister promised shorter waiting lists today", said)
    with desk.db.session() as s:
        s.execute(update(User).where(User.name == "eddie").values(timezone=ZONE))
    at = open_search(open_app, '"waiting lists"')
    text = page_text(at)
    assert "1 matching moments" in text
    first_word = said + 0.5 * 4  # "waiting" is the fifth word
    local = datetime.fromtimestamp(first_word, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"**bbc-news** · live · {local} ({ZONE}) · whisper" in text
    assert "shorter **waiting lists** today" in text
    [link] = [e.proto for e in at.get("page_link") if e.proto.label == "Play"]
    query = dict(kv.split("=") for kv in link.query_string.split("&"))
    assert link.page == "live" and query["channel"] == "bbc-news"
    assert abs(float(query["at"]) - first_word) <= 0.1  # Live plays from the moment
    assert not [b for b in at.button if b.key and b.key.startswith("play_")]
    at.selectbox(key="s_scope").select("Clips").run()
    assert "0 matching moments" in page_text(at)
    at.selectbox(key="s_scope").select("Channels (live)").run()
    at.text_input(key="s_channel").input("itv").run()
    assert "0 matching moments" in page_text(at)
    at.text_input(key="s_channel").input("bbc-news").run()
    assert "1 matching moments" in page_text(at)
    at.text_input(key="s_tag").input("health").run()  # a clip's filter, in channels only
    assert not at.exception and "only narrows clips" in page_text(at)


def test_clip_this_on_a_channel_hit_flags_the_channel_around_it(open_app, desk, page_text):
    said = time.time() - 300
    on_air(desk, "bbc-news", "breaking news from the inquiry", said)
    at = open_search(open_app, "inquiry")
    at.button(key="clipthis_0").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Filed a new flag around" in page_text(at) and "on bbc-news" in page_text(at)
    with desk.db.session() as s:
        flag = s.scalars(select(Flag).where(Flag.by == "eddie")).one()
        start, end, tags, clip_id = flag.start, flag.end, flag.tags, flag.clip_id
    moment = said + 0.5 * 4  # "inquiry", the fifth word
    assert (start, end) == (round(moment, 3) - 5.0, round(moment, 3) + 15.0)
    assert tags == ["from-search"]
    assert clip_status(desk, OPERATOR, clip_id)["channel"] == "bbc-news"


def test_social_sees_channel_hits_but_cannot_clip_them(open_app, desk):
    on_air(desk, "bbc-news", "breaking news from the inquiry", time.time() - 300)
    at = open_search(open_app, "inquiry", name="sam")
    assert [e for e in at.get("page_link") if e.proto.label == "Play"]
    assert not [b for b in at.button if b.key and b.key.startswith("clipthis_")]
