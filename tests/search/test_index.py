"""Search index migrations and upkeep: up, down and up again; rebuild;
a missing trigger is noticed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text

from clipper.search import index_ok, rebuild_index, search
from clipper.search.index import index_size_bytes
from clipper.storage.database import Database, alembic_config


@pytest.fixture
def fresh(backend: str, tmp_path) -> Iterator[Database]:
    """A brand-new database of its own, so migrating it down harms no other test."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield db
        db.dispose()
        return
    from pgdb import scratch_postgres

    with scratch_postgres("clipper_search") as db:
        yield db


def test_migration_down_and_up_indexes_existing_rows(fresh: Database, request) -> None:
    corpus = request.getfixturevalue("corpus_factory")(fresh)
    clip = corpus.clip(["rows written before the index existed"])
    cfg = alembic_config(fresh.engine)
    command.downgrade(cfg, "0001")
    corpus.clip(["more rows written without any index"])
    command.upgrade(cfg, "head")
    assert [h.clip_id for h in search(fresh, "before").hits] == [clip]
    assert len(search(fresh, "rows").hits) == 2
    with fresh.session() as session:
        assert index_ok(session)
        rebuild_index(session)
        assert index_size_bytes(session) > 0
    assert len(search(fresh, "rows").hits) == 2


def test_segment_tags_migration_fills_existing_rows(fresh: Database, request) -> None:
    """0004 (PostgreSQL: tags copied onto segments) fills rows written before it ran."""
    corpus = request.getfixturevalue("corpus_factory")(fresh)
    cfg = alembic_config(fresh.engine)
    command.downgrade(cfg, "0003")
    tagged = corpus.clip(["budget talk before the upgrade"], tags=["Economy"])
    corpus.clip(["budget talk untagged"])
    command.upgrade(cfg, "head")
    assert [h.clip_id for h in search(fresh, "budget", tag="economy").hits] == [tagged]
    assert len(search(fresh, "budget").hits) == 2


def test_missing_trigger_is_noticed(sqlite_db: Database) -> None:
    with sqlite_db.session() as session:
        assert index_ok(session)
        session.execute(text("DROP TRIGGER segments_fts_au"))
        assert not index_ok(session)
        session.rollback()
    with sqlite_db.session() as session:
        assert index_ok(session)
