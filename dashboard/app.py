"""Clipper dashboard frame: log in, then the pages the person's role allows (st.navigation)."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError
from dashboard.boundary import run_safely
from dashboard.deps import HOME, PAGES, TOKEN_KEY, context, current_actor


def login_page() -> None:
    from clipper.services.users import authenticate

    st.title("Clipper")
    st.caption("Rapid-response clip desk. Log in with the account an admin gave you.")
    with st.form("login"):
        name = st.text_input("Username", key="login_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            st.session_state[TOKEN_KEY] = authenticate(context(), name, password,
                                                       client=client_address())
        except ClipperError as exc:
            st.error(exc.message + (f" {exc.hint}" if exc.hint else ""))
            return
        st.rerun()


def client_address() -> str:
    """The browser's address: failed logins are counted per address too."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else "unknown"


def logout() -> None:
    from clipper.services.users import logout as end_session

    end_session(context(), st.session_state.pop(TOKEN_KEY, None))


st.set_page_config(page_title="Clipper", page_icon=":material/movie:", layout="wide")
actor = current_actor()
if actor is None:
    run_safely(st.navigation([st.Page(login_page, title="Log in", url_path="login")],
                             position="hidden").run)
else:
    sections: dict[str, list] = {}
    for spec in PAGES:
        if actor.can(spec.action):
            page = st.Page(spec.path, title=spec.title, url_path=spec.url_path, icon=spec.icon,
                           default=spec.url_path == HOME.get(actor.role))
            sections.setdefault(spec.section, []).append(page)
    with st.sidebar:
        st.write(f"**{actor.name}** · {actor.role}")
        st.button("Log out", on_click=logout, key="logout")
    run_safely(st.navigation(sections).run)
