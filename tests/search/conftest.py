"""Search fixtures: a migrated SQLite file and a throwaway PostgreSQL database, plus a factory of
clips and of channels' live transcripts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pgdb import scratch_postgres

from clipper.storage.database import Database
from clipper.storage.tables import (
    Base,
    Channel,
    Clip,
    Flag,
    LiveSegment,
    SegmentRow,
    Source,
    TranscriptRow,
)

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE_WALL = BASE_TIME.timestamp()


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('search') / 'clipper.db'}")
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[Database]:
    with scratch_postgres("clipper_search") as db:
        yield db


def _emptied(database: Database) -> Database:
    with database.session() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    return database


@pytest.fixture
def db(request: pytest.FixtureRequest, backend: str) -> Database:
    """Each test runs on both backends (the root conftest's `backend`), from empty tables."""
    return _emptied(request.getfixturevalue("sqlite_db" if backend == "sqlite" else "postgres_db"))


@pytest.fixture
def pg_db(postgres_db: Database) -> Database:
    """PostgreSQL alone, from empty tables: for behaviour only it has (concurrent writers)."""
    return _emptied(postgres_db)


@dataclass
class Corpus:
    """Adds sources, clips, flags and transcripts straight through the ORM."""

    db: Database
    count: int = 0

    def source(self, location: str, title: str = "") -> int:
        with self.db.session() as session:
            row = Source(kind="url", key=location, location=location, title=title)
            session.add(row)
            session.flush()
            return row.id

    def clip(self, segments: Sequence[str], *, source_id: int | None = None, start: float = 100.0,
             status: str = "ready", urgency: str = "normal", age_days: float | None = None,
             tags: Sequence[str] = (), by: str = "vol1") -> int:
        """A clip whose segments are 5 s each; newer than every earlier clip unless age_days."""
        self.count += 1
        if source_id is None:
            source_id = self.source(f"https://example.org/live/{self.count}")
        created = BASE_TIME + timedelta(minutes=self.count) if age_days is None else \
            BASE_TIME - timedelta(days=age_days)
        with self.db.session() as session:
            clip = Clip(source_id=source_id, start=start, end=start + 5 * len(segments),
                        status=status, urgency=urgency, created_at=created)
            session.add(clip)
            session.flush()
            session.add(Flag(clip_id=clip.id, source_id=source_id, start=start, end=clip.end,
                             tags=list(tags), by=by, urgency=urgency, created_at=created))
            self.write_transcript(session, clip.id, segments)
            return clip.id

    @staticmethod
    def write_transcript(session, clip_id: int, segments: Sequence[str]) -> None:
        session.add(TranscriptRow(clip_id=clip_id, clip_version=1, text=" ".join(segments),
                                  engine="test", model="none"))
        Corpus.write_transcript_segments(session, clip_id, segments)

    @staticmethod
    def write_transcript_segments(session, clip_id: int, segments: Sequence[str]) -> None:
        for i, line in enumerate(segments):
            words = [[5 * i + k * 0.4, 5 * i + k * 0.4 + 0.3, w]
                     for k, w in enumerate(line.split())]
            session.add(SegmentRow(clip_id=clip_id, idx=i, start=5.0 * i, end=5.0 * i + 5,
                                   text=line, words=words))


    def channel(self, name: str) -> int:
        """A recorded channel (no recording: search reads only its live transcript)."""
        with self.db.session() as session:
            row = Channel(name=name, url=f"https://{name}.example/live.m3u8")
            session.add(row)
            session.flush()
            return row.id

    def live(self, channel_id: int, text: str, *, at: float | None = None,
             seconds: float = 5.0, source: str = "whisper") -> int:
        """A live-transcript segment said at `at` (Unix; default: 5 s after the previous one
        written, from BASE_WALL), its words spread evenly over it."""
        self.count += 1
        wall = BASE_WALL + 5.0 * self.count if at is None else at
        words = text.split()
        step = seconds / max(len(words), 1)
        timed = [[wall + k * step, wall + (k + 1) * step, w] for k, w in enumerate(words)]
        with self.db.session() as session:
            row = LiveSegment(channel_id=channel_id, wall_start=wall, wall_end=wall + seconds,
                              text=text, words=timed, source=source)
            session.add(row)
            session.flush()
            return row.id


@pytest.fixture
def corpus(db: Database) -> Corpus:
    return Corpus(db)


@pytest.fixture
def corpus_factory() -> type[Corpus]:
    """Corpus itself, for tests with a database of their own."""
    return Corpus
