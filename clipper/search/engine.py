"""Search execution on SQLite (FTS5 + BM25 in Python) and PostgreSQL (tsvector + ts_rank_cd).

How a search runs: the database finds the newest CANDIDATE_CAP + 1 matching segments
(newest = highest segment id: the text index walks matches in that order and stops at the
cap, so a common word costs about what a rare one does) and only those are scored. Python
then orders them by score, then newest clip, then segment id, and cuts the page. Ranking is
therefore exact when a search has at most CANDIDATE_CAP matches; beyond that it ranks the
newest CANDIDATE_CAP ("when did she last say ...") and `total_exact` is False.

Filters: when they leave fewer segments than `scan_limit` (about sqrt(CANDIDATE_CAP x all
segments), where starting from them costs less than walking matches until enough survive the
filters) the search starts from those segments (SQLite matches them in Python, PostgreSQL
checks `tsv @@` per row); otherwise the walk checks each match's clip, within the segment
ids of the date range.

Channels' live transcripts (`live_segments`, indexed the same way by migration 0014) are
searched the same way beside the clips, newest CANDIDATE_CAP + 1 matches each, and the two
are ranked together: on SQLite BM25 uses the document frequencies and lengths of both, on
PostgreSQL ts_rank_cd needs none. A channel hit's recency is when it was said, a clip hit's
when the clip was flagged. Filters only clips have (source, status, tag, by, urgency) leave
the channels out; `channel` and the dates narrow both; `scope` picks clips, channels or all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any, ClassVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from clipper.errors import InvalidInput
from clipper.search.filters import Clauses, Filters, filter_clauses, live_clauses, make_filters
from clipper.search.live import ChannelHit, channel_hits
from clipper.search.query import Query, Term, parse_query, to_fts5, to_tsquery
from clipper.search.scoring import DF_SAMPLE, bm25_scores
from clipper.search.snippet import bare_words, make_snippet, may_match, query_matches
from clipper.storage.tables import Clip, SegmentRow

CANDIDATE_CAP = 500
"""Most matches ranked per search (the newest); also the furthest one can page."""

MAX_LIMIT = 100
"""Largest page size."""

HIT_KEYS = ("clip_id", "start", "end", "source_start", "source_end", "snippet", "source",
            "status", "score")


@dataclass(frozen=True)
class Hit:
    """One matching transcript segment. `start`/`end` are on the clip timeline, `source_*` on the
    source's; `snippet` has matches in **bold** markers, `text` is the same without, and `spans`
    are the match ranges in `text`. Scores compare only within one search and one backend.
    `kind` tells it from a ChannelHit (it is not part of the JSON, which stays HIT_KEYS)."""

    kind: ClassVar[str] = "clip"

    clip_id: int
    segment_id: int
    start: float
    end: float
    source_start: float
    source_end: float
    snippet: str
    text: str
    spans: list[tuple[int, int]]
    source: str
    status: str
    score: float
    created_at: datetime
    words: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: exactly HIT_KEYS."""
        return {key: getattr(self, key) for key in HIT_KEYS}


@dataclass(frozen=True)
class SearchPage:
    """One page of hits, clip and channel ones ranked together (`hit.kind` tells them apart);
    `total` counts matches up to CANDIDATE_CAP (`total_exact` False: more)."""

    hits: list[Hit | ChannelHit]
    total: int
    total_exact: bool
    offset: int
    limit: int
    query: str

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.hits) < self.total


@dataclass(frozen=True)
class _Candidate:
    """A match before ranking: a `segments` row (kind "clip", `created_at` its clip's) or a
    `live_segments` row (kind "channel", `created_at` its wall_start in Unix seconds)."""

    segment_id: int
    score: float
    created_at: Any
    kind: str = "clip"


def _where(clauses: Clauses) -> str:
    return "".join(f" AND {c}" for c in clauses.sql)


def _execute(session: Session, sql: str, clauses: Clauses, **params: Any) -> list:
    statement = text(sql)
    if clauses.typed:
        statement = statement.bindparams(*clauses.typed)
    return session.execute(statement, {**clauses.params, **params}).all()


# --- shared: how many segments do the filters leave, and where do they start? ------------

