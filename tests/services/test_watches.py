"""Watch-lists and alerts on both databases: validation, permissions, the matcher on live
segments (phrases across segments, OR, exclusions, the 60 s rate limit, re-delivered segments),
notifications through the outbox to a real loopback hook, volunteers' shift filter, and the
auto-flag merging with a volunteer's flag.

Live segments are inserted as rows (what the live transcriber stores); the matcher runs as it
does behind `clipper up`, with the live transcriber's actor.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clipper.cli.watch import ALERT_KEYS
from clipper.context import Context
from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UnsafeURL
from clipper.permissions import Actor
from clipper.pipeline.notifications import deliver_due
from clipper.search.query import EMPTY_MESSAGE, parse_query
from clipper.services import rota
from clipper.services.channels import add_channel
from clipper.services.flags import flag_channel
from clipper.services.users import add_user
from clipper.services.watches import (
    CONTEXT_WORDS,
    QUICK_AFTER,
    QUICK_AFTER_EXCLUDED,
    Word,
    add_watch,
    clip_alert,
    find_matches,
    list_alerts,
    list_watches,
    match_heard,
    match_segments,
    remove_watch,
    segment_words,
    stream,
)
from clipper.storage.tables import Alert, Channel, Clip, Event, Flag, LiveSegment, Watch
from tests.channel_segments import store_spans
from tests.net.test_webhook import hook_server, url_of

OP = Actor.operator()
ASR = Actor.operator("live-asr")
SOCIAL = Actor("sam", "social")
URL = "http://127.0.0.1:9/live/index.m3u8"
STEP = 0.4  # seconds per word in the segments below


@pytest.fixture
def channels(ctx: Context) -> Context:
    add_channel(ctx, OP, "news", URL)
    add_channel(ctx, OP, "sport", URL)
    return ctx


def said(ctx: Context, channel: str, start: float, text: str) -> tuple[int, int]:
    """A live segment of `text`, a word every STEP s from `start`: (channel id, segment id)."""
    words = [[start + i * STEP, start + i * STEP + 0.3, w] for i, w in enumerate(text.split())]
    with ctx.db.session() as s:
        ch = s.scalars(select(Channel).where(Channel.name == channel)).one()
        row = LiveSegment(channel_id=ch.id, wall_start=start, wall_end=words[-1][1], text=text,
                          words=words, source="whisper")
        s.add(row)
        s.flush()
        return ch.id, row.id


def hear(ctx: Context, channel: str, start: float, text: str) -> list[int]:
    """Store a segment and run the matcher on it, as the live transcriber does."""
    channel_id, segment_id = said(ctx, channel, start, text)
    return match_segments(ctx, ASR, channel_id, [segment_id])


def count(ctx: Context, table: type) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def alerts_of(ctx: Context) -> list[Alert]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


# ---- the matcher, pure ------------------------------------------------------------------------

def words_of(text: str, start: float, *, new: bool) -> list[Word]:
    return [Word(start + i * STEP, start + i * STEP + 0.3, w, new)
            for i, w in enumerate(text.split())]


def test_find_matches_follows_the_search_language():
    old = words_of("The health secretary said waiting", 0.0, new=False)
    new = words_of("lists, would FALL by forty percent.", 2.0, new=True)
    stream_ = old + new

    def starts(query: str) -> list[float]:
        return [round(m.start, 1) for m in find_matches(stream_, parse_query(query))]

    assert starts('"waiting lists"') == [1.6]  # across the segments, punctuation ignored
    assert starts('"lists waiting"') == []
    assert starts("fall forty") == [2.8]  # all words, case-insensitive
    assert starts("nurses OR percent") == [4.0]
    assert starts("nurses OR doctors") == []
    assert starts("health") == []  # found when those words were new
    assert starts("waiting -football") == []  # only old words
    assert starts('"waiting lists" -secretary') == []  # excluded word in the context
    assert starts("perc*") == [4.0]
    m = find_matches(stream_, parse_query('"waiting lists"'))[0]
    assert (m.start, round(m.end, 1)) == (1.6, 2.3)
    assert m.text == "The health secretary said waiting lists, would FALL by forty percent."


def test_terms_must_be_near_and_context_is_ten_words():
    far = words_of("budget", 0.0, new=False) + words_of("cuts", 20.0, new=True)
    assert find_matches(far, parse_query("budget cuts")) == []
    filler = " ".join(f"w{i}" for i in range(15))
    ws = words_of(f"{filler} football {filler} budget {filler}", 0.0, new=True)
    assert [m.text.split() for m in find_matches(ws, parse_query("budget"))] == [
        [f"w{i}" for i in range(15 - CONTEXT_WORDS, 15)] + ["budget"]
        + [f"w{i}" for i in range(CONTEXT_WORDS)]]  # football is 16 words away: no exclusion


def test_segment_words_and_the_stream():
    assert segment_words([[1, 2, "a"], ["bad"], [2, 3, "b"]], "a b", 1, 3) == [
        (1.0, 2.0, "a"), (2.0, 3.0, "b")]
    # Captions without word timings: the text spread over the segment.
    assert segment_words([], "one two", 10.0, 12.0) == [(10.0, 11.0, "one"), (11.0, 12.0, "two")]
    # A word stored twice (delivered again as a new row) is kept once, as new; old words
    # before `since` are left out.
    got = stream([(5.0, 5.3, "again")], [(1.0, 1.3, "early"), (4.0, 4.3, "kept"),
                                         (5.0, 5.3, "again")], since=3.0)
    assert got == [Word(4.0, 4.3, "kept", False), Word(5.0, 5.3, "again", True)]


# ---- watches ----------------------------------------------------------------------------------

def test_add_list_remove_and_every_refusal_stores_nothing(channels):
    ctx = channels
    w = add_watch(ctx, SOCIAL, "nhs", ' "waiting lists" OR nurses -football ',
                  channels="news, news,sport", auto_flag=True)
    assert w == {"name": "nhs", "query": '"waiting lists" OR nurses -football',
                 "channels": ["news", "sport"], "auto_flag": True, "notify": None,
                 "created_by": "sam"}
    refusals = [
        (InvalidInput, "is not a watch name", ("bad name", "x"), {}),
        (InvalidInput, "is not a watch name", ("", "x"), {}),
        (InvalidInput, EMPTY_MESSAGE, ("w", "-budget"), {}),
        (InvalidInput, EMPTY_MESSAGE, ("w", '"" !!'), {}),
        (InvalidInput, "too long", ("w", "x" * 501), {}),
        (InvalidInput, "no channel named 'weather'", ("w", "x"), {"channels": ["news", "weather"]}),
        (InvalidInput, "not a channel name", ("w", "x"), {"channels": "a b"}),
        (InvalidInput, "scheme", ("w", "x"), {"notify_url": "file:///etc/passwd"}),
        (InvalidInput, "scheme", ("w", "x"), {"notify_url": "hooks.example.org/x"}),
        (UnsafeURL, "private network", ("w", "x"), {"notify_url": "http://10.1.2.3/hook"}),
        (Conflict, "already exists", ("NHS", "x"), {}),
    ]
    for error, message, args, kwargs in refusals:
        with pytest.raises(error, match=message):
            add_watch(ctx, SOCIAL, *args, **kwargs)
    with pytest.raises(InvalidInput) as refused:
        add_watch(ctx, SOCIAL, "w", "-budget")
    assert refused.value.message == EMPTY_MESSAGE  # the parser's own message
    assert count(ctx, Watch) == 1
    for role in ("editor", "coordinator", "admin"):
        add_watch(ctx, Actor(f"p-{role}", role), f"w-{role}", "strike",
                  notify_url="http://127.0.0.1:9/hooks/T0/secret")
    with pytest.raises(PermissionDenied):
        add_watch(ctx, Actor("vera", "volunteer"), "w", "x")
    with pytest.raises(PermissionDenied):
        list_watches(ctx, Actor("vera", "volunteer"))
    listed = list_watches(ctx, OP)
    assert [w["name"] for w in listed] == ["nhs", "w-admin", "w-coordinator", "w-editor"]
    assert listed[1]["notify"] == "127.0.0.1" and listed[1]["channels"] is None  # no secret
    assert remove_watch(ctx, SOCIAL, "w-admin")["name"] == "w-admin"
    with pytest.raises(NotFound):
        remove_watch(ctx, SOCIAL, "w-admin")
    assert count(ctx, Watch) == 3


def test_phrase_across_segments_or_and_exclusion(channels):
    ctx, t0 = channels, time.time() - 900
    add_watch(ctx, OP, "lists", '"waiting lists"')
    add_watch(ctx, OP, "staff", "nurses OR doctors", channels=["news"])
    add_watch(ctx, OP, "budget", "budget -football")
    assert hear(ctx, "news", t0, "The health secretary said waiting") == []
    first = hear(ctx, "news", t0 + 2.0, "lists would fall by forty percent")
    assert len(first) == 1
    alert, = alerts_of(ctx)
    assert (alert.watch, alert.channel) == ("lists", "news")
    assert alert.wall_start == pytest.approx(t0 + 4 * STEP)  # "waiting"
    assert alert.wall_end == pytest.approx(t0 + 2.0 + 0.3)  # the end of "lists"
    assert alert.text == ("The health secretary said waiting lists would fall by forty "
                          "percent")
    assert (alert.flag_id, alert.clip_id) == (None, None)

    assert len(hear(ctx, "news", t0 + 100, "more DOCTORS were hired")) == 1
    assert hear(ctx, "sport", t0 + 100, "the team doctors said") == []  # not on sport
    assert hear(ctx, "sport", t0 + 200, "the budget for football clubs") == []
    assert len(hear(ctx, "sport", t0 + 300, "and the budget was cut")) == 1
    assert [(a.watch, a.channel) for a in alerts_of(ctx)] == [
        ("lists", "news"), ("staff", "news"), ("budget", "sport")]


def test_one_alert_per_watch_per_channel_per_minute_and_never_twice(channels):
    ctx, t0 = channels, time.time() - 900
    add_watch(ctx, OP, "strike", "strike")
    channel_id, seg = said(ctx, "news", t0, "the strike starts at dawn")
    assert len(match_segments(ctx, ASR, channel_id, [seg])) == 1
    assert hear(ctx, "news", t0 + 30, "a strike again") == []  # within 60 s of air time
    assert len(hear(ctx, "sport", t0 + 30, "a strike on sport")) == 1  # another channel
    # The same segment delivered again, by id or as a new row: no second alert.
    assert match_segments(ctx, ASR, channel_id, [seg]) == []
    assert hear(ctx, "news", t0, "the strike starts at dawn") == []
    # Two matches in one segment over a minute apart of air time: both alert.
    many = " ".join(["strike"] + ["filler"] * 199 + ["strike"])  # 80 s of words
    assert len(hear(ctx, "news", t0 + 61, many)) == 2
    # A match refused for an earlier alert does not hold back one a minute after that alert.
    both = " ".join(["strike"] + ["filler"] * 49 + ["strike"])  # at +80 s and +100 s
    alert_id, = hear(ctx, "sport", t0 + 80, both)
    assert alerts_of(ctx)[-1].wall_start == pytest.approx(t0 + 100)
    assert count(ctx, Alert) == 5
    assert match_segments(ctx, ASR, channel_id, []) == []
    assert match_segments(ctx, ASR, channel_id + 99, [seg]) == []


def test_alerts_are_notified_to_the_team_hook_or_the_watch_own(channels):
    ctx, t0 = channels, time.time() - 900
    with hook_server([]) as team, hook_server([]) as own:
        ctx.settings = dataclasses.replace(ctx.settings, webhook_url=url_of(team),
                                           base_url="https://desk.example")
        add_watch(ctx, OP, "team", "strike")
        add_watch(ctx, OP, "own", "budget", notify_url=url_of(own))
        hear(ctx, "news", t0, "the strike over the budget")
        assert deliver_due(ctx)["delivered"] == 2
    (_, body), = team.bodies
    assert body["event"] == "watch.alert" and body["watch"] == "team"
    assert body["channel"] == "news" and body["context"] == "the strike over the budget"
    assert body["wall_start"] == datetime.fromtimestamp(round(t0 + STEP, 3), UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    assert "Watch team matched on news" in body["text"]
    assert "<https://desk.example/alerts|alerts>" in body["text"]
    (_, mine), = own.bodies
    assert mine["watch"] == "own" and mine["alert_id"] == alerts_of(ctx)[1].id
    # The contract: an "alert" object with `clipper alerts --json`'s keys and values.
    listed = {a["id"]: a for a in list_alerts(ctx, OP)}
    for sent in (body, mine):
        assert set(sent["alert"]) == set(ALERT_KEYS)
        assert sent["alert"] == {k: listed[sent["alert_id"]][k] for k in ALERT_KEYS}
        assert sent["alert"]["flag_id"] is None and sent["alert"]["clip_id"] is None


def test_volunteers_see_the_alerts_of_their_shift_channel_only(channels):
    ctx, t0 = channels, time.time() - 900
    for name in ("ann", "bob"):
        add_user(ctx, OP, name, "volunteer", "password-1234")
    ann, bob = Actor("ann", "volunteer"), Actor("bob", "volunteer")
    now = datetime.now(UTC)
    shift, = rota.add_shifts(ctx, OP, "news", (now - timedelta(hours=1)).isoformat(),
                             (now + timedelta(hours=1)).isoformat())
    rota.signup(ctx, ann, shift)
    add_watch(ctx, OP, "strike", "strike")
    hear(ctx, "news", t0, "news strike")
    hear(ctx, "sport", t0 + 10, "sport strike")
    hear(ctx, "news", t0 + 100, "strike later")
    everyone = list_alerts(ctx, SOCIAL)
    assert [(a["channel"], a["text"]) for a in everyone] == [
        ("news", "strike later"), ("sport", "sport strike"), ("news", "news strike")]
    assert set(everyone[0]) >= {"id", "watch", "channel", "wall_start", "wall_end", "text",
                                "flag_id", "clip_id"}
    assert everyone[0]["wall_start"].endswith("Z") and everyone[0]["marks"] == [[0, 6]]
    assert [a["channel"] for a in list_alerts(ctx, ann)] == ["news", "news"]
    assert list_alerts(ctx, bob) == []
    assert list_alerts(ctx, ann, at=now + timedelta(hours=2)) == []  # the shift is over
    since = datetime.fromtimestamp(t0 + 5, UTC).isoformat()
    assert [a["text"] for a in list_alerts(ctx, OP, since=since)] == [
        "strike later", "sport strike"]
    assert len(list_alerts(ctx, OP, limit=1)) == 1
    with pytest.raises(InvalidInput):
        list_alerts(ctx, OP, since="yesterday-ish")
    sport = everyone[1]["id"]
    with pytest.raises(NotFound):
        clip_alert(ctx, ann, sport)  # not her channel
    with pytest.raises(PermissionDenied):
        match_segments(ctx, ann, 1, [1])


@pytest.fixture
def recorded(channels: Context) -> tuple[Context, float]:
    """news recorded in 6 s segments over the last 10 minutes; sport never recorded."""
    now = time.time()
    store_spans(channels, "news", [(now - 600 + 6 * i, 6.0) for i in range(100)])
    return channels, now


def test_auto_flag_merges_with_a_volunteers_flag(recorded):
    ctx, now = recorded
    vera = Actor("vera", "volunteer")
    moment = now - 300
    mine = flag_channel(ctx, vera, "news", start=moment - 8, end=moment + 8)
    add_watch(ctx, OP, "budget", '"budget cuts"', auto_flag=True)
    with hook_server([]) as team:
        ctx.settings = dataclasses.replace(ctx.settings, webhook_url=url_of(team))
        alert_id, = hear(ctx, "news", moment, "budget cuts announced")
        # Held for its flag's ids, then released at once: due now, not FLAG_HOLD_SECONDS later.
        assert deliver_due(ctx)["delivered"] == 1
    alert, = alerts_of(ctx)
    assert alert.id == alert_id and alert.clip_id == mine.clip_id
    (_, body), = team.bodies
    assert body["alert"]["id"] == alert_id
    assert (body["alert"]["flag_id"], body["alert"]["clip_id"]) == (alert.flag_id, mine.clip_id)
    with ctx.db.session() as s:
        flag = s.get(Flag, alert.flag_id)
        assert flag.by == "watch:budget" and flag.merged
        assert flag.start == pytest.approx(moment - 20)
        assert flag.end == pytest.approx(moment + STEP + 0.3 + 20)
        assert flag.note.startswith("Watch budget: budget cuts")
        clip = s.get(Clip, mine.clip_id)
        assert sorted(f.by for f in clip.flags) == ["vera", "watch:budget"]
        assert (clip.start, clip.end) == (pytest.approx(moment - 20), flag.end)
    shown, = list_alerts(ctx, OP)
    assert shown["flag_id"] == alert.flag_id and shown["clip_status"] == "queued"
    # `Clip this` by someone else joins the same clip.
    assert clip_alert(ctx, SOCIAL, alert_id).clip_id == mine.clip_id


def test_a_refused_auto_flag_is_logged_on_the_alert_not_raised(recorded):
    ctx, now = recorded
    add_watch(ctx, OP, "strike", "strike", auto_flag=True)
    with hook_server([]) as team:
        ctx.settings = dataclasses.replace(ctx.settings, webhook_url=url_of(team))
        alert_id, = hear(ctx, "sport", now - 300, "strike on sport")  # nothing recorded there
        assert deliver_due(ctx)["delivered"] == 1  # the alert still goes out at once
    alert, = alerts_of(ctx)
    assert (alert.flag_id, alert.clip_id) == (None, None)
    (_, body), = team.bodies
    assert body["alert"]["id"] == alert_id and body["alert"]["flag_id"] is None
    shown, = list_alerts(ctx, OP)
    assert "Nothing of sport has been recorded" in shown["flag_problem"]
    with ctx.db.session() as s:
        event = s.scalars(select(Event).where(Event.action == "watch.flag_refused")).one()
        assert event.actor == "watch:strike" and event.details["alert_id"] == alert_id
    assert count(ctx, Flag) == 0


def heard(text: str, start: float) -> list[tuple[float, float, str]]:
    return [(start + i * STEP, start + i * STEP + 0.3, w) for i, w in enumerate(text.split())]


def test_the_quick_pass_alerts_once_it_has_heard_past_the_match(channels):
    """Words heard but not stored: a match counts once QUICK_AFTER s were heard after it (more
    for a query with an excluded word, which must be heard to cancel it); only new words make a
    match; the stored transcript of the same moment raises no second alert."""
    ctx, t0 = channels, time.time() - 900
    add_watch(ctx, OP, "strike", '"go on strike"')
    add_watch(ctx, OP, "airport", "airport closed -drill")
    news = channels_id(ctx, "news")
    words = heard("drivers voted to go on strike", t0)
    end = words[-1][1]
    # The audio heard stops just after "strike": Whisper may have misheard it; wait.
    assert match_heard(ctx, ASR, news, words, heard_to=end + QUICK_AFTER / 2) == []
    assert match_heard(ctx, ASR, news, words, new_from=end, heard_to=end + 5) == []  # old words
    alert_id, = match_heard(ctx, ASR, news, words, new_from=t0, heard_to=end + QUICK_AFTER)
    assert alerts_of(ctx)[-1].wall_start == pytest.approx(t0 + 3 * STEP)
    # The stored transcript of the same words, matched when it comes: no second alert.
    assert hear(ctx, "news", t0, "drivers voted to go on strike") == []

    # "airport closed" then "for a safety drill": not an alert, however it was first heard.
    t1 = t0 + 200
    closed = heard("the airport was closed for a safety drill", t1)
    cut = closed[:4]  # heard up to "closed"
    assert match_heard(ctx, ASR, news, cut, heard_to=cut[-1][1] + QUICK_AFTER) == []
    assert match_heard(ctx, ASR, news, cut,
                       heard_to=cut[-1][1] + QUICK_AFTER_EXCLUDED - 0.1) == []
    assert match_heard(ctx, ASR, news, closed, heard_to=closed[-1][1] + 5) == []
    # Without the drill, once enough was heard after it: one alert.
    snow = heard("snow has closed the airport today and tomorrow", t1 + 100)
    assert match_heard(ctx, ASR, news, snow, heard_to=snow[4][1] + 1) == []
    assert len(match_heard(ctx, ASR, news, snow, heard_to=snow[-1][1] + 5)) == 1
    assert count(ctx, Alert) == 2 and match_heard(ctx, ASR, news, []) == []


def channels_id(ctx: Context, name: str) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(Channel.id).where(Channel.name == name))
