"""The real API server for tests (uvicorn on a loopback port, in a thread), the team, clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from polling import poll

from clipper.api.server import make_server
from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.tokens import create_token
from clipper.settings import Settings
from clipper.storage.tables import User

#: Everyone on the test desk, by role.
TEAM = {"vera": "volunteer", "val": "volunteer", "sam": "social", "eddie": "editor",
        "cora": "coordinator", "ada": "admin"}
SETUP = Actor.operator("setup")
#: High enough that no test but the rate-limit one ever meets the limit.
UNLIMITED = "1000000"


@dataclass
class LiveApi:
    """A running server: its base URL, and the team's API tokens."""

    url: str
    tokens: dict[str, str]

    def client(self, who: str | None = None, *, token: str | None = None,
               **kwargs: object) -> httpx.Client:
        """An httpx client for the server acting as `who` (or with `token`; neither: none)."""
        secret = token if token is not None else (self.tokens[who] if who else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The API for `settings` on a free loopback port until the block ends; its base URL."""
    # The socket is bound here and handed over, so no other process can take the port between
    # choosing it and listening on it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(settings, host="127.0.0.1", port=port, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="api-server")
    thread.start()
    try:
        poll(lambda: server.started or not thread.is_alive(), 20, "the API server to start")
        assert server.started, "the API server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "the API server did not stop"


def add_team(ctx: Context) -> dict[str, str]:
    """The team's accounts (no passwords needed: the API takes tokens) and a token each."""
    with ctx.db.session() as session:
        for name, role in TEAM.items():
            session.add(User(name=name, role=role, password_hash="unused"))
    return {name: create_token(ctx, SETUP, user=name, name="tests")["token"] for name in TEAM}
