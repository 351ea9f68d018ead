"""Clipper dashboard entry point (minimal until the dashboard issue): lists clips and their status."""

import streamlit as st

from clipper.config import Settings
from clipper.context import Context
from clipper.services.clips import list_clips


@st.cache_resource
def context() -> Context:
    return Context.build(Settings.from_env())


st.set_page_config(page_title="Clipper", layout="wide")
st.title("Clipper")
for clip in list_clips(context()):
    st.write(f"Clip {clip['id']} — {clip['status']} — {clip['source']} {clip['start']:.1f}–{clip['end']:.1f} s")
