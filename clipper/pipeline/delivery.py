"""Delivering exported packages to the team's shared drive (rclone), driven by the database.

`queue_delivery` (called by the export, in its own transaction) stores a `Delivery` row: the
package folder and where it goes on the drive, with `{date}`/`{clip}` already filled in, so
every retry goes to the same place. The deliverer (`deliver_packages`, run every few seconds by
`PackageDeliveryLoop` in `clipper up`) claims one due row at a time, runs `rclone copy`, and
marks it delivered, or tries again after 10 s, 30 s, 90 s ... (at most 30 min apart) until a
day has passed or rclone says trying again cannot help; then it is failed, with the reason.

Why a loop on the database and not an RQ job: the row is the truth, so a delivery survives
Redis losing its data and a worker dying mid-copy, with no reconciler to write; the backoff is
a column, not a scheduler. A copy is idempotent (`rclone copy` skips files already there), so a
retry, a deliverer that died after copying, or two exports of the same clip never leave a
second copy on the drive.

Claims: a claimed row is one whose `next_attempt_at` was moved past the copy's whole time limit
by a conditional UPDATE that only one deliverer can win (PostgreSQL: row locks, SKIP LOCKED;
SQLite: write transactions are serialised). That moved time is the claim's token: the outcome
is stored only while the row still carries it. A deliverer that dies leaves the row to the
next one once that time has passed.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.net.share import COPY_SECONDS, CopyResult, copy_folder, destination
from clipper.storage.tables import Delivery

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

FIRST_RETRY_SECONDS = 10.0
RETRY_FACTOR = 3.0
MAX_RETRY_SECONDS = 1800.0
GIVE_UP_AFTER = timedelta(hours=24)
BATCH = 10
# A claim outlasts the copy's own wall-clock limit by this much, so a live copy is never
# taken over; a dead deliverer's row is free again after limit + margin.
CLAIM_MARGIN_SECONDS = 60.0
ERROR_CHARS = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 10, 30, 90, ... capped at
    30 min."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * RETRY_FACTOR ** max(0, attempts - 1))


def queue_delivery(ctx: Context, clip_id: int, package: str | Path, *,
                   session: Session | None = None, now: datetime | None = None) -> int | None:
    """Store a delivery of the package folder `package` when `CLIPPER_SHARE_REMOTE` is set; its
    id (None when delivery is off). With `session`, in that transaction (the export's: the row
    exists exactly when the export is recorded)."""
    template = ctx.settings.share_remote
    if not template:
        return None
    t = now or _utcnow()
    folder = Path(package).resolve()
    day = t.astimezone(ZoneInfo(ctx.settings.timezone)).date().isoformat()
    row = Delivery(clip_id=clip_id, source_path=str(folder),
                   remote_path=destination(template, folder.name, date=day, clip=clip_id),
                   state=PENDING, attempts=0, created_at=t, next_attempt_at=t)
    if session is not None:
        session.add(row)
        session.flush()
        return row.id
    with ctx.db.session() as own:
        own.add(row)
        own.flush()
        return row.id


@dataclass(frozen=True)
class _Claimed:
    id: int
    clip_id: int
    source_path: str
    remote_path: str
    attempts: int
    created_at: datetime
    token: datetime


def _due(now: datetime) -> tuple[Any, ...]:
    return (Delivery.state == PENDING, Delivery.next_attempt_at <= now)


def _claim_one(ctx: Context, now: datetime, timeout: float,
               skip: set[int]) -> _Claimed | None:
    """Take the most overdue row for this deliverer alone (None when none is due).

    The UPDATE repeats the "due" test: of two deliverers that picked the same row, the second
    updates nothing (PostgreSQL re-reads the row after the first commits) and tries the next.
    """
    # Random microseconds make the token ours alone even when two deliverers share `now`.
    token = now + timedelta(seconds=timeout + CLAIM_MARGIN_SECONDS,
                            microseconds=secrets.randbelow(1_000_000))
    with ctx.db.session() as session:
        pick = (select(Delivery.id).where(*_due(now))
                .order_by(Delivery.next_attempt_at, Delivery.id).limit(BATCH))
        if skip:
            pick = pick.where(Delivery.id.not_in(skip))
        if ctx.db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        for row_id in session.scalars(pick).all():
            won = session.execute(
                update(Delivery).where(Delivery.id == row_id, *_due(now))
                .values(next_attempt_at=token, attempts=Delivery.attempts + 1)
                .execution_options(synchronize_session=False)).rowcount
            if won:
                row = session.get(Delivery, row_id)
                session.refresh(row)
                return _Claimed(row.id, row.clip_id, row.source_path, row.remote_path,
                                row.attempts, row.created_at, token)
    return None


def _store(ctx: Context, job: _Claimed, values: dict[str, Any]) -> bool:
    """Write `values` to the claimed row if the claim is still ours."""
    with ctx.db.session() as session:
        return bool(session.execute(
            update(Delivery)
            .where(Delivery.id == job.id, Delivery.state == PENDING,
                   Delivery.next_attempt_at == job.token)
            .values(**values).execution_options(synchronize_session=False)).rowcount)


def _record(ctx: Context, job: _Claimed, result: CopyResult, t: datetime) -> str:
    """Store how a copy went; the outcome: delivered, retrying or failed."""
    if result.ok:
        values: dict[str, Any] = {"state": DELIVERED, "delivered_at": t, "last_error": None,
                                  "next_attempt_at": None}
        outcome = DELIVERED
        log.info("clip %d delivered to %s (%d file(s) sent)", job.clip_id, job.remote_path,
                 result.transferred)
    else:
        wait = timedelta(seconds=retry_delay(job.attempts))
        values = {"last_error": result.error[:ERROR_CHARS]}
        if result.permanent or t + wait - job.created_at > GIVE_UP_AFTER:
            values.update(state=FAILED, next_attempt_at=None)
            outcome = FAILED
            log.warning("clip %d: delivery to %s failed after %d attempt(s): %s", job.clip_id,
                        job.remote_path, job.attempts, result.error)
        else:
            values["next_attempt_at"] = t + wait
            outcome = "retrying"
            log.info("clip %d: delivery attempt %d failed, next in %.0f s: %s", job.clip_id,
                     job.attempts, wait.total_seconds(), result.error)
    if not _store(ctx, job, values):  # our claim ran out mid-copy and another deliverer took it
        log.warning("delivery %d: claim lost while copying; the other deliverer's copy stands "
                    "(rclone copy is idempotent)", job.id)
    return outcome


def _release(ctx: Context, job: _Claimed, t: datetime) -> None:
    """Hand a claimed row back untried (the deliverer is stopping): due again at once."""
    _store(ctx, job, {"next_attempt_at": t, "attempts": job.attempts - 1})


def deliver_packages(ctx: Context, *, now: datetime | None = None, limit: int = BATCH,
                     timeout: float = COPY_SECONDS,
                     stop: threading.Event | None = None) -> dict[str, int]:
    """Copy every due package (up to `limit`) to the drive, each copy bounded by `timeout`
    seconds of wall clock; returns how many were delivered, will be retried, failed.

    Safe to run in several processes at once: each row is claimed by one of them. `now`
    (default: the clock) is when this round happens, for tests that move time; `stop` ends the
    round, killing a copy in progress and handing its row back.
    """
    counts = {DELIVERED: 0, "retrying": 0, FAILED: 0}
    done: set[int] = set()
    while len(done) < limit and not (stop is not None and stop.is_set()):
        job = _claim_one(ctx, now or _utcnow(), timeout, done)
        if job is None:
            break
        done.add(job.id)
        # A row's first try sends every file: it may be a re-export whose files changed
        # without changing size. Retries send only what is missing or different.
        result = copy_folder(job.source_path, job.remote_path,
                             config=_config_path(ctx), env=ctx.settings.env or None,
                             timeout=timeout, stop=stop, every_file=job.attempts == 1)
        if stop is not None and stop.is_set() and not result.ok:
            _release(ctx, job, now or _utcnow())
            break
        counts[_record(ctx, job, result, now or _utcnow())] += 1
    return counts


def _config_path(ctx: Context) -> str:
    cfg = ctx.settings.rclone_config
    return str(Path(cfg).expanduser()) if cfg else ""


def deliver_forever(ctx: Context, stop: threading.Event, *, every: float = 2.0) -> None:
    """Deliver due packages every `every` seconds (at once again after a full batch) until
    `stop` is set. Outlives database, network and drive outages."""
    while not stop.is_set():
        full = False
        try:
            counts = deliver_packages(ctx, stop=stop)
            full = sum(counts.values()) >= BATCH
            if any(counts.values()):
                log.info("shared drive: %(delivered)d delivered, %(retrying)d to retry, "
                         "%(failed)d failed", counts)
        except Exception as exc:  # noqa: BLE001 - the loop must keep going; rows wait meanwhile
            log.warning("package delivery failed, trying again: %s", exc)
        if not full:
            stop.wait(every)


class PackageDeliveryLoop(threading.Thread):
    """`deliver_forever` in a thread of its own: `PackageDeliveryLoop(ctx).start()`, later
    `.stop()` (kills a copy in progress; its row is due again at once)."""

    def __init__(self, ctx: Context, *, every: float = 2.0) -> None:
        super().__init__(name="package-deliverer", daemon=True)
        self.ctx, self.every = ctx, every
        self.stopping = threading.Event()

    def run(self) -> None:
        deliver_forever(self.ctx, self.stopping, every=self.every)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask it to stop and wait for it (a copy in progress is killed within a second)."""
        self.stopping.set()
        self.join(timeout)


