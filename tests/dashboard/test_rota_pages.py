"""The rota in the dashboard under AppTest, with the real SQLite database and Redis: a
coordinator's Rota page, a volunteer's My shifts, and the Live picker's current-shift order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from clipper.permissions import Actor
from clipper.services import rota
from clipper.storage.tables import Channel

DASH = Path(__file__).resolve().parents[2] / "dashboard"
SHIFTS, ROTA = DASH / "volunteer/shifts.py", DASH / "coordinator/rota.py"
OPERATOR = Actor.operator("test")


def channels(ctx, *names: str) -> None:
    with ctx.db.session() as s:
        s.add_all(Channel(name=n, url=f"https://tv.example/{n}.m3u8") for n in names)


def shift(ctx, channel: str, start: datetime, hours: float = 2, needs: int = 1) -> int:
    end = start + timedelta(hours=hours)
    return rota.add_shifts(ctx, OPERATOR, channel, start.isoformat(), end.isoformat(),
                           needs=needs)[0]


def soon(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


def test_coordinator_lands_on_rota_and_creates_a_weekly_repeat(desk, open_app, page_text):
    channels(desk, "bbc1")
    at = open_app("cora")
    at.run()
    assert not at.exception
    assert "Rota" in [t.value for t in at.title]
    assert "No gaps" in page_text(at)
    at.selectbox(key="rota_channel").select("bbc1")
    at.number_input(key="rota_needs").set_value(2)
    at.text_input(key="rota_note").input("leaders' debate")
    # From tomorrow: today's 19:00-21:00 shift would have ended when the suite runs after 21:00.
    day = at.date_input(key="rota_start_day").value + timedelta(days=1)
    at.date_input(key="rota_start_day").set_value(day)
    at.date_input(key="rota_end_day").set_value(day)
    at.date_input(key="rota_until").set_value(day + timedelta(days=14))
    at.button(key="FormSubmitter:rota_create-Create shifts").click().run()
    assert not at.exception
    assert "Created 3 shifts on bbc1." in page_text(at)
    made = rota.list_shifts(desk, OPERATOR, days=21, channel="bbc1")
    assert len(made) == 3 and all(s["needs"] == 2 and s["note"] == "leaders' debate" for s in made)
    # Tomorrow 19:00 is over 24 h away when the suite runs before 19:00 UTC: the 7-day list.
    at.radio(key="rota_gap_span").set_value("next 7 days").run()
    assert "bbc1" in page_text(at) and "2 missing" in page_text(at)
    grid = at.dataframe[0].value  # a row per day and channel, a column per 3-hour slot
    assert list(grid["Channel"]) == ["bbc1"] * 7
    assert list(grid.columns) == ["Day", "Channel", "00:00", "03:00", "06:00", "09:00", "12:00",
                                  "15:00", "18:00", "21:00"]
    assert [grid.iloc[0][t] for t in grid.columns[2:]] == ["⚪ —"] * 8  # nothing today
    first = grid.iloc[1]  # tomorrow's 19:00-21:00 shift, in the 18:00 slot alone
    assert first["Day"] == f"{day:%a %d}" and first["18:00"] == "🔴 empty"
    assert [first[t] for t in grid.columns[2:] if t != "18:00"] == ["⚪ —"] * 7


def test_grid_colours_each_slot_and_the_shift_table_lists_who_is_on(desk, open_app):
    """A day with an empty morning and a covered evening shows both, slot by slot, in the
    coordinator's zone; the upcoming shifts list who is on each and filters by person."""
    from sqlalchemy import update

    from clipper.storage.tables import User

    channels(desk, "bbc1", "itv")
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    morning = shift(desk, "bbc1", day + timedelta(hours=7))                # 07-09, nobody
    evening = shift(desk, "bbc1", day + timedelta(hours=19), needs=2)      # 19-21, full
    late = shift(desk, "itv", day + timedelta(hours=22), hours=1, needs=2)  # 22-23, 1 of 2
    for sid, name in ((evening, "vera"), (evening, "eddie"), (late, "vera")):
        rota.signup(desk, OPERATOR, sid, user=name)

    def tables(at) -> tuple:
        """The grid and the upcoming shifts, as data frames."""
        frames = [d.value for d in at.dataframe]
        return (next(f for f in frames if "Day" in f.columns),
                next(f for f in frames if "Volunteers" in f.columns))

    at = open_app("cora", ROTA)
    at.run()
    assert not at.exception
    grid, shifts = tables(at)
    rows = {r["Channel"]: r for _, r in grid[grid["Day"] == f"{day:%a %d}"].iterrows()}
    assert (rows["bbc1"]["06:00"], rows["bbc1"]["18:00"]) == ("🔴 empty", "🟢 covered")
    assert rows["bbc1"]["09:00"] == rows["bbc1"]["00:00"] == "⚪ —"
    assert rows["itv"]["21:00"] == "🟡 short" and rows["itv"]["18:00"] == "⚪ —"

    by_id = {r["Shift"]: r for _, r in shifts.iterrows()}
    assert list(by_id) == [f"#{morning}", f"#{evening}", f"#{late}"]
    row = by_id[f"#{evening}"]
    assert (row["Channel"], row["When"], row["Volunteers"], row["Needs"], row["Status"]) == (
        "bbc1", f"{day:%a %d %b} 19:00–21:00", "vera, eddie", 2, "🟢 covered")
    assert (by_id[f"#{morning}"]["Volunteers"], by_id[f"#{morning}"]["Status"]) == (
        "—", "🔴 empty")
    box = at.selectbox(key="rota_shifts_person")
    assert box.options == ["All people", "eddie", "vera"]
    box.select("vera").run()
    assert list(tables(at)[1]["Shift"]) == [f"#{evening}", f"#{late}"]
    at.selectbox(key="rota_shifts_person").select("eddie").run()
    assert list(tables(at)[1]["Shift"]) == [f"#{evening}"]

    # In Tokyo (UTC+9) the evening shift is 04:00-06:00 the next day: grid and table agree.
    with desk.db.session() as s:
        s.execute(update(User).where(User.name == "cora").values(timezone="Asia/Tokyo"))
    at = open_app("cora", ROTA)
    at.run()
    grid, shifts = tables(at)
    next_day = day + timedelta(days=1)
    tokyo = grid[(grid["Day"] == f"{next_day:%a %d}") & (grid["Channel"] == "bbc1")].iloc[0]
    assert tokyo["03:00"] == "🟢 covered" and tokyo["18:00"] == "⚪ —"
    assert shifts[shifts["Shift"] == f"#{evening}"].iloc[0]["When"] == (
        f"{next_day:%a %d %b} 04:00–06:00")


