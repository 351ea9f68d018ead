"""Database connections: SQLite in WAL mode; PostgreSQL plans every statement for its parameters."""

from __future__ import annotations

from sqlalchemy import text

from clipper.storage.database import Database


def test_connection_settings(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            else:
                # No automatic server-side prepare: a generic plan ignores search's id windows.
                assert conn.connection.dbapi_connection.prepare_threshold is None
                for _ in range(8):  # more than psycopg's default threshold of 5
                    conn.execute(text("SELECT count(*) FROM segments WHERE id >= :low"), {"low": 1})
                prepared = conn.execute(
                    text("SELECT count(*) FROM pg_prepared_statements")).scalar()
                assert prepared == 0
    finally:
        db.dispose()


def test_migrations_build_exactly_the_tables_the_code_declares(db_url: str) -> None:
    """Alembic's autogenerate finds nothing to add: every table and column of tables.py has a
    migration (the search index's own objects, from migrations 0002-0005, are left out)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from clipper.storage.tables import Base

    def ours(obj, name, type_, reflected, compare_to):  # noqa: ANN001 - alembic's hook
        search = ("segments_fts", "ix_segments_tsv", "ix_segments_id_brin",
                  "ix_segments_clip_first")
        return not (name or "").startswith(search) and name not in ("tsv", "tags")

    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": ours,
                                                         "compare_type": False})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
    finally:
        db.dispose()
