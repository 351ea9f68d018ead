"""The Slack app against the real API server on both databases: requests signed here as Slack
signs them (Slack itself is not reachable), a loopback HTTP server standing in for Slack's
`response_url` and the team's webhook, the jobs run in this process.

Refused with 401: unsigned, wrongly signed, stale or future timestamps, replays. Linking by a
one-time code; `/clip` credited to the linked volunteer (a channel's last N seconds, a channel
by the clock in their own zone, a URL); the clip posted back when ready (transcript excerpt,
link, thumbnail) or the reason it failed; Approve / Reject as the linked person, with their
role's checks. A `/clip` to a freshly started server is answered within Slack's 3 s (Slack's
bound, checked as a contract: the server connects and migrates as it starts, not on the first
request).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from channel_segments import store_spans
from slackfake import SECRET, TEAM_ID, Slack, link, ready_clip, status, with_slack
from sqlalchemy import func, select, update

from clipper.api.slack_command import slack_signature
from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.notifications import deliver_due, notify_ready
from clipper.services.channels import add_channel
from clipper.services.slack import (
    SLACK_REJECT_REASON,
    actor_for_slack,
    create_link_code,
    link_slack,
    my_slack_links,
    send_slack_replies,
    thumbnail_token,
    unlink_my_slack,
)
from clipper.services.users import set_my_timezone
from clipper.storage.tables import (
    Clip,
    Flag,
    SlackLinkCode,
    SlackReply,
    SlackSeen,
    TranscriptRow,
    User,
    utcnow,
)

OP = Actor.operator("setup")


def count(ctx: Context, table: type) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


# ---- who may talk to us ----------------------------------------------------------------------

def test_unsigned_wrong_stale_and_replayed_requests_are_refused(ctx, slack, start_api):
    link(ctx, slack, "vera", "volunteer", "U0VERA")
    add_channel(ctx, OP, "bbc-news", "http://127.0.0.1:9/live/index.m3u8")
    now = time.time()
    store_spans(ctx, "bbc-news", [(now - 120 + 2 * i, 2.0) for i in range(62)])
    flags_before = count(ctx, Flag)
    for path in ("/slack/commands", "/slack/interactions", "/slack/interactivity"):
        body = slack.command_body("bbc-news last 30 hi", user="U0VERA")
        ts = str(int(time.time()))
        refused = [
            slack.post(path, body, signed=False),
            slack.post(path, body, signature="v0=" + "0" * 64),
            slack.post(path, body, signature=slack_signature("another-secret", ts, body),
                       timestamp=ts),
            slack.post(path, body + b"&text=tampered",
                       signature=slack_signature(SECRET, ts, body), timestamp=ts),
            # The clock moved: signed right, but over 5 minutes ago, or ahead (the margin
            # covers the whole second int() drops and the time the requests take).
            slack.post(path, body, timestamp=str(int(time.time()) - 303)),
            slack.post(path, body, timestamp=str(int(time.time()) + 303)),
            slack.post(path, body, timestamp="soon"),
        ]
        assert [r.status_code for r in refused] == [401] * len(refused), path
        assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
        assert slack.post(path, b"x" * (300 * 1024)).status_code == 413  # refused unread
    assert count(ctx, Flag) == flags_before
    assert count(ctx, SlackSeen) == 1  # only the linking command got through

    # Accepted once; the very same request again is a replay.
    body = slack.command_body("bbc-news last 30 hi", user="U0VERA")
    ts = str(int(time.time()))
    first = slack.post("/slack/commands", body, timestamp=ts)
    again = slack.post("/slack/commands", body, timestamp=ts)
    assert first.status_code == 200 and "Flag" in first.json()["text"]
    assert again.status_code == 401 and "replay" in again.json()["detail"]
    assert count(ctx, Flag) == flags_before + 1

    # Signatures are forgotten after 10 minutes, long after their timestamps went stale.
    with ctx.db.session() as session:
        session.execute(update(SlackSeen).values(seen_at=utcnow() - timedelta(hours=1)))
    assert slack.post("/slack/commands", slack.command_body("help", user="U0X")).status_code \
        == 200
    assert count(ctx, SlackSeen) == 1

    # Without a signing secret the app takes nothing.
    bare = start_api()
    answer = Slack(bare.url, slack.hook_url).post("/slack/commands", body)
    assert answer.status_code == 401


def test_linking_with_a_one_time_code(ctx, slack):
    vera = Actor("vera", "volunteer")
    said = slack.command("bbc-news last 45 PM on nurses", user="U0VERA")
    assert said["response_type"] == "ephemeral"
    assert "not linked" in said["text"] and "Account" in said["text"]
    assert "/clip link CODE" in said["text"]
    assert "/clip bbc-news last 45" in slack.command("help", user="U0VERA")["text"]

    shown = create_link_code(ctx, vera)
    assert shown["command"] == f"/clip link {shown['code']}" and len(shown["code"]) == 9
    with ctx.db.session() as session:  # only its hash is stored
        assert shown["code"] not in str(session.scalars(select(SlackLinkCode.code_hash)).all())
    said = slack.command(f"link {shown['code'].lower()}", user="U0VERA")
    assert "filed as *vera* (volunteer)" in said["text"]
    assert actor_for_slack(ctx, TEAM_ID, "U0VERA") == vera
    assert actor_for_slack(ctx, "T0OTHER", "U0VERA") is None
    assert [link["user"] for link in my_slack_links(ctx, vera)] == ["U0VERA"]

    # Once only; a new code replaces the last; an expired one is refused.
    assert "unknown, used or expired" in slack.command(f"link {shown['code']}",
                                                       user="U0MALLORY")["text"]
    old = create_link_code(ctx, vera)["code"]
    new = create_link_code(ctx, vera)["code"]
    assert "unknown, used or expired" in slack.command(f"link {old}", user="U0MALLORY")["text"]
    with ctx.db.session() as session:
        session.execute(update(SlackLinkCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert "unknown, used or expired" in slack.command(f"link {new}", user="U0MALLORY")["text"]
    assert actor_for_slack(ctx, TEAM_ID, "U0MALLORY") is None

    # A Slack account linked again follows the new code; unlinking ends it.
    link(ctx, slack, "sam", "social", "U0VERA")
    assert actor_for_slack(ctx, TEAM_ID, "U0VERA") == Actor("sam", "social")
    assert unlink_my_slack(ctx, Actor("sam", "social")) == 1
    assert actor_for_slack(ctx, TEAM_ID, "U0VERA") is None


# ---- /clip --------------------------------------------------------------------------------------

def test_the_first_clip_to_a_fresh_server_is_answered_within_slacks_3_seconds(ctx, start_api,
                                                                              hook):
    # Linked and set up in the database, so the timed `/clip` is the server's first request.
    vera = Actor("vera", "volunteer")
    link_slack(ctx, TEAM_ID, "U0VERA", create_link_code(ctx, vera)["code"])
    add_channel(ctx, OP, "bbc-news", "http://127.0.0.1:9/live/index.m3u8")
    store_spans(ctx, "bbc-news", [(time.time() - 120 + 2 * i, 2.0) for i in range(62)])
    slack = Slack(start_api(CLIPPER_SLACK_SIGNING_SECRET=SECRET).url, hook.url)
    body = slack.command_body("bbc-news last 45 PM on nurses", user="U0VERA")

    asked = time.monotonic()
    answer = slack.post("/slack/commands", body)
    elapsed = time.monotonic() - asked
    assert answer.status_code == 200, answer.text
    assert "filed as vera: clip 1" in answer.json()["text"]
    # Slack shows the user an error after 3 s: a bound Slack sets, not a performance figure.
    assert elapsed < 3.0, f"/clip took {elapsed:.2f} s"


def test_a_channel_flag_is_credited_to_the_linked_volunteer(ctx, slack):
    link(ctx, slack, "vera", "volunteer", "U0VERA")
    add_channel(ctx, OP, "bbc-news", "http://127.0.0.1:9/live/index.m3u8")
    now = time.time()
    store_spans(ctx, "bbc-news", [(now - 300 + 2 * i, 2.0) for i in range(152)])

    said = slack.command("bbc-news last 45 PM on nurses", user="U0VERA", reply="/commands/a")
    assert said["response_type"] == "ephemeral"
    assert "filed as vera: clip 1" in said["text"] and "post the clip here" in said["text"]
    with ctx.db.session() as session:
        flag = session.scalars(select(Flag)).one()
        assert (flag.by, flag.note, flag.clip.source.location) == ("vera", "PM on nurses",
                                                                    "bbc-news")
        assert flag.end - flag.start == pytest.approx(45.0)
        assert abs(flag.end - now) < 60
        reply = session.scalars(select(SlackReply)).one()
        assert (reply.flag_id, reply.state) == (flag.id, "waiting")
        assert reply.response_url == slack.hook_url + "/commands/a"

    # By the clock, in the volunteer's own time zone.
    set_my_timezone(ctx, Actor("vera", "volunteer"), "Asia/Tokyo")
    zone = ZoneInfo("Asia/Tokyo")
    a, b = (datetime.fromtimestamp(now - s, zone).strftime("%H:%M:%S") for s in (250, 230))
    said = slack.command(f"bbc-news {a}-{b} earlier", user="U0VERA")
    assert "filed as vera" in said["text"], said
    with ctx.db.session() as session:
        flag = session.scalars(select(Flag).where(Flag.note == "earlier")).one()
        assert flag.start == pytest.approx(int(now - 250), abs=1.0)
        assert flag.end - flag.start == pytest.approx(20.0)

    # Refusals are the services' own words, nothing stored.
    flags = count(ctx, Flag)
    assert "no channel named 'itv'" in slack.command("itv last 30", user="U0VERA")["text"]
    assert "longest" in slack.command("bbc-news last 20m", user="U0VERA")["text"]
    assert "`19:42` has no seconds" in slack.command("bbc-news 19:42-19:43",
                                                     user="U0VERA")["text"]
    assert count(ctx, Flag) == flags


def test_url_flags_are_posted_back_when_ready_or_failed(ctx, slack, hook, broadcast_site,
                                                        run_jobs, start_api):
    base, _ = broadcast_site
    link(ctx, slack, "vera", "volunteer", "U0VERA")
    ready = slack.command(f"<{base}/show.mp4|show.mp4> 0:00-0:08 waiting lists &amp; more",
                          user="U0VERA", reply="/commands/ready")
    failed = slack.command(f"{base}/show.mp4 1:07-1:41 past the end", user="U0VERA",
                           reply="/commands/failed")
    assert "filed as vera: clip 1" in ready["text"] and "clip 2" in failed["text"]
    with ctx.db.session() as session:
        notes = {f.clip_id: (f.by, f.note) for f in session.scalars(select(Flag))}
    assert notes == {1: ("vera", "waiting lists & more"), 2: ("vera", "past the end")}

    with_slack(ctx, base_url="https://desk.example")
    assert send_slack_replies(ctx) == {"sent": 0, "expired": 0}  # nothing made yet
    run_jobs(ctx)
    assert send_slack_replies(ctx) == {"sent": 2, "expired": 0}
    assert send_slack_replies(ctx) == {"sent": 0, "expired": 0}  # each once
    assert deliver_due(ctx)["delivered"] == 2
    posts = dict(hook.posts)

    made = posts["/commands/ready"]
    with ctx.db.session() as session:
        clip = session.get(Clip, 1)
        said = session.get(TranscriptRow, 1).text
        assert (clip.status, clip.thumbnail_path is not None) == ("ready", True)
    assert made["response_type"] == "ephemeral" and made["replace_original"] is False
    assert made["text"].startswith("Clip 1 is ready: ") and "waiting lists &amp; more" in \
        made["text"]
    assert "<https://desk.example/clip?id=1|open>" in made["text"]
    excerpt = next(b for b in made["blocks"] if b["type"] == "context")["elements"][0]["text"]
    assert " ".join(said.split())[:40] in excerpt
    assert {"health", "secretary"} & set(excerpt.lower().split()), excerpt
    image = next(b for b in made["blocks"] if b["type"] == "image")
    where = urlsplit(image["image_url"])
    assert (where.hostname, where.path) == (
        "desk.example", f"/slack/thumbnails/1/{thumbnail_token(SECRET, 1)}.jpg")
    # Slack fetches it without logging in: the address is the credential.
    got = httpx.get(slack.url + where.path, timeout=30)
    assert (got.status_code, got.headers["content-type"]) == (200, "image/jpeg")
    assert got.content[:3] == b"\xff\xd8\xff"
    wrong = httpx.get(f"{slack.url}/slack/thumbnails/1/{'0' * 32}.jpg", timeout=30)
    assert wrong.status_code == 404

    broken = posts["/commands/failed"]
    with ctx.db.session() as session:
        clip = session.get(Clip, 2)
        assert clip.status == "failed" and clip.error
    assert broken["text"].startswith(f"Clip 2 failed: {clip.error[:30]}")
    assert not [b for b in broken["blocks"] if b["type"] == "image"]
    with ctx.db.session() as session:
        assert {r.state for r in session.scalars(select(SlackReply))} == {"sent"}


def test_replies_slack_no_longer_takes_are_given_up(ctx, slack, hook):
    link(ctx, slack, "vera", "volunteer", "U0VERA")
    add_channel(ctx, OP, "bbc-news", "http://127.0.0.1:9/live/index.m3u8")
    store_spans(ctx, "bbc-news", [(time.time() - 100 + 2 * i, 2.0) for i in range(52)])
    slack.command("bbc-news last 30", user="U0VERA")
    later = utcnow() + timedelta(minutes=31)
    with ctx.db.session() as session:
        session.execute(update(Clip).values(status="ready"))
    assert send_slack_replies(ctx, now=later) == {"sent": 0, "expired": 0}  # no Slack app here
    assert send_slack_replies(with_slack(ctx), now=later) == {"sent": 0, "expired": 1}
    assert deliver_due(ctx) == {"delivered": 0, "retrying": 0, "given_up": 0}
    with ctx.db.session() as session:
        assert session.scalars(select(SlackReply.state)).one() == "failed"


# ---- Approve / Reject ---------------------------------------------------------------------------

def test_the_review_channel_buttons_act_as_the_linked_person(ctx, slack, hook):
    first, second = ready_clip(ctx, "a"), ready_clip(ctx, "b")
    # The team's review channel gets the ready clip with its buttons.
    with_slack(ctx, webhook_url=hook.url + "/services/T0/B0/hook")
    notify_ready(ctx, first)
    assert deliver_due(ctx)["delivered"] == 1
    path, posted = hook.posts.pop()
    assert path == "/services/T0/B0/hook"
    assert posted["text"].startswith(f"Clip {first} is ready for review: ")  # as before
    assert posted["blocks"][0]["text"]["text"] == posted["text"]
    buttons = posted["blocks"][1]["elements"]
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in buttons] == [
        ("approve", str(first), "Approve"), ("reject", str(first), "Reject")]

    link(ctx, slack, "vera", "volunteer", "U0VERA")
    link(ctx, slack, "sam", "social", "U0SAM")

    # Someone not linked, then a volunteer: refused, told why, nothing changes.
    said = slack.press("approve", first, user="U0NOBODY")
    assert "not linked" in said["text"]
    said = slack.press("approve", first, user="U0VERA", reply="/actions/vera")
    assert said["response_type"] == "ephemeral" and said["replace_original"] is False
    assert "vera (volunteer) may not approve" in said["text"]
    assert status(ctx, first) == ("ready", None, None)

    # Social approves: rendering, as sam; the message loses its buttons.
    said = slack.press("approve", first, user="U0SAM", reply="/actions/sam")
    assert said["replace_original"] is True
    assert f"Approved by sam in Slack — clip {first} is rendering." in said["text"]
    assert [b["type"] for b in said["blocks"]] == ["section", "context"]
    assert status(ctx, first) == ("rendering", "sam", None)

    # Pressed again (by anyone): the clip is past review, and it says so.
    said = slack.press("reject", first, user="U0SAM")
    assert said["replace_original"] is False and "only ready clips" in said["text"]
    assert status(ctx, first) == ("rendering", "sam", None)

    said = slack.press("reject", second, user="U0SAM")
    assert f"Rejected by sam in Slack — clip {second} is rejected." in said["text"]
    assert status(ctx, second) == ("rejected", "sam", SLACK_REJECT_REASON)

    # What Slack shows is what is posted to each press's response_url.
    hook.posts.clear()
    assert deliver_due(ctx)["delivered"] == 5
    shown = {path: body for path, body in hook.posts}
    assert "vera (volunteer) may not approve" in shown["/actions/vera"]["text"]
    assert shown["/actions/sam"]["replace_original"] is True


def test_a_claim_on_the_review_page_is_not_overruled(ctx, slack):
    from clipper.services.review import claim

    clip_id = ready_clip(ctx, "claimed")
    link(ctx, slack, "sam", "social", "U0SAM")
    with ctx.db.session() as session:
        session.add(User(name="sue", role="social", password_hash="unused"))
    claim(ctx, Actor("sue", "social"), clip_id)
    said = slack.press("approve", clip_id, user="U0SAM")
    assert "sue has already claimed" in said["text"]
    assert status(ctx, clip_id) == ("ready", None, None)

