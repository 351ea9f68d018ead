"""Everyone's own account: the time zone their times are shown in, their email, their password."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError
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
