"""Search index maintenance: the database keeps it current; these calls check, repair or drop.

SQLite: `segments_fts` (FTS5, external content on `segments`) is fed by three triggers.
PostgreSQL: `segments.tsv` is a generated column, `segments.tags` a trigger-kept copy of the
clip's tags, both in one GIN index. Either way, writing,
editing or deleting `SegmentRow`s updates the index in the same transaction, so callers
need no extra step; `reindex_clip` and `remove_clip` exist as the stable API around that.
"""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from clipper.storage.tables import SegmentRow

SQLITE_TRIGGERS = ("segments_fts_ai", "segments_fts_ad", "segments_fts_au")


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def reindex_clip(session: Session, clip_id: int) -> None:
    """Re-index a clip's segments after its transcript was written or edited.

    The triggers / generated column already did it; this re-feeds the clip's rows anyway
    (cheap: one UPDATE touching only that clip), so a call is always safe and idempotent.
    """
    session.flush()
    session.execute(text("UPDATE segments SET text = text WHERE clip_id = :c"), {"c": clip_id})


def remove_clip(session: Session, clip_id: int) -> None:
    """Drop a clip from search by deleting its segments (the index follows in this transaction)."""
    session.flush()
    session.execute(delete(SegmentRow).where(SegmentRow.clip_id == clip_id))


def rebuild_index(session: Session) -> None:
    """Rebuild the whole index from `segments` (repair after bulk loads that bypassed triggers)."""
    if _dialect(session) == "sqlite":
        session.execute(text("INSERT INTO segments_fts(segments_fts) VALUES ('rebuild')"))
    else:
        session.execute(text("REINDEX INDEX ix_segments_tsv"))


def index_ok(session: Session) -> bool:
    """True when the index and what keeps it current are in place (and, on SQLite, consistent)."""
    if _dialect(session) == "sqlite":
        names = session.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'segments'"
        )).scalars().all()
        if not set(SQLITE_TRIGGERS) <= set(names):
            return False
        try:
            with session.begin_nested():
                session.execute(text(
                    "INSERT INTO segments_fts(segments_fts, rank) VALUES ('integrity-check', 1)"))
        except DBAPIError:  # SQLITE_CORRUPT_VTAB: the index disagrees with `segments`
            return False
        return True
    found = session.execute(text(
        "SELECT count(*) FROM pg_indexes"
        " WHERE tablename = 'segments' AND indexname = 'ix_segments_tsv'"
    )).scalar_one()
    return found == 1


def index_size_bytes(session: Session) -> int:
    """Bytes the full-text index takes (SQLite: FTS5 shadow tables; PG: GIN index + tsv and tags
    columns)."""
    if _dialect(session) == "sqlite":
        return int(session.execute(text(
            "SELECT coalesce(sum(length(block)), 0) + (SELECT coalesce(sum(length(sz)), 0)"
            " FROM segments_fts_docsize) FROM segments_fts_data")).scalar_one())
    gin = session.execute(text("SELECT pg_relation_size('ix_segments_tsv')")).scalar_one()
    column = session.execute(text(
        "SELECT coalesce(sum(pg_column_size(tsv)) + sum(pg_column_size(tags)), 0) FROM segments"
    )).scalar_one()
    return int(gin) + int(column)
