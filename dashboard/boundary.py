"""The page boundary: an error no page handled is logged with an id and shown as a short message."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import streamlit as st

log = logging.getLogger("dashboard")


def run_safely(page: Callable[[], None]) -> None:
    """Run the page; an unexpected error is logged with an id and shown as a short message.

    People see no traceback (streamlit runs with client.showErrorDetails=none too); an admin
    finds the details in the dashboard's log by the id. ClipperErrors are shown by the pages.
    """
    try:
        page()
    except Exception:  # the page boundary: anything a page did not handle
        error_id = uuid.uuid4().hex[:8]
        log.exception("dashboard error %s", error_id)
        st.error(f"Something went wrong on this page (error id {error_id}). Try again; if it "
                 "keeps happening, give the error id to an admin.", icon=":material/error:")
