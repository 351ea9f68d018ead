"""Coordinator page: the rota's gaps and week grid, and every change a coordinator makes to it.

The gaps, who is watching what now, the week grid (channel x 3-hour slot), the upcoming shifts
with who is on each, create shifts (or a weekly repeat), assign people, edit or cancel a shift,
take a person off one, missed shifts and each volunteer's numbers. One column, so it reads on
a phone.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.services.channels import list_channels
from clipper.services.rota import (
    add_shifts,
    cancel_shift,
    edit_shift,
    gaps,
    list_shifts,
    missed_shifts,
    now,
    remove_person,
    signup,
    team_stats,
)
from clipper.services.rota_views import my_timezone, week_grid
from dashboard.components import as_datetime, show_error, wall_time
from dashboard.deps import context, guard

actor = guard("manage_rota")
ctx = context()
TZ = my_timezone(ctx, actor)
DONE = "rota_done"
MARK = {"covered": "🟢 covered", "short": "🟡 short", "empty": "🔴 empty", "none": "⚪ —"}
EVERYONE = "All people"


def local(when: str) -> str:
    """`Mon 30 Nov 19:00` in the coordinator's zone."""
    t = as_datetime(when).astimezone(ZoneInfo(TZ))
    return f"{t:%a %d %b} {wall_time(when, TZ)[:5]}"


def iso_local(day: date, at: time) -> str:
    """A date and time typed in the coordinator's zone, as ISO 8601 with its offset."""
    return datetime.combine(day, at, ZoneInfo(TZ)).isoformat()


def period(s: dict[str, Any]) -> str:
    """`Mon 30 Nov 19:00–21:00` in the coordinator's zone; the end's day too when it differs."""
    start, end = (as_datetime(s[k]).astimezone(ZoneInfo(TZ)) for k in ("start", "end"))
    until = f"{end:%H:%M}" if end.date() == start.date() else local(s["end"])
    return f"{local(s['start'])}–{until}"


def label(s: dict[str, Any]) -> str:
    """`#12 bbc1 Mon 30 Nov 19:00 (1/2)`: a shift in a picker."""
    return f"#{s['id']} {s['channel']} {local(s['start'])} ({len(s['volunteers'])}/{s['needs']})"


def minute(when: str) -> datetime:
    """A shift time in the coordinator's zone to the minute, as the time pickers hold it."""
    return as_datetime(when).astimezone(ZoneInfo(TZ)).replace(second=0, microsecond=0)


def changed_time(day: date, at: time, was: str) -> str | None:
    """The picked time as ISO 8601, or None when it is the shift's own (to the minute): an
    untouched picker must not move a shift that starts at 19:00:30."""
    picked = datetime.combine(day, at.replace(second=0, microsecond=0), ZoneInfo(TZ))
    return None if picked == minute(was) else picked.isoformat()


st.title("Rota")
st.caption(f"Times in {TZ}.")
if message := st.session_state.pop(DONE, None):
    st.success(message)

st.subheader("Gaps")
span = st.radio("Within", ("next 24 h", "next 7 days"), horizontal=True, key="rota_gap_span")
try:
    holes = gaps(ctx, actor, days=1 if span == "next 24 h" else 7)
except ClipperError as exc:
    show_error(exc)
    holes = []
if not holes:
    st.success("No gaps: every shift has its people.")
for g in holes:
    st.markdown(f"🔴 **{g['channel']}** {local(g['start'])} – {local(g['end'])} · "
                f"{g['missing']} missing")

st.subheader("Watching now")
running = now(ctx, actor)
if not running:
    st.caption("No shift is on right now.")
for r in running:
    people = ", ".join(r["volunteers"]) or "nobody"
    st.markdown(f"**{r['channel']}** · {people} · until {local(r['until'])}")

