"""Slack-compatible webhook posts (retried, never raising) and the message bodies Clipper sends."""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

USER_AGENT = "clipper-webhook/1"


def _post_once(url: str, body: bytes, timeout: float) -> int:
    """One POST; the HTTP status (urllib raises HTTPError for >= 400: turned into a status)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


def post_webhook(url: str, payload: dict[str, Any], *, tries: int = 4, backoff: float = 0.5,
                 timeout: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> bool:
    """POST `payload` as JSON; True once the hook answers 2xx.

    Connection errors, timeouts, 5xx and 429 are retried with exponential backoff
    (backoff, 2*backoff, ...); other 4xx answers are final. Never raises: a notification
    must not fail the clip, so failures are logged and reported as False.
    """
    if not url.lower().startswith(("http://", "https://")):
        log.warning("webhook not sent: %r is not an http(s) URL", url)
        return False
    try:
        body = json.dumps(payload, default=str).encode()
    except (TypeError, ValueError) as exc:
        log.warning("webhook not sent: payload is not JSON (%s)", exc)
        return False
    for attempt in range(max(1, tries)):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            status = _post_once(url, body, timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.info("webhook attempt %d/%d failed: %s", attempt + 1, tries, exc)
            continue
        if 200 <= status < 300:
            return True
        log.info("webhook attempt %d/%d answered HTTP %d", attempt + 1, tries, status)
        if not _retryable(status):
            break
    log.warning("webhook %s gave up after %d attempt(s)", _safe(url), attempt + 1)
    return False


def _safe(url: str) -> str:
    # Slack hook URLs carry their secret in the path: log the host only.
    return url.split("/")[2] if url.count("/") >= 2 else url


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (pure)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(target: str, label: str) -> str:
    if target.startswith(("http://", "https://")):
        return f"<{target}|{slack_escape(label)}>"
    return slack_escape(target)


def clip_ready_message(clip_id: int | str, source: str, note: str = "", link: str = "", *,
                       start: float | None = None, end: float | None = None,
                       urgency: str = "") -> dict[str, Any]:
    """Webhook body for "a clip is ready for review" (pure)."""
    span = f" {start:.1f}–{end:.1f} s" if start is not None and end is not None else ""
    text = f"Clip {clip_id} is ready for review: {slack_escape(source)}{span}"
    if note:
        text += f" — {slack_escape(note)}"
    if link:
        text += f" ({_link(link, 'open')})"
    return {"text": text, "event": "clip.ready", "clip_id": clip_id, "source": source,
            "note": note, "link": link, "start": start, "end": end, "urgency": urgency}


def package_exported_message(clip_id: int | str, source: str, path: str, note: str = "",
                             link: str = "", *, formats: list[str] | None = None) -> dict[str, Any]:
    """Webhook body for "a distribution package was exported" (pure)."""
    text = (f"Package for clip {clip_id} is exported: {_link(path, path)} "
            f"(source {slack_escape(source)})")
    if formats:
        text += f" — {', '.join(formats)}"
    if note:
        text += f" — {slack_escape(note)}"
    if link:
        text += f" ({_link(link, 'open')})"
    return {"text": text, "event": "package.exported", "clip_id": clip_id, "source": source,
            "note": note, "path": path, "link": link, "formats": formats or []}
