"""Admin page: queues, workers, failed clips (with Retry), live channels (add, pause, resume,
remove, transcribe live; status, lag, gaps, disk, how far behind their transcript is), webhook
notifications and disk usage."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError, InvalidInput
from clipper.services import system
from clipper.services.channels import (
    add_channel,
    list_channels,
    pause_channel,
    remove_channel,
    resume_channel,
    set_transcribe,
)
from clipper.services.clips import list_clips, retry_clip
from dashboard.components import as_datetime, clip_link, show_error, wall_time
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


CHANNEL_STATUS = {"recording": ":green[**recording**]", "stalled": ":orange[**stalled**]",
                  "paused": ":gray[**paused**]", "error": ":red[**error**]"}
CHANNEL_ACTIONS = {"pause": (pause_channel, "{} is paused: nothing is recorded until Resume."),
                   "resume": (resume_channel, "{} records again."),
                   "remove": (remove_channel, "Removed {}.")}


def lag_words(lag: float) -> str:
    lag = max(0.0, lag)
    return f"{lag:.0f} s" if lag < 120 else f"{lag / 60:.0f} min"


def gap_words(gaps: list) -> str:
    """`2 gaps, 75 s missing` over the last 24 h."""
    missing = sum((as_datetime(b) - as_datetime(a)).total_seconds() for a, b in gaps)
    return f"{len(gaps)} gap{'' if len(gaps) == 1 else 's'}, {missing:.0f} s missing"


def do_channel(action: str, name: str) -> None:
    s = st.session_state
    if action == "remove" and not s.get(f"rmok_{name}"):
        s["chan_msg"] = (None, InvalidInput(f"Tick \u201cYes, remove {name}\u201d first.",
                                            "Removing a channel deletes its recording."))
        return
    fn, done = CHANNEL_ACTIONS[action]
    try:
        fn(ctx, actor, name)
        s["chan_msg"] = (done.format(name), None)
    except ClipperError as exc:
        s["chan_msg"] = (None, exc)


#: A transcript further behind than this is shown as a warning (it is normally within one
#: window and a segment of the recording: under a minute).
ASR_LAG_WARN = 120.0


def do_transcribe(name: str) -> None:
    """The "Transcribe live" box: on is auto (captions when present, else Whisper)."""
    s = st.session_state
    on = bool(s.get(f"asr_{name}"))
    try:
        set_transcribe(ctx, actor, name, "auto" if on else None)
        s["chan_msg"] = (f"{name} is transcribed live." if on
                         else f"{name} is no longer transcribed (its transcript is kept).", None)
    except ClipperError as exc:
        s["chan_msg"] = (None, exc)


def asr_words(c: dict) -> str:
    """`Transcript (whisper) 12 s behind · 4% of a core`, or why there is none yet."""
    source = c.get("transcript_source") or c["transcribe"]
    lag = c.get("asr_lag_seconds")
    words = f"Transcript ({source}) " + ("not started yet" if lag is None
                                         else f"{lag_words(lag)} behind")
    if c.get("asr_load") is not None:
        words += f" · {c['asr_load'] * 100:.0f}% of a core"
    return words


def asr_warning(c: dict) -> str | None:
    """Why a channel's transcript is in trouble: it needs more than a core, or lags."""
    load, lag = c.get("asr_load"), c.get("asr_lag_seconds")
    if load is not None and load > 1:
        return (f"Transcribing {c['name']} takes longer than the audio lasts "
                f"({load:.1f}× real time): its transcript falls further behind.")
    if lag is not None and lag > ASR_LAG_WARN:
        return (f"The transcript of {c['name']} is {lag_words(lag)} behind the recording "
                "(catching up after an outage, or the transcriber cannot keep up).")
    return None


def asr_total_warning(listed: list[dict]) -> str | None:
    """When all Whisper channels together need more than the one core `clipper live-asr` uses."""
    total = sum(c.get("asr_load") or 0.0 for c in listed if c.get("transcribe")
                and (c.get("transcript_source") or c["transcribe"]) != "captions")
    if total <= 1:
        return None
    return (f"Live transcription needs {total:.1f}× what one core gives: transcripts fall "
            "further behind. Transcribe fewer channels with Whisper, or move the transcriber "
            "to a faster machine.")


def do_add_channel() -> None:
    s = st.session_state
    try:
        raw = (s.get("chan_retention") or "").strip()
        try:
            hours = float(raw) if raw else None
        except ValueError:
            raise InvalidInput(f"Retention hours {raw!r} is not a number.",
                               "Give hours, e.g. 24, or leave it empty for the default.") from None
        added = add_channel(ctx, actor, (s.get("chan_name") or "").strip(),
                            (s.get("chan_url") or "").strip(), retention_hours=hours,
                            transcribe="auto" if s.get("chan_transcribe") else None)
    except ClipperError as exc:
        s["chan_add_msg"] = (None, exc)
        return
    s["chan_add_msg"] = (f"Added {added['name']}: it is recorded while `clipper up` (or `clipper "
                         f"record`) runs.", None)
    s["chan_name"] = s["chan_url"] = s["chan_retention"] = ""
    s["chan_transcribe"] = False