SCAN_MAX = 3000
"""Filters leaving at most this many segments always start from them, however small the corpus."""

# From the clips (their indexes pick the filtered ones) to their segments. SQLite's CROSS JOIN
# fixes that order; the other one reads the whole segments table to find a date range's rows.
_FILTERED = "FROM clips c CROSS JOIN segments s ON s.clip_id = c.id WHERE 1 = 1"


def scan_limit(total_segments: float) -> int:
    """Most filtered segments worth starting from. Scanning costs about the F filtered segments;
    the walk about CAP / (F / N) matches, as it must pass that many to find CAP that survive
    the filters (N = all segments). So scan when F < sqrt(CAP * N): ~22,000 in a million."""
    return int(max(SCAN_MAX, (CANDIDATE_CAP * max(total_segments, 0.0)) ** 0.5))


def _few_filtered(session: Session, clauses: Clauses, matches: int | None = None) -> bool:
    """Start from the filtered segments rather than walk the text index? Yes when they are
    fewer than `scan_limit` and than the query's `matches` (when known)."""
    if session.get_bind().dialect.name != "sqlite":
        return _postgres_few_filtered(session, clauses)
    total = session.execute(text("SELECT coalesce(max(id), 0) FROM segments")).scalar_one()
    limit = scan_limit(float(total))
    if matches is not None:
        limit = min(limit, matches)
    sql = f"SELECT count(*) FROM (SELECT 1 {_FILTERED}{_where(clauses)} LIMIT :n) AS f"
    return _execute(session, sql, clauses, n=limit + 1)[0][0] <= limit


def _lowest_id(session: Session, clauses: Clauses) -> int:
    """The smallest segment id of any filtered clip: newest-first walks stop there.

    Only worth its cost with a date filter: that is what confines clips to recent ids.
    """
    if session.get_bind().dialect.name == "sqlite":
        # CROSS JOIN fixes the order: from the clips the date index picks to their segments.
        sql = ("SELECT min(s.id) FROM clips c CROSS JOIN segments s ON s.clip_id = c.id"
               f" WHERE 1 = 1{_where(clauses)}")
    else:
        # Per clip, not a join: PostgreSQL would hash-join the whole segments table. Conditions
        # on the segment are left out; a lower floor is still a correct one.
        clauses = _clip_only(clauses)
        sql = ("SELECT min((SELECT min(s.id) FROM segments s WHERE s.clip_id = c.id))"
               f" FROM clips c WHERE 1 = 1{_where(clauses)}")
    found = _execute(session, sql, clauses)[0][0]
    return int(found) if found is not None else 2**62


def _clip_only(clauses: Clauses) -> Clauses:
    """The conditions on the clip `c`, without those on the segment `s`."""
    return Clauses([c for c in clauses.sql if not c.startswith("s.")], clauses.params,
                   clauses.typed)


def _walk_floor(session: Session, filters: Filters, clauses: Clauses) -> int:
    return _lowest_id(session, clauses) if filters.since is not None else 0


# --- PostgreSQL: GIN lookup in newest-first id windows, or a scan of few filtered segments --

_TSQ = "to_tsquery('simple'::regconfig, :q)"
# A scalar sub-select is a per-row check the planner cannot turn into a join that visits
# every filtered clip first; the plain join is used only when the filters leave few rows.
_CLIP_CHECK = "(SELECT true FROM clips c WHERE c.id = s.clip_id{where})"

_TABLE_SIZES = """SELECT s.reltuples, CASE WHEN s.reltuples > 0 AND c.reltuples > 0
    THEN s.reltuples / c.reltuples ELSE 20 END
    FROM pg_class s, pg_class c WHERE s.oid = 'segments'::regclass AND c.oid = 'clips'::regclass"""


def _postgres_few_filtered(session: Session, clauses: Clauses) -> bool:
    """Do the filters leave fewer segments than `scan_limit`? Estimated from an exact count of
    filtered clips (given a LIMIT, the planner reads clips in table order hoping to stop
    early, and a date filter's clips all sit at the end) times the mean segments per clip.
    A tag alone never scans: the text index answers word and tag together."""
    on_clip = _clip_only(clauses)
    if not on_clip.sql:
        return False
    where = _where(on_clip) + _tag_on_clip(clauses)
    clips = _execute(session, f"SELECT count(*) FROM clips c WHERE 1 = 1{where}", on_clip)[0][0]
    total, per_clip = session.execute(text(_TABLE_SIZES)).one()
    return clips * float(per_clip) <= scan_limit(float(total))