st.subheader("This week")
grid = week_grid(ctx, actor, tz=TZ)
if grid["rows"]:
    times = grid["times"]
    # A row per day and channel, a column per slot of the day: the week reads downwards, as a
    # phone scrolls, rather than a column for every slot of the week across.
    lines = [(day, r["channel"], r["cells"][d * len(times):(d + 1) * len(times)])
             for d, day in enumerate(grid["days"]) for r in grid["rows"]]
    st.dataframe(
        {"Day": [f"{date.fromisoformat(day):%a %d}" for day, _, _ in lines],
         "Channel": [channel for _, channel, _ in lines],
         **{t: [MARK[cells[i]] for _, _, cells in lines] for i, t in enumerate(times)}},
        hide_index=True, key="rota_grid",
        column_config={"Day": st.column_config.TextColumn(pinned=True),
                       "Channel": st.column_config.TextColumn(pinned=True)})
    st.caption(f"Each column is the {24 // len(times)} hours from that time ({TZ}): 🟢 every "
               "shift in them has its people, 🟡 some are short, 🔴 nobody is on them, "
               "⚪ no shift planned.")
else:
    st.caption("No channels yet: an admin adds them on the Live page's admin side.")

st.subheader("Upcoming shifts")
shifts = [s for s in list_shifts(ctx, actor, days=14)
          if as_datetime(s["end"]) > datetime.now(ZoneInfo(TZ))]
on_rota = sorted({name for s in shifts for name in s["volunteers"]})
# No user name has a space (services.users), so this choice can never be someone's name.
whose = st.selectbox("Shifts of", [EVERYONE, *on_rota], key="rota_shifts_person")
shown = shifts if whose == EVERYONE else [s for s in shifts if whose in s["volunteers"]]
if shown:
    st.dataframe({"Shift": [f"#{s['id']}" for s in shown],
                  "Channel": [s["channel"] for s in shown],
                  "When": [period(s) for s in shown],
                  "Volunteers": [", ".join(s["volunteers"]) or "—" for s in shown],
                  "Needs": [s["needs"] for s in shown],
                  "Status": [MARK[s["status"]] for s in shown],
                  "Note": [s["note"] for s in shown]},
                 hide_index=True, key="rota_shifts")
    st.caption(f"The next 14 days, times in {TZ}.")
else:
    st.caption("No upcoming shift in the next 14 days." if whose == EVERYONE
               else f"{whose} is on no upcoming shift.")

channels = [c["name"] for c in list_channels(ctx, actor)]
st.subheader("Create shifts")
with st.form("rota_create", clear_on_submit=False):
    channel = st.selectbox("Channel", channels, key="rota_channel")
    today = datetime.now(ZoneInfo(TZ)).date()
    start_day = st.date_input("Start", value=today, key="rota_start_day")
    start_time = st.time_input("Start time", value=time(19, 0), key="rota_start_time")
    end_day = st.date_input("End", value=today, key="rota_end_day")
    end_time = st.time_input("End time", value=time(21, 0), key="rota_end_time")
    needs = st.number_input("Needs", min_value=1, max_value=20, value=1, step=1, key="rota_needs")
    note = st.text_input("Note", key="rota_note", placeholder="leaders' debate — two people")
    until = st.date_input("Repeat weekly until", value=None, key="rota_until",
                          help="Leave empty for a single shift.")
    create = st.form_submit_button("Create shifts", type="primary")
if create:
    try:
        if not channel:
            raise InvalidInput("There is no channel to put a shift on.",
                               "An admin adds channels first.")
        ids = add_shifts(ctx, actor, channel, iso_local(start_day, start_time),
                         iso_local(end_day, end_time), needs=int(needs), note=note,
                         weekly_until=until)
        plural = "s" if len(ids) != 1 else ""
        st.session_state[DONE] = f"Created {len(ids)} shift{plural} on {channel}."
        st.rerun()
    except ClipperError as exc:
        show_error(exc)

st.subheader("Assign a person")
with st.form("rota_assign"):
    options = {label(s): s["id"] for s in shifts}
    choice = st.selectbox("Shift", list(options), key="rota_assign_shift")
    person = st.text_input("Person", key="rota_assign_person", placeholder="user name")
    assign = st.form_submit_button("Assign")
if assign:
    try:
        if choice is None:
            raise InvalidInput("There is no shift to assign to.", "Create shifts first.")
        done = signup(ctx, actor, options[choice], user=person)
        st.session_state[DONE] = f"{done['user']} is on shift {done['shift_id']}."
        st.rerun()
    except ClipperError as exc:
        show_error(exc)

st.subheader("Edit a shift")
by_label = {label(s): s for s in shifts}
picked = st.selectbox("Shift to edit", list(by_label), key="rota_edit_shift")
if picked is None:
    st.caption("No upcoming shift to edit.")
