"""Slack: the /clip slash command, the review buttons, thumbnails for the clips posted back."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from clipper.api.deps import get_ctx
from clipper.api.problems import problem
from clipper.api.slack_command import (
    HELP,
    ChannelClip,
    Help,
    LinkSlack,
    RequestRefused,
    UrlClip,
    command_text,
    parse_command,
    verify_request,
)
from clipper.context import Context
from clipper.errors import ClipperError
from clipper.net.webhook import slack_escape
from clipper.permissions import Actor
from clipper.pipeline.notifications import notify
from clipper.services.slack import (
    actor_for_slack,
    link_slack,
    remember_slack_request,
    slack_flag,
    slack_review,
    slack_thumbnail,
)

log = logging.getLogger(__name__)

# Every request is checked before its body is read as a form: Slack's signature over the raw
# body and timestamp (CLIPPER_SLACK_SIGNING_SECRET), a timestamp within 5 minutes, a signature
# not seen before (a replay); anything else is 401. A command is answered at once, just for the
# person who typed it: the flag is stored and queued (fast), nothing slow happens here; `clipper
# up` posts the clip to the command's response_url when it is ready or failed
# (services.slack.send_slack_replies, through the outbox). The routes are Slack's, not the
# API's clients': they stay out of the OpenAPI schema.
router = APIRouter(tags=["slack"])

#: Slack's own requests are a few kilobytes; a body larger than this is refused unread.
MAX_BODY_BYTES = 256 * 1024
NOT_LINKED = ("Your Slack account is not linked to Clipper yet. Open the dashboard's *Account* "
              "page, press *Link Slack*, and type the command it shows here "
              "(`/clip link CODE`).")


class _Refused(Exception):
    """The request is not Slack's (or too big): answered with `status`, nothing done."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _refusal(exc: _Refused) -> JSONResponse:
    return problem(exc.status, exc.detail, kind="slack-refused" if exc.status == 401 else None,
                   hint="Slack signs its requests with the app's signing secret "
                        "(CLIPPER_SLACK_SIGNING_SECRET)." if exc.status == 401 else None)


async def _read_body(request: Request) -> bytes:
    """The raw body, refused past MAX_BODY_BYTES without reading the rest."""
    size = request.headers.get("content-length")
    if size and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise _Refused(413, "The request is larger than any Slack sends.")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise _Refused(413, "The request is larger than any Slack sends.")
        chunks.append(chunk)
    return b"".join(chunks)


def _check(ctx: Context, request: Request, body: bytes) -> dict[str, list[str]]:
    """Slack's signature, a fresh timestamp and no replay, then the form; _Refused otherwise.
    (Runs in a worker thread: the replay guard writes to the database.)"""
    signature = request.headers.get("x-slack-signature")
    try:
        verify_request(ctx.settings.slack_signing_secret,
                       request.headers.get("x-slack-request-timestamp"), body, signature,
                       now=time.time())
    except RequestRefused as exc:
        log.info("slack: refused a request from %s: %s",
                 request.client.host if request.client else "?", exc)
        raise _Refused(401, f"Not a valid Slack request: {exc}.") from None
    if not remember_slack_request(ctx, signature or ""):  # verified: never empty here
        log.warning("slack: refused a replayed request")
        raise _Refused(401, "Not a valid Slack request: it was received before (a replay).")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "The request is not a form.") from None


def _field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


def _say(exc: ClipperError) -> str:
    """A refusal in Slack words: the message, and how to put it right."""
    return slack_escape(exc.message) + (f"\n_{slack_escape(exc.hint)}_" if exc.hint else "")


# ---- /clip ------------------------------------------------------------------------------------

@router.post("/slack/commands", include_in_schema=False)
async def slash_command(request: Request) -> Response:
    """Slack's `/clip` command (form-encoded): an acknowledgement just for the person who
    typed it, within Slack's 3 seconds."""
    try:
        body = await _read_body(request)
        # In a worker thread, as everything touching the database: the first use builds the
        # Context (and migrates), and the replay guard writes.
        ctx = await run_in_threadpool(get_ctx, request)
        form = await run_in_threadpool(_check, ctx, request, body)
    except _Refused as exc:
        return _refusal(exc)
    answer = await run_in_threadpool(_command, ctx, form)
    return JSONResponse(answer)


def _command(ctx: Context, form: dict[str, list[str]]) -> dict[str, Any]:
    team, user = _field(form, "team_id"), _field(form, "user_id")
    try:
        command = parse_command(_field(form, "text"))
        if isinstance(command, Help):
            return _ephemeral(HELP)
        if isinstance(command, LinkSlack):
            actor = link_slack(ctx, team, user, command.code)
            return _ephemeral(f"Linked: your flags from Slack are now filed as *{actor.name}* "
                              f"({actor.role}). Try `/clip help`.")
        actor = actor_for_slack(ctx, team, user)
        if actor is None:
            return _ephemeral(NOT_LINKED)
        return _ephemeral(_flag(ctx, actor, command, _field(form, "response_url")))
    except ClipperError as exc:
        return _ephemeral(_say(exc))


