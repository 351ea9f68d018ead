"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, Clipper contexts, workers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from clipper.config import Settings
from clipper.context import Context
from clipper.db import Database

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("CLIPPER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("CLIPPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TABLES = ("events", "publications", "renders", "segments", "transcripts", "stage_runs", "clip_tags", "flags",
          "clips", "sources", "login_sessions", "users")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of our own for this test session, migrated once, dropped after."""
    from pgdb import scratch_postgres

    with scratch_postgres() as db:
        yield db.url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    Database(f"sqlite:///{path}").dispose()  # closing the last connection checkpoints the WAL
    return path


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "clipper.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "clipper.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    """The machine's real Redis (a test database number), flushed around each test."""
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str = "", **env: str) -> Settings:
        base = {"CLIPPER_HOME": str(tmp_path / "home"), "REDIS_URL": REDIS_TEST_URL,
                "CLIPPER_URL_ALLOWLIST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
                "PATH": os.environ.get("PATH", "")}
        if db_url:
            base["DATABASE_URL"] = db_url
        base.update(env)
        return Settings.from_env(base)
    return make


@pytest.fixture
def ctx(db_url: str, make_settings: Callable[..., Settings], redis_conn: redis.Redis) -> Iterator[Context]:
    """A Context on a fresh database (both backends) and the test Redis."""
    c = Context.build(make_settings(db_url), redis_conn=redis_conn)
    yield c
    c.db.dispose()


@pytest.fixture
def sqlite_ctx(sqlite_url: str, make_settings: Callable[..., Settings],
               redis_conn: redis.Redis) -> Iterator[Context]:
    c = Context.build(make_settings(sqlite_url), redis_conn=redis_conn)
    yield c
    c.db.dispose()


def drain(ctx: Context, queues: tuple[str, ...] = ("asr", "media", "fetch", "render")) -> None:
    """Run every queued job to completion in this process (a real RQ worker in burst mode)."""
    from workers.worker import make_worker

    make_worker(ctx, queues).work(burst=True)


@pytest.fixture
def run_jobs() -> Callable[[Context], None]:
    return drain


BROADCAST_TEXT = ("The health secretary said waiting lists would fall by forty percent before the "
                  "election. Opposition leaders called the promise unrealistic. The prime minister "
                  "promised three hundred new schools in the debate tonight.")


@pytest.fixture(scope="session")
def broadcast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 s 320x180 broadcast with speech; keyframes every 2 s (none on the times tests ask for)."""
    from mediagen import make_video

    folder = tmp_path_factory.mktemp("broadcast")
    return make_video(folder / "show.mp4", 30, gop=50, speech=BROADCAST_TEXT)


@pytest.fixture(scope="session")
def broadcast_site(broadcast: Path) -> Iterator[tuple[str, list[str]]]:
    """The broadcast served over loopback HTTP as MP4 and HLS (`/show.mp4`, `/hls/index.m3u8`)."""
    from mediagen import make_hls, serve_dir

    make_hls(broadcast, broadcast.parent / "hls", hls_time=4)
    with serve_dir(broadcast.parent) as site:
        yield site
