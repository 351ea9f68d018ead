"""Database connection: engine (SQLite WAL or PostgreSQL), write and read-only sessions, and
Alembic migrations (imported only when the schema is behind)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # alembic costs more to import than the rest of a CLI command's start
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: An execution option on the read-only engine: its transactions start without the write lock.
READONLY = "clipper_readonly"
_REVISION = re.compile(r"^(down_)?revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level so our "begin" hook controls transactions.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(READONLY):
        # A plain (deferred) BEGIN takes no lock; in WAL it reads a snapshot while a writer
        # works, so dashboard refreshes and searches never queue behind flags and progress.
        conn.exec_driver_sql("BEGIN")
    else:
        # IMMEDIATE takes the write lock up front: concurrent flags serialise instead of
        # failing with "database is locked" on lock upgrade (readers are not blocked in WAL).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and serialised writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # psycopg prepares a statement run five times, and PostgreSQL then may plan it once for
    # any parameters; search's best plan depends on them (id windows, how common a tag is):
    # a generic plan made one search 40 times slower.
    args = {"prepare_threshold": None} if parsed.drivername == "postgresql+psycopg" else {}
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10,
                         connect_args=args)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@cache
def head_revisions(versions: Path = MIGRATIONS / "versions") -> frozenset[str]:
    """The newest migrations' revisions (one, unless branches await a merge), read from the
    migration files as text.

    The revisions no other migration names as its `down_revision`: the same answer as
    Alembic's `ScriptDirectory.get_heads()` (a test holds them equal) without importing
    Alembic, which would double the start-up time of every CLI command.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            # A merge migration names a tuple of parents; `None` (the first) names none.
            (parents if down else revisions).update(_QUOTED.findall(value))
    return frozenset(revisions - parents)


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revisions the database is at (none: never migrated), in one read-only query."""
    try:
        with engine.execution_options(**_readonly_options(engine)).connect() as conn:
            return frozenset(conn.execute(text("SELECT version_num FROM alembic_version"))
                             .scalars())
    except (OperationalError, ProgrammingError):  # no alembic_version table: a new database
        return frozenset()


def is_current(engine: Engine) -> bool:
    return current_revisions(engine) == head_revisions()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (cheap when it already is: one query, and
    Alembic is imported only when there is something to migrate)."""
    if not is_current(engine):
        from alembic import command

        command.upgrade(alembic_config(engine), "head")


def _readonly_options(engine: Engine) -> dict[str, Any]:
    """Execution options for read-only transactions: SQLite begins them deferred (our hook),
    PostgreSQL as READ ONLY (psycopg's `BEGIN READ ONLY`, no extra round trip)."""
    if engine.dialect.name == "postgresql":
        return {READONLY: True, "postgresql_readonly": True}
    return {READONLY: True}


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    raise RuntimeError("A Database.read() session cannot write; use Database.session().")


class Database:
    """The engine plus a session factory; build once at the edge and pass down."""

    def __init__(self, url: str, *, migrate_now: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate_now:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The same pool; only how a transaction begins differs (see `read`).
        self._readers = sessionmaker(self.engine.execution_options(**_readonly_options(
            self.engine)), expire_on_commit=False, autoflush=False)
        event.listen(self._readers, "before_flush", _refuse_flush)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction for pages, status and search: never commits.

        On SQLite it begins deferred, so it neither takes nor waits for the one write lock a
        `session()` holds (WAL readers see the last committed snapshot); on PostgreSQL it is
        READ ONLY. Adding or changing rows raises on flush; the transaction is rolled back.
        """
        with self._readers() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
