"""Feeds clients keep open or poll: alerts as server-sent events, a person's rota as iCalendar."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from clipper.api.deps import ApiState, CurrentActor, state
from clipper.api.guard import bearer_secret
from clipper.api.problems import ApiProblem, problem_responses
from clipper.context import Context
from clipper.errors import NotFound
from clipper.permissions import Actor, require
from clipper.services import rota, watches
from clipper.services.tokens import MAX_TOKEN, actor_for_token

#: How often an open stream looks for new alerts, in seconds.
POLL_SECONDS = 1.0
#: A comment line this often keeps proxies and load balancers from closing an idle stream.
HEARTBEAT_SECONDS = 15.0
#: How far back (by air time) a stream looks for alerts raised since it last looked: the live
#: transcriber raises an alert a little after the words were said, never this late.
LOOKBACK_SECONDS = 3600.0
#: What a reconnecting EventSource waits, in milliseconds (the `retry:` field).
RETRY_MS = 3000
#: How often an open stream checks its token still stands (revoked, disabled, new role).
RECHECK_SECONDS = 15.0
#: Event streams one person may hold open at once: each costs a query a second.
MAX_STREAMS = 4

#: Mounted beside `routes.router`, at /api and (out of the schema) /api/v1.
router = APIRouter()


def _new_alerts(ctx: Context, actor: Actor, after: int) -> list[dict[str, Any]]:
    """Alerts the actor may see with ids above `after`, oldest first (read with the same
    service, and the same scoping, as the list)."""
    rows = watches.list_alerts(ctx, actor, since=time.time() - LOOKBACK_SECONDS,
                               limit=watches.MAX_ALERTS)
    return sorted((a for a in rows if a["id"] > after), key=lambda a: a["id"])


def _event(alert: dict[str, Any]) -> str:
    return f"id: {alert['id']}\nevent: alert\ndata: {json.dumps(alert, default=str)}\n\n"


class StreamSlot:
    """One of a person's MAX_STREAMS open streams, given back exactly once however the stream
    ends (the generator's own end, or after the response if it never started)."""

    def __init__(self, st: ApiState, who: str) -> None:
        self.st, self.who, self.held = st, who, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.st.close_stream(self.who)


async def _stream(st: ApiState, ctx: Context, secret: str, actor: Actor, after: int | None,
                  slot: StreamSlot) -> AsyncIterator[str]:
    try:
        if after is None:
            # A new subscriber: alerts from now on (the list endpoint has the earlier ones).
            current = await run_in_threadpool(_new_alerts, ctx, actor, 0)
            after = max((a["id"] for a in current), default=0)
        # The first bytes at once: the client knows it is subscribed before anything happens.
        yield f"retry: {RETRY_MS}\n: subscribed\n\n"
        quiet_since = checked = time.monotonic()
        # No disconnect check here: Starlette cancels this generator when the client goes (it
        # listens for the disconnect itself), and a second listener would steal its messages.
        while not st.stopping.is_set():
            if time.monotonic() - checked >= RECHECK_SECONDS:
                # A revoked token, a disabled account or a new role takes effect on open
                # streams too, not only on the next request.
                checked = time.monotonic()
                fresh = await run_in_threadpool(actor_for_token, ctx, secret, "api")
                if fresh is None or not fresh.can("view_alerts"):
                    return
                actor = fresh
            for alert in await run_in_threadpool(_new_alerts, ctx, actor, after):
                after = max(after, alert["id"])
                quiet_since = time.monotonic()
                yield _event(alert)
            if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)
    finally:
        slot.release()


@router.get("/alerts/stream", tags=["alerts"], response_class=StreamingResponse,
            summary="New alerts as server-sent events",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: alert` with the alert as JSON in `data`, "
                                            "its id in `id`; a `: keepalive` comment every 15 s."},
                       **problem_responses(401, 403, 422, 429)})
def alerts_stream(request: Request, actor: CurrentActor,
                  last_event_id: Annotated[int | None, Header(ge=0, le=2**31 - 1)] = None
                  ) -> StreamingResponse:
    """Each new alert the caller may see (as in /alerts) as it is raised, until the client
    goes. A reconnecting client that sends `Last-Event-ID` gets what it missed. At most
    MAX_STREAMS open at once per person."""
    require(actor, "view_alerts")
    st = state(request)
    if not st.open_stream(actor.name, MAX_STREAMS):
        raise ApiProblem(429, "rate-limited", "Too many streams",
                         f"{actor.name} already has {MAX_STREAMS} alert streams open.",
                         headers={"Retry-After": str(int(HEARTBEAT_SECONDS))},
                         hint="Close one, or share one stream between your tools.")
    slot = StreamSlot(st, actor.name)
    secret = bearer_secret(request.headers) or ""
    return StreamingResponse(_stream(st, st.ctx(), secret, actor, last_event_id, slot),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                             background=BackgroundTask(slot.release))


@router.get("/calendar/{token}.ics", tags=["rota"], response_class=Response,
            summary="A person's shifts as a subscribable iCalendar feed (private URL)",
            responses={200: {"content": {"text/calendar": {}},
                             "description": "RFC 5545; one stable UID per shift."},
                       **problem_responses(404, 422, 429)})
def calendar_feed(request: Request,
                  token: Annotated[str, Path(max_length=MAX_TOKEN,
                                             description="A calendar token (not an API "
                                                         "token).")]) -> Response:
    """No Authorization header (calendar apps send none): the token in the URL is the key, and
    reads only its owner's shifts. Revoking it ends the feed (404, like any unknown one)."""
    ctx = state(request).ctx()
    actor = actor_for_token(ctx, token, "calendar")
    if actor is None:
        raise NotFound("There is no such calendar.",
                       "Make a new calendar link on the dashboard's Account page.")
    return Response(rota.ical(ctx, actor, actor.name), media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300"})
