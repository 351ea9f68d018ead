"""The Slack app's services: link codes, who a Slack user is, /clip flags and replies, reviews."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clipper.context import Context
from clipper.errors import ClipperError, InvalidInput, NotFound
from clipper.net.webhook import slack_escape, slack_link
from clipper.permissions import ROLES, Actor, requires
from clipper.pipeline.lifecycle import REVIEWED, log_event
from clipper.pipeline.notifications import notify
from clipper.services.flags import FlagResult, file_flag, flag_channel
from clipper.services.review import approve, claim, my_claim, reject, release
from clipper.services.users import time_zones
from clipper.settings import Settings
from clipper.storage.tables import (
    Clip,
    SlackLink,
    SlackLinkCode,
    SlackReply,
    SlackSeen,
    TranscriptRow,
    User,
    utcnow,
)
from clipper.timecode import format_timecode

#: A link code works once, for this long after it is shown.
LINK_CODE_MINUTES = 10
#: Unambiguous letters and digits (no I/1, L, O/0), so a code read off a screen is typed right.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
#: Signatures of accepted requests are kept this long: a request is accepted only within 5
#: minutes of its timestamp either way, so a replay is impossible after 10.
SEEN_MINUTES = 10
#: Slack takes posts to a command's response_url for 30 minutes (5 at most); later ones are
#: refused, so a reply whose clip took longer is not posted (its flag shows in My flags).
RESPONSE_URL_MINUTES = 30
#: Clip statuses whose reply is due: ready for review or past it, failed, rejected.
DONE = frozenset({"ready", "failed", "rejected"}) | REVIEWED
WAITING, SENT, FAILED = "waiting", "sent", "failed"
EXCERPT_CHARS = 280
REVIEW_ACTIONS = ("approve", "reject")
#: The reason a clip rejected with Slack's button carries (the button has no text box).
SLACK_REJECT_REASON = "Rejected in Slack."


# ---- link codes and who a Slack user is -------------------------------------------------------

def _code_hash(code: str) -> str:
    """The stored form of a link code: sha256 of its letters and digits, upper-cased (a code
    is random and lives 10 minutes: no salt or slow hash needed)."""
    letters = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    return hashlib.sha256(letters.encode()).hexdigest()


@requires("own_account")
def create_link_code(ctx: Context, actor: Actor) -> dict[str, Any]:
    """A one-time code that links a Slack account to the actor's (`/clip link CODE` in
    Slack): `{"code", "expires_at", "command"}`. Shown once, stored hashed, good for
    LINK_CODE_MINUTES; the actor's earlier codes stop working."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    code = f"{raw[:4]}-{raw[4:]}"
    now = utcnow()
    expires = now + timedelta(minutes=LINK_CODE_MINUTES)
    with ctx.db.session() as session:
        user = _user(session, actor.name)
        session.execute(delete(SlackLinkCode).where((SlackLinkCode.user_id == user.id)
                                                    | (SlackLinkCode.expires_at <= now)))
        session.add(SlackLinkCode(code_hash=_code_hash(code), user_id=user.id,
                                  expires_at=expires))
        log_event(session, actor.name, "slack.code", None, {"user": actor.name})
    return {"code": code, "expires_at": expires.isoformat(), "command": f"/clip link {code}"}