def _tag_on_clip(clauses: Clauses) -> str:
    """The tag filter as a condition on the clip (the filter itself is on the segment)."""
    return " AND c.id IN (SELECT ct.clip_id FROM clip_tags ct WHERE ct.tag = :tag)" \
        if "tag" in clauses.params else ""


def _highest_id(session: Session, clauses: Clauses) -> int:
    """The largest segment id of any clip meeting the clip conditions (PostgreSQL)."""
    clauses = _clip_only(clauses)
    sql = ("SELECT max((SELECT max(s.id) FROM segments s WHERE s.clip_id = c.id))"
           f" FROM clips c WHERE 1 = 1{_where(clauses)}")
    found = _execute(session, sql, clauses)[0][0]
    return int(found) if found is not None else 0


def _postgres_candidates(session: Session, query: Query, filters: Filters, clauses: Clauses,
                         strategy: str | None = None) -> list[_Candidate]:
    on_clip, top = _clip_only(clauses), None
    on_segment = "".join(f" AND {c}" for c in clauses.sql if c.startswith("s."))
    if strategy is None:
        strategy = "scan" if clauses.sql and _few_filtered(session, clauses) else "walk"
    if strategy == "scan":
        # From the filtered clips to their segments; OFFSET 0 stops the planner flattening
        # this into a join it may run from the other end, walking every segment newest-first.
        source = ("clips c CROSS JOIN LATERAL (SELECT s.id, s.tsv, s.clip_id FROM segments s"
                  f" WHERE s.clip_id = c.id AND s.tsv @@ {_TSQ}{on_segment} OFFSET 0) AS s"
                  f" WHERE 1 = 1{_where(on_clip)}{_tag_on_clip(clauses)}")
    else:
        where = on_segment
        if on_clip.sql:
            where += " AND " + _CLIP_CHECK.format(where=_where(on_clip))
        source = f"segments s WHERE s.tsv @@ {_TSQ} AND s.id >= :floor AND s.id <= :top{where}"
        # An end date confines clips to old ids: start the walk at the newest of theirs.
        top = _highest_id(session, clauses) if filters.until is not None else None
    inner = f"SELECT s.id AS sid, s.tsv, s.clip_id FROM {source} ORDER BY s.id DESC LIMIT :cap"
    # A scalar subquery, not a join: the planner would hash all clips for 500 lookups.
    sql = (f"SELECT cand.sid, ts_rank_cd(cand.tsv, {_TSQ}),"
           " (SELECT c2.created_at FROM clips c2 WHERE c2.id = cand.clip_id)"
           f" FROM ({inner}) AS cand")
    rows = _newest_first(session, sql, clauses, to_tsquery(query),
                         lambda: _walk_floor(session, filters, clauses), top)
    return [_Candidate(int(r[0]), float(r[1]), r[2]) for r in rows]


#: First id window searched on PostgreSQL. GIN cannot return matches newest-first, so a common
#: word or phrase would fetch every matching heap row to keep the newest 501; ANDed with an id
#: range (a BitmapAnd with the BRIN index on id) only the newest rows are fetched.
PG_FIRST_WINDOW = 100_000


def _newest_first(session: Session, sql: str, clauses: Clauses, tsq: str,
                  floor: Callable[[], int], top: int | None = None,
                  table: str = "segments") -> list:
    """The newest CANDIDATE_CAP + 1 matches with ids from `floor()` to `top` (None: no upper
    bound): try a recent id window, widen it by the density of matches found, and fall back
    to the whole range for rare terms. `floor` is asked for only when the first window is not
    enough."""
    def run(low: int) -> list:
        return _execute(session, sql, clauses, q=tsq, cap=CANDIDATE_CAP + 1, floor=low,
                        top=2**62 if top is None else top)

    if ":floor" not in sql:
        return run(0)
    start = top if top is not None else _max_id(session, table)
    width, lowest = PG_FIRST_WINDOW, None
    while start - width > 0:
        rows = run(start - width)
        if len(rows) > CANDIDATE_CAP:
            return rows
        lowest = floor() if lowest is None else lowest
        if start - width <= lowest:  # the window holds every segment that could match
            return rows
        if not rows:  # rare in recent segments: the full range is cheap for a rare term
            break
        width = int(width * min(20.0, 1.5 * (CANDIDATE_CAP + 1) / len(rows)))
    return run(lowest or 0)


