"""Database connections: SQLite in WAL mode; PostgreSQL plans every statement for its parameters;
read-only transactions; migrating only when the schema is behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.channels import list_channels
from clipper.services.clips import list_clips
from clipper.settings import Settings
from clipper.storage.database import (
    Database,
    current_revisions,
    head_revisions,
    is_current,
    migrate,
)
from clipper.storage.tables import Channel


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
                  "ix_segments_clip_first", "live_segments_fts", "ix_live_segments_tsv",
                  "ix_live_segments_id_brin")
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


def test_head_revisions_read_as_text_are_alembics_heads() -> None:
    """`migrate` decides whether to import Alembic from the migration files read as text; they
    must name the heads Alembic itself finds."""
    from alembic.script import ScriptDirectory

    from clipper.storage.database import alembic_config, head_revisions, make_engine

    engine = make_engine("sqlite://")
    try:
        heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    finally:
        engine.dispose()
    assert head_revisions() == frozenset(heads) and len(heads) == 1


def test_is_current_only_after_migrating(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.db'}", migrate_now=False)
    try:
        assert current_revisions(db.engine) == frozenset() and not is_current(db.engine)
        migrate(db.engine)
        assert current_revisions(db.engine) == head_revisions() and is_current(db.engine)
    finally:
        db.dispose()


def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
    # Runs after the engine's own pragmas: a transaction that waits for the write lock fails
    # after 0.2 s instead of 30 s, so a read that waits shows as an error, not a slow test.
    dbapi_conn.execute("PRAGMA busy_timeout=200")


def test_sqlite_reads_neither_take_nor_wait_for_the_write_lock(
        sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    """A writer holds SQLite's one write lock (an open `session()`, BEGIN IMMEDIATE): clip and
    channel lists still answer at once, from the last committed state, while it holds it."""
    db = Database(sqlite_url)
    event.listen(db.engine, "connect", _short_busy_timeout)
    db.engine.dispose()  # the connection that checked the schema had the long timeout
    ctx = Context(settings=make_settings(sqlite_url), db=db)
    operator = Actor.operator("ann")
    holding, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with db.session() as session:
                session.add(Channel(name="news", url="https://example.org/live.m3u8"))
                session.flush()  # the row is written, uncommitted, under the write lock
                holding.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread to re-raise
            failure.append(exc)
            holding.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30) and not failure
        assert list_clips(ctx, operator) == []
        assert list_channels(ctx, operator) == []  # the writer's row is not committed yet
        with db.read() as session:
            assert session.scalar(select(func.count(Channel.id))) == 0
        assert thread.is_alive() and not release.is_set()  # the lock was held all along
        # A second writer does wait for it (and gives up after the short busy timeout).
        with pytest.raises(OperationalError, match="locked"), db.session() as session:
            session.execute(text("SELECT 1"))
    finally:
        release.set()
        thread.join(30)
    try:
        assert not failure
        assert [c["name"] for c in list_channels(ctx, operator)] == ["news"]
    finally:
        db.dispose()


def test_read_sessions_refuse_writes(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(RuntimeError, match="cannot write"), db.read() as session:
            session.add(Channel(name="news", url="https://example.org/live.m3u8"))
            session.flush()
        if db.dialect == "postgresql":  # a READ ONLY transaction: SQL writes are refused too
            with pytest.raises(DBAPIError, match="read-only"), db.read() as session:
                session.execute(text("UPDATE channels SET paused = paused"))
        with db.read() as session:
            assert session.scalar(select(func.count(Channel.id))) == 0
        with db.session() as session:  # the write transaction on the same pool still writes
            session.add(Channel(name="news", url="https://example.org/live.m3u8"))
        with db.read() as session:
            assert session.scalar(select(func.count(Channel.id))) == 1
    finally:
        db.dispose()
