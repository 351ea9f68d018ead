"""The Streamlit dashboard (pages per role); run by `clipper up`."""