@requires("own_account")
def my_slack_links(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """The Slack accounts linked to the actor: `{"team", "user", "linked_at"}`, oldest first."""
    with ctx.db.read() as session:
        rows = session.scalars(select(SlackLink).join(User, User.id == SlackLink.user_id)
                               .where(User.name == actor.name).order_by(SlackLink.linked_at))
        return [{"team": r.slack_team, "user": r.slack_user, "linked_at": r.linked_at.isoformat()}
                for r in rows]


@requires("own_account")
def unlink_my_slack(ctx: Context, actor: Actor) -> int:
    """Unlink every Slack account linked to the actor (a lost phone, a left workspace);
    how many were."""
    with ctx.db.session() as session:
        user = _user(session, actor.name)
        gone = session.execute(delete(SlackLink).where(SlackLink.user_id == user.id)
                               .execution_options(synchronize_session=False)).rowcount
        if gone:
            log_event(session, actor.name, "slack.unlinked", None, {"links": gone})
        return gone


def link_slack(ctx: Context, team: str, user: str, code: str) -> Actor:
    """Link Slack user `user` of workspace `team` to the Clipper account whose code this is,
    using the code up; returns who they now act as. Like a login, this establishes the actor,
    so it takes none (the request was verified as Slack's first). InvalidInput for an unknown,
    used or expired code; a Slack account linked before is linked anew."""
    team, user = _slack_id(team, "team"), _slack_id(user, "user")
    now = utcnow()
    with ctx.db.session() as session:
        # Locked, so two uses of one code at once link once: the second finds it gone.
        row = session.get(SlackLinkCode, _code_hash(code), with_for_update=True)
        person = session.get(User, row.user_id) if row and row.expires_at > now else None
        if person is None or person.disabled or person.role not in ROLES:
            raise InvalidInput("That link code is unknown, used or expired.",
                               "Get a new one from the dashboard's Account page (Link Slack); "
                               f"codes work once, for {LINK_CODE_MINUTES} minutes.")
        session.delete(row)
        link = session.get(SlackLink, (team, user))
        if link is None:
            session.add(SlackLink(slack_team=team, slack_user=user, user_id=person.id,
                                  linked_at=now))
        else:
            link.user_id, link.linked_at = person.id, now
        log_event(session, person.name, "slack.linked", None, {"team": team, "user": user})
        return Actor(person.name, person.role)


def actor_for_slack(ctx: Context, team: str, user: str) -> Actor | None:
    """The Clipper person Slack user `user` of `team` acts as, with their current role; None
    when not linked (or the account is disabled). Establishes the actor, like a login."""
    with ctx.db.read() as session:
        found = session.execute(
            select(User.name, User.role, User.disabled).join(SlackLink,
                                                              SlackLink.user_id == User.id)
            .where(SlackLink.slack_team == (team or ""), SlackLink.slack_user == (user or ""))
        ).first()
    # Only account roles: a row saying "operator" (edited by hand) gets nothing.
    if found is None or found.disabled or found.role not in ROLES:
        return None
    return Actor(found.name, found.role)


def remember_slack_request(ctx: Context, signature: str, *, now: datetime | None = None) -> bool:
    """Record a verified request's signature; False when it was seen before (a replay).
    Signatures older than SEEN_MINUTES are forgotten on the way."""
    now = now or utcnow()
    try:
        with ctx.db.session() as session:
            session.execute(delete(SlackSeen)
                            .where(SlackSeen.seen_at < now - timedelta(minutes=SEEN_MINUTES))
                            .execution_options(synchronize_session=False))
            session.add(SlackSeen(signature=signature[:128], seen_at=now))
    except IntegrityError:  # the primary key: this signature was stored already
        return False
    return True


def _slack_id(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 64:
        raise InvalidInput(f"Slack sent no usable {what} id.")
    return value


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"No user {name!r}.", "Slack links belong to dashboard accounts.")
    return user


# ---- /clip ------------------------------------------------------------------------------------

@requires("flag")
def slack_flag(ctx: Context, actor: Actor, response_url: str, *, channel: str | None = None,
               url: str | None = None, start: str | float | None = None,
               end: str | float | None = None, last: float | None = None,
               note: str = "") -> FlagResult:
    """File the actor's `/clip` flag through the usual services (their role checks and
    validation), then remember to post the clip to the command's `response_url` when it is
    ready or failed. A channel's wall-clock times are read in the actor's own time zone."""
    if not (response_url or "").lower().startswith(("https://", "http://")):
        raise InvalidInput("Slack sent no address to answer to.")
    if channel:
        result = flag_channel(ctx, actor, channel, start=start, end=end, last=last,
                              tz=_zone_of(ctx, actor), note=note)
    elif url:
        result = file_flag(ctx, actor, url, start if start is not None else "",
                           end if end is not None else "", note=note)
    else:
        raise InvalidInput("Say which channel or URL to clip.")
    with ctx.db.session() as session:
        session.add(SlackReply(flag_id=result.flag_id, clip_id=result.clip_id,
                               response_url=response_url, state=WAITING, created_at=utcnow()))
    return result


def _zone_of(ctx: Context, actor: Actor) -> str:
    with ctx.db.read() as session:
        zone = session.scalars(select(User.timezone).where(User.name == actor.name)).first()
    return zone if zone in time_zones() else ctx.settings.timezone


@requires("approve")
def slack_review(ctx: Context, actor: Actor, action: str, clip_id: int) -> dict[str, Any]:
    """Approve (render all shapes, as the dashboard's defaults) or reject a ready clip from the
    review channel's buttons: claimed for the actor first, as on the Review page, so someone
    reviewing it there is not overruled. `{"clip_id", "status", "by"}`."""
    if action not in REVIEW_ACTIONS:
        raise InvalidInput(f"Unknown review action {action!r}.")
    held = my_claim(ctx, actor) == clip_id
    claim(ctx, actor, clip_id)
    try:
        if action == "approve":
            approve(ctx, actor, clip_id)
        else:
            reject(ctx, actor, clip_id, SLACK_REJECT_REASON)
    except ClipperError:
        if not held:  # the claim was only for this press; one taken on the Review page stays
            release(ctx, actor, clip_id)
        raise
    with ctx.db.read() as session:
        status = session.scalars(select(Clip.status).where(Clip.id == clip_id)).one()
    return {"clip_id": clip_id, "status": status, "by": actor.name}


# ---- replies to response_url ------------------------------------------------------------------

def thumbnail_token(secret: str, clip_id: int) -> str:
    """The unguessable part of a clip's public thumbnail address (Slack fetches images without
    logging in): an HMAC of the clip id under the signing secret (pure)."""
    return hmac.new(secret.encode(), f"thumbnail:{clip_id}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def thumbnail_url(settings: Settings, clip_id: int) -> str | None:
    """Where Slack can fetch a clip's thumbnail: the HTTP API's port on the public host of
    CLIPPER_BASE_URL; None without a public address or a signing secret (pure)."""
    if not settings.base_url or not settings.slack_signing_secret:
        return None
    base = urlsplit(settings.base_url)
    host = base.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    path = f"/slack/thumbnails/{clip_id}/{thumbnail_token(settings.slack_signing_secret, clip_id)}"
    return urlunsplit((base.scheme or "https", f"{netloc}:{settings.api_port}", path + ".jpg",
                       "", ""))


def slack_thumbnail(ctx: Context, clip_id: int, token: str) -> Path | None:
    """The thumbnail file of clip `clip_id` when `token` is its thumbnail_token; None otherwise
    (the same for a wrong token and a missing clip). The token is the credential: no actor."""
    secret = ctx.settings.slack_signing_secret
    if not secret or not hmac.compare_digest(thumbnail_token(secret, clip_id).encode(),
                                             (token or "").encode("utf-8", "replace")):
        return None
    with ctx.db.read() as session:
        path = session.scalars(select(Clip.thumbnail_path).where(Clip.id == clip_id)).first()
    return Path(path) if path and Path(path).is_file() else None


@dataclass(frozen=True)
class ClipSummary:
    """What a reply says about a clip."""

    clip_id: int
    status: str
    source: str
    span: str
    note: str = ""
    error: str = ""
    reject_reason: str = ""
    excerpt: str = ""
    link: str = ""
    image_url: str | None = None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The transcript's opening, cut at a word within `limit` characters (pure)."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(",.;:") + "…"


def reply_message(clip: ClipSummary) -> dict[str, Any]:
    """The message posted to a `/clip` command's response_url (pure): Slack text plus blocks
    (the thumbnail only with a public address), just for the person who typed it."""
    what = f"{slack_escape(clip.source)} {clip.span}"
    if clip.note:
        what += f" — {slack_escape(clip.note)}"
    link = f" ({slack_link(clip.link, 'open')})" if clip.link else ""
    if clip.status == "failed":
        text = f"Clip {clip.clip_id} failed: {slack_escape(clip.error or 'no reason given')}"
        text += f"\n{what}{link}"
    elif clip.status == "rejected":
        text = (f"Clip {clip.clip_id} was rejected: "
                f"{slack_escape(clip.reject_reason or 'no reason given')}\n{what}{link}")
    else:
        text = f"Clip {clip.clip_id} is ready: {what}{link}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if clip.image_url and clip.status != "failed":
        blocks.append({"type": "image", "image_url": clip.image_url,
                       "alt_text": f"Clip {clip.clip_id}"})
    if clip.excerpt and clip.status != "failed":
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"“{slack_escape(clip.excerpt)}”"}]})
    return {"event": "slack.reply", "clip_id": clip.clip_id, "status": clip.status,
            "response_type": "ephemeral", "replace_original": False, "text": text,
            "blocks": blocks}


