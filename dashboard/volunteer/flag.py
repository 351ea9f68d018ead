"""Volunteer page: flag a moment (URL or upload), then follow one's own flags live."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.pipeline.sources import SourceRef
from clipper.services.flags import URGENCIES, file_flag
from clipper.services.review import my_flags, save_upload
from clipper.timecode import EXAMPLES, parse_interval
from dashboard.components import flag_card
from dashboard.deps import context, guard

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
        return save_upload(ctx, actor, upload.name, upload.getvalue())  # type: ignore[attr-defined]
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


def field_error(name: str) -> None:
    exc = st.session_state.get(ERRORS, {}).get(name)
    if exc is not None:
        st.error(exc.message + (f"  \n{exc.hint}" if exc.hint else ""), icon=":material/error:")


st.title("Flag a clip")
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
