"""The webhook outbox as the System page shows it: what waits, what keeps failing, what was
given up (admins only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clipper.context import Context
from clipper.permissions import Actor, requires
from clipper.pipeline.notifications import outbox_summary


@dataclass(frozen=True)
class OutboxStatus:
    """Counts of webhook notifications, and the latest failures.

    `pending`: not delivered yet (retries included); `failing`: pending after at least one
    failed attempt; `given_up`: refused by the hook or undelivered for a day (kept 14 days);
    `delivered_last_hour`; `oldest_pending_at`: when the oldest pending one was written.
    `failures`: dicts with id, event, state (pending | given_up), attempts, last_error,
    created_at, last_attempt_at, next_attempt_at (None once given up), newest first.
    """

    pending: int
    failing: int
    given_up: int
    delivered_last_hour: int
    oldest_pending_at: datetime | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)


@requires("admin")
def outbox_status(ctx: Context, actor: Actor, *, now: datetime | None = None,
                  failures: int = 5) -> OutboxStatus:
    """The outbox's counts and its `failures` latest failed messages."""
    return OutboxStatus(**outbox_summary(ctx, now=now, failures=failures))
