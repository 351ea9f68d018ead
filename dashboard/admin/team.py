"""Admin page: the team's accounts — add (password shown once), change role, disable, enable."""

from __future__ import annotations

import streamlit as st

from clipper.errors import ClipperError
from clipper.permissions import ROLES
from clipper.services import users
from dashboard.components import show_error
from dashboard.deps import context, guard

actor = guard("admin")
ctx = context()


def attempt(action, ok: str) -> None:  # type: ignore[no-untyped-def]
    try:
        result = action()
    except ClipperError as exc:
        show_error(exc)
        return
    st.success(ok.format(result=result))


st.title("Team")
with st.form("add_user", clear_on_submit=True):
    st.subheader("Add a person")
    cols = st.columns(2)
    name = cols[0].text_input("New username")
    role = cols[1].selectbox("Role", ROLES, key="new_role")
    if st.form_submit_button("Add user"):
        attempt(lambda: users.add_user(ctx, actor, name, role),
                f"Added {name} ({role}). Password (shown once, pass it on safely): `{{result}}`")

people = users.list_users(ctx, actor)
st.dataframe(people, hide_index=True, column_order=("name", "role", "disabled", "failed_logins",
                                                     "locked_until", "created_at"))
names = [u["name"] for u in people]
st.subheader("Change a person")
who = st.selectbox("Person", names, key="team_person")
cols = st.columns(3)
new_role = cols[0].selectbox("New role", ROLES, key="team_role")
if cols[0].button("Change role"):
    attempt(lambda: users.set_role(ctx, actor, who, new_role), f"{who} is now {new_role}.")
if cols[1].button("Disable"):
    attempt(lambda: users.disable_user(ctx, actor, who),
            f"{who} is disabled; their sessions ended.")
if cols[1].button("Enable"):
    attempt(lambda: users.enable_user(ctx, actor, who), f"{who} is enabled.")
if cols[2].button("Reset password"):
    attempt(lambda: users.set_password(ctx, actor, who),
            f"New password for {who} (shown once): `{{result}}`")
