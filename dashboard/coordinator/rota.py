"""Coordinator page: the week grid, create shifts (or a weekly repeat), assign people, the gaps,
who is watching what now. One column, so it reads on a phone."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.services.channels import list_channels
from clipper.services.rota import add_shifts, gaps, list_shifts, now, signup
from clipper.services.rota_views import my_timezone, week_grid
from dashboard.components import as_datetime, show_error, wall_time
from dashboard.deps import context, guard

actor = guard("manage_rota")
ctx = context()
TZ = my_timezone(ctx, actor)
DONE = "rota_done"
MARK = {"covered": "🟢 covered", "short": "🟡 short", "empty": "🔴 empty", "none": "⚪ —"}


def local(when: str) -> str:
    """`Mon 30 Nov 19:00` in the coordinator's zone."""
    t = as_datetime(when).astimezone(ZoneInfo(TZ))
    return f"{t:%a %d %b} {wall_time(when, TZ)[:5]}"


def iso_local(day: date, at: time) -> str:
    """A date and time typed in the coordinator's zone, as ISO 8601 with its offset."""
    return datetime.combine(day, at, ZoneInfo(TZ)).isoformat()


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
    labels = [f"{date.fromisoformat(d):%a %d}" for d in grid["days"]]
    st.dataframe(
        {"Channel": [r["channel"] for r in grid["rows"]],
         **{label: [MARK[r["cells"][i]] for r in grid["rows"]] for i, label in enumerate(labels)}},
        hide_index=True, key="rota_grid")
else:
    st.caption("No channels yet: an admin adds them on the Live page's admin side.")

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
shifts = [s for s in list_shifts(ctx, actor, days=14)
          if as_datetime(s["end"]) > datetime.now(ZoneInfo(TZ))]
with st.form("rota_assign"):
    options = {f"#{s['id']} {s['channel']} {local(s['start'])} "
               f"({len(s['volunteers'])}/{s['needs']})": s["id"] for s in shifts}
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
