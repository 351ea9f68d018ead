"""Webhook notifications (clip ready, package exported, channel stalled); never failing work."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from clipper.context import Context
from clipper.storage.tables import Clip

log = logging.getLogger(__name__)


def _send(url: str, payload: dict[str, Any]) -> None:
    from clipper.net.webhook import post_webhook

    post_webhook(url, payload)


def notify(ctx: Context, payload: dict[str, Any], *, wait: bool = False) -> threading.Thread | None:
    """POST in a background thread (retries inside) so a slow webhook never holds a worker."""
    url = ctx.settings.webhook_url
    if not url:
        return None
    thread = threading.Thread(target=_send, args=(url, payload), daemon=True, name="webhook")
    thread.start()
    if wait:
        thread.join()
    return thread


def _link(ctx: Context, clip_id: int) -> str:
    base = ctx.settings.base_url.rstrip("/")
    return f"{base}/clip?id={clip_id}" if base else f"clipper status {clip_id}"


def notify_ready(ctx: Context, clip_id: int) -> threading.Thread | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        notes = [f.note for f in clip.flags if f.note]
        source = clip.source.location
        payload = {
            "text": f"Clip {clip_id} is ready for review: {source} "
                    f"{clip.start:.1f}–{clip.end:.1f} s" + (f" — {notes[0]}" if notes else "")
                    + f" ({_link(ctx, clip_id)})",
            "event": "clip.ready", "clip_id": clip_id, "source": source,
            "note": notes[0] if notes else "",
            "link": _link(ctx, clip_id), "urgency": clip.urgency,
        }
    return notify(ctx, payload)


def notify_exported(ctx: Context, clip_id: int, path: str) -> threading.Thread | None:
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        source = clip.source.location
        notes = [f.note for f in clip.flags if f.note]
    payload = {
        "text": f"Package for clip {clip_id} is exported: {path} (source {source})",
        "event": "package.exported", "clip_id": clip_id, "source": source,
        "note": notes[0] if notes else "", "path": path, "link": _link(ctx, clip_id),
    }
    return notify(ctx, payload)


def notify_stalled(ctx: Context, channel_name: str, since: float, *,
                   reason: str = "") -> threading.Thread | None:
    """Tell the team a channel has recorded nothing since `since` (Unix seconds)."""
    at = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    payload = {
        "text": f"Channel {channel_name} has recorded nothing since {at}: recording stalled"
                + (f" ({reason})" if reason else ""),
        "event": "channel.stalled", "channel": channel_name,
        "since": datetime.fromtimestamp(since, UTC).isoformat(), "reason": reason,
    }
    return notify(ctx, payload)
