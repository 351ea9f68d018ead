"""Search index maintenance: the database keeps it current; these calls check, repair or drop.

SQLite: `segments_fts` (FTS5, external content on `segments`) is fed by three triggers.
PostgreSQL: `segments.tsv` is a generated column, `segments.tags` a trigger-kept copy of the
clip's tags, both in one GIN index. Either way, writing,
editing or deleting `SegmentRow`s updates the index in the same transaction, so callers
need no extra step; `reindex_clip` and `remove_clip` exist as the stable API around that.

Channels' live transcripts are indexed the same way (migration 0014): `live_segments_fts` and
its triggers, or `live_segments.tsv` in `ix_live_segments_tsv`. The live transcriber and the
caption ingester write `LiveSegment` rows and need do nothing more; deleting a channel (or
its old transcript) takes its rows out of the index too.
"""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from clipper.storage.tables import SegmentRow

SQLITE_TRIGGERS = ("segments_fts_ai", "segments_fts_ad", "segments_fts_au")
SQLITE_LIVE_TRIGGERS = ("live_segments_fts_ai", "live_segments_fts_ad", "live_segments_fts_au")
#: (table, its FTS5 table, its triggers) on SQLite; (table, its GIN index) on PostgreSQL.
_SQLITE_INDEXES = (("segments", "segments_fts", SQLITE_TRIGGERS),
                   ("live_segments", "live_segments_fts", SQLITE_LIVE_TRIGGERS))
_POSTGRES_INDEXES = (("segments", "ix_segments_tsv"), ("live_segments", "ix_live_segments_tsv"))


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
    """Rebuild the whole index from `segments` and `live_segments` (repair after bulk loads
    that bypassed triggers)."""
    if _dialect(session) == "sqlite":
        for _, fts, _ in _SQLITE_INDEXES:
            session.execute(text(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"))
    else:
        for _, index in _POSTGRES_INDEXES:
            session.execute(text(f"REINDEX INDEX {index}"))


def index_ok(session: Session) -> bool:
    """True when the indexes and what keeps them current are in place (and, on SQLite,
    consistent), for clip transcripts and live transcripts alike."""
    if _dialect(session) == "sqlite":
        return all(_sqlite_index_ok(session, *index) for index in _SQLITE_INDEXES)
    found = session.execute(text(
        "SELECT count(*) FROM pg_indexes WHERE (tablename, indexname) IN"
        " (('segments', 'ix_segments_tsv'), ('live_segments', 'ix_live_segments_tsv'))"
    )).scalar_one()
    return found == len(_POSTGRES_INDEXES)


def _sqlite_index_ok(session: Session, table: str, fts: str, triggers: tuple[str, ...]) -> bool:
    names = session.execute(text(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"
    ), {"t": table}).scalars().all()
    if not set(triggers) <= set(names):
        return False
    try:
        with session.begin_nested():
            session.execute(text(
                f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"))
    except DBAPIError:  # SQLITE_CORRUPT_VTAB: the index disagrees with its table
        return False
    return True


def index_size_bytes(session: Session, table: str = "segments") -> int:
    """Bytes the full-text index of `table` ("segments" or "live_segments") takes (SQLite: FTS5
    shadow tables; PG: GIN index + tsv column, and the tags column of `segments`)."""
    if table not in ("segments", "live_segments"):
        raise ValueError(f"no full-text index on {table!r}")
    if _dialect(session) == "sqlite":
        return int(session.execute(text(
            "SELECT coalesce(sum(length(block)), 0) + (SELECT coalesce(sum(length(sz)), 0)"
            f" FROM {table}_fts_docsize) FROM {table}_fts_data")).scalar_one())
    gin = session.execute(text(f"SELECT pg_relation_size('ix_{table}_tsv')")).scalar_one()
    tags = " + sum(pg_column_size(tags))" if table == "segments" else ""
    column = session.execute(text(
        f"SELECT coalesce(sum(pg_column_size(tsv)){tags}, 0) FROM {table}"
    )).scalar_one()
    return int(gin) + int(column)
