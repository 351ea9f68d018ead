"""Everyone's own account: time zone, email, password, API tokens and the calendar feed."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError
from clipper.services.slack import (
    LINK_CODE_MINUTES,
    create_link_code,
    my_slack_links,
    unlink_my_slack,
)
from clipper.services.tokens import calendar_url, create_token, list_tokens, revoke_token
from clipper.services.users import (
    change_my_password,
    my_account,
    set_my_email,
    set_my_timezone,
    time_zones,
)
from dashboard.components import show_error
from dashboard.deps import TOKEN_KEY, context, guard

actor = guard("own_account")
ctx = context()

st.title("Account")
try:
    me = my_account(ctx, actor)
except ClipperError as exc:
    show_error(exc)
    st.stop()
st.markdown(f"**{me['name']}** · {me['role']}")

zones = list(time_zones())
with st.form("account_settings"):
    tz = st.selectbox("Time zone", zones, key="account_tz",
                      index=zones.index(me["timezone"]) if me["timezone"] in zones else None,
                      help="Shift times and reminders are shown in this zone.")
    email = st.text_input("Email", value=me["email"] or "", key="account_email",
                          placeholder="ana@example.org",
                          help="Where rota reminders go. Leave it empty for none.")
    saved = st.form_submit_button("Save", type="primary")
if saved:
    try:
        # The email first: it is the one a person can mistype, and a refused one then leaves
        # the time zone unchanged too (the list offers only valid zones).
        if (email or "").strip() != (me["email"] or ""):
            set_my_email(ctx, actor, email)
        if tz and tz != me["timezone"]:
            set_my_timezone(ctx, actor, tz)
    except ClipperError as exc:
        show_error(exc)
    else:
        st.success("Saved.")
        me = my_account(ctx, actor)
st.caption(f"Your times are shown in {me['timezone']}; "
           + (f"reminders go to {me['email']}." if me["email"] else "no reminders by email."))

st.subheader("Password")
with st.form("account_password", clear_on_submit=True):
    current = st.text_input("Current password", type="password", key="account_current",
                            autocomplete="current-password")
    new = st.text_input("New password", type="password", key="account_new",
                        autocomplete="new-password")
    change = st.form_submit_button("Change password")
if change:
    try:
        # Keep this login; any other session of the person (a lost phone, say) ends.
        change_my_password(ctx, actor, current, new, keep=st.session_state.get(TOKEN_KEY))
    except ClipperError as exc:
        show_error(exc)
    else:
        st.success("Password changed. Your other logins have ended.")


FLASH_KEY = "account_tokens_flash"


def _token_rows(rows: list[dict]) -> list[dict]:
    return [{"Id": t["id"], "Label": t["name"], "Made": (t["created_at"] or "")[:16],
             "Last used": (t["last_used_at"] or "never")[:16],
             "State": "active" if t["active"] else "revoked"} for t in rows]


def _revoke_form(rows: list[dict], key: str) -> None:
    """Pick one of one's active tokens and revoke it."""
    live = {f"{t['id']} · {t['name']}": t["id"] for t in rows if t["active"]}
    if not live:
        return
    with st.form(f"{key}_revoke"):
        pick = st.selectbox("Token", list(live), key=f"{key}_revoke_pick")
        if st.form_submit_button("Revoke"):
            try:
                revoke_token(ctx, actor, live[pick])
            except ClipperError as exc:
                show_error(exc)
            else:
                # Shown after the rerun that redraws the lists without the token.
                st.session_state[FLASH_KEY] = f"Token {live[pick]} revoked: it no longer works."
                st.rerun()


try:
    mine = list_tokens(ctx, actor)
except ClipperError as exc:
    show_error(exc)
    mine = []

st.subheader("API tokens")
if FLASH_KEY in st.session_state:
    st.success(st.session_state.pop(FLASH_KEY))
st.caption("For scripts and apps using Clipper's HTTP API: a token acts as you, with your role, "
           "until you revoke it. It is shown once; keep it secret.")
with st.form("account_token", clear_on_submit=True):
    label = st.text_input("Label", key="account_token_label", placeholder="laptop script",
                          max_chars=64)
    made = st.form_submit_button("Create token")
if made:
    try:
        res = create_token(ctx, actor, name=label)
    except ClipperError as exc:
        show_error(exc)
    else:
        st.success("Token created. Copy it now: it will not be shown again.")
        st.code(res["token"], language=None)
        mine = list_tokens(ctx, actor)
api_tokens = [t for t in mine if t["kind"] == "api"]
if api_tokens:
    st.dataframe(_token_rows(api_tokens), hide_index=True)
    _revoke_form(api_tokens, "account_api")
else:
    st.caption("You have no API tokens.")

st.subheader("Calendar feed")
st.caption("A private address calendar apps can subscribe to, so your shifts stay up to date "
           "there. Anyone with the address sees your shifts: revoke it if it leaks.")
if st.button("Create calendar link", key="account_calendar"):
    try:
        res = create_token(ctx, actor, name="calendar", kind="calendar")
    except ClipperError as exc:
        show_error(exc)
    else:
        st.success("Subscribe to this address in your calendar app (it is shown only once):")
        st.code(calendar_url(ctx.settings, res["token"]), language=None)
        mine = list_tokens(ctx, actor)
feeds = [t for t in mine if t["kind"] == "calendar"]
if feeds:
    st.dataframe(_token_rows(feeds), hide_index=True)
    _revoke_form(feeds, "account_calendar")


SLACK_FLASH_KEY = "account_slack_flash"


def slack_section() -> None:
    """Link Slack: a one-time code to type as `/clip link CODE`, and the accounts linked."""
    st.subheader("Slack")
    st.caption("Flag moments from Slack with `/clip` (`/clip help` there shows how); your flags "
               "are filed as you, with your role. Link your Slack account first.")
    if SLACK_FLASH_KEY in st.session_state:
        st.success(st.session_state.pop(SLACK_FLASH_KEY))
    if st.button("Link Slack", key="account_slack_link"):
        try:
            made = create_link_code(ctx, actor)
        except ClipperError as exc:
            show_error(exc)
        else:
            st.success(f"In Slack, type this within {LINK_CODE_MINUTES} minutes (it works once):")
            st.code(made["command"], language=None)
    try:
        links = my_slack_links(ctx, actor)
    except ClipperError as exc:
        show_error(exc)
        return
    if not links:
        st.caption("No Slack account is linked to yours.")
        return
    st.caption("Linked: " + ", ".join(f"Slack user {link['user']} of workspace {link['team']}"
                                      for link in links) + ".")
    if st.button("Unlink Slack", key="account_slack_unlink"):
        try:
            gone = unlink_my_slack(ctx, actor)
        except ClipperError as exc:
            show_error(exc)
        else:
            # Shown after the rerun that redraws the section without the links.
            st.session_state[SLACK_FLASH_KEY] = (f"Unlinked {gone} Slack account(s): `/clip` "
                                                 "there no longer acts as you.")
            st.rerun()


slack_section()