# --- SQLite: FTS5 walk newest-first, or a scan of a few filtered segments; BM25 in Python ---


def _sqlite_walk(session: Session, query: Query, clauses: Clauses, floor: int = 0) -> list:
    # CROSS JOIN keeps FTS5 the outer loop: it walks matches newest-first and stops at the cap.
    sql = ("SELECT segments_fts.rowid, s.text, c.created_at FROM segments_fts"
           " CROSS JOIN segments s ON s.id = segments_fts.rowid"
           " CROSS JOIN clips c ON c.id = s.clip_id"
           f" WHERE segments_fts MATCH :q AND segments_fts.rowid >= :floor{_where(clauses)}"
           " ORDER BY segments_fts.rowid DESC LIMIT :cap")
    return _execute(session, sql, clauses, q=to_fts5(query), cap=CANDIDATE_CAP + 1, floor=floor)


def _sqlite_scan(session: Session, query: Query, clauses: Clauses) -> list:
    """Rows matching the query among the (few) filtered segments, matched in Python."""
    rows = _execute(session, f"SELECT s.id, s.text, c.created_at {_FILTERED}{_where(clauses)}"
                    " ORDER BY s.id DESC", clauses)
    return _matching(rows, query)


def _matching(rows: Sequence, query: Query) -> list:
    """The first CANDIDATE_CAP + 1 of (id, text, ...) `rows` the query matches, in order."""
    found = (r for r in rows
             if may_match(r[1].lower(), query) and query_matches(bare_words(r[1]), query))
    return list(islice(found, CANDIDATE_CAP + 1))  # newest first: stop once enough match


def _max_id(session: Session, table: str) -> int:
    """The newest row id of `table` (a fixed name, never user text); 0 when empty."""
    return int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())


def _document_frequencies(session: Session, query: Query, table: str = "segments"
                          ) -> tuple[dict[Term, int], int]:
    """Per-term document counts in `table` (its FTS5 index is `<table>_fts`): exact up to
    DF_SAMPLE, else estimated from the newest matches.

    Counting every row that holds "the" (or the phrase "of the") costs ~100 ms in a million
    segments; the density of a term among the newest DF_SAMPLE matches is as good for IDF.
    """
    max_id = _max_id(session, table)
    fts = f"{table}_fts"
    df = {}
    for term in query.positive_terms():
        count, oldest = session.execute(text(
            f"SELECT count(*), min(rowid) FROM (SELECT rowid FROM {fts}"
            f" WHERE {fts} MATCH :t ORDER BY rowid DESC LIMIT :n)"
        ), {"t": to_fts5(Query(((term,),))), "n": DF_SAMPLE}).one()
        df[term] = count if count < DF_SAMPLE else round(count * max_id / (max_id - oldest + 1))
    return df, max_id


def _most_matches(query: Query, df: dict[Term, int]) -> int:
    """About how many segments can match: the total of the query's rarest OR-group. A walk
    never reads more matches than that, so a rare word walks even under narrow filters."""
    return min((sum(df[t] for t in group) for group in query.groups), default=0)


@dataclass(frozen=True)
class _Matches:
    """One corpus's matches before scoring (SQLite): (id, text, recency) rows newest first,
    with the corpus's document frequencies and size, which BM25 adds up across corpora."""

    kind: str
    rows: list
    df: dict[Term, int]
    n_docs: int


def _sqlite_clip_matches(session: Session, query: Query, filters: Filters, clauses: Clauses,
                         strategy: str | None = None) -> _Matches:
    df, n_docs = _document_frequencies(session, query)
    if strategy is None:
        few = clauses.sql and _few_filtered(session, clauses, _most_matches(query, df))
        strategy = "scan" if few else "walk"
    if strategy == "scan":
        rows = _sqlite_scan(session, query, clauses)
    else:
        rows = _sqlite_walk(session, query, clauses, _walk_floor(session, filters, clauses))
    return _Matches("clip", rows, df, n_docs)


