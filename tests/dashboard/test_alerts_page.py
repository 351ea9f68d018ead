"""The Alerts page under AppTest with real SQLite and Redis: the list (newest first, the words in
context, the auto-flag's clip), `Clip this`, volunteers seeing only their shift's channel, and
the watches section for those who manage them.

Alerts come from the matcher run on live segment rows, as the live transcriber runs it; the
channel's recording is segment rows only (flags are checked against them, nothing is cut).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from clipper.context import Context
from clipper.permissions import Actor
from clipper.search.query import EMPTY_MESSAGE
from clipper.services import rota
from clipper.services.channels import add_channel
from clipper.services.watches import add_watch, list_alerts, list_watches, match_segments
from clipper.storage.tables import Channel, Flag, LiveSegment
from tests.channel_segments import store_spans

DASH = Path(__file__).resolve().parents[2] / "dashboard"
ALERTS = DASH / "alerts.py"
OP = Actor.operator("test")
URL = "http://127.0.0.1:9/live/index.m3u8"


def hear(ctx: Context, channel: str, start: float, text: str) -> list[int]:
    words = [[start + i * 0.4, start + i * 0.4 + 0.3, w] for i, w in enumerate(text.split())]
    with ctx.db.session() as s:
        ch = s.scalars(select(Channel).where(Channel.name == channel)).one()
        row = LiveSegment(channel_id=ch.id, wall_start=start, wall_end=words[-1][1], text=text,
                          words=words, source="whisper")
        s.add(row)
        s.flush()
        ids = (ch.id, row.id)
    return match_segments(ctx, Actor.operator("live-asr"), ids[0], [ids[1]])


@pytest.fixture
def alerts(desk: Context) -> dict[str, int]:
    """news (recorded over the last 10 min) and sport (nothing recorded); an auto-flag watch
    and two alerts: news at now-270 (flagged), sport at now-200 (its flag refused)."""
    now = time.time()
    add_channel(desk, OP, "news", URL)
    add_channel(desk, OP, "sport", URL)
    store_spans(desk, "news", [(now - 600 + 6 * i, 6.0) for i in range(100)])
    add_watch(desk, OP, "strike", '"general strike"', auto_flag=True)
    news, = hear(desk, "news", now - 270, "unions call a general strike for monday")
    sport, = hear(desk, "sport", now - 200, "players join the general strike too")
    return {"news": news, "sport": sport}


def on_shift(ctx: Context, name: str, channel: str) -> None:
    now = datetime.now(UTC)
    shift, = rota.add_shifts(ctx, OP, channel, (now - timedelta(hours=1)).isoformat(),
                             (now + timedelta(hours=1)).isoformat())
    rota.signup(ctx, OP, shift, name)


def alerts_page(open_app, name: str):
    """The Alerts page as `name` reaches it: logged in, from the menu (its Play links point
    at the Live page, which only the app's navigation knows)."""
    at = open_app(name)
    at.run()
    return at.switch_page(str(ALERTS)).run()


def cards(at) -> list[str]:
    """The heading line of each alert card, in page order."""
    return [m.value for m in at.markdown
            if str(m.value).startswith("**strike**") and str(m.value).endswith("(UTC)")]


def test_list_newest_first_with_context_auto_flag_and_clip_this(alerts, open_app, page_text,
                                                                desk):
    at = alerts_page(open_app, "sam")
    assert not at.exception
    assert "Alerts" in [t.value for t in at.title]
    heads = cards(at)
    assert [h.split(" · ")[1] for h in heads] == ["sport", "news"]  # newest first
    text = page_text(at)
    assert "unions call a **general strike** for monday" in text  # the matched words in bold
    assert "Auto-flagged: clip" in text
    assert "Auto-flag not filed: Nothing of sport has been recorded" in text
    assert [b.label for b in at.button if b.key.startswith("alert_clip_")] == ["Clip this"] * 2
    plays = [e.proto for e in at.get("page_link") if e.proto.label == "Play"]
    assert [p.page for p in plays] == ["live", "live"]
    played = [dict(kv.split("=") for kv in p.query_string.split("&")) for p in plays]
    assert [q["channel"] for q in played] == ["sport", "news"]
    # Play opens Live at the moment of the match (Unix seconds of its first word).
    assert all(abs(float(q["at"]) - a["start"]) < 0.1
               for q, a in zip(played, list_alerts(desk, OP), strict=True))

    at.button(key=f"alert_clip_{alerts['news']}").click().run()
    assert not at.exception
    assert "Your flag joined clip" in page_text(at)
    with desk.db.session() as s:
        by = sorted(s.scalars(select(Flag.by)))
    assert by == ["sam", "watch:strike"]
    at.button(key=f"alert_clip_{alerts['sport']}").click().run()
    assert "Nothing of sport has been recorded" in " ".join(e.value for e in at.error)


def test_volunteers_see_only_their_shift_channel_and_no_watches(alerts, open_app, page_text,
                                                               desk):
    at = alerts_page(open_app, "vera")
    assert not at.exception
    assert "You are not on a shift now" in page_text(at)
    assert not cards(at) and not at.expander

    on_shift(desk, "vera", "news")
    at = alerts_page(open_app, "vera")
    assert [h.split(" · ")[1] for h in cards(at)] == ["news"]
    assert "Alerts on news, the channel of your shift now." in page_text(at)
    assert "Auto-flagged: clip" in page_text(at)
    assert not at.expander and not [f for f in at.text_input if f.key == "watch_query"]
    at.button(key=f"alert_clip_{alerts['news']}").click().run()
    assert "Your flag joined clip" in page_text(at)


def test_watches_are_added_and_removed_by_those_who_manage_them(alerts, open_app, page_text,
                                                                desk):
    at = alerts_page(open_app, "eddie")
    assert "Watches (1)" in [e.label for e in at.expander]
    at.text_input(key="watch_name").input("nurses")
    at.text_input(key="watch_query").input("-budget -football")
    at.button(key="FormSubmitter:watch_add-Add watch").click().run()
    assert EMPTY_MESSAGE in " ".join(e.value for e in at.error)
    assert [w["name"] for w in list_watches(desk, OP)] == ["strike"]

    at.text_input(key="watch_query").input("nurses OR doctors")
    at.multiselect(key="watch_channels").select("news")
    at.checkbox(key="watch_auto").check()
    at.button(key="FormSubmitter:watch_add-Add watch").click().run()
    assert not at.exception
    assert "Watch nurses added." in page_text(at)
    nurses = next(w for w in list_watches(desk, OP) if w["name"] == "nurses")
    assert (nurses["channels"], nurses["auto_flag"], nurses["created_by"]) == (
        ["news"], True, "eddie")
    assert "Watches (2)" in [e.label for e in at.expander]

    at.button(key="watch_remove_strike").click().run()
    assert "Watch strike removed." in page_text(at)
    assert [w["name"] for w in list_watches(desk, OP)] == ["nurses"]
    assert len(cards(at)) == 2  # alerts outlive their watch
