"""Editor page: search every transcript, play a hit from its moment, file a new clip around it.

Hits come from clips and from channels' live transcripts. A channel hit shows the channel and
when it was said in the viewer's time zone; Play opens the Live page on that channel, and
`Clip this` files a flag on the channel around the moment.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from clipper.errors import ClipperError
from clipper.pipeline.lifecycle import STATUSES
from clipper.services.clips import clip_status
from clipper.services.flags import URGENCIES
from clipper.services.rota_views import my_timezone
from clipper.services.search import search_transcripts
from dashboard.components import clip_link, existing, show_error, wall_time
from dashboard.deps import LIVE_PAGE, context, guard

actor = guard("search")
ctx = context()
ANY = "(any)"
#: "Search in" choices and the scope each asks for.
SCOPES = {"Clips and channels": "all", "Clips": "clips", "Channels (live)": "channels"}
tz = my_timezone(ctx, actor)


def run_search(query: str) -> Any:
    s = st.session_state
    pick = {k: (None if s.get(k) in (ANY, "", None) else s.get(k))
            for k in ("s_source", "s_status", "s_tag", "s_by", "s_urgency", "s_channel")}
    return search_transcripts(ctx, actor, query, source=pick["s_source"], status=pick["s_status"],
                              tag=pick["s_tag"], by=pick["s_by"], urgency=pick["s_urgency"],
                              channel=pick["s_channel"],
                              scope=SCOPES.get(s.get("s_scope") or "", "all"),
                              since=_day(s.get("s_since")), until=_day(s.get("s_until")),
                              limit=20, offset=int(s.get("s_offset", 0)))


def _day(value: date | None) -> date | None:
    return value if isinstance(value, date) else None


def clip_this(hit: dict[str, Any]) -> None:
    from clipper.services.hits import clip_from_channel_hit, clip_from_hit

    try:
        if hit.get("channel"):
            result = clip_from_channel_hit(ctx, actor, hit["channel"], hit["at"])
        else:
            result = clip_from_hit(ctx, actor, hit["clip_id"], hit["start"])
        st.session_state["hit_result"] = (hit, result, None)
    except ClipperError as exc:
        st.session_state["hit_result"] = (hit, None, exc)


def play(clip_id: int, at: float) -> None:
    st.session_state["playing"] = (clip_id, at)


def filters() -> None:
    with st.expander("Filters"):
        cols = st.columns(3)
        cols[0].text_input("Source", key="s_source", help="Part of the source URL or title")
        cols[1].date_input("Since", value=None, key="s_since")
        cols[2].date_input("Until", value=None, key="s_until")
        cols = st.columns(4)
        cols[0].selectbox("Status", (ANY, *STATUSES), key="s_status")
        cols[1].text_input("Tag", key="s_tag")
        cols[2].text_input("Flagged by", key="s_by")
        cols[3].selectbox("Urgency", (ANY, *URGENCIES), key="s_urgency")
        cols = st.columns(2)
        cols[0].selectbox("Search in", tuple(SCOPES), key="s_scope",
                          help="Channels: what was said on the recorded channels, clipped or "
                               "not. Source, status, tag, flagged by and urgency are clips' only.")
        cols[1].text_input("Channel", key="s_channel",
                           help="Only what this channel said: live, and clips of it")


def channel_card(i: int, hit: Any) -> None:
    """A channel hit: the channel and when it was said (in the viewer's zone); Play opens the
    Live page on the channel; Clip this flags the channel around the moment."""
    with st.container(border=True):
        st.markdown(f"**{hit.channel}** · live · {wall_time(hit.at, tz, date=True)} ({tz}) · "
                    f"{hit.transcript}")
        st.markdown(hit.snippet)
        cols = st.columns([1, 1, 2])
        with cols[0]:
            st.page_link(LIVE_PAGE, label="Play", icon=":material/play_arrow:",
                         query_params={"channel": hit.channel, "at": f"{hit.at:.1f}"})
        if actor.can("clip_from_hit"):
            cols[1].button("Clip this", key=f"clipthis_{i}", on_click=clip_this,
                           args=({"channel": hit.channel, "at": hit.at},))


def hit_card(i: int, hit: Any) -> None:
    if hit.kind == "channel":
        channel_card(i, hit)
        return
    with st.container(border=True):
        st.markdown(f"**Clip {hit.clip_id}** · {hit.start:.1f}–{hit.end:.1f} s "
                    f"(source {hit.source_start:.1f} s) · {hit.status}")
        st.markdown(hit.snippet)
        cols = st.columns([1, 1, 2])
        cols[0].button("Play", key=f"play_{i}", icon=":material/play_arrow:", on_click=play,
                       args=(hit.clip_id, hit.start))
        if actor.can("clip_from_hit"):
            cols[1].button("Clip this", key=f"clipthis_{i}", on_click=clip_this,
                           args=({"clip_id": hit.clip_id, "start": hit.start, "end": hit.end},))
        with cols[2]:
            clip_link(hit.clip_id)


def player() -> None:
    playing = st.session_state.get("playing")
    if not playing:
        return
    clip = clip_status(ctx, actor, playing[0])
    if media := existing(clip["media_path"]):
        st.caption(f"Clip {playing[0]} from {playing[1]:.1f} s")
        st.video(str(media), start_time=float(playing[1]), autoplay=True)


def hit_feedback() -> None:
    done = st.session_state.get("hit_result")
    if not done:
        return
    hit, result, exc = done
    if exc is not None:
        show_error(exc)
    else:
        merged = " (it joined that clip: the moment was already covered)" if result.merged else ""
        where = (f"{wall_time(hit['at'], tz)} ({tz}) on {hit['channel']}" if hit.get("channel")
                 else f"{hit['start']:.1f} s of clip {hit['clip_id']}")
        st.success(f"Filed a new flag around {where}: clip {result.clip_id}{merged}.")
        clip_link(result.clip_id)


st.title("Search")
query = st.text_input("Search transcripts", key="s_query", placeholder='words, "a phrase", -not')
filters()
hit_feedback()
player()
if query.strip():
    try:
        page = run_search(query)
    except ClipperError as exc:
        show_error(exc)
    else:
        st.caption(f"{page.total}{'' if page.total_exact else '+'} matching moments")
        for i, hit in enumerate(page.hits):
            hit_card(i, hit)
