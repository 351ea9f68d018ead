"""Admin page: queues, workers, failed clips (with Retry) and disk usage."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
import streamlit as st

from clipper.errors import ClipperError
from clipper.pipeline.jobqueue import queue_lengths
from clipper.services.clips import list_clips, retry_clip
from dashboard.components import clip_link, show_error
from dashboard.deps import context, guard

actor = guard("admin")
ctx = context()


def folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def queues_and_workers() -> None:
    from rq import Worker

    try:
        lengths = queue_lengths(ctx.redis)
        workers = Worker.all(connection=ctx.redis)
    except (ClipperError, redis.RedisError, OSError) as exc:
        st.error(f"The work queue (Redis) is unreachable: {exc}")
        return
    cols = st.columns(len(lengths) + 1)
    for col, (name, n) in zip(cols, lengths.items(), strict=False):
        col.metric(f"Queue {name}", n)
    cols[-1].metric("Workers alive", len(workers))
    st.dataframe([{"worker": w.name, "state": w.get_state(), "queues": ", ".join(w.queue_names()),
                   "current job": w.get_current_job_id() or "",
                   "last heartbeat": str(w.last_heartbeat or "")} for w in workers],
                 hide_index=True)


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
    s = ctx.settings
    free = shutil.disk_usage(s.home if s.home.exists() else Path("/")).free
    cols = st.columns(3)
    cols[0].metric("Media", human(folder_bytes(s.media_dir)))
    cols[1].metric("Exports", human(folder_bytes(s.exports_dir)))
    cols[2].metric("Free", human(free))


st.title("System")
queues_and_workers()
failed_clips()
disk()
