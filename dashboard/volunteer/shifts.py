"""Volunteer page: my upcoming shifts (in my time zone), open shifts to sign up for, cancel,
check in, my calendar and my stats. One column, so it reads on a phone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.errors import ClipperError
from clipper.services.rota import cancel_signup, check_in, ical, list_shifts, signup, stats
from clipper.services.rota_views import my_shifts, my_timezone
from dashboard.components import as_datetime, show_error, wall_time
from dashboard.deps import context, guard

actor = guard("signup")
ctx = context()
TZ = my_timezone(ctx, actor)
MESSAGE = "shifts_message"
#: A volunteer may check in this long before the start (as the service allows).
EARLY = timedelta(minutes=15)


def when(s: dict[str, Any]) -> str:
    """`Mon 30 Nov 19:00–21:00 (Europe/London)` in the person's zone."""
    start = as_datetime(s["start"]).astimezone(ZoneInfo(TZ))
    return (f"{start:%a %d %b} {wall_time(s['start'], TZ)[:5]}–{wall_time(s['end'], TZ)[:5]}"
            f" ({TZ})")


def act(fn: Callable[..., Any], shift_id: int, done: str) -> None:
    """Run a rota service from a button; its result or refusal shows at the top of the page."""
    try:
        fn(ctx, actor, shift_id)
        st.session_state[MESSAGE] = ("success", done)
    except ClipperError as exc:
        st.session_state[MESSAGE] = ("error", exc)


def on_now(s: dict[str, Any]) -> bool:
    now = datetime.now(UTC)
    return as_datetime(s["start"]) - EARLY <= now < as_datetime(s["end"])


st.title("My shifts")
kind, msg = st.session_state.pop(MESSAGE, (None, None))
if kind == "success":
    st.success(msg)
elif kind == "error":
    show_error(msg)

try:
    mine = my_shifts(ctx, actor)
    upcoming = list_shifts(ctx, actor, days=14)
except ClipperError as exc:
    show_error(exc)
    st.stop()

st.subheader("Upcoming")
if not mine:
    st.caption("You are not on any shift yet: pick one below.")
for s in mine:
    with st.container(border=True):
        st.markdown(f"**{s['channel']}** · {when(s)}")
        if s["note"]:
            st.caption(s["note"])
        if on_now(s):
            st.button("Check in", key=f"checkin_{s['id']}", type="primary",
                      on_click=act, args=(check_in, s["id"], f"Checked in to {s['channel']}."))
        st.button("Cancel", key=f"cancel_{s['id']}", on_click=act,
                  args=(cancel_signup, s["id"], f"You are off the {s['channel']} shift."))

st.subheader("Open shifts")
now = datetime.now(UTC)
open_shifts = [s for s in upcoming if s["status"] != "covered" and actor.name not in s["volunteers"]
               and as_datetime(s["end"]) > now]
if not open_shifts:
    st.caption("No open shifts in the next 14 days.")
for s in open_shifts:
    with st.container(border=True):
        st.markdown(f"**{s['channel']}** · {when(s)} · {len(s['volunteers'])} of {s['needs']}")
        if s["note"]:
            st.caption(s["note"])
        st.button("Sign up", key=f"signup_{s['id']}", on_click=act,
                  args=(signup, s["id"], f"Signed up for {s['channel']}, {when(s)}."))

st.subheader("Calendar")
st.download_button("Download calendar", data=ical(ctx, actor, actor.name), file_name="shifts.ics",
                   mime="text/calendar", key="shifts_ical", icon=":material/calendar_month:")
st.caption("Load it into your phone's calendar; downloading it again updates the events.")

st.subheader("My stats")
numbers = stats(ctx, actor)
st.markdown(f"Shifts done: **{numbers['shifts_done']}**  \n"
            f"Missed: **{numbers['missed']}**  \n"
            f"Flags filed: **{numbers['flags_filed']}**  \n"
            f"Flags published: **{numbers['flags_published']}**")
