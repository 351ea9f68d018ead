"""Small pieces several pages share: errors, clip links, progress bars, flag cards, wall-clock
times, the package panel."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.context import Context
from clipper.errors import ClipperError
from clipper.permissions import Actor
from clipper.services.review import package_files, publish, stage_label
from dashboard.deps import CLIP_PAGE

PUBLISH_PLATFORMS = ("X", "Instagram", "TikTok", "Facebook", "YouTube Shorts", "Other")
#: Statuses in which the package is being made or exists.
RENDER_STATES = ("approved", "rendering", "rendered", "exported", "published")


def show_error(exc: ClipperError, where: Any = st) -> None:
    """A ClipperError in plain words: what went wrong, then how to fix it."""
    where.error(exc.message + (f"  \n{exc.hint}" if exc.hint else ""))


def clip_link(clip_id: int, label: str | None = None) -> None:
    """A link to the clip page that keeps the login (client-side navigation)."""
    st.page_link(CLIP_PAGE, label=label or f"Open clip {clip_id}",
                 query_params={"id": str(clip_id)}, icon=":material/movie:")


def progress_bar(status: str, progress: float) -> None:
    """Stage + percentage while a stage runs; the plain status otherwise."""
    label = stage_label(status, progress)
    value = (1.0 if status in ("ready", "rendered", "exported", "published")
             else min(1.0, max(0.0, progress or 0.0)))
    st.progress(value, text=f"Status: {label}")


def existing(path: str | None) -> Path | None:
    return Path(path) if path and Path(path).is_file() else None


def flag_card(f: dict[str, Any], tz: str) -> None:
    """One of the person's flags as *My flags* shows it: clip, times, urgency, note, progress,
    thumbnail, why it was rejected or failed, and a link to the clip page.

    `f` is a row of `my_flags`; a channel flag shows its channel and wall-clock times in `tz`."""
    with st.container(border=True):
        when = (f"{f['source']} {interval(f, tz)}" if is_channel(f) else interval(f, tz))
        st.markdown(f"**Clip {f['clip_id']}** · {when} · {f['urgency']}"
                    + (" · joined an existing clip" if f["merged"] else ""))
        if f["note"]:
            st.caption(f["note"])
        progress_bar(f["status"], f["progress"])
        if thumb := existing(f["thumbnail_path"]):
            st.image(str(thumb), width=240)
        if f["status"] == "rejected":
            st.warning(f"Rejected: {f['reject_reason']}")
        if f["status"] == "failed" and f["error"]:
            st.error(f"Failed: {f['error']}")
        clip_link(f["clip_id"])


def is_channel(d: dict[str, Any]) -> bool:
    """Whether a status object or a `my_flags` row is about a recorded channel (both name it),
    whose start and end are then Unix seconds."""
    return bool(d.get("channel"))


def interval(d: dict[str, Any], tz: str, *, digits: int = 1, date: bool = False) -> str:
    """A clip's or flag's [start, end]: `10.0–16.0 s` on its source's timeline, or for a channel
    the wall-clock times in `tz`: `19:42:10–19:42:40 (Europe/London)`."""
    if is_channel(d):
        return (f"{wall_time(d['start'], tz, date=date)}–{wall_time(d['end'], tz)} ({tz})")
    return f"{d['start']:.{digits}f}–{d['end']:.{digits}f} s"


def as_datetime(when: float | str | datetime) -> datetime:
    """A Unix time, an ISO 8601 string or a datetime as an aware datetime (naive = UTC)."""
    if isinstance(when, int | float):
        return datetime.fromtimestamp(when, UTC)
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def wall_time(when: float | str | datetime | None, tz: str, *, date: bool = False) -> str:
    """A wall-clock time as people read it in `tz` (CLIPPER_TIMEZONE): `19:42:10`, with the
    date in front when asked (`2026-11-30 19:42:10`); an em dash for None."""
    if when is None or when == "":
        return "—"
    local = as_datetime(when).astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def downloads(clip: dict[str, Any]) -> None:
    """One download button per file of the exported package."""
    files = package_files(clip)
    if not files:
        st.info("The package is not exported yet.")
        return
    for f in files:
        mime = "application/zip" if f.suffix == ".zip" else None
        st.download_button(f"Download {f.name}", data=f.read_bytes(), file_name=f.name, mime=mime,
                           key=f"dl_{clip['id']}_{f.name}", icon=":material/download:")


def publish_form(ctx: Context, actor: Actor, clip_id: int) -> None:
    """Record where the clip went out (platform + post URL)."""
    with st.form(f"publish_{clip_id}", clear_on_submit=True):
        platform = st.selectbox("Platform", PUBLISH_PLATFORMS, key=f"pub_platform_{clip_id}")
        url = st.text_input("Post URL", key=f"pub_url_{clip_id}", placeholder="https://...")
        if st.form_submit_button("Mark published"):
            try:
                publish(ctx, actor, clip_id, platform=platform, url=url)
                st.success(f"Recorded: published on {platform}.")
            except ClipperError as exc:
                show_error(exc)


def package_panel(ctx: Context, actor: Actor, clip: dict[str, Any]) -> None:
    """Render progress, then downloads and the publish form (social team only)."""
    if clip["status"] not in RENDER_STATES or not actor.can("approve"):
        return
    st.subheader("Package")
    if clip["status"] in ("approved", "rendering"):
        progress_bar(clip["status"], clip["progress"])
        return
    downloads(clip)
    publish_form(ctx, actor, clip["id"])
    for p in clip.get("published") or []:
        st.caption(f"Published on {p['platform']} by {p['by']}: {p['url']}")
