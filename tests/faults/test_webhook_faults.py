"""The team's webhook down, slow (its answer dripped one byte a second) or answering 500 while
`clipper up` runs, flags are filed and their clips become ready: the work never waits for the
hook, each clip-ready message waits in the outbox (failing, retried with backoff, none given
up), and once the hook works again the stack's own deliverer sends every one of them, once.

The outbox's backoff (5 s, 15 s, 45 s ... after failed attempts) runs on the real clock here:
the hook recovers as soon as every message has failed once, and the wait for delivery is bounded
by the latest retry the rows were given, plus the drip's attempt deadlines (CLIPPER_WEBHOOK_TIMEOUT,
2 s here: the deliverer posts one message at a time, and each dripped answer holds it that long)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from faultparts import outbox_rows, unix
from polling import poll

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.notifications import (
    DELIVERED,
    GIVEN_UP,
    PENDING,
    outbox_summary,
    retry_delay,
)
from clipper.services.flags import file_flag
from clipper.settings import Settings
from testmedia.faults import all_done, check_invariants, problems, stack_env, statuses

pytestmark = [pytest.mark.faults, pytest.mark.services, pytest.mark.slow]
ANN = Actor.operator("ann")
#: Three moments of the 30 s broadcast, one clip (and one clip-ready message) each.
MOMENTS = ((1.0, 7.0), (10.0, 16.0), (20.0, 26.0))
#: Each post's deadline: a dripped answer is abandoned after it.
ATTEMPT_SECONDS = 2.0
#: What a failed attempt in each fault leaves as the message's last error.
ERRORS = {"down": "Connection refused", "500": "HTTP 500", "drip": "timed out"}


@pytest.mark.parametrize("fault", ["down", "drip", "500"])
def test_clip_ready_messages_wait_out_a_broken_hook_and_are_sent_once_it_works(
        fault, tmp_path, broadcast, private_redis, webhook, up, stack_ctx):
    webhook.set(fault)
    stack = up(stack_env(tmp_path / "home", redis_url=private_redis.url(),
                         CLIPPER_WEBHOOK_URL=webhook.url,
                         CLIPPER_WEBHOOK_TIMEOUT=str(ATTEMPT_SECONDS)))
    ctx = Context.build(Settings.from_env(stack.env))
    stack_ctx.append(ctx)
    filed = time.monotonic()
    clips = [file_flag(ctx, ANN, str(broadcast), s, e, note=f"moment at {s:g}").clip_id
             for s, e in MOMENTS]
    assert len(set(clips)) == len(MOMENTS)

    # The clips are made as if no hook existed: a broken hook holds nothing up.
    poll(lambda: all_done(ctx, len(clips)), 90, "every clip ready")
    ready_in = time.monotonic() - filed

    def failed_once() -> list[Any] | None:
        rows = outbox_rows(ctx)
        return rows if len(rows) == len(clips) and all(r.attempts for r in rows) else None
    # One drip attempt lasts ATTEMPT_SECONDS, and the deliverer posts one message at a time.
    rows = poll(failed_once, 30 + len(clips) * ATTEMPT_SECONDS,
                "every clip-ready message tried once")
    assert sorted(r.payload["clip_id"] for r in rows) == sorted(clips)
    assert {r.event for r in rows} == {"clip.ready"}
    assert {r.state for r in rows} == {PENDING}, [(r.state, r.last_error) for r in rows]
    assert all(ERRORS[fault] in (r.last_error or "") for r in rows), [r.last_error for r in rows]
    for r in rows:  # each retry waits out the backoff after its failed attempt (5 s, 15 s ...)
        waits = unix(r.next_attempt_at) - unix(r.last_attempt_at)
        assert abs(waits - retry_delay(r.attempts)) < 0.01, (r.attempts, waits)
    summary = outbox_summary(ctx)
    assert (summary["pending"], summary["failing"], summary["given_up"]) == (
        len(clips), len(clips), 0)
    assert webhook.delivered == []
    if fault != "down":  # it did reach the hook, which answered badly
        assert {b["clip_id"] for b in webhook.tried(fault)} == set(clips)

    webhook.set("200")  # the hook is back
    back = time.monotonic()
    latest = max(unix(r.next_attempt_at) for r in outbox_rows(ctx))
    # Due at the latest retry already scheduled; a drip under way may still hold the
    # deliverer for one attempt's deadline per message first.
    wait = latest - time.time() + len(clips) * ATTEMPT_SECONDS + 10
    poll(lambda: {r.state for r in outbox_rows(ctx)} == {DELIVERED}, wait,
         "every clip-ready message delivered")
    delivered_in = time.monotonic() - back

    # The hook notes a delivery just after its answer is sent, and the sender may have marked
    # the row delivered before the hook's thread got to it: wait for the note.
    poll(lambda: len(webhook.delivered) >= len(clips), 10, "the hook to note every delivery")
    sent = [b["clip_id"] for b in webhook.delivered]
    assert sorted(sent) == sorted(clips), sent  # each clip's message, exactly once
    rows = outbox_rows(ctx)
    assert all(r.attempts >= 2 and r.delivered_at is not None for r in rows)
    assert not any(r.state == GIVEN_UP for r in rows)
    assert set(statuses(ctx).values()) == {"ready"}
    inv = check_invariants(ctx)
    assert not problems(inv), inv
    print(f"{fault}: clips ready in {ready_in:.1f} s; delivered {delivered_in:.1f} s after the "
          f"hook came back; attempts {[r.attempts for r in rows]}")
