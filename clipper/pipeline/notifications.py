"""Webhook notifications (clip ready, package exported, channel stalled, rota changes) through an
outbox in the database, so that none is lost and none holds up the work it reports.

`notify` only stores a row (in the caller's transaction when given one) and returns at once.
The deliverer (`deliver_due`, run every second by `deliver_forever` / `DeliveryLoop` in
`clipper up`) claims due rows, posts each with one wall-clock deadline per attempt, marks it
delivered on 2xx, and otherwise tries again later with exponential backoff (5 s, 15 s, 45 s, ...
at most 10 min apart) until the hook refuses it for good (4xx other than 408/429) or a day has
passed; then it is marked given up, and the System page shows it.

Delivery is at least once: a deliverer that dies between the hook's 2xx and storing it posts
that message again once its claim runs out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.net.webhook import (
    PostResult,
    channel_stalled_message,
    clip_ready_message,
    package_exported_message,
    post_json,
    safe_host,
)
from clipper.storage.tables import Clip, OutboxMessage

log = logging.getLogger(__name__)

PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"

FIRST_RETRY_SECONDS = 5.0
RETRY_FACTOR = 3.0
MAX_RETRY_SECONDS = 600.0
MAX_RETRY_AFTER_SECONDS = 3600.0  # a hook's own Retry-After is honoured up to this
GIVE_UP_AFTER = timedelta(hours=24)
KEEP_FINISHED = timedelta(days=14)  # delivered and given-up rows, for the System page
BATCH = 10
# A claim lasts as long as posting the whole batch may take, plus this margin; a deliverer that
# dies leaves its rows to the next one after at most that long.
CLAIM_MARGIN_SECONDS = 30.0
ERROR_CHARS = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


def notify(ctx: Context, payload: dict[str, Any], *, session: Session | None = None,
           url: str | None = None, hold: float = 0.0) -> int | None:
    """Store `payload` for the team's webhook (or `url`, a hook of its own checked by the
    caller) and return its outbox id at once (None when no webhook is set, or the payload
    cannot be stored).

    With `session`, the row is written in that transaction: it is sent only if the change it
    reports commits. Without, it is committed on its own, and a database error is logged, not
    raised: a notification must never fail the work it reports.

    `hold` seconds: the message waits that long unless `release` sends it sooner — for a
    message whose last details are filled in just after its change commits (an alert's
    auto-flag); a process that dies in between still sends it, without them.
    """
    url = url or ctx.settings.webhook_url
    if not url:
        return None
    try:
        # Stored as the JSON that will be sent (dates and paths as text), so a value the
        # database's JSON column cannot hold fails here, not in the deliverer.
        body = json.loads(json.dumps(payload, default=str))
    except (TypeError, ValueError) as exc:
        log.warning("notification %r not stored: payload is not JSON (%s)",
                    payload.get("event"), exc)
        return None
    now = _utcnow()
    row = OutboxMessage(event=str(body.get("event") or "message")[:64], url=url, payload=body,
                        state=PENDING, attempts=0, created_at=now,
                        next_attempt_at=now + timedelta(seconds=hold))
    if session is not None:
        session.add(row)
        session.flush()
        return row.id
    try:
        with ctx.db.session() as own:
            own.add(row)
            own.flush()
            return row.id
    except SQLAlchemyError as exc:
        log.warning("notification %s not stored: %s", row.event, exc)
        return None


def release(ctx: Context, message_id: int, update_payload: Callable[[dict[str, Any]], None]
            ) -> bool:
    """Fill in a held message (`notify(..., hold=)`) and make it due now; False (nothing
    changed) when it was already sent or is being sent, or the database refused."""
    try:
        with ctx.db.session() as session:
            row = session.scalars(select(OutboxMessage).where(
                OutboxMessage.id == message_id, OutboxMessage.state == PENDING,
                OutboxMessage.attempts == 0, OutboxMessage.claimed_until.is_(None))
                .with_for_update()).first()
            if row is None:
                return False
            payload = dict(row.payload)
            update_payload(payload)
            row.payload, row.next_attempt_at = payload, _utcnow()
            return True
    except SQLAlchemyError as exc:
        log.warning("notification %s not released: %s", message_id, exc)
        return False


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try after `attempts` failed ones: 5, 15, 45, ... capped at 10 min,
    or longer when the hook asked for it (Retry-After)."""
    wait = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * RETRY_FACTOR ** max(0, attempts - 1))
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return wait


@dataclass(frozen=True)
class _Claimed:
    id: int
    event: str
    url: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def _due(now: datetime) -> tuple[Any, ...]:
    return (OutboxMessage.state == PENDING, OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now))


