"""Volunteer page: watch a recorded live channel, scrub back, and clip it by the clock.

`Mark in` / `Mark out` take the wall-clock time of the click (shown in CLIPPER_TIMEZONE) and file
a flag on the channel between them; `Clip last 30 s` / `Clip last 2 min` file one at once. The
flags then show their progress as on *My flags*. One column throughout, so it works on a phone.
`?channel=NAME` picks the channel; opening the channel of one's shift checks one in to it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.permissions import Actor
from clipper.services.channels import channel_status, list_channels, preview_clip
from clipper.services.flags import URGENCIES, flag_channel
from clipper.services.review import my_flags
from clipper.services.rota import CHECK_IN_EARLY, check_in
from clipper.services.rota import now as rota_now
from clipper.services.rota_views import my_shifts
from dashboard.components import as_datetime, flag_card, show_error, wall_time
from dashboard.deps import context, guard

actor = guard("view_channels")
ctx = context()
TZ = ctx.settings.timezone
PREVIEW_SECONDS = 60
#: A link to a moment plays from this many seconds before it (the words lead up to it).
MOMENT_LEAD = 5.0
AT_SEEN, AT_PLAYING = "live_at_seen", "live_at_playing"
LAST = (("live_last30", "Clip last 30 s", 30), ("live_last120", "Clip last 2 min", 120))
ERROR, RESULT, MARK, FILED, PREVIEW = ("live_error", "live_result", "live_mark", "live_filed",
                                       "live_preview")
#: The `?channel=` last applied to the picker, and the check-ins done, by shift id.
ASKED, CHECKED_IN = "live_asked_channel", "live_checked_in"


def ordered(actor: Actor, channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The channels in the order the picker offers them: the channel of `actor`'s current shift
    first (the rota's "who is watching what now"), the others as listed."""
    try:
        mine = {r["channel"] for r in rota_now(ctx, actor) if actor.name in r["volunteers"]}
    except ClipperError:
        return channels
    return sorted(channels, key=lambda c: c["name"] not in mine)


def preselect(names: list[str]) -> None:
    """`?channel=NAME` (the link on *Flag a clip*) picks that channel, once: a later change in
    the picker is not undone on the next rerun, and the address follows the picker."""
    s = st.session_state
    asked = st.query_params.get("channel")
    if asked in names and asked != s.get(ASKED):
        s["live_channel"] = asked
    s[ASKED] = asked


def asked_moment() -> float | None:
    """`?at=<Unix seconds>` (Play on an alert or a search hit): the moment to play from, once
    per link — moving the Minutes back slider afterwards plays what it says."""
    raw = st.query_params.get("at")
    try:
        at = float(raw) if raw is not None else None
    except ValueError:
        return None
    if at is None or not math.isfinite(at) or st.session_state.get(AT_SEEN) == raw:
        return None
    return at


def follow_picker() -> None:
    """The picker's choice goes into the address, so a reload or a shared link keeps it."""
    st.query_params["channel"] = st.session_state[ASKED] = st.session_state["live_channel"]


def auto_check_in(actor: Actor, name: str) -> None:
    """Opening Live on the channel of one's shift (running, or starting within the early window
    the rota allows) checks one in to it, once a session; a caption says so. A refusal (the
    shift was just cancelled, say) only shows as a caption: the page works as before."""
    # shift id -> (channel, what happened): reruns and coming back to the page do not repeat it.
    done: dict[int, tuple[str, str]] = st.session_state.setdefault(CHECKED_IN, {})
    if actor.can("signup"):
        now = datetime.now(UTC)
        try:
            mine = [x for x in my_shifts(ctx, actor, days=2) if x["channel"] == name
                    and as_datetime(x["start"]) - CHECK_IN_EARLY <= now < as_datetime(x["end"])]
        except ClipperError:
            mine = []
        for shift in (x for x in mine if x["id"] not in done):
            try:
                check_in(ctx, actor, shift["id"])
            except ClipperError as exc:
                done[shift["id"]] = (name, f"Not checked in to {name}: {exc.message}")
            else:
                done[shift["id"]] = (name, f"Checked in to {name}.")
                st.toast(f"Checked in to {name}.", icon=":material/how_to_reg:")
    for channel, text in done.values():
        if channel == name:
            st.caption(text)


