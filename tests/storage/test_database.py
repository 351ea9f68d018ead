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