def _sqlite_score(parts: list[_Matches], query: Query) -> list[_Candidate]:
    """BM25 over every corpus's matches at once: one IDF and one mean length, so a clip hit's
    score and a channel hit's compare."""
    rows = [(part.kind, row) for part in parts for row in part.rows]
    if not rows:
        return []
    df = {t: sum(part.df.get(t, 0) for part in parts) for t in query.positive_terms()}
    n_docs = sum(part.n_docs for part in parts)
    scores = bm25_scores([r[1] for _, r in rows], query, df, n_docs)
    return [_Candidate(int(r[0]), score, r[2], kind)
            for (kind, r), score in zip(rows, scores, strict=True)]


def find_candidates(session: Session, query: Query, filters: Filters,
                    strategy: str | None = None) -> list[_Candidate]:
    """The newest CANDIDATE_CAP + 1 matching segments of the clips and as many of the
    channels' live transcripts (as `filters` allow), with their scores (higher = better).

    `strategy` ("walk" or "scan") overrides the automatic choice; for tests.
    """
    dialect = session.get_bind().dialect.name
    clauses = filter_clauses(filters, dialect)
    if dialect == "sqlite":
        parts = []
        if filters.clips:
            parts.append(_sqlite_clip_matches(session, query, filters, clauses, strategy))
        if filters.channels:
            parts.append(_sqlite_live_matches(session, query, filters, strategy))
        return _sqlite_score(parts, query)
    found = []
    if filters.clips:
        found += _postgres_candidates(session, query, filters, clauses, strategy)
    if filters.channels:
        found += _postgres_live_candidates(session, query, filters, strategy)
    return found


def _epoch(value: Any) -> float:
    """A recency as Unix seconds: clips' created_at comes back as text (SQLite) or a naive UTC
    datetime (PostgreSQL) from raw SQL, live segments' wall_start as a number."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return 0.0


def _rank(candidates: list[_Candidate]) -> list[_Candidate]:
    # Best score first; the newest (clip flagged, or words said) first among equals; then kind
    # and id, which keep pages stable (ids of the two tables overlap).
    return sorted(candidates, reverse=True,
                  key=lambda c: (c.score, _epoch(c.created_at), c.kind == "clip", c.segment_id))


def _clip_hits(session: Session, page: list[_Candidate], query: Query) -> dict[int, Hit]:
    ids = [c.segment_id for c in page]
    if not ids:
        return {}
    rows = session.execute(
        select(SegmentRow, Clip).join(Clip, Clip.id == SegmentRow.clip_id)
        .where(SegmentRow.id.in_(ids))).all()
    by_id = {seg.id: (seg, clip) for seg, clip in rows}
    hits = {}
    for cand in page:
        if cand.segment_id not in by_id:  # deleted between the two reads
            continue
        seg, clip = by_id[cand.segment_id]
        plain, spans, marked = make_snippet(seg.text, query)
        hits[cand.segment_id] = Hit(
            clip_id=clip.id, segment_id=seg.id, start=round(seg.start, 3), end=round(seg.end, 3),
            source_start=round(clip.start + seg.start, 3),
            source_end=round(clip.start + seg.end, 3),
            snippet=marked, text=plain, spans=spans, source=clip.source.location,
            status=clip.status, score=round(cand.score, 6), created_at=clip.created_at,
            words=list(seg.words or []))
    return hits


def _hits(session: Session, page: list[_Candidate], query: Query) -> list[Hit | ChannelHit]:
    """The page's hits in rank order; rows deleted since they were matched are left out."""
    clips = _clip_hits(session, [c for c in page if c.kind == "clip"], query)
    channels = channel_hits(session, [(c.segment_id, c.score) for c in page
                                      if c.kind == "channel"], query)
    found: list[Hit | ChannelHit] = []
    for cand in page:
        hit = (clips if cand.kind == "clip" else channels).get(cand.segment_id)
        if hit is not None:
            found.append(hit)
    return found