def behind(lag: float | None) -> str:
    """How far behind live the recording is, in words."""
    if lag is None:
        return "nothing recorded yet"
    lag = max(0.0, lag)
    if lag < 90:
        return f"{lag:.0f} s behind live"
    if lag < 3600:
        return f"{lag // 60:.0f} min {lag % 60:.0f} s behind live"
    return f"{lag // 3600:.0f} h {lag % 3600 // 60:.0f} min behind live"


STATUS_WORDS = {"recording": ":green[**● Recording**]", "stalled": ":orange[**Stalled**]",
                "paused": ":gray[**Paused**] by an admin", "error": ":red[**Not recording**]"}


def file_start(path: str, default: float) -> float:
    """Wall-clock time of a preview file's first frame: its name starts with it, in ms."""
    try:
        return int(Path(path).stem.split("-")[0]) / 1000
    except ValueError:
        return default


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---- actions (callbacks: they run before the page re-renders) ---------------------------------

def _details() -> dict[str, Any]:
    s = st.session_state
    return {"note": s.get("live_note", ""), "tags": s.get("live_tags", ""),
            "urgency": s.get("live_urgency", "normal")}


def _file(channel: str, **when: Any) -> None:
    s = st.session_state
    s[ERROR] = s[RESULT] = None
    try:
        result = flag_channel(ctx, actor, channel, **when, **_details())
    except ClipperError as exc:
        s[ERROR] = exc
        return
    s[RESULT] = result
    s.setdefault(FILED, [])
    s[FILED] = [result.flag_id, *s[FILED]]
    s["live_note"] = s["live_tags"] = ""


def mark_in() -> None:
    s = st.session_state
    s[ERROR] = s[RESULT] = None
    s[MARK] = {"channel": s.get("live_channel"), "in": now_iso(), "out": None}


def mark_out() -> None:
    s = st.session_state
    mark = s.get(MARK)
    if not mark or mark.get("out"):
        s[RESULT] = None
        s[ERROR] = InvalidInput("Press Mark in first.",
                                "Mark in when the moment starts, Mark out when it ends.")
        return
    mark = {**mark, "out": now_iso()}
    s[MARK] = mark
    _file(mark["channel"], start=mark["in"], end=mark["out"])


def clip_last(seconds: int) -> None:
    _file(st.session_state.get("live_channel"), last=seconds)


def refresh_preview() -> None:
    st.session_state.pop(PREVIEW, None)


def feedback(name: str | None) -> None:
    """Under the buttons: the marks, then what filing the flag gave (an error, or the clip)."""
    mark = st.session_state.get(MARK)
    if mark and name is not None:
        text = f"In {wall_time(mark['in'], TZ)}"
        if mark.get("out"):
            text += f" · out {wall_time(mark['out'], TZ)}"
        elif mark["channel"] != name:
            text += f" on {mark['channel']}"
        st.markdown(f"{text} ({TZ})"
                    + ("" if mark.get("out") else " · press Mark out when it ends"))
    if (error := st.session_state.get(ERROR)) is not None:
        show_error(error)
    if (result := st.session_state.get(RESULT)) is not None:
        if result.merged:
            st.info(f"Someone already flagged this moment: your flag joined clip "
                    f"{result.clip_id}.")
        else:
            st.success(f"Flag saved as clip {result.clip_id}.")
        if not result.queued:
            st.warning("Saved, but the work queue is down; it will be processed when it is back.")


# ---- the page -------------------------------------------------------------------------------

st.title("Live")
try:
    channels = ordered(actor, list_channels(ctx, actor))
except ClipperError as exc:
    show_error(exc)
    st.stop()
if not channels:
    st.info("No channels are recorded yet. An admin adds them on the System page.")
    feedback(None)  # e.g. the channel just flagged was removed meanwhile
    st.stop()
names = [c["name"] for c in channels]
preselect(names)
if st.session_state.get("live_channel") not in names:
    st.session_state["live_channel"] = names[0]
name = st.selectbox("Channel", names, key="live_channel", on_change=follow_picker)
auto_check_in(actor, name)


