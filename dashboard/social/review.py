"""Social team page: the review queue, the claimed clip's workspace, and the package after
approval."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from clipper.errors import ClipperError
from clipper.services import review
from clipper.services.clips import clip_status
from clipper.services.rota_views import my_timezone, unwatched
from dashboard.components import (
    as_datetime,
    clip_link,
    existing,
    interval,
    package_panel,
    progress_bar,
    show_error,
)
from dashboard.deps import context, guard

actor = guard("review")
ctx = context()
SHAPES = ("16x9", "1x1", "9x16")
FITS = ("crop", "pad")
CAPTION_MODES = ("burn", "none")
NUDGE = 0.1


def _at(when: str, tz: str) -> str:
    """`19:00` today (in `tz`), `Sat 19:00` on another day."""
    local = as_datetime(when).astimezone(ZoneInfo(tz))
    today = datetime.now(local.tzinfo).date()
    return f"{local:%H:%M}" if local.date() == today else f"{local:%a %H:%M}"


def unwatched_line() -> None:
    """One line on the channels nobody on the rota is watching now (whatever comes from them
    has had no volunteer's eyes), with when each one's next shift starts."""
    if not actor.can("view_rota"):
        return
    try:
        tz = my_timezone(ctx, actor)
        rows = unwatched(ctx, actor)
    except ClipperError:
        return  # the queue matters more than this line
    if not rows:
        st.caption("Every channel is watched right now.")
        return
    parts = [f"{r['channel']} (next shift {_at(r['next_shift'], tz)})" if r["next_shift"]
             else f"{r['channel']} (no shift planned)" for r in rows]
    zone = f" · times in {tz}" if any(r["next_shift"] for r in rows) else ""
    st.warning(f"Unwatched now: {', '.join(parts)}{zone}", icon=":material/visibility_off:")


def _notice(key: str, exc: ClipperError | None) -> None:
    st.session_state[key] = exc


def _shown(key: str) -> None:
    if exc := st.session_state.get(key):
        show_error(exc)


def do_claim(clip_id: int) -> None:
    try:
        review.claim(ctx, actor, clip_id)
        _notice(f"claim_err_{clip_id}", None)
    except ClipperError as exc:
        _notice(f"claim_err_{clip_id}", exc)


def queue_card(c: dict[str, Any]) -> None:
    age = (datetime.now(UTC) - datetime.fromisoformat(c["created_at"])).total_seconds() / 60
    with st.container(border=True):
        st.markdown(f"**Clip {c['id']}** · urgency **{c['urgency']}** · waiting {age:.0f} min · "
                    f"{interval(c, ctx.settings.timezone)} of {c['source']}")
        for f in c["flaggers"]:
            tags = " ".join(f"`#{t}`" for t in f["tags"])
            st.caption(f"{f['by']}: {f['note'] or '(no note)'} {tags}")
        if c["claimed_by"]:
            st.caption(f"Claimed by **{c['claimed_by']}**")
        cols = st.columns([1, 3])
        cols[0].button("Claim", key=f"claim_{c['id']}", on_click=do_claim, args=(c["id"],))
        with cols[1]:
            clip_link(c["id"])
        _shown(f"claim_err_{c['id']}")


def nudge(key: str, delta: float) -> None:
    st.session_state[key] = max(0.0, round((st.session_state.get(key) or 0.0) + delta, 2))


def pick_word(cid: int, end: str) -> None:
    word = st.session_state.get(f"word_{cid}")
    if word:
        st.session_state[f"trim_{end}_{cid}"] = float(word[0] if end == "in" else word[1])
        st.session_state[f"play_at_{cid}"] = float(word[0])


def trim_editor(clip: dict[str, Any]) -> None:
    cid, duration = clip["id"], float(clip["duration"] or clip["end"] - clip["start"])
    st.session_state.setdefault(f"trim_in_{cid}", float(clip["trim_in"] or 0.0))
    st.session_state.setdefault(f"trim_out_{cid}", float(clip["trim_out"] or duration))
    for end in ("in", "out"):
        key = f"trim_{end}_{cid}"
        cols = st.columns([3, 1, 1])
        cols[0].number_input(f"Trim {end} (s)", key=key, min_value=0.0, max_value=duration + 0.05,
                             step=NUDGE, format="%.2f")
        cols[1].button(f"−{NUDGE:g} s", key=f"n{end}m_{cid}", on_click=nudge, args=(key, -NUDGE))
        cols[2].button(f"+{NUDGE:g} s", key=f"n{end}p_{cid}", on_click=nudge, args=(key, NUDGE))
    words = [(w["start"], w["end"], w["word"])
             for s in (clip["transcript"] or {}).get("segments", [])
             for w in s["words"]]
    if words:
        st.selectbox("Pick a word", words, key=f"word_{cid}",
                     format_func=lambda w: f"{w[0]:.2f} s  {w[2]}")
        cols = st.columns(3)
        cols[0].button("Trim in at word", key=f"win_{cid}", on_click=pick_word, args=(cid, "in"))
        cols[1].button("Trim out at word", key=f"wout_{cid}", on_click=pick_word, args=(cid, "out"))
    if st.button("Save trim", key=f"save_trim_{cid}"):
        _save(lambda: review.set_trim(ctx, actor, cid, *_trim(cid)), "Trim saved.")


def _trim(cid: int) -> tuple[float, float]:
    return st.session_state[f"trim_in_{cid}"], st.session_state[f"trim_out_{cid}"]


def _save(action: Any, ok: str) -> None:
    try:
        action()
        st.toast(ok)
    except ClipperError as exc:
        show_error(exc)


def save_caption(cid: int) -> None:
    try:
        review.set_caption(ctx, actor, cid, st.session_state.get(f"caption_{cid}", ""))
        _notice(f"caption_err_{cid}", None)
    except ClipperError as exc:
        _notice(f"caption_err_{cid}", exc)


def caption_editor(clip: dict[str, Any]) -> None:
    cid = clip["id"]
    st.session_state.setdefault(f"caption_{cid}", clip["caption"] or "")
    st.text_area("Post caption", key=f"caption_{cid}", on_change=save_caption, args=(cid,),
                 height=100)
    _shown(f"caption_err_{cid}")
    counts = review.caption_counts(st.session_state.get(f"caption_{cid}", ""))
    st.markdown(" · ".join(f"{p}: {'**:red[' if n > lim else ''}{n}/{lim}{']**' if n > lim else ''}"
                           for p, (n, lim) in counts.items()))


def transcript_editor(clip: dict[str, Any]) -> None:
    cid, t = clip["id"], clip["transcript"]
    if not t:
        st.caption("No transcript.")
        return
    st.session_state.setdefault(f"transcript_{cid}", t["text"])
    st.text_area("Transcript", key=f"transcript_{cid}", height=120,
                 help="Correct the words; their timings are kept.")
    if st.button("Save transcript", key=f"save_tx_{cid}"):
        text = st.session_state[f"transcript_{cid}"]
        _save(lambda: review.save_transcript(ctx, actor, cid, text),
              "Transcript saved; subtitles updated.")


def do_approve(cid: int) -> None:
    s = st.session_state
    try:
        review.set_caption(ctx, actor, cid, s.get(f"caption_{cid}", ""))
        review.set_trim(ctx, actor, cid, *_trim(cid))
        review.approve(ctx, actor, cid, formats=s.get(f"shapes_{cid}") or [],
                       fit=s.get(f"fit_{cid}", "crop"), captions=s.get(f"captions_{cid}", "burn"))
        s["approved_clip"], s[f"decide_err_{cid}"] = cid, None
    except ClipperError as exc:
        s[f"decide_err_{cid}"] = exc


def do_release(cid: int) -> None:
    try:
        review.release(ctx, actor, cid)
    except ClipperError as exc:
        st.session_state[f"decide_err_{cid}"] = exc


def do_reject(cid: int) -> None:
    s = st.session_state
    try:
        review.reject(ctx, actor, cid, s.get(f"reason_{cid}", ""))
        s[f"decide_err_{cid}"] = None
        st.toast(f"Clip {cid} rejected.")
    except ClipperError as exc:
        s[f"decide_err_{cid}"] = exc


def decision(cid: int) -> None:
    st.multiselect("Shapes", SHAPES, default=list(SHAPES), key=f"shapes_{cid}")
    cols = st.columns(2)
    cols[0].radio("Fit", FITS, key=f"fit_{cid}", horizontal=True,
                  help="crop: fill the frame; pad: whole picture on a blurred background")
    cols[1].radio("Captions", CAPTION_MODES, key=f"captions_{cid}", horizontal=True)
    st.button("Approve", type="primary", key=f"approve_{cid}", on_click=do_approve, args=(cid,))
    st.text_input("Reason for rejection", key=f"reason_{cid}")
    st.button("Reject", key=f"reject_{cid}", on_click=do_reject, args=(cid,))
    _shown(f"decide_err_{cid}")


def workspace(cid: int) -> None:
    clip = clip_status(ctx, actor, cid)
    st.header(f"Your clip: {cid}")
    st.caption(f"{clip['source']} · {interval(clip, ctx.settings.timezone)} · "
               + "; ".join(f"{f['by']}: {f['note']}" for f in clip["flaggers"]))
    if media := existing(clip["media_path"]):
        vtt = existing(clip["vtt_path"])
        st.video(str(media),
                 start_time=float(st.session_state.get(f"play_at_{cid}", clip["trim_in"] or 0)),
                 subtitles=str(vtt) if vtt else None)
    transcript_editor(clip)
    trim_editor(clip)
    caption_editor(clip)
    decision(cid)
    st.button("Release claim", key=f"release_{cid}", on_click=do_release, args=(cid,))


@st.fragment(run_every=2)
def render_progress(cid: int) -> None:
    clip = clip_status(ctx, actor, cid)
    if clip["status"] not in ("approved", "rendering"):
        st.rerun()
    progress_bar(clip["status"], clip["progress"])


def approved_panel(cid: int) -> None:
    clip = clip_status(ctx, actor, cid)
    st.header(f"Approved: clip {cid}")
    if clip["status"] in ("approved", "rendering"):
        st.caption("Rendering the shapes and exporting the package…")
        render_progress(cid)
    elif clip["status"] == "failed":
        st.error(f"Rendering failed: {clip['error']}")
    else:
        package_panel(ctx, actor, clip)
    clip_link(cid)
    st.button("Back to the queue", key="back_to_queue",
              on_click=lambda: st.session_state.pop("approved_clip"))


st.title("Review queue")
unwatched_line()
if (done := st.session_state.get("approved_clip")) is not None:
    approved_panel(done)
elif (mine := review.my_claim(ctx, actor)) is not None:
    workspace(mine)
st.subheader("Waiting for review")
queue = review.review_queue(ctx, actor)
if not queue:
    st.caption("No clips are waiting for review.")
for item in queue:
    queue_card(item)