def _claim(ctx: Context, token: str, now: datetime, limit: int,
           timeout: float) -> list[_Claimed]:
    """Take up to `limit` due rows for this deliverer alone.

    PostgreSQL: the candidates are locked with SKIP LOCKED, so a second deliverer passes over
    them instead of waiting. SQLite: every write transaction begins IMMEDIATE, so claims are
    serialised. Either way the UPDATE repeats the "due and unclaimed" test, and only rows that
    now carry our token are ours.
    """
    with ctx.db.session() as session:
        pick = (select(OutboxMessage.id).where(*_due(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit))
        if ctx.db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = list(session.scalars(pick))
        if not ids:
            return []
        until = now + timedelta(seconds=timeout * len(ids) + CLAIM_MARGIN_SECONDS)
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids), *_due(now))
                        .values(claimed_until=until, claim_token=token)
                        .execution_options(synchronize_session=False))
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.event, OutboxMessage.url,
                   OutboxMessage.payload, OutboxMessage.attempts, OutboxMessage.created_at)
            .where(OutboxMessage.claim_token == token).order_by(OutboxMessage.id)).all()
    return [_Claimed(*row) for row in rows]


def _release(ctx: Context, token: str) -> None:
    """Give back claimed rows not posted (the deliverer is stopping): due again at once."""
    with ctx.db.session() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.claim_token == token)
                        .values(claimed_until=None, claim_token=None)
                        .execution_options(synchronize_session=False))


def _record(ctx: Context, token: str, msg: _Claimed, result: PostResult, t: datetime) -> str:
    """Store how an attempt went; the outcome: delivered, retrying or given_up."""
    attempts = msg.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_attempt_at": t,
                              "claimed_until": None, "claim_token": None}
    if result.ok:
        values.update(state=DELIVERED, delivered_at=t)
        outcome = "delivered"
    else:
        values["last_error"] = result.error[:ERROR_CHARS]
        wait = timedelta(seconds=retry_delay(attempts, result.retry_after))
        if result.permanent or t + wait - msg.created_at > GIVE_UP_AFTER:
            values["state"] = GIVEN_UP
            outcome = "given_up"
            log.warning("notification %d (%s) to %s given up after %d attempt(s): %s", msg.id,
                        msg.event, safe_host(msg.url), attempts, result.error)
        else:
            values["next_attempt_at"] = t + wait
            outcome = "retrying"
            log.info("notification %d (%s) attempt %d failed, next in %.0f s: %s", msg.id,
                     msg.event, attempts, wait.total_seconds(), result.error)
    with ctx.db.session() as session:
        stored = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == msg.id, OutboxMessage.claim_token == token)
            .values(**values).execution_options(synchronize_session=False)).rowcount
    if not stored:  # our claim ran out mid-post and another deliverer took the row
        log.warning("notification %d: claim lost while posting; it may be sent twice", msg.id)
    return outcome


def deliver_due(ctx: Context, *, now: datetime | None = None, limit: int = BATCH,
                timeout: float | None = None,
                stop: threading.Event | None = None) -> dict[str, int]:
    """Post every due message (up to `limit`), each attempt bounded by `timeout` seconds of wall
    clock (default: the webhook_timeout setting); returns how many were delivered, will be
    retried, were given up.

    Safe to run in several processes at once: each message is claimed by one of them. `now`
    (default: the clock) is when this round happens, for tests that move time; `stop` ends
    the round early, handing the messages not yet posted back.
    """
    counts = {"delivered": 0, "retrying": 0, "given_up": 0}
    timeout = ctx.settings.webhook_timeout if timeout is None else timeout
    token = uuid.uuid4().hex
    claimed = _claim(ctx, token, now or _utcnow(), limit, timeout)
    try:
        for msg in claimed:
            if stop is not None and stop.is_set():
                break
            # The admin's team hook is trusted as configured; a watch's own hook, given by a
            # user, may only reach public (or allowlisted) addresses, checked as it connects.
            vetted = None if msg.url == ctx.settings.webhook_url else ctx.settings.url_allowlist
            result = post_json(msg.url, msg.payload, timeout=timeout, allowlist=vetted)
            counts[_record(ctx, token, msg, result, now or _utcnow())] += 1
    finally:
        if sum(counts.values()) < len(claimed):
            _release(ctx, token)
    return counts


def prune_outbox(ctx: Context, *, now: datetime | None = None,
                 keep: timedelta = KEEP_FINISHED) -> int:
    """Delete delivered and given-up messages older than `keep`; how many went."""
    cutoff = (now or _utcnow()) - keep
    with ctx.db.session() as session:
        return session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.state.in_((DELIVERED, GIVEN_UP)),
                   OutboxMessage.last_attempt_at < cutoff)
            .execution_options(synchronize_session=False)).rowcount


def deliver_forever(ctx: Context, stop: threading.Event, *, every: float = 1.0,
                    limit: int = BATCH) -> None:
    """Deliver due messages every `every` seconds (at once again after a full batch) and prune
    old ones hourly, until `stop` is set. Outlives database and network outages."""
    next_prune = 0.0
    while not stop.is_set():
        full = False
        try:
            counts = deliver_due(ctx, limit=limit, stop=stop)
            full = sum(counts.values()) >= limit
            if any(counts.values()):
                log.info("outbox: %(delivered)d delivered, %(retrying)d to retry, "
                         "%(given_up)d given up", counts)
            if time.monotonic() >= next_prune:
                prune_outbox(ctx)
                next_prune = time.monotonic() + 3600
        except Exception as exc:  # noqa: BLE001 - the loop must keep going; rows wait meanwhile
            log.warning("outbox delivery failed, trying again: %s", exc)
        if not full:
            stop.wait(every)


