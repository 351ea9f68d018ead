"""Volunteer page: one's shift now or next, flag a moment (URL or upload), follow one's flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.pipeline.sources import SourceRef
from clipper.services.flags import URGENCIES, file_flag
from clipper.services.review import my_flags, save_upload
from clipper.services.rota import now as rota_now
from clipper.services.rota_views import my_shifts, my_timezone
from clipper.timecode import EXAMPLES, parse_interval
from dashboard.components import as_datetime, flag_card, wall_time
from dashboard.deps import LIVE_PAGE, context, guard

actor = guard("flag")
ctx = context()
ERRORS = "flag_errors"


def _field_of_time_error(exc: InvalidInput) -> str:
    return "start" if exc.message.startswith("Start") else "end"


def _source(upload: object | None) -> str | SourceRef:
    """The typed URL, or the stored upload's SourceRef: never a path (the service refuses a
    typed path from anyone but the local operator)."""
    url = (st.session_state.get("flag_source") or "").strip()
    if upload is not None:
        if url:
            raise InvalidInput("Give a URL or upload a file, not both.", "Clear one of them.")
        return save_upload(ctx, actor, upload.name, upload)  # type: ignore[attr-defined]
    return url


def submit() -> None:
    """Runs before the page re-renders, so errors can sit under the field they are about."""
    s = st.session_state
    s[ERRORS], s["flag_result"] = {}, None
    try:
        parse_interval(s.get("flag_start", ""), s.get("flag_end", ""),
                       max_seconds=ctx.settings.max_clip_seconds)
    except InvalidInput as exc:
        s[ERRORS][_field_of_time_error(exc)] = exc
        return
    try:
        source = _source(s.get("flag_upload"))
        s["flag_result"] = file_flag(ctx, actor, source, s["flag_start"], s["flag_end"],
                                     note=s.get("flag_note", ""), tags=s.get("flag_tags", ""),
                                     urgency=s.get("flag_urgency", "normal"))
    except ClipperError as exc:
        field = "urgency" if exc.message.startswith("Urgency") else "source"
        s[ERRORS][field] = exc
        return
    for key in ("flag_note", "flag_tags", "flag_start", "flag_end"):
        s[key] = ""


def _when(start: str, tz: str) -> str:
    """`today at 19:00`, `tomorrow at 08:00` or `Sat 23 Nov at 08:00`, in zone `tz`."""
    z = ZoneInfo(tz)
    day = as_datetime(start).astimezone(z).date()
    today = datetime.now(z).date()
    words = {today: "today", today + timedelta(days=1): "tomorrow"}
    return f"{words.get(day) or f'{day:%a %d %b}'} at {wall_time(start, tz)[:5]}"


def shift_banner() -> None:
    """The person's shift running now (channel, until when in their zone, a link to watch it on
    Live), else their next shift within 24 hours, else nothing."""
    if not (actor.can("view_rota") and actor.can("signup")):
        return
    try:
        tz = my_timezone(ctx, actor)
        current = [r for r in rota_now(ctx, actor) if actor.name in r["volunteers"]]
        upcoming = [] if current else my_shifts(ctx, actor, days=2)
    except ClipperError:
        return  # the rota must never stand between a volunteer and flagging
    for r in current:
        with st.container(border=True):
            st.markdown(f"On shift now: **{r['channel']}** until {wall_time(r['until'], tz)[:5]}"
                        f" ({tz})")
            st.page_link(LIVE_PAGE, label=f"Watch {r['channel']} live", icon=":material/live_tv:",
                         query_params={"channel": r["channel"]})
    now = datetime.now(UTC)
    soon = [s for s in upcoming if now < as_datetime(s["start"]) <= now + timedelta(hours=24)]
    if soon:
        nxt = min(soon, key=lambda x: x["start"])
        st.info(f"Next shift: **{nxt['channel']}** {_when(nxt['start'], tz)} ({tz})",
                icon=":material/event:")


def field_error(name: str) -> None:
    exc = st.session_state.get(ERRORS, {}).get(name)
    if exc is not None:
        st.error(exc.message + (f"  \n{exc.hint}" if exc.hint else ""), icon=":material/error:")


st.title("Flag a clip")
shift_banner()
st.text_input("Source URL", key="flag_source",
              placeholder="https://… (a broadcast page, MP4 or .m3u8)")
st.file_uploader("…or upload a recording", key="flag_upload",
                 type=["mp4", "mov", "mkv", "webm", "ts", "m4a", "mp3", "wav"])
field_error("source")
left, right = st.columns(2)
with left:
    st.text_input("Start", key="flag_start", placeholder="1:15",
                  help=f"Seconds or h:mm:ss, e.g. {EXAMPLES}")
    field_error("start")
with right:
    st.text_input("End", key="flag_end", placeholder="1:45",
                  help=f"Seconds or h:mm:ss, e.g. {EXAMPLES}")
    field_error("end")
st.caption(f"Times count from the start of the source: {EXAMPLES}.")
st.text_input("Note", key="flag_note", placeholder="What is said, and why it matters")
st.text_input("Tags", key="flag_tags", placeholder="health, budget")
st.selectbox("Urgency", URGENCIES, index=1, key="flag_urgency")
field_error("urgency")
st.button("Submit flag", type="primary", on_click=submit, key="flag_submit")

result = st.session_state.get("flag_result")
if result is not None:
    if result.merged:
        st.info(f"Someone already flagged this moment: your flag joined clip {result.clip_id}.")
    else:
        st.success(f"Flag saved as clip {result.clip_id}.")
    if not result.queued:
        st.warning("Saved, but the work queue is down; it will be processed when it is back.")


@st.fragment(run_every=2)
def my_flags_panel() -> None:
    st.subheader("My flags")
    flags = my_flags(ctx, actor)
    if not flags:
        st.caption("Nothing flagged yet.")
    for f in flags:
        flag_card(f, ctx.settings.timezone)


my_flags_panel()