# --- channels' live transcripts: the same walk or scan over `live_segments` ----------------
#
# The filters that apply are the channel (the (channel_id, wall_start) index finds its rows)
# and the dates (on wall_start: the same index, one channel at a time). When they leave few
# rows the search starts from those, else it walks the text index newest-first as for clips.

LIVE_SCAN_MIN = 1000
"""Filters leaving at most this many live segments always start from them."""


def live_scan_limit(total_segments: float) -> int:
    """Most filtered live segments worth starting from: a third of `scan_limit`. Channels
    speak at once, so one channel's rows lie scattered among the others' (a clip's segments
    lie together): reading them costs about three times what walking a match does (measured
    on bench/search.py's corpus, both databases)."""
    return int(max(LIVE_SCAN_MIN, (CANDIDATE_CAP * max(total_segments, 0.0)) ** 0.5 / 3))


def _live_few(session: Session, clauses: Clauses, matches: int | None = None) -> bool:
    """Start from the live segments the filters leave rather than walk the text index? Yes when
    they are fewer than `live_scan_limit` (and than the query's `matches`, when known)."""
    if not clauses.sql:
        return False
    postgres = session.get_bind().dialect.name != "sqlite"
    if postgres and "channel" not in clauses.params:
        # Dates alone: PostgreSQL would count by reading the table in order hoping to stop
        # early; the walk's id windows find recent words as cheaply.
        return False
    limit = live_scan_limit(float(_max_id(session, "live_segments")))
    if matches is not None:
        limit = min(limit, matches)
    # The index order makes PostgreSQL count along the channel's index entries.
    order = " ORDER BY ls.channel_id, ls.wall_start" if postgres else ""
    sql = (f"SELECT count(*) FROM (SELECT 1 FROM live_segments ls WHERE 1 = 1{_where(clauses)}"
           f"{order} LIMIT :n) AS f")
    return _execute(session, sql, clauses, n=limit + 1)[0][0] <= limit


def _live_floor(session: Session, filters: Filters, clauses: Clauses) -> int:
    """The smallest id of a live segment said since `filters.since` (0 without one): the
    newest-first walk stops there. Neither database may turn min() into a walk of the primary
    key from the oldest row: SQLite reads the covering (channel_id, wall_start) index from a
    sub-select; PostgreSQL (whose index lacks the id) reads it channel by channel, `+ 0`
    keeping the primary key out of it."""
    if filters.since is None:
        return 0
    if session.get_bind().dialect.name == "sqlite":
        sql = ("SELECT min(f.id) FROM (SELECT ls.id FROM live_segments ls"
               f" WHERE 1 = 1{_where(clauses)} LIMIT -1 OFFSET 0) AS f")
    else:
        sql = ("SELECT min(f.low) FROM channels ch CROSS JOIN LATERAL (SELECT min(ls.id + 0)"
               " AS low FROM live_segments ls WHERE ls.channel_id = ch.id"
               f"{_where(clauses)}) AS f")
    found = _execute(session, sql, clauses)[0][0]
    return int(found) if found is not None else 2**62


def _sqlite_live_matches(session: Session, query: Query, filters: Filters,
                         strategy: str | None = None) -> _Matches:
    clauses = live_clauses(filters)
    df, n_docs = _document_frequencies(session, query, "live_segments")
    if strategy is None:
        few = clauses.sql and _live_few(session, clauses, _most_matches(query, df))
        strategy = "scan" if few else "walk"
    if strategy == "scan":
        rows = _matching(_execute(
            session, "SELECT ls.id, ls.text, ls.wall_start FROM live_segments ls"
            f" WHERE 1 = 1{_where(clauses)} ORDER BY ls.id DESC", clauses), query)
    else:
        # CROSS JOIN keeps FTS5 the outer loop: newest-first, stopping at the cap.
        sql = ("SELECT live_segments_fts.rowid, ls.text, ls.wall_start FROM live_segments_fts"
               " CROSS JOIN live_segments ls ON ls.id = live_segments_fts.rowid"
               " WHERE live_segments_fts MATCH :q AND live_segments_fts.rowid >= :floor"
               f"{_where(clauses)} ORDER BY live_segments_fts.rowid DESC LIMIT :cap")
        rows = _execute(session, sql, clauses, q=to_fts5(query), cap=CANDIDATE_CAP + 1,
                        floor=_live_floor(session, filters, clauses))
    return _Matches("channel", rows, df, n_docs)


