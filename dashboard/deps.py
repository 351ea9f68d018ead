"""What every dashboard page needs: the shared Context, the logged-in Actor, and the page guard."""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from clipper.context import Context
from clipper.permissions import Actor
from clipper.settings import Settings

TOKEN_KEY = "clipper_token"


@dataclass(frozen=True)
class PageSpec:
    """One dashboard page: its file (relative to app.py), title, the action it needs, its URL."""

    path: str
    title: str
    action: str
    url_path: str
    section: str
    icon: str


PAGES = (
    PageSpec("volunteer/flag.py", "Flag a clip", "flag", "flag", "Volunteer", ":material/flag:"),
    PageSpec("volunteer/live.py", "Live", "view_channels", "live", "Volunteer",
             ":material/live_tv:"),
    PageSpec("volunteer/shifts.py", "My shifts", "signup", "shifts", "Volunteer",
             ":material/event:"),
    PageSpec("coordinator/rota.py", "Rota", "manage_rota", "rota", "Coordinator",
             ":material/calendar_view_week:"),
    PageSpec("social/review.py", "Review queue", "review", "review", "Social",
             ":material/rate_review:"),
    PageSpec("editor/search.py", "Search", "search", "search", "Editor", ":material/search:"),
    PageSpec("admin/team.py", "Team", "admin", "team", "Admin", ":material/group:"),
    PageSpec("admin/system.py", "System", "admin", "system", "Admin", ":material/monitor_heart:"),
    PageSpec("alerts.py", "Alerts", "view_alerts", "alerts", "Alerts",
             ":material/notifications_active:"),
    PageSpec("clip.py", "Clip", "view_clip", "clip", "Clips", ":material/movie:"),
    PageSpec("account.py", "Account", "own_account", "account", "Account",
             ":material/manage_accounts:"),
)
LIVE_PAGE = "volunteer/live.py"
CLIP_PAGE = "clip.py"
ALERTS_PAGE = "alerts.py"
#: The page a role lands on after logging in.
HOME = {"volunteer": "flag", "coordinator": "rota", "social": "review", "editor": "search",
        "admin": "team"}


@st.cache_resource(show_spinner=False)
def _context(home: str, database_url: str, redis_url: str) -> Context:
    # Keyed by where the data lives, so one process serving several homes (tests) never mixes them.
    return Context.build(Settings.from_env())


def context() -> Context:
    """The process-wide Context (database pool, Redis client) for the current environment."""
    env = os.environ
    return _context(env.get("CLIPPER_HOME", ""), env.get("DATABASE_URL", ""),
                    env.get("REDIS_URL", ""))


def current_actor() -> Actor | None:
    """The logged-in person, re-checked every run (expired or disabled sessions end at once)."""
    from clipper.services.users import user_for_token

    token = st.session_state.get(TOKEN_KEY)
    if not token:
        return None
    actor = user_for_token(context(), token)
    if actor is None:
        st.session_state.pop(TOKEN_KEY, None)
    return actor


def guard(action: str) -> Actor:
    """Stop the page unless someone is logged in whose role allows `action`.

    Pages call this first, so reaching a page file directly is no way around the menu.
    """
    actor = current_actor()
    if actor is None:
        st.error("Please log in first.")
        st.stop()
    if not actor.can(action):
        st.error(f"{actor.name} ({actor.role}) may not open this page.")
        st.stop()
    return actor