def test_coordinator_refused_end_before_start_stores_nothing(desk, open_app, page_text):
    channels(desk, "bbc1")
    at = open_app("cora", ROTA)
    at.run()
    at.time_input(key="rota_end_time").set_value(datetime(2000, 1, 1, 18, 0).time())
    at.button(key="FormSubmitter:rota_create-Create shifts").click().run()
    assert not at.exception
    assert at.error and not rota.list_shifts(desk, OPERATOR, days=7)


def test_coordinator_assigns_a_person_and_sees_who_watches_now(desk, open_app, page_text):
    channels(desk, "bbc1", "itv")
    running = shift(desk, "itv", soon(-1))
    rota.signup(desk, OPERATOR, running, user="eddie")
    later = shift(desk, "bbc1", soon(30))
    at = open_app("cora", ROTA)
    at.run()
    assert "eddie" in page_text(at) and "itv" in page_text(at)  # watching now
    label = next(o for o in at.selectbox(key="rota_assign_shift").options if f"#{later} " in o)
    at.selectbox(key="rota_assign_shift").select(label)
    at.text_input(key="rota_assign_person").input("vera")
    at.button(key="FormSubmitter:rota_assign-Assign").click().run()
    assert not at.exception
    assert f"vera is on shift {later}." in page_text(at)
    assert rota.list_shifts(desk, OPERATOR, days=3, channel="bbc1")[0]["volunteers"] == ["vera"]
    at.text_input(key="rota_assign_person").input("nobody")
    at.button(key="FormSubmitter:rota_assign-Assign").click().run()
    assert "No user 'nobody'" in page_text(at)


