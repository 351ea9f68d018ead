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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from clipper.errors import InvalidInput
from clipper.search.filters import Clauses, Filters, filter_clauses, make_filters
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
    are the match ranges in `text`. Scores compare only within one search and one backend."""

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
    """One page of hits; `total` counts matches up to CANDIDATE_CAP (`total_exact` False: more)."""

    hits: list[Hit]
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
    segment_id: int
    score: float
    created_at: Any


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
                  floor: Callable[[], int], top: int | None = None) -> list:
    """The newest CANDIDATE_CAP + 1 matches with ids from `floor()` to `top` (None: no upper
    bound): try a recent id window, widen it by the density of matches found, and fall back
    to the whole range for rare terms. `floor` is asked for only when the first window is not
    enough."""
    def run(low: int) -> list:
        return _execute(session, sql, clauses, q=tsq, cap=CANDIDATE_CAP + 1, floor=low,
                        top=2**62 if top is None else top)

    if ":floor" not in sql:
        return run(0)
    start = top if top is not None else \
        session.execute(text("SELECT coalesce(max(id), 0) FROM segments")).scalar() or 0
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
    found = (r for r in rows
             if may_match(r[1].lower(), query) and query_matches(bare_words(r[1]), query))
    return list(islice(found, CANDIDATE_CAP + 1))  # newest first: stop once enough match


def _document_frequencies(session: Session, query: Query) -> tuple[dict[Term, int], int]:
    """Per-term document counts: exact up to DF_SAMPLE, else estimated from the newest matches.

    Counting every row that holds "the" (or the phrase "of the") costs ~100 ms in a million
    segments; the density of a term among the newest DF_SAMPLE matches is as good for IDF.
    """
    max_id = int(session.execute(text("SELECT coalesce(max(id), 0) FROM segments")).scalar_one())
    df = {}
    for term in query.positive_terms():
        count, oldest = session.execute(text(
            "SELECT count(*), min(rowid) FROM (SELECT rowid FROM segments_fts"
            " WHERE segments_fts MATCH :t ORDER BY rowid DESC LIMIT :n)"
        ), {"t": to_fts5(Query(((term,),))), "n": DF_SAMPLE}).one()
        df[term] = count if count < DF_SAMPLE else round(count * max_id / (max_id - oldest + 1))
    return df, max_id


def _most_matches(query: Query, df: dict[Term, int]) -> int:
    """About how many segments can match: the total of the query's rarest OR-group. A walk
    never reads more matches than that, so a rare word walks even under narrow filters."""
    return min((sum(df[t] for t in group) for group in query.groups), default=0)


def _sqlite_candidates(session: Session, query: Query, filters: Filters, clauses: Clauses,
                       strategy: str | None = None) -> list[_Candidate]:
    df, n_docs = _document_frequencies(session, query)
    if strategy is None:
        few = clauses.sql and _few_filtered(session, clauses, _most_matches(query, df))
        strategy = "scan" if few else "walk"
    if strategy == "scan":
        rows = _sqlite_scan(session, query, clauses)
    else:
        rows = _sqlite_walk(session, query, clauses, _walk_floor(session, filters, clauses))
    if not rows:
        return []
    scores = bm25_scores([r[1] for r in rows], query, df, n_docs)
    return [_Candidate(int(r[0]), score, r[2]) for r, score in zip(rows, scores, strict=True)]


def find_candidates(session: Session, query: Query, filters: Filters,
                    strategy: str | None = None) -> list[_Candidate]:
    """The newest CANDIDATE_CAP + 1 matching segments with their scores (higher = better).

    `strategy` ("walk" or "scan") overrides the automatic choice; for tests.
    """
    dialect = session.get_bind().dialect.name
    clauses = filter_clauses(filters, dialect)
    if dialect == "sqlite":
        return _sqlite_candidates(session, query, filters, clauses, strategy)
    return _postgres_candidates(session, query, filters, clauses, strategy)


def _rank(candidates: list[_Candidate]) -> list[_Candidate]:
    # Best score first; newest clip first among equals; segment id keeps pages stable.
    return sorted(candidates, key=lambda c: (c.score, c.created_at, c.segment_id), reverse=True)


def _hits(session: Session, page: list[_Candidate], query: Query) -> list[Hit]:
    ids = [c.segment_id for c in page]
    rows = session.execute(
        select(SegmentRow, Clip).join(Clip, Clip.id == SegmentRow.clip_id)
        .where(SegmentRow.id.in_(ids))).all()
    by_id = {seg.id: (seg, clip) for seg, clip in rows}
    hits = []
    for cand in page:
        if cand.segment_id not in by_id:  # deleted between the two reads
            continue
        seg, clip = by_id[cand.segment_id]
        plain, spans, marked = make_snippet(seg.text, query)
        hits.append(Hit(
            clip_id=clip.id, segment_id=seg.id, start=round(seg.start, 3), end=round(seg.end, 3),
            source_start=round(clip.start + seg.start, 3),
            source_end=round(clip.start + seg.end, 3),
            snippet=marked, text=plain, spans=spans, source=clip.source.location,
            status=clip.status, score=round(cand.score, 6), created_at=clip.created_at,
            words=list(seg.words or [])))
    return hits


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
           by: str | None = None, urgency: str | None = None, limit: int = 20,
           offset: int = 0) -> SearchPage:
    """Search every transcript segment; raises InvalidInput (and only that) for bad input.

    `session_or_db` is a Session or a clipper.storage.database.Database. `source` is a source id
    or a piece of its location/title; `since`/`until` are inclusive UTC days on the clip's
    created_at; `status` one status, a list, or "a,b"; `tag`/`by` match any of the clip's flags.
    """
    filters = make_filters(source=source, since=since, until=until, status=status, tag=tag,
                           by=by, urgency=urgency)
    if isinstance(session_or_db, Session):
        return search_session(session_or_db, query, filters, limit=limit, offset=offset)
    with session_or_db.session() as session:
        return search_session(session, query, filters, limit=limit, offset=offset)
