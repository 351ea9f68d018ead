"""Transcript search: query language, full-text index upkeep,
ranked search on SQLite and PostgreSQL, over clip transcripts and channels' live transcripts."""

from clipper.search.engine import CANDIDATE_CAP, HIT_KEYS, Hit, SearchPage, search
from clipper.search.filters import SCOPES, Filters, make_filters
from clipper.search.index import index_ok, rebuild_index, reindex_clip, remove_clip
from clipper.search.live import CHANNEL_HIT_KEYS, ChannelHit
from clipper.search.present import add_search_arguments, format_page, page_json, search_cli_args
from clipper.search.query import Query, Term, parse_query, to_fts5, to_tsquery

__all__ = [
    "CANDIDATE_CAP", "CHANNEL_HIT_KEYS", "HIT_KEYS", "SCOPES", "ChannelHit", "Filters", "Hit",
    "Query", "SearchPage", "Term", "add_search_arguments", "format_page", "index_ok",
    "make_filters", "page_json", "parse_query", "rebuild_index", "reindex_clip", "remove_clip",
    "search", "search_cli_args", "to_fts5", "to_tsquery",
]
