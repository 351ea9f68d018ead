"""Database connections: SQLite in WAL mode; PostgreSQL plans every statement for its parameters;
read-only transactions; migrating only when the schema is behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.channels import list_channels
from clipper.services.clips import list_clips
from clipper.services.review import my_claim, my_flags, review_queue
from clipper.services.rota import list_shifts
from clipper.services.rota_views import my_shifts, my_timezone, week_grid
from clipper.services.users import add_user, authenticate, user_for_token
from clipper.settings import Settings
from clipper.storage.database import (
    Database,
    current_revisions,
    head_revisions,
    is_current,
    migrate,
)
from clipper.storage.tables import Channel, Clip, Flag, Shift, Signup, Source, User, utcnow


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


def _desk(db: Database) -> int:
    """Committed before the writer starts: a clip flagged by vera and claimed by sam, and a
    shift on channel bbc with vera on it. Returns the clip's id."""
    now = utcnow()
    with db.session() as session:
        channel = Channel(name="bbc", url="https://example.org/bbc.m3u8")
        src = Source(kind="url", key="url:https://news.example/x",
                     location="https://news.example/x")
        session.add_all([channel, src])
        session.flush()
        clip = Clip(source_id=src.id, start=10.0, end=16.0, status="ready",
                    claimed_by="sam", claimed_at=now)
        session.add(clip)
        session.flush()
        session.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=16.0,
                         note="waiting lists promise", by="vera"))
        shift = Shift(channel_id=channel.id, start=now + timedelta(hours=1),
                      end=now + timedelta(hours=3), needs=1, created_by="ann")
        session.add(shift)
        session.flush()
        vera = session.scalars(select(User).where(User.name == "vera")).one()
        session.add(Signup(shift_id=shift.id, user_id=vera.id, state="signed"))
        return clip.id


def test_sqlite_reads_neither_take_nor_wait_for_the_write_lock(
        sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    """A writer holds SQLite's one write lock (an open `session()`, BEGIN IMMEDIATE): the
    dashboard's reads (clip and channel lists, a volunteer's flags, the review queue and claim,
    the rota and its week grid, the login check of every page load) still answer at once, from
    the last committed state, while it holds it."""
    db = Database(sqlite_url)
    ctx = Context(settings=make_settings(sqlite_url), db=db)
    operator = Actor.operator("ann")
    vera, sam = Actor("vera", "volunteer"), Actor("sam", "social")
    add_user(ctx, operator, "vera", "volunteer", "correct horse")
    token = authenticate(ctx, "vera", "correct horse")
    clip_id = _desk(db)
    event.listen(db.engine, "connect", _short_busy_timeout)
    db.engine.dispose()  # the connections opened so far had the long timeout
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
        assert [c["id"] for c in list_clips(ctx, operator)] == [clip_id]
        # The writer's row is not committed yet.
        assert [c["name"] for c in list_channels(ctx, operator)] == ["bbc"]
        with db.read() as session:
            assert session.scalar(select(func.count(Channel.id))) == 1
        assert [(f["clip_id"], f["status"]) for f in my_flags(ctx, vera)] == [(clip_id, "ready")]
        assert [(c["id"], c["claimed_by"]) for c in review_queue(ctx, sam)] == [(clip_id, "sam")]
        assert my_claim(ctx, sam) == clip_id
        assert [(s["channel"], s["volunteers"]) for s in list_shifts(ctx, operator)] == [
            ("bbc", ["vera"])]
        grid = week_grid(ctx, operator)
        assert [r["channel"] for r in grid["rows"]] == ["bbc"]
        assert "covered" in grid["rows"][0]["cells"]
        assert [s["channel"] for s in my_shifts(ctx, vera)] == ["bbc"]
        assert my_timezone(ctx, vera) == ctx.settings.timezone
        assert user_for_token(ctx, token) == vera
        assert thread.is_alive() and not release.is_set()  # the lock was held all along
        # A second writer does wait for it (and gives up after the short busy timeout).
        with pytest.raises(OperationalError, match="locked"), db.session() as session:
            session.execute(text("SELECT 1"))
    finally:
        release.set()
        thread.join(30)
    try:
        assert not failure
        assert [c["name"] for c in list_channels(ctx, operator)] == ["bbc", "news"]
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