# An rclone remote's name before its colon (as settings accept it): letters, digits, `_`, `-`,
# `.` and spaces; or `:backend,opt=...` given on the spot.
_REMOTE = re.compile(r"(?:[\w.][\w. -]*|:[^:]*):", re.ASCII)


def split_remote(remote_path: str) -> tuple[str, str]:
    """`teamdrive:Clips/2026-11-30/12-minister` -> ("teamdrive", "Clips/2026-11-30/12-minister")."""
    m = _REMOTE.match(remote_path)
    if m is None:  # not from our settings' check; shown whole rather than guessed at
        return "", remote_path
    return m.group(0)[:-1], remote_path[m.end():]


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    # SQLite hands back naive datetimes: they were stored as UTC.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def delivery_status(session: Session, clip_id: int) -> dict[str, dict[str, Any] | None]:
    """The status object's two delivery keys for a clip.

    `delivered`: null until a package of the clip is on the shared drive, then where the
    latest one went, `{"remote", "path", "at"}` (`at` ISO 8601 UTC). A re-export being copied
    leaves it on the copy already there.
    `delivery`: the latest delivery however it is going (pending, delivered, failed), so the
    clip page can show a copy waiting on the drive or given up: `{"state", "remote", "path",
    "attempts", "error", "at"}`, or null when there was none. `error` is the last failed
    attempt's reason (kept while pending, null once delivered); `at` is null until delivered.
    """
    rows = session.scalars(select(Delivery).where(Delivery.clip_id == clip_id)
                           .order_by(Delivery.id.desc())).all()
    if not rows:
        return {"delivered": None, "delivery": None}
    latest = rows[0]
    remote, path = split_remote(latest.remote_path)
    delivery = {"state": latest.state, "remote": remote, "path": path,
                "attempts": latest.attempts, "error": latest.last_error,
                "at": _iso(latest.delivered_at) if latest.state == DELIVERED else None}
    done = next((r for r in rows if r.state == DELIVERED and r.delivered_at is not None), None)
    delivered = None
    if done is not None:
        remote, path = split_remote(done.remote_path)
        delivered = {"remote": remote, "path": path, "at": _iso(done.delivered_at)}
    return {"delivered": delivered, "delivery": delivery}
