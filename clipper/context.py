"""The bundle every service and job receives: settings, database, and (lazily) Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clipper.settings import Settings
from clipper.storage.database import Database

if TYPE_CHECKING:
    # Importing redis (and the broker's psutil) costs a CLI command that never queues a job
    # a fifth of its start-up; they load on first use of `Context.redis`.
    import redis


@dataclass
class Context:
    """Built once at an edge (CLI command, worker process, dashboard) and passed down."""

    settings: Settings
    db: Database
    _redis: redis.Redis | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, redis_conn: redis.Redis | None = None) -> Context:
        return cls(settings=settings, db=Database(settings.database_url), _redis=redis_conn)

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            from clipper.storage import broker

            self._redis = broker.connect(self.settings)
        return self._redis

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self.db.dispose()