class DeliveryLoop(threading.Thread):
    """`deliver_forever` in a thread of its own: `DeliveryLoop(ctx).start()`, later `.stop()`."""

    def __init__(self, ctx: Context, *, every: float = 1.0) -> None:
        super().__init__(name="outbox-deliverer", daemon=True)
        self.ctx, self.every = ctx, every
        self.stopping = threading.Event()

    def run(self) -> None:
        deliver_forever(self.ctx, self.stopping, every=self.every)

    def stop(self, timeout: float | None = None) -> None:
        """Ask it to stop and wait for the attempt in progress (bounded by its deadline)."""
        self.stopping.set()
        self.join(self.ctx.settings.webhook_timeout + 5.0 if timeout is None else timeout)


def outbox_summary(ctx: Context, *, now: datetime | None = None,
                   failures: int = 5) -> dict[str, Any]:
    """Counts for the System page (pending, failing = pending after a failed attempt, given up
    in the last KEEP_FINISHED, delivered in the last hour, the oldest pending message's time)
    and the latest `failures` failed messages still retried or given up."""
    t = now or _utcnow()
    state, attempts = OutboxMessage.state, OutboxMessage.attempts
    with ctx.db.session() as session:
        pending, failing, given_up, oldest = session.execute(select(
            func.count().filter(state == PENDING),
            func.count().filter(state == PENDING, attempts > 0),
            func.count().filter(state == GIVEN_UP),
            func.min(OutboxMessage.created_at).filter(state == PENDING))).one()
        delivered = session.scalar(select(func.count()).where(
            state == DELIVERED, OutboxMessage.delivered_at >= t - timedelta(hours=1)))
        rows = session.scalars(
            select(OutboxMessage)
            .where(state.in_((PENDING, GIVEN_UP)), OutboxMessage.last_error.is_not(None))
            .order_by(OutboxMessage.last_attempt_at.desc(), OutboxMessage.id.desc())
            .limit(failures)).all()
        failed = [{"id": r.id, "event": r.event, "state": r.state, "attempts": r.attempts,
                   "last_error": r.last_error, "created_at": r.created_at,
                   "last_attempt_at": r.last_attempt_at,
                   "next_attempt_at": r.next_attempt_at if r.state == PENDING else None}
                  for r in rows]
    if isinstance(oldest, datetime) and oldest.tzinfo is None:  # func.min skips the column type
        oldest = oldest.replace(tzinfo=UTC)
    elif isinstance(oldest, str):  # SQLite returns the stored text
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=UTC)
    return {"pending": int(pending), "failing": int(failing), "given_up": int(given_up),
            "delivered_last_hour": int(delivered or 0), "oldest_pending_at": oldest,
            "failures": failed}


def _link(ctx: Context, clip_id: int) -> str:
    base = ctx.settings.base_url.rstrip("/")
    return f"{base}/clip?id={clip_id}" if base else f"clipper status {clip_id}"


def _review_blocks(text: str, clip_id: int) -> list[dict[str, Any]]:
    """Slack blocks of a ready clip for the team's review channel: its text, then `Approve` /
    `Reject` buttons whose presses come to the Slack app's interactivity endpoint."""
    def button(action: str, label: str, style: str) -> dict[str, Any]:
        return {"type": "button", "action_id": action, "value": str(clip_id), "style": style,
                "text": {"type": "plain_text", "text": label}}

    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "block_id": f"review-{clip_id}",
             "elements": [button("approve", "Approve", "primary"),
                          button("reject", "Reject", "danger")]}]


def notify_ready(ctx: Context, clip_id: int) -> int | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        notes = [f.note for f in clip.flags if f.note]
        payload = clip_ready_message(clip_id, clip.source.location, notes[0] if notes else "",
                                     _link(ctx, clip_id), start=clip.start, end=clip.end,
                                     urgency=clip.urgency)
    if ctx.settings.slack_signing_secret:
        # Buttons only when the Slack app is set up to receive their presses; `text` stays
        # as it was (Slack shows it in notifications, other hooks read it).
        payload["blocks"] = _review_blocks(payload["text"], clip_id)
    return notify(ctx, payload)


def notify_exported(ctx: Context, clip_id: int, path: str) -> int | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        source = clip.source.location
        notes = [f.note for f in clip.flags if f.note]
    return notify(ctx, package_exported_message(clip_id, source, path, notes[0] if notes else "",
                                                _link(ctx, clip_id)))


def notify_stalled(ctx: Context, channel_name: str, since: float, *,
                   reason: str = "") -> int | None:
    """Tell the team a channel has recorded nothing since `since` (Unix seconds)."""
    when = datetime.fromtimestamp(since, UTC)
    return notify(ctx, channel_stalled_message(channel_name, when.isoformat(),
                                               when.strftime("%Y-%m-%d %H:%M:%S UTC"), reason))
