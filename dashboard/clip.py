"""One clip, everything about it: status, media, flaggers, transcript, renders, package, its
delivery to the shared drive, event log."""

from __future__ import annotations

from typing import Any

import streamlit as st

from clipper.errors import ClipperError
from clipper.services.clips import clip_events, clip_status
from dashboard.components import (
    existing,
    interval,
    package_panel,
    progress_bar,
    show_error,
    wall_time,
)
from dashboard.deps import context, guard

actor = guard("view_clip")
ctx = context()


def chosen_id() -> int | None:
    raw = st.query_params.get("id")
    value = st.number_input("Clip id", min_value=1, step=1,
                            value=int(raw) if raw and raw.isdigit() else None,
                            key="clip_page_id")
    if value is not None and str(int(value)) != raw:
        st.query_params["id"] = str(int(value))
    return int(value) if value is not None else None


def media(clip: dict[str, Any]) -> None:
    if thumb := existing(clip["thumbnail_path"]):
        st.image(str(thumb), width=320)
    if video := existing(clip["media_path"]):
        vtt = existing(clip["vtt_path"])
        st.video(str(video), start_time=float(clip["trim_in"] or 0),
                 subtitles=str(vtt) if vtt else None)


def details(clip: dict[str, Any]) -> None:
    tz = ctx.settings.timezone
    st.markdown(f"**Source:** {clip['source']}  \n"
                f"**Interval:** {interval(clip, tz, digits=2, date=True)}"
                f" · **Urgency:** {clip['urgency']} · **Version:** {clip.get('version')}")
    if gaps := clip.get("gaps"):  # a channel clip over a hole in the recording
        st.warning("Not recorded, so missing from the clip: " + ", ".join(
            f"{wall_time(a, tz)}–{wall_time(b, tz)}" for a, b in gaps) + f" ({tz}).")
    progress_bar(clip["status"], clip["progress"])
    if clip["error"]:
        st.error(f"Error ({clip.get('error_stage') or 'stage'}): {clip['error']}")
    if clip["reject_reason"]:
        st.warning(f"Rejected: {clip['reject_reason']}")
    if clip["claimed_by"]:
        st.caption(f"Claimed by {clip['claimed_by']}")
    st.subheader("Flags")
    st.dataframe([{**f, "tags": ", ".join(f["tags"])} for f in clip["flaggers"]], hide_index=True)


def transcript(clip: dict[str, Any]) -> None:
    if t := clip["transcript"]:
        st.subheader("Transcript")
        st.write(t["text"])
    if clip["caption"]:
        st.subheader("Post caption")
        st.write(clip["caption"])
    if clip["renders"]:
        st.subheader("Renders")
        st.dataframe(clip["renders"], hide_index=True)


DELIVERY_WORDS = {"pending": "being copied", "delivered": "delivered", "failed": "failed"}


def delivery(clip: dict[str, Any]) -> None:
    """Where the package went on the team's shared drive, and how that copy is going (the
    status object's `delivery`: pending and failed copies too, which `delivered` leaves out)."""
    d = clip.get("delivery")
    if not d:
        return
    st.subheader("Shared drive")
    where = f"{d['remote']}:{d['path']}" if d["remote"] else d["path"]
    line = (f"**Delivery:** {DELIVERY_WORDS.get(d['state'], d['state'])} · "
            f"**Remote path:** `{where}` · **Attempts:** {d['attempts']}")
    if d.get("at"):
        line += f" · **At:** {d['at']}"
    st.markdown(line)
    if d.get("error"):
        # Pending: the last try failed and another follows; failed: no more tries.
        show = st.error if d["state"] == "failed" else st.warning
        show(("Not delivered: " if d["state"] == "failed" else "Last try failed, retrying: ")
             + d["error"])
    done = clip.get("delivered")
    if d["state"] != "delivered" and done:
        # A re-export still on its way: the copy already on the drive is still there.
        st.caption(f"An earlier copy is on the drive at `{done['remote']}:{done['path']}` "
                   f"(since {done['at']}).")


st.title("Clip")
clip_id = chosen_id()
if clip_id is None:
    st.caption("Choose a clip by id, or open one from a list.")
    st.stop()
try:
    clip = clip_status(ctx, actor, clip_id)
    events = clip_events(ctx, actor, clip_id)
except ClipperError as exc:
    show_error(exc)
    st.stop()
st.header(f"Clip {clip_id} · {clip['status']}")
details(clip)
media(clip)
transcript(clip)
package_panel(ctx, actor, clip)
delivery(clip)
st.subheader("Event log")
st.dataframe([{**e, "details": str(e["details"])} for e in events], hide_index=True)