def message(key: str) -> None:
    if msg := st.session_state.pop(key, None):
        if msg[1] is None:
            st.success(msg[0])
        else:
            show_error(msg[1])


def channel_card(c: dict) -> None:
    tz = ctx.settings.timezone
    name, status = c["name"], c["status"]
    with st.container(border=True):
        st.markdown(f"**{name}** · {CHANNEL_STATUS.get(status, status)} · clock {c['clock']}")
        st.caption(c["url"])
        kept = f"keeps {c.get('retention_hours') or ctx.settings.retention_hours:g} h"
        if c["recorded_to"] is None:
            st.markdown(f"Nothing recorded yet · {kept}")
        else:
            st.markdown(f"Lag {lag_words(c['lag_seconds'])} · {gap_words(c['gaps'] or [])} "
                        f"(24 h) · disk {human(c['disk_bytes'] or 0)} · {kept}  \n"
                        f"Recorded {wall_time(c['recorded_from'], tz, date=True)} → "
                        f"{wall_time(c['recorded_to'], tz, date=True)} ({tz})")
        if c.get("error"):
            (st.error if status == "error" else st.warning)(c["error"])
        if c.get("transcribe"):
            st.markdown(asr_words(c))
            if warning := asr_warning(c):
                st.warning(warning, icon=":material/subtitles:")
            if c.get("asr_error"):
                st.caption(f"Last transcription problem: {c['asr_error']}")
        st.checkbox("Transcribe live", key=f"asr_{name}", value=bool(c.get("transcribe")),
                    on_change=do_transcribe, args=(name,),
                    help="A transcript on the channel's clock, searchable and watched: from the "
                         "broadcast's captions when it has them, else Whisper.")
        cols = st.columns([1, 1, 3])
        if c.get("paused", status == "paused"):
            cols[0].button("Resume", key=f"resume_{name}", on_click=do_channel,
                           args=("resume", name))
        else:
            cols[0].button("Pause", key=f"pause_{name}", on_click=do_channel, args=("pause", name))
        cols[1].button("Remove", key=f"rm_{name}", on_click=do_channel, args=("remove", name))
        cols[2].checkbox(f"Yes, remove {name}", key=f"rmok_{name}",
                         help="Removing a channel stops its recorder and deletes its recording.")


def channels() -> None:
    st.subheader("Channels")
    message("chan_msg")
    if note := system.disk_pressure(ctx, actor):  # recordings deleted early for disk space
        st.warning(note.get("message") or "Recordings were deleted early: the disk was short.",
                   icon=":material/hard_drive:")
    listed = list_channels(ctx, actor)
    if note := asr_total_warning(listed):
        st.warning(note, icon=":material/subtitles:")
    if not listed:
        st.caption("No channels yet: add one below.")
    for c in listed:
        channel_card(c)
    with st.form("add_channel"):
        st.text_input("Channel name", key="chan_name", placeholder="bbc-news",
                      help="1–40 letters, digits, - and _")
        st.text_input("Stream URL", key="chan_url",
                      placeholder="https://… (HLS .m3u8, MPEG-TS stream, or a live page)")
        st.text_input("Retention hours", key="chan_retention",
                      placeholder=f"{ctx.settings.retention_hours:g} (the default)")
        st.checkbox("Transcribe live", key="chan_transcribe",
                    help="Captions when the broadcast has them, else Whisper.")
        st.form_submit_button("Add channel", on_click=do_add_channel)
    message("chan_add_msg")


def disk() -> None:
    st.subheader("Disk")
    usage = system.disk_usage(ctx, actor)
    cols = st.columns(3)
    cols[0].metric("Media", human(usage.media))
    cols[1].metric("Exports", human(usage.exports))
    cols[2].metric("Free", human(usage.free))


def outbox() -> None:
    """Webhook messages waiting, failing or given up (delivered by `clipper up`)."""
    from clipper.services.outbox import outbox_status

    st.subheader("Notifications")
    box = outbox_status(ctx, actor)
    cols = st.columns(4)
    cols[0].metric("Pending", box.pending)
    cols[1].metric("Failing", box.failing)
    cols[2].metric("Given up", box.given_up)
    cols[3].metric("Delivered (1 h)", box.delivered_last_hour)
    if box.failures:
        st.dataframe([{"event": f["event"], "state": f["state"], "attempts": f["attempts"],
                       "last error": f["last_error"], "next attempt": f["next_attempt_at"]}
                      for f in box.failures], hide_index=True, key="outbox_failures")


st.title("System")
queues_and_workers()
failed_clips()
channels()
outbox()
disk()
