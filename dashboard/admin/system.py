"""Admin page: queues, workers, failed clips (with Retry) and disk usage."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError
from clipper.services import system
from clipper.services.clips import list_clips, retry_clip
from dashboard.components import clip_link, show_error
from dashboard.deps import context, guard

actor = guard("admin")
ctx = context()


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def queues_and_workers() -> None:
    work = system.work_queue(ctx, actor)
    if work.error:
        st.error(work.error)
        return
    cols = st.columns(len(work.lengths) + 1)
    for col, (name, n) in zip(cols, work.lengths.items(), strict=False):
        col.metric(f"Queue {name}", n)
    cols[-1].metric("Workers alive", len(work.workers))
    st.dataframe(work.workers, hide_index=True)


def do_retry(clip_id: int) -> None:
    try:
        retry_clip(ctx, actor, clip_id)
        st.session_state["retry_msg"] = (clip_id, None)
    except ClipperError as exc:
        st.session_state["retry_msg"] = (clip_id, exc)


def failed_clips() -> None:
    st.subheader("Failed clips")
    if msg := st.session_state.pop("retry_msg", None):
        if msg[1] is None:
            st.success(f"Clip {msg[0]} is queued again.")
        else:
            show_error(msg[1])
    failed = list_clips(ctx, actor, status="failed")
    if not failed:
        st.caption("No failed clips.")
    for c in failed:
        with st.container(border=True):
            st.markdown(f"**Clip {c['id']}** · stage {c.get('error_stage') or '?'} · {c['source']}")
            st.error(c["error"] or "(no error recorded)")
            cols = st.columns([1, 3])
            cols[0].button("Retry", key=f"retry_{c['id']}", on_click=do_retry, args=(c["id"],))
            with cols[1]:
                clip_link(c["id"])


def disk() -> None:
    st.subheader("Disk")
    usage = system.disk_usage(ctx, actor)
    cols = st.columns(3)
    cols[0].metric("Media", human(usage.media))
    cols[1].metric("Exports", human(usage.exports))
    cols[2].metric("Free", human(usage.free))


st.title("System")
queues_and_workers()
failed_clips()
disk()