else:
    shift = by_label[picked]
    sid = shift["id"]
    was_start, was_end = minute(shift["start"]), minute(shift["end"])
    # Widget keys carry the shift id, so picking another shift shows its own values.
    with st.form("rota_edit"):
        e_start_day = st.date_input("Start", value=was_start.date(), key=f"rota_edit_sd_{sid}")
        e_start_time = st.time_input("Start time", value=was_start.time(),
                                     key=f"rota_edit_st_{sid}")
        e_end_day = st.date_input("End", value=was_end.date(), key=f"rota_edit_ed_{sid}")
        e_end_time = st.time_input("End time", value=was_end.time(), key=f"rota_edit_et_{sid}")
        e_needs = st.number_input("Needs", min_value=1, max_value=20, value=int(shift["needs"]),
                                  step=1, key=f"rota_edit_needs_{sid}")
        e_note = st.text_input("Note", value=shift["note"], key=f"rota_edit_note_{sid}")
        save = st.form_submit_button("Save changes", type="primary")
    if save:
        changes: dict[str, Any] = {
            "start": changed_time(e_start_day, e_start_time, shift["start"]),
            "end": changed_time(e_end_day, e_end_time, shift["end"]),
            "needs": int(e_needs) if int(e_needs) != shift["needs"] else None,
            "note": e_note if e_note != shift["note"] else None}
        if all(v is None for v in changes.values()):
            st.info(f"Nothing to change on shift {sid}.")
        else:
            try:
                done = edit_shift(ctx, actor, sid, **changes)
                told = f" {', '.join(done['volunteers'])} will be told." if done[
                    "volunteers"] else ""
                st.session_state[DONE] = (f"Shift {sid} on {done['channel']} is now "
                                          f"{local(done['start'])} – {local(done['end'])}, "
                                          f"needs {done['needs']}.{told}")
                st.rerun()
            except ClipperError as exc:
                show_error(exc)
    sure = st.checkbox("Yes, cancel this shift", key=f"rota_cancel_sure_{sid}")
    if st.button("Cancel shift", key="rota_cancel_shift", disabled=not sure):
        try:
            done = cancel_shift(ctx, actor, sid)
            told = f" {', '.join(done['volunteers'])} will be told." if done["volunteers"] else ""
            st.session_state[DONE] = f"Shift {sid} on {done['channel']} is cancelled.{told}"
            st.rerun()
        except ClipperError as exc:
            show_error(exc)

st.subheader("Remove a person")
pairs = {f"{name} · {label(s)}": (s["id"], name) for s in shifts for name in s["volunteers"]}
if not pairs:
    st.caption("Nobody is on an upcoming shift.")
else:
    with st.form("rota_remove"):
        gone = st.selectbox("Person and shift", list(pairs), key="rota_remove_pick")
        remove = st.form_submit_button("Remove from shift")
    if remove and gone is not None:
        try:
            done = remove_person(ctx, actor, *pairs[gone])
            st.session_state[DONE] = (f"{done['user']} is off shift {done['shift_id']}; "
                                      "they will be told.")
            st.rerun()
        except ClipperError as exc:
            show_error(exc)

st.subheader("Missed shifts")
try:
    missed = missed_shifts(ctx, actor, days=14)
except ClipperError as exc:
    show_error(exc)
    missed = []
if not missed:
    st.caption("Nobody missed a shift in the last 14 days.")
for m in missed:
    st.markdown(f"❌ **{m['user']}** · {m['channel']} · {local(m['start'])}–"
                f"{wall_time(m['end'], TZ)[:5]}")

st.subheader("Volunteers")
numbers = team_stats(ctx, actor)
if numbers:
    st.dataframe({"Person": [r["name"] for r in numbers],
                  "Done": [r["shifts_done"] for r in numbers],
                  "Missed": [r["missed"] for r in numbers],
                  "Flags": [r["flags_filed"] for r in numbers],
                  "Published": [r["flags_published"] for r in numbers]},
                 hide_index=True, key="rota_team")
    st.caption("Done: shifts checked in to. Missed: signed up, never checked in. Flags: filed; "
               "published: their clip went out.")
else:
    st.caption("Nobody on the team yet.")
