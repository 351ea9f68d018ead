"""Slack as the API sees it, for tests: form posts signed with the app's secret, a loopback
HTTP server standing in for Slack's `response_url` and the team's webhook, linked accounts."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx

from clipper.api.slack_command import slack_signature
from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.slack import create_link_code
from clipper.storage.tables import Clip, Flag, Source

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0NEWSDESK"


class _Hook(http.server.BaseHTTPRequestHandler):
    """Slack's response_url and the team's incoming webhook: records every JSON body, 200."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def hook_server() -> Iterator[Any]:
    """The hook on a free loopback port: `.url`, and `.posts` [(path, JSON body), ...]."""
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts, server.lock = [], threading.Lock()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@dataclasses.dataclass
class Slack:
    """Slack as the API sees it: form posts signed with the app's secret."""

    url: str
    hook_url: str
    secret: str = SECRET

    def post(self, path: str, body: bytes, *, timestamp: str | None = None,
             signature: str | None = None, signed: bool = True) -> httpx.Response:
        ts = timestamp or str(int(time.time()))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Slack-Request-Timestamp"] = ts
            headers["X-Slack-Signature"] = signature or slack_signature(self.secret, ts, body)
        return httpx.post(self.url + path, content=body, headers=headers, timeout=30)

    def command_body(self, text: str, *, user: str, reply: str = "/commands/1") -> bytes:
        # trigger_id is unique per invocation in Slack too: two commands never sign alike.
        return urlencode({
            "token": "legacy-unused", "team_id": TEAM_ID, "team_domain": "newsdesk",
            "channel_id": "C0DESK", "channel_name": "desk", "user_id": user, "user_name": user,
            "command": "/clip", "text": text, "api_app_id": "A0CLIPPER",
            "response_url": self.hook_url + reply, "trigger_id": uuid.uuid4().hex}).encode()

    def command(self, text: str, *, user: str, reply: str = "/commands/1") -> dict[str, Any]:
        answer = self.post("/slack/commands", self.command_body(text, user=user, reply=reply))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def press(self, action: str, clip_id: int | str, *, user: str,
              reply: str = "/actions/1", path: str = "/slack/interactions") -> dict[str, Any]:
        payload = {
            "type": "block_actions", "team": {"id": TEAM_ID, "domain": "newsdesk"},
            "user": {"id": user, "team_id": TEAM_ID}, "api_app_id": "A0CLIPPER",
            "response_url": self.hook_url + reply, "trigger_id": uuid.uuid4().hex,
            "message": {"type": "message", "text": f"Clip {clip_id} is ready for review",
                        "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                "text": f"Clip {clip_id}"}},
                                   {"type": "actions", "elements": []}]},
            "actions": [{"type": "button", "action_id": action, "value": str(clip_id),
                         "block_id": f"review-{clip_id}", "action_ts": str(time.time())}]}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        answer = self.post(path, body)
        assert answer.status_code == 200, answer.text
        return answer.json()


def link(ctx: Context, slack: Slack, name: str, role: str, slack_user: str) -> None:
    """Link `slack_user` to the Clipper account `name` with a one-time code, as people do."""
    code = create_link_code(ctx, Actor(name, role))["code"]
    said = slack.command(f"link {code}", user=slack_user)
    assert f"*{name}* ({role})" in said["text"], said


def with_slack(ctx: Context, **more: Any) -> Context:
    """The test's own Context with the app's secret (and `more` settings), as `clipper up`'s."""
    ctx.settings = dataclasses.replace(ctx.settings, slack_signing_secret=SECRET, **more)
    return ctx


def ready_clip(ctx: Context, key: str) -> int:
    """A ready clip straight in the database (flagged by vera), waiting for review."""
    with ctx.db.session() as session:
        src = Source(kind="url", key=f"url:{key}", location=f"https://news.example/{key}")
        session.add(src)
        session.flush()
        clip = Clip(source_id=src.id, start=12.0, end=40.5, status="ready", duration=28.5,
                    media_path="/media/clips/clip.mp4")
        session.add(clip)
        session.flush()
        session.add(Flag(clip_id=clip.id, source_id=src.id, start=12.0, end=40.5,
                         note="budget", by="vera"))
        return clip.id


def status(ctx: Context, clip_id: int) -> tuple[str, str | None, str | None]:
    """A clip's status, who reviewed it and why it was rejected."""
    with ctx.db.session() as session:
        clip = session.get(Clip, clip_id)
        return clip.status, clip.reviewed_by, clip.reject_reason
