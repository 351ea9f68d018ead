"""The rota where people already are, under AppTest with the real SQLite database and Redis: the
volunteer's shift on *Flag a clip*, the check-in on opening *Live*, the unwatched channels on the
review queue, and everyone's *Account* page (time zone, email, password)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from clipper.errors import Conflict, InvalidInput
from clipper.permissions import Actor
from clipper.services import rota, users
from clipper.storage.tables import Channel, Event, Signup, User

DASH = Path(__file__).resolve().parents[2] / "dashboard"
LIVE, REVIEW, ACCOUNT = DASH / "volunteer/live.py", DASH / "social/review.py", DASH / "account.py"
OPERATOR = Actor.operator("test")
PASSWORD = "correct horse battery"  # the team's, from conftest


def channels(ctx, *names: str, paused: bool = False) -> None:
    with ctx.db.session() as s:
        s.add_all(Channel(name=n, url=f"https://tv.example/{n}.m3u8", paused=paused)
                  for n in names)


def shift(ctx, channel: str, start: datetime, hours: float = 2, who: str | None = None) -> int:
    end = start + timedelta(hours=hours)
    sid = rota.add_shifts(ctx, OPERATOR, channel, start.isoformat(), end.isoformat())[0]
    if who:
        rota.signup(ctx, OPERATOR, sid, user=who)
    return sid


def soon(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


def hhmm(t: datetime, tz: str = "UTC") -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%H:%M")


def set_zone(ctx, name: str, tz: str) -> None:
    with ctx.db.session() as s:
        s.execute(update(User).where(User.name == name).values(timezone=tz))


def signup_state(ctx, shift_id: int) -> str:
    with ctx.db.session() as s:
        return s.scalar(select(Signup.state).where(Signup.shift_id == shift_id))


def events(ctx, kind: str) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.action == kind))


def page_links(at) -> list:
    return [e.proto for e in at.get("page_link")]


def account(ctx, name: str) -> User:
    with ctx.db.session() as s:
        row = s.scalars(select(User).where(User.name == name)).one()
        s.expunge(row)
        return row


# ---- Flag a clip: the shift now, or the next one ----------------------------------------------

def test_home_shows_the_shift_now_in_my_zone_with_a_link_to_watch_it(desk, open_app, page_text):
    channels(desk, "bbc1", "itv")
    end = soon(1.5)
    shift(desk, "bbc1", end - timedelta(hours=2), who="vera")
    shift(desk, "itv", soon(-1), who="sam")  # someone else's shift: not vera's
    shift(desk, "itv", soon(5), who="vera")  # later today, but one is on now: not mentioned
    set_zone(desk, "vera", "Asia/Tokyo")
    at = open_app("vera")
    at.run()
    assert not at.exception
    assert "Flag a clip" in [t.value for t in at.title]
    text = page_text(at)
    assert f"On shift now: **bbc1** until {hhmm(end, 'Asia/Tokyo')} (Asia/Tokyo)" in text
    assert "itv" not in text and "Next shift" not in text
    [link] = page_links(at)
    assert link.label == "Watch bbc1 live" and link.query_string == "channel=bbc1"
    assert link.page == "live"


def test_home_shows_the_next_shift_within_a_day_and_nothing_without_one(desk, open_app,
                                                                        page_text):
    channels(desk, "bbc1", "itv")
    shift(desk, "itv", soon(30), who="vera")  # more than 24 h away: never shown
    at = open_app("vera")
    at.run()
    assert not at.exception
    assert "On shift now" not in page_text(at) and "Next shift" not in page_text(at)
    assert not page_links(at)
    start = soon(3)
    shift(desk, "bbc1", start, who="vera")
    shift(desk, "bbc1", soon(6), who="sam")
    at = open_app("vera")
    at.run()
    text = page_text(at)
    assert "Next shift: **bbc1** " in text and f"at {hhmm(start)} (UTC)" in text
    assert "On shift now" not in text and not page_links(at) and "itv" not in text


def test_home_for_someone_off_the_rota_is_just_the_flag_form(desk, open_app, page_text):
    channels(desk, "bbc1")
    shift(desk, "bbc1", soon(-0.5), who="vera")
    at = open_app("eddie")
    at.run()
    assert not at.exception
    assert "On shift now" not in page_text(at) and "Next shift" not in page_text(at)


# ---- Live: ?channel= picks the channel; opening one's shift checks in --------------------------

def test_live_channel_query_picks_the_channel_and_the_picker_then_wins(desk, open_app):
    channels(desk, "aaa", "bbb", "ccc")
    at = open_app("vera", LIVE)
    at.query_params["channel"] = "bbb"
    at.run()
    assert not at.exception
    assert at.selectbox(key="live_channel").value == "bbb"
    at.selectbox(key="live_channel").select("ccc").run()
    assert at.selectbox(key="live_channel").value == "ccc"
    assert at.query_params["channel"] == "ccc"  # the address follows, for a reload
    at.run()  # a rerun does not put the old ?channel= back
    assert at.selectbox(key="live_channel").value == "ccc"
    at = open_app("vera", LIVE)
    at.query_params["channel"] = "nope"  # an unknown channel: the usual first one
    at.run()
    assert not at.exception and at.selectbox(key="live_channel").value == "aaa"


def test_opening_live_on_my_shift_channel_checks_in_once(desk, open_app, page_text, monkeypatch):
    channels(desk, "aaa", "zzz")
    sid = shift(desk, "zzz", soon(-0.5), who="vera")
    calls = []
    real = rota.check_in

    def counted(ctx, actor, shift_id, **kw):
        calls.append((actor.name, shift_id))
        return real(ctx, actor, shift_id, **kw)

    monkeypatch.setattr(rota, "check_in", counted)
    at = open_app("vera", LIVE)
    at.query_params["channel"] = "aaa"  # not the shift's channel: no check-in
    at.run()
    assert not at.exception
    assert not calls and signup_state(desk, sid) == "signed"
    assert "Checked in" not in page_text(at)
    at.selectbox(key="live_channel").select("zzz").run()
    assert calls == [("vera", sid)] and signup_state(desk, sid) == "checked_in"
    assert "Checked in to zzz." in page_text(at)
    assert [t.value for t in at.toast] == ["Checked in to zzz."]
    for _ in range(2):
        at.run()
    at.selectbox(key="live_channel").select("aaa").run()
    at.selectbox(key="live_channel").select("zzz").run()
    assert calls == [("vera", sid)]  # once a session, however often the page runs
    assert "Checked in to zzz." in page_text(at) and not at.toast
    assert events(desk, "rota.checked_in") == 1


def test_opening_live_with_channel_checks_in_within_the_early_window(desk, open_app, page_text):
    channels(desk, "aaa", "zzz")
    early = shift(desk, "zzz", soon(0.2), who="vera")        # starts in 12 minutes
    later = shift(desk, "aaa", soon(0.5), hours=1, who="sam")  # sam's, in 30: too early
    at = open_app("vera", LIVE)
    at.query_params["channel"] = "zzz"
    at.run()
    assert not at.exception
    assert at.selectbox(key="live_channel").value == "zzz"
    assert signup_state(desk, early) == "checked_in" and "Checked in to zzz." in page_text(at)
    at = open_app("sam", LIVE)
    at.query_params["channel"] = "aaa"
    at.run()
    assert signup_state(desk, later) == "signed" and "Checked in" not in page_text(at)


def test_a_refused_check_in_does_not_break_live(desk, open_app, page_text, monkeypatch):
    channels(desk, "zzz")
    sid = shift(desk, "zzz", soon(-0.5), who="vera")

    def refuse(ctx, actor, shift_id, **kw):
        raise Conflict(f"Shift {shift_id} was cancelled.")

    monkeypatch.setattr(rota, "check_in", refuse)
    at = open_app("vera", LIVE)
    at.query_params["channel"] = "zzz"
    at.run()
    assert not at.exception
    assert f"Not checked in to zzz: Shift {sid} was cancelled." in page_text(at)
    assert at.button(key="live_last30")  # the page goes on as ever
    assert signup_state(desk, sid) == "signed"


# ---- Review queue: the channels nobody is watching ---------------------------------------------

def test_review_queue_names_the_unwatched_channels(desk, open_app, page_text):
    channels(desk, "bbc1", "itv", "sky")
    channels(desk, "dark", paused=True)
    shift(desk, "bbc1", soon(-1), who="vera")
    shift(desk, "itv", soon(-1))  # running, nobody on it
    nxt = soon(2).replace(second=0)
    shift(desk, "itv", nxt)
    at = open_app("sam", REVIEW)
    at.run()
    assert not at.exception
    [warning] = [w.value for w in at.warning]
    when = hhmm(nxt) if nxt.date() == datetime.now(UTC).date() else f"{nxt:%a %H:%M}"
    assert warning == (f"Unwatched now: itv (next shift {when}), sky (no shift planned)"
                       " · times in UTC")
    assert "bbc1" not in warning and "dark" not in warning


def test_review_queue_says_when_every_channel_is_watched(desk, open_app, page_text):
    channels(desk, "bbc1")
    shift(desk, "bbc1", soon(-1), who="vera")
    at = open_app("sam", REVIEW)
    at.run()
    assert not at.exception and not at.warning
    assert "Every channel is watched right now." in page_text(at)


# ---- Account: time zone, email, password -------------------------------------------------------

def test_everyone_reaches_account_from_the_menu(open_app):
    for name in ("vera", "ada"):
        at = open_app(name)
        at.run()
        at.switch_page(str(ACCOUNT)).run()
        assert not at.exception
        assert [t.value for t in at.title] == ["Account"]


def test_account_saves_time_zone_and_email_and_shifts_follow_it(desk, open_app, page_text):
    channels(desk, "bbc1")
    end = soon(1.5)
    shift(desk, "bbc1", end - timedelta(hours=2), who="vera")
    at = open_app("vera", ACCOUNT)
    at.run()
    assert not at.exception
    tz = at.selectbox(key="account_tz")
    assert tz.label == "Time zone" and tz.value == "UTC"
    assert tz.options == sorted(tz.options) and "Europe/London" in tz.options
    assert at.text_input(key="account_email").label == "Email"
    tz.select("America/New_York")
    at.text_input(key="account_email").input("vera@example.org")
    at.button(key="FormSubmitter:account_settings-Save").click().run()
    assert not at.exception
    assert "Saved." in page_text(at)
    assert "America/New_York" in page_text(at) and "vera@example.org" in page_text(at)
    row = account(desk, "vera")
    assert (row.timezone, row.email) == ("America/New_York", "vera@example.org")
    home = open_app("vera")
    home.run()
    assert f"until {hhmm(end, 'America/New_York')} (America/New_York)" in page_text(home)
    at.text_input(key="account_email").input("")  # empty clears
    at.button(key="FormSubmitter:account_settings-Save").click().run()
    assert account(desk, "vera").email is None and "no reminders by email" in page_text(at)


def test_account_refuses_a_bad_email_and_stores_nothing(desk, open_app, page_text):
    at = open_app("sam", ACCOUNT)
    at.run()
    at.selectbox(key="account_tz").select("Asia/Tokyo")
    at.text_input(key="account_email").input("sam at example")
    at.button(key="FormSubmitter:account_settings-Save").click().run()
    assert not at.exception
    assert "'sam at example' is not an email address." in page_text(at)
    assert "Saved." not in page_text(at)
    row = account(desk, "sam")
    assert (row.timezone, row.email) == (None, None)  # not even the valid time zone


def test_a_refused_time_zone_stores_nothing(desk):
    """The page offers only valid zones; the service under it refuses anything else."""
    sam = Actor("sam", "social")
    users.set_my_timezone(desk, sam, "Europe/Paris")
    with pytest.raises(InvalidInput, match="Unknown time zone 'Paris/Europe'"):
        users.set_my_timezone(desk, sam, "Paris/Europe")
    assert account(desk, "sam").timezone == "Europe/Paris"


def test_account_changes_the_password_only_with_the_current_one(desk, open_app, page_text):
    at = open_app("eddie", ACCOUNT)
    at.run()
    before = account(desk, "eddie").password_hash
    at.text_input(key="account_current").input("not my password")
    at.text_input(key="account_new").input("a brand new password")
    at.button(key="FormSubmitter:account_password-Change password").click().run()
    assert not at.exception
    assert "The current password is wrong" in page_text(at)
    assert account(desk, "eddie").password_hash == before
    at.text_input(key="account_current").input(PASSWORD)
    at.text_input(key="account_new").input("a brand new password")
    at.button(key="FormSubmitter:account_password-Change password").click().run()
    assert not at.exception
    assert "Password changed." in page_text(at)
    assert users.authenticate(desk, "eddie", "a brand new password")
    with pytest.raises(users.LoginFailed):
        users.authenticate(desk, "eddie", PASSWORD)
    at.run()  # the session it was changed from is still logged in
    assert [t.value for t in at.title] == ["Account"]