def test_volunteer_signs_up_cancels_and_is_refused_a_late_cancel(desk, open_app, page_text):
    channels(desk, "bbc1")
    far = shift(desk, "bbc1", soon(30))
    near = shift(desk, "bbc1", soon(1))
    at = open_app("vera", SHIFTS)
    at.run()
    assert not at.exception
    assert "You are not on any shift yet" in page_text(at)
    at.button(key=f"signup_{far}").click().run()
    assert "Signed up for bbc1" in page_text(at)
    assert at.button(key=f"cancel_{far}")
    at.button(key=f"signup_{near}").click().run()
    at.button(key=f"cancel_{near}").click().run()
    assert "too late to cancel" in page_text(at)
    assert "Ask a coordinator" in page_text(at)
    at.button(key=f"cancel_{far}").click().run()
    assert "You are off the bbc1 shift." in page_text(at)
    on = {s["id"]: s["volunteers"] for s in rota.list_shifts(desk, OPERATOR, days=3)}
    assert on == {near: ["vera"], far: []}  # the late cancel was refused, the early one done


def test_volunteer_checks_in_downloads_calendar_and_sees_stats(desk, open_app, page_text):
    channels(desk, "bbc1")
    on = shift(desk, "bbc1", soon(-0.5))
    rota.signup(desk, OPERATOR, on, user="vera")
    at = open_app("vera", SHIFTS)
    at.run()
    at.button(key=f"checkin_{on}").click().run()
    assert not at.exception
    assert "Checked in to bbc1." in page_text(at)
    assert "Shifts done: **1**" in page_text(at)
    assert "Flags filed: **0**" in page_text(at)
    assert len(at.get("download_button")) == 1


def test_volunteer_times_are_in_their_own_zone(desk, open_app, page_text):
    from sqlalchemy import update

    from clipper.storage.tables import User

    channels(desk, "bbc1")
    start = soon(30).replace(minute=0, second=0)
    sid = shift(desk, "bbc1", start)
    rota.signup(desk, OPERATOR, sid, user="vera")
    with desk.db.session() as s:
        s.execute(update(User).where(User.name == "vera").values(timezone="Asia/Tokyo"))
    at = open_app("vera", SHIFTS)
    at.run()
    tokyo = (start + timedelta(hours=9)).strftime("%H:%M")
    assert f"{tokyo}–" in page_text(at) and "(Asia/Tokyo)" in page_text(at)


