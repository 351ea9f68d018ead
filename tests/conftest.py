"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, Clipper contexts,
workers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from clipper.context import Context
from clipper.settings import Settings
from clipper.storage.database import Database
from clipper.storage.tables import Base

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# tests/test_pure_split.py runs the pure tests again, to see that they need no service: there a
# property is tried on a few examples (it was tried on the usual hundred in the main run).
hypothesis_settings.register_profile("pure-split", max_examples=5)

REDIS_TEST_URL = os.environ.get("CLIPPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

# A test that takes one of these, itself or through another fixture, needs Redis, PostgreSQL,
# ffmpeg/ffprobe, espeak-ng, the Whisper model or Chromium: it is marked `services`, so that
# `pytest -m "not services"` runs the pure tests alone, in seconds, with none of them installed.
# Modules that run ffmpeg or a subprocess themselves say `pytestmark = pytest.mark.services`.
SERVICE_FIXTURES = frozenset({
    "backend", "db_url", "pg_url", "ctx", "sqlite_ctx", "redis_conn",  # databases, queues
    "broadcast", "broadcast_site",  # generated media (ffmpeg, espeak-ng), served over HTTP
    "media_dir", "render_dir",  # tests/media and tests/render: generated clips and renders
    "speech_dir", "home",  # tests/transcribe: spoken clips and the Whisper model
    "postgres_db", "pg_db",  # tests/search (its `db` builds on `backend`)
    "desk", "team_template", "tiny_media",  # tests/dashboard: Redis and ffmpeg
})
POSTGRES_FIXTURES = frozenset({"pg_url", "postgres_db", "pg_db"})  # PostgreSQL only


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if used & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)


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
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)  # every table, new ones too
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database, "sqlite" or "postgres": the one both-databases parametrisation, so the
    ids are the same everywhere (`-k postgres` picks every PostgreSQL case, `-m postgres` too)."""
    return request.param


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path,
           sqlite_template: Path) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if backend == "sqlite":
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
def ctx(db_url: str, make_settings: Callable[..., Settings],
        redis_conn: redis.Redis) -> Iterator[Context]:
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
    from clipper.pipeline.worker import make_worker

    make_worker(ctx, queues).work(burst=True)


@pytest.fixture
def run_jobs() -> Callable[[Context], None]:
    return drain


BROADCAST_TEXT = ("The health secretary said waiting lists would fall by forty percent before the "
                  "election. Opposition leaders called the promise unrealistic. The prime minister "
                  "promised three hundred new schools in the debate tonight.")


@pytest.fixture(scope="session")
def broadcast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 s 320x180 broadcast with speech; keyframes every 2 s (none on the times tests ask
    for)."""
    from testmedia.mediagen import make_video

    folder = tmp_path_factory.mktemp("broadcast")
    return make_video(folder / "show.mp4", 30, gop=50, speech=BROADCAST_TEXT)


@pytest.fixture(scope="session")
def broadcast_site(broadcast: Path) -> Iterator[tuple[str, list[str]]]:
    """The broadcast served over loopback HTTP as MP4 and HLS (`/show.mp4`, `/hls/index.m3u8`;
    fragmented-MP4 segments: `/fmp4/index.m3u8`)."""
    from testmedia.mediagen import make_hls, serve_dir

    make_hls(broadcast, broadcast.parent / "hls", hls_time=4)
    make_hls(broadcast, broadcast.parent / "fmp4", hls_time=4, fmp4=True)
    with serve_dir(broadcast.parent) as site:
        yield site