def _span(clip: Clip) -> str:
    if clip.source.kind == "channel":
        from clipper.timecode import format_wallclock

        return (f"{format_wallclock(clip.start)[11:19]}–{format_wallclock(clip.end)[11:19]} UTC "
                f"({clip.end - clip.start:.0f} s)")
    return f"{format_timecode(clip.start)[:8]}–{format_timecode(clip.end)[:8]}"


def _summary(ctx: Context, session: Session, clip: Clip, note: str) -> ClipSummary:
    transcript = session.get(TranscriptRow, clip.id)
    base = ctx.settings.base_url.rstrip("/")
    return ClipSummary(
        clip_id=clip.id, status=clip.status, source=clip.source.location, span=_span(clip),
        note=note, error=clip.error or "", reject_reason=clip.reject_reason or "",
        excerpt=excerpt(transcript.text if transcript else ""),
        link=f"{base}/clip?id={clip.id}" if base else "",
        image_url=thumbnail_url(ctx.settings, clip.id) if clip.thumbnail_path else None)


def send_slack_replies(ctx: Context, *, now: datetime | None = None,
                       limit: int = 50) -> dict[str, int]:
    """Queue, through the webhook outbox (retried, kept across restarts), the reply of every
    `/clip` flag whose clip became ready or failed since; give up those Slack no longer takes
    (older than RESPONSE_URL_MINUTES). `{"sent", "expired"}`. Run by `clipper up`; safe in
    several processes at once (each reply is queued once, in the transaction marking it)."""
    now = now or utcnow()
    oldest = now - timedelta(minutes=RESPONSE_URL_MINUTES)
    counts = {"sent": 0, "expired": 0}
    if not ctx.settings.slack_signing_secret:
        return counts  # no Slack app: no replies can be waiting
    with ctx.db.read() as session:
        # Run every few seconds: a read first, so an idle desk takes no write lock (SQLite).
        waiting = session.scalars(select(SlackReply.id).where(SlackReply.state == WAITING)
                                  .limit(1)).first()
    if waiting is None:
        return counts
    with ctx.db.session() as session:
        counts["expired"] = session.execute(
            update(SlackReply).where(SlackReply.state == WAITING, SlackReply.created_at < oldest)
            .values(state=FAILED).execution_options(synchronize_session=False)).rowcount
        due = (select(SlackReply).join(Clip, Clip.id == SlackReply.clip_id)
               .where(SlackReply.state == WAITING, Clip.status.in_(DONE))
               .order_by(SlackReply.id).limit(limit))
        if ctx.db.dialect == "postgresql":  # a second `clipper up` passes over these rows
            due = due.with_for_update(of=SlackReply, skip_locked=True)
        for reply in session.scalars(due).all():
            clip = session.get(Clip, reply.clip_id)
            flag_note = next((f.note for f in clip.flags if f.id == reply.flag_id), "")
            payload = reply_message(_summary(ctx, session, clip, flag_note))
            # In this transaction: the reply is marked sent exactly when its message is queued.
            notify(ctx, payload, session=session, url=reply.response_url)
            reply.state, reply.sent_at = SENT, now
            counts["sent"] += 1
    return counts