def _postgres_live_candidates(session: Session, query: Query, filters: Filters,
                              strategy: str | None = None) -> list[_Candidate]:
    clauses = live_clauses(filters)
    if strategy is None:
        strategy = "scan" if _live_few(session, clauses) else "walk"
    if strategy == "scan":
        # OFFSET 0 keeps the text condition out of the sub-select: it is checked on the
        # channel's rows, never through the GIN index (a common word would match millions).
        source = ("(SELECT ls.id, ls.tsv, ls.wall_start FROM live_segments ls"
                  f" WHERE 1 = 1{_where(clauses)} OFFSET 0) AS ls WHERE ls.tsv @@ {_TSQ}")
    else:
        source = (f"live_segments ls WHERE ls.tsv @@ {_TSQ} AND ls.id >= :floor"
                  f" AND ls.id <= :top{_where(clauses)}")
    inner = (f"SELECT ls.id AS sid, ls.tsv, ls.wall_start FROM {source}"
             " ORDER BY ls.id DESC LIMIT :cap")
    # Ranked outside the LIMIT: only the CANDIDATE_CAP + 1 kept rows are scored.
    sql = f"SELECT cand.sid, ts_rank_cd(cand.tsv, {_TSQ}), cand.wall_start FROM ({inner}) AS cand"
    rows = _newest_first(session, sql, clauses, to_tsquery(query),
                         lambda: _live_floor(session, filters, clauses), table="live_segments")
    return [_Candidate(int(r[0]), float(r[1]), float(r[2]), "channel") for r in rows]


def _check_paging(limit: int, offset: int) -> None:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"Page size must be 1 to {MAX_LIMIT}.", "Use e.g. --limit 20")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("Offset must be 0 or more.")
    if offset >= CANDIDATE_CAP:
        raise InvalidInput(f"Only the first {CANDIDATE_CAP} matches can be paged through.",
                           "Add words or filters to narrow the search.")


def search_session(session: Session, query: str, filters: Filters, *, limit: int = 20,
                   offset: int = 0, strategy: str | None = None) -> SearchPage:
    """Run a search inside an open session (see `search` for the friendly signature)."""
    _check_paging(limit, offset)
    parsed = parse_query(query)
    ranked = _rank(find_candidates(session, parsed, filters, strategy))
    exact = len(ranked) <= CANDIDATE_CAP
    ranked = ranked[:CANDIDATE_CAP]
    hits = _hits(session, ranked[offset : offset + limit], parsed)
    return SearchPage(hits=hits, total=len(ranked), total_exact=exact, offset=offset,
                      limit=limit, query=str(parsed))


def search(session_or_db: Any, query: str, *, source: str | int | None = None,
           since: date | str | None = None, until: date | str | None = None,
           status: str | Sequence[str] | None = None, tag: str | None = None,
           by: str | None = None, urgency: str | None = None, channel: str | None = None,
           scope: str = "all", limit: int = 20, offset: int = 0) -> SearchPage:
    """Search every transcript segment, clips' and channels' live ones; raises InvalidInput
    (and only that) for bad input.

    `session_or_db` is a Session or a clipper.storage.database.Database. `source` is a source id
    or a piece of its location/title; `since`/`until` are inclusive UTC days on the clip's
    created_at (a live segment's wall-clock start); `status` one status, a list, or "a,b";
    `tag`/`by` match any of the clip's flags. Those five describe clips: any of them set
    leaves the channels out. `channel` keeps what that channel said (live, and its clips);
    `scope` is "all", "clips" or "channels".
    """
    filters = make_filters(source=source, since=since, until=until, status=status, tag=tag,
                           by=by, urgency=urgency, channel=channel, scope=scope)
    if isinstance(session_or_db, Session):
        return search_session(session_or_db, query, filters, limit=limit, offset=offset)
    with session_or_db.session() as session:
        return search_session(session, query, filters, limit=limit, offset=offset)
