"""Alerts: what the watch-lists found on the live channels, newest first, updating by itself.

Each alert shows its channel, its time (in the viewer's zone), the words said around the match,
`Play` (the Live page on that channel), `Clip this` (a flag 20 s either side of the match, as
the viewer) and the auto-flag's clip. Volunteers see the alerts of the channel of the shift they
are on now. Those who manage watches add and remove them below the list.
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from clipper.errors import ClipperError
from clipper.services.channels import list_channels
from clipper.services.rota_views import my_timezone
from clipper.services.watches import (
    FLAG_PAD_SECONDS,
    add_watch,
    alert_channels,
    clip_alert,
    list_alerts,
    list_watches,
    remove_watch,
)
from dashboard.components import clip_link, progress_bar, show_error, wall_time
from dashboard.deps import LIVE_PAGE, context, guard

actor = guard("view_alerts")
ctx = context()
SHOWN = 50
LIVE_MINUTES_BACK = 10  # the furthest back the Live page's slider goes
#: alert id -> ("ok" | "error", what `Clip this` gave); the watch form's outcome.
CLIPPED, WATCH_RESULT = "alerts_clipped", "alerts_watch_result"
_PUNCT = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~:$])")


def timezone() -> str:
    try:
        return my_timezone(ctx, actor)
    except ClipperError:  # the zone is a nicety: the page still works in the desk's
        return ctx.settings.timezone


TZ = timezone()


def esc(text: str) -> str:
    """Text said on air shown as itself: markdown, colour and icon syntax escaped."""
    return _PUNCT.sub(r"\\\1", text)


def highlighted(text: str, marks: list[list[int]]) -> str:
    """The alert's words in markdown, the ones the watch matched in bold."""
    out, last = [], 0
    for start, end in marks:
        out += [esc(text[last:start]), "**", esc(text[start:end]), "**"]
        last = end
    out.append(esc(text[last:]))
    return "".join(out)


# ---- actions (callbacks: they run before the page re-renders) ---------------------------------

def clip_this(alert_id: int) -> None:
    done: dict[int, tuple[str, str]] = st.session_state.setdefault(CLIPPED, {})
    try:
        result = clip_alert(ctx, actor, alert_id)
    except ClipperError as exc:
        done[alert_id] = ("error", exc.message + (f" {exc.hint}" if exc.hint else ""))
        return
    done[alert_id] = ("ok", f"Your flag joined clip {result.clip_id}." if result.merged
                      else f"Flag saved as clip {result.clip_id}.")


def add() -> None:
    s = st.session_state
    try:
        w = add_watch(ctx, actor, s.get("watch_name", ""), s.get("watch_query", ""),
                      channels=s.get("watch_channels") or None,
                      auto_flag=bool(s.get("watch_auto")), notify_url=s.get("watch_url") or None)
    except ClipperError as exc:
        s[WATCH_RESULT] = exc
        return
    s[WATCH_RESULT] = f"Watch {w['name']} added."
    s["watch_name"] = s["watch_query"] = s["watch_url"] = ""
    s["watch_channels"], s["watch_auto"] = [], False


def remove(name: str) -> None:
    try:
        remove_watch(ctx, actor, name)
    except ClipperError as exc:
        st.session_state[WATCH_RESULT] = exc
        return
    st.session_state[WATCH_RESULT] = f"Watch {name} removed."


# ---- the page -------------------------------------------------------------------------------

def auto_flag_status(a: dict[str, Any]) -> None:
    if a["clip_id"] is not None:
        st.caption(f"Auto-flagged: clip {a['clip_id']}")
        progress_bar(a["clip_status"] or "queued", a["clip_progress"] or 0.0)
        if actor.can("view_all_clips"):  # volunteers open only clips their own flags made
            clip_link(a["clip_id"])
    elif a["flag_problem"]:
        st.warning(f"Auto-flag not filed: {a['flag_problem']}")


def alert_card(a: dict[str, Any]) -> None:
    with st.container(border=True):
        st.markdown(f"**{esc(a['watch'])}** · {esc(a['channel'])} · "
                    f"{wall_time(a['start'], TZ, date=True)} ({esc(TZ)})")
        st.markdown(f"…{highlighted(a['text'], a['marks'])}…")
        play, clip = st.columns(2)
        play.page_link(LIVE_PAGE, label="Play",
                       query_params={"channel": a["channel"], "at": f"{a['start']:.1f}"},
                       icon=":material/play_arrow:",
                       help=f"Opens Live on {a['channel']}, playing from just before the match.")
        if actor.can("flag"):
            clip.button("Clip this", key=f"alert_clip_{a['id']}", on_click=clip_this,
                        args=(a["id"],), icon=":material/content_cut:",
                        help=f"Flag {FLAG_PAD_SECONDS:g} s either side of the match.")
        kind, text = st.session_state.get(CLIPPED, {}).get(a["id"], (None, ""))
        if kind == "ok":
            st.success(text)
        elif kind == "error":
            st.error(text)
        auto_flag_status(a)


@st.fragment(run_every=2)
def alert_list() -> None:
    try:
        alerts = list_alerts(ctx, actor, limit=SHOWN)
    except ClipperError as exc:
        show_error(exc)
        return
    if not alerts:
        st.info("No alerts yet.")
    for a in alerts:
        alert_card(a)


def watches_section() -> None:
    try:
        watches = list_watches(ctx, actor)
        names = [c["name"] for c in list_channels(ctx, actor)]
    except ClipperError as exc:
        show_error(exc)
        return
    with st.expander(f"Watches ({len(watches)})", expanded=not watches):
        result = st.session_state.pop(WATCH_RESULT, None)
        if isinstance(result, ClipperError):
            show_error(result)
        elif result:
            st.success(result)
        for w in watches:
            where = ", ".join(w["channels"]) if w["channels"] else "all channels"
            extra = (" · files a flag" if w["auto_flag"] else "") + (
                f" · notifies {w['notify']}" if w["notify"] else "")
            text, button = st.columns([5, 1])
            text.markdown(f"**{esc(w['name'])}** · {esc(w['query'])} · {esc(where)}"
                          f"{esc(extra)}")
            button.button("Remove", key=f"watch_remove_{w['name']}", on_click=remove,
                          args=(w["name"],))
        with st.form("watch_add"):
            st.text_input("Name", key="watch_name", placeholder="nhs-strike")
            st.text_input("Words to watch for", key="watch_query",
                          placeholder='"waiting lists" OR nurses -football',
                          help='As in Search: words (all), "exact phrases", OR, -excluded.')
            st.multiselect("Channels", names, key="watch_channels",
                           placeholder="All channels")
            st.checkbox("File a flag on each match", key="watch_auto")
            st.text_input("Own webhook (optional)", key="watch_url",
                          placeholder="https://hooks.slack.com/services/…",
                          help="Alerts go here instead of the team's webhook.")
            st.form_submit_button("Add watch", on_click=add, type="primary")


st.title("Alerts")
try:
    scope = alert_channels(ctx, actor)
except ClipperError as exc:
    show_error(exc)
    st.stop()
if scope is not None and not scope:
    st.info("You are not on a shift now. The alerts of your shift's channel show here while "
            "it runs.")
else:
    if scope is not None:
        st.caption(f"Alerts on {', '.join(scope)}, the channel of your shift now.")
    alert_list()
if actor.can("manage_watches"):
    watches_section()