@st.fragment(run_every=3)
def status_line(name: str) -> None:
    try:
        ch = channel_status(ctx, actor, name)
    except ClipperError as exc:
        show_error(exc)
        return
    status = ch["status"]
    words = STATUS_WORDS.get(status, f"**{status}**")
    st.markdown(f"{words} · {behind(ch.get('lag_seconds'))}")
    if ch.get("recorded_from"):
        st.caption(f"Recorded from {wall_time(ch['recorded_from'], TZ, date=True)} to "
                   f"{wall_time(ch['recorded_to'], TZ)} ({TZ})")
    if ch.get("error") and status in ("error", "stalled"):
        st.caption(f"Recorder: {ch['error']}")


status_line(name)

minutes = st.slider("Minutes back", 0, 10, 0, step=1, key="live_back",
                    help="0 plays the latest minute; 10 the minute that ended ten minutes ago.",
                    on_change=lambda: st.session_state.update({AT_SEEN: st.query_params.get("at"),
                                                               AT_PLAYING: None}))
moment = asked_moment()
if moment is not None:  # a link to a moment: play the minute from just before it
    st.session_state[AT_PLAYING] = moment
    st.session_state[AT_SEEN] = st.query_params.get("at")
moment = st.session_state.get(AT_PLAYING)
wanted = (name, minutes, moment)
preview = st.session_state.get(PREVIEW)
if preview is None or preview["wanted"] != wanted:
    # The minute that ended `minutes` minutes ago, or the one starting 5 s before a moment.
    ago = (PREVIEW_SECONDS * (minutes + 1) if moment is None
           else max(0.0, datetime.now(UTC).timestamp() - (moment - MOMENT_LEAD)))
    start, path, problem = datetime.now(UTC).timestamp() - ago, None, None
    try:
        path = preview_clip(ctx, actor, name, ago=ago, seconds=PREVIEW_SECONDS)
    except ClipperError as exc:
        problem = exc
    preview = {"wanted": wanted, "path": str(path) if path else None, "problem": problem,
               "start": start, "end": start + PREVIEW_SECONDS}
    st.session_state[PREVIEW] = preview
if preview["problem"] is not None:
    show_error(preview["problem"])
elif preview["path"]:
    # The file starts at its first segment's wall-clock start (its name, in ms): play from the
    # minute asked for.
    first = file_start(preview["path"], preview["start"])
    st.video(preview["path"], start_time=int(max(0.0, preview["start"] - first)))
    st.caption(f"Plays from {wall_time(max(preview['start'], first), TZ)} ({TZ}).")
else:
    st.caption(f"Nothing recorded between {wall_time(preview['start'], TZ)} and "
               f"{wall_time(preview['end'], TZ)} ({TZ}).")
st.button("Refresh video", key="live_refresh", on_click=refresh_preview,
          icon=":material/refresh:")

if actor.can("flag"):
    st.text_input("Note", key="live_note", placeholder="What is said, and why it matters")
    st.text_input("Tags", key="live_tags", placeholder="health, budget")
    st.selectbox("Urgency", URGENCIES, index=1, key="live_urgency")
    st.caption(f"Mark in and Mark out take the time now, live ({TZ}), not the player's "
               "position.")
    # Two to a row on a wide screen; Streamlit stacks them, full width, on a phone.
    left, right = st.columns(2)
    left.button("Mark in", key="live_mark_in", on_click=mark_in, width="stretch",
                icon=":material/start:")
    right.button("Mark out", key="live_mark_out", on_click=mark_out, width="stretch",
                 icon=":material/keyboard_tab:")
    for col, (key, label, seconds) in zip(st.columns(2), LAST, strict=True):
        col.button(label, key=key, type="primary", on_click=clip_last, args=(seconds,),
                   width="stretch")

feedback(name)


@st.fragment(run_every=2)
def live_flags(channel_names: frozenset[str]) -> None:
    """The flags filed here (and earlier ones on any channel), as *My flags* shows them."""
    filed = set(st.session_state.get(FILED) or ())
    flags = [f for f in my_flags(ctx, actor)
             if f["flag_id"] in filed or f["source"] in channel_names][:5]
    if not flags:
        return
    st.subheader("My live flags")
    for f in flags:
        flag_card(f, TZ)


if actor.can("view_own_flags"):
    live_flags(frozenset(names))