def _flag(ctx: Context, actor: Actor, command: ChannelClip | UrlClip, response_url: str) -> str:
    if isinstance(command, ChannelClip):
        result = slack_flag(ctx, actor, response_url, channel=command.channel,
                            last=command.last, start=command.start, end=command.end,
                            note=command.note)
    else:
        result = slack_flag(ctx, actor, response_url, url=command.url, start=command.start,
                            end=command.end, note=command.note)
    joined = " (joined the same moment's clip)" if result.merged else ""
    return (f"Flag {result.flag_id} filed as {slack_escape(actor.name)}: clip {result.clip_id}"
            f"{joined}, {result.status}. `/clip {slack_escape(command_text(command))}`\n"
            "I'll post the clip here when it is ready, or say why if it fails.")


# ---- Approve / Reject -------------------------------------------------------------------------

@router.post("/slack/interactions", include_in_schema=False)
# The first release's path: an app set up with it keeps working.
@router.post("/slack/interactivity", include_in_schema=False)
async def interactivity(request: Request) -> Response:
    """A press of `Approve` or `Reject` under a ready clip in the review channel (a `payload`
    form field holding JSON): acts as the linked Clipper user, answers with the updated
    message (also posted to the press's `response_url`, which is what Slack shows)."""
    try:
        body = await _read_body(request)
        ctx = await run_in_threadpool(get_ctx, request)
        form = await run_in_threadpool(_check, ctx, request, body)
        payload = _payload(form)
    except _Refused as exc:
        return _refusal(exc)
    answer = await run_in_threadpool(_press, ctx, payload)
    return JSONResponse(answer)


def _payload(form: dict[str, list[str]]) -> dict[str, Any]:
    try:
        payload = json.loads(_field(form, "payload"))
    except ValueError:
        raise _Refused(400, "The request has no interaction payload.") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "The request has no interaction payload.")
    return payload


def _press(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    actions = payload.get("actions") if isinstance(payload.get("actions"), list) else []
    action = actions[0] if actions and isinstance(actions[0], dict) else {}
    name, value = str(action.get("action_id") or ""), str(action.get("value") or "")
    response_url = str(payload.get("response_url") or "")
    if payload.get("type") != "block_actions" or name not in ("approve", "reject"):
        return _answer(ctx, response_url, _ephemeral("Clipper does not know that button."))
    actor = actor_for_slack(ctx, str(team.get("id") or user.get("team_id") or ""),
                            str(user.get("id") or ""))
    if actor is None:
        return _answer(ctx, response_url, _ephemeral(NOT_LINKED))
    if not value.isdigit():
        return _answer(ctx, response_url, _ephemeral("That button names no clip."))
    try:
        done = slack_review(ctx, actor, name, int(value))
    except ClipperError as exc:
        return _answer(ctx, response_url,
                       {**_ephemeral(_say(exc)), "replace_original": False})
    verb = "Approved" if name == "approve" else "Rejected"
    note = (f"{verb} by {slack_escape(actor.name)} in Slack — clip {done['clip_id']} is "
            f"{done['status']}.")
    return _answer(ctx, response_url, _updated(payload, note))


def _updated(payload: dict[str, Any], note: str) -> dict[str, Any]:
    """The pressed message with its buttons replaced by who did what."""
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    blocks = message.get("blocks") if isinstance(message.get("blocks"), list) else []
    kept = [b for b in blocks if isinstance(b, dict) and b.get("type") != "actions"]
    text = str(message.get("text") or "")
    return {"replace_original": True, "text": f"{text}\n{note}".strip(),
            "blocks": [*kept, {"type": "context",
                               "elements": [{"type": "mrkdwn", "text": note}]}]}


def _answer(ctx: Context, response_url: str, message: dict[str, Any]) -> dict[str, Any]:
    """Answer a press: Slack shows what is posted to its response_url (queued in the outbox,
    sent within a second by `clipper up`), and the same is the HTTP answer."""
    if response_url.lower().startswith(("https://", "http://")):
        notify(ctx, {"event": "slack.review", **message}, url=response_url)
    return message


# ---- thumbnails for Slack's image blocks ------------------------------------------------------

@router.get("/slack/thumbnails/{clip_id}/{token}.jpg", include_in_schema=False)
async def thumbnail(request: Request, clip_id: int, token: str) -> Response:
    """A clip's thumbnail for Slack, which fetches images without logging in: the address
    carries an HMAC of the clip id under the signing secret instead."""
    ctx = await run_in_threadpool(get_ctx, request)
    path = await run_in_threadpool(slack_thumbnail, ctx, clip_id, token)
    if path is None:
        return problem(404, "No such thumbnail.")
    return FileResponse(path, media_type="image/jpeg")