def test_live_picker_puts_the_current_shift_channel_first(desk, open_app):
    channels(desk, "aaa", "zzz")
    sid = shift(desk, "zzz", soon(-0.5))
    at = open_app("vera", DASH / "volunteer/live.py")
    at.run()
    assert at.selectbox(key="live_channel").options[0] == "aaa"
    rota.signup(desk, OPERATOR, sid, user="vera")
    at = open_app("vera", DASH / "volunteer/live.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="live_channel").options[0] == "zzz"


def test_volunteer_may_not_open_rota(open_app, page_text):
    at = open_app("vera", ROTA)
    at.run()
    assert "may not open this page" in page_text(at) and not at.button


def pick(at, key: str, shift_id: int) -> None:
    """Choose the option of `shift_id` in the selectbox `key`."""
    box = at.selectbox(key=key)
    box.select(next(o for o in box.options if f"#{shift_id} " in o))


def test_coordinator_edits_then_cancels_a_shift(desk, open_app, page_text):
    channels(desk, "bbc1")
    start = soon(30).replace(minute=0, second=0)
    sid = shift(desk, "bbc1", start, needs=2)
    for name in ("vera", "eddie"):
        rota.signup(desk, OPERATOR, sid, user=name)
    at = open_app("cora", ROTA)
    at.run()
    pick(at, "rota_edit_shift", sid)
    at.run()
    # Needs below the two people on it: refused with the reason and a hint, nothing stored.
    at.number_input(key=f"rota_edit_needs_{sid}").set_value(1)
    at.button(key="FormSubmitter:rota_edit-Save changes").click().run()
    assert not at.exception
    assert "already has 2 people" in page_text(at) and "Take someone off" in page_text(at)
    assert rota.list_shifts(desk, OPERATOR, days=3)[0]["needs"] == 2
    # A later end, three people, a note: stored, and the message says who will be told.
    end = start + timedelta(hours=3)
    at.number_input(key=f"rota_edit_needs_{sid}").set_value(3)
    at.date_input(key=f"rota_edit_ed_{sid}").set_value(end.date())
    at.time_input(key=f"rota_edit_et_{sid}").set_value(end.time())
    at.text_input(key=f"rota_edit_note_{sid}").input("leaders' debate")
    at.button(key="FormSubmitter:rota_edit-Save changes").click().run()
    assert not at.exception
    assert f"Shift {sid} on bbc1 is now" in page_text(at)
    assert "vera, eddie will be told." in page_text(at)
    got = rota.list_shifts(desk, OPERATOR, days=3)[0]
    assert (got["end"], got["needs"], got["note"]) == (
        end.strftime("%Y-%m-%dT%H:%M:%SZ"), 3, "leaders' debate")
    assert got["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")  # the untouched start stays
    # End before start: refused.
    # (an hour before the start, its date included: a start at midnight ends the day before)
    before = start - timedelta(hours=1)
    at.date_input(key=f"rota_edit_ed_{sid}").set_value(before.date())
    at.time_input(key=f"rota_edit_et_{sid}").set_value(before.time())
    at.button(key="FormSubmitter:rota_edit-Save changes").click().run()
    assert "must end after it starts" in page_text(at)
    assert rota.list_shifts(desk, OPERATOR, days=3)[0]["end"] == got["end"]
    # Cancelling needs the box ticked first.
    assert at.button(key="rota_cancel_shift").disabled
    at.checkbox(key=f"rota_cancel_sure_{sid}").check().run()
    at.button(key="rota_cancel_shift").click().run()
    assert not at.exception
    assert f"Shift {sid} on bbc1 is cancelled. vera, eddie will be told." in page_text(at)
    assert rota.list_shifts(desk, OPERATOR, days=3) == []
    assert "No upcoming shift to edit." in page_text(at)


def test_coordinator_removes_a_person_sees_missed_and_the_numbers(desk, open_app, page_text):
    channels(desk, "bbc1", "itv")
    later = shift(desk, "bbc1", soon(30), needs=2)
    for name in ("vera", "eddie"):
        rota.signup(desk, OPERATOR, later, user=name)
    past = shift(desk, "itv", soon(-5))
    rota.signup(desk, OPERATOR, past, user="vera", at=soon(-10))
    rota.mark_missed(desk, OPERATOR, now=soon(0))
    at = open_app("cora", ROTA)
    at.run()
    assert not at.exception
    text = page_text(at)
    assert "❌ **vera** · itv" in text and "Nobody missed" not in text
    team = next(d.value for d in at.dataframe if "Person" in d.value.columns)
    vera = team[team["Person"] == "vera"].iloc[0]
    assert (vera["Done"], vera["Missed"], vera["Flags"]) == (0, 1, 0)
    assert "ada" not in list(team["Person"])  # admins are not on the rota
    box = at.selectbox(key="rota_remove_pick")
    box.select(next(o for o in box.options if o.startswith("vera · ") and f"#{later} " in o))
    at.button(key="FormSubmitter:rota_remove-Remove from shift").click().run()
    assert not at.exception
    assert f"vera is off shift {later}; they will be told." in page_text(at)
    assert rota.list_shifts(desk, OPERATOR, days=3, channel="bbc1")[0]["volunteers"] == ["eddie"]
    assert [o.split(" · ")[0] for o in at.selectbox(key="rota_remove_pick").options] == ["eddie"]
