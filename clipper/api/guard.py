"""Before any route runs: refuse oversized bodies and callers over their rate limits."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from clipper.api.deps import ApiState, limit_caller
from clipper.api.problems import ApiProblem, problem

#: The endpoints the limits cover (the /api/v1 aliases are under it too) ...
LIMITED_PREFIX = "/api/"
#: ... except these: the schema and docs are static, and a health check must answer a load
#: balancer however busy a token or an address is.
UNLIMITED_PATHS = frozenset({"/api/health", "/api/v1/health", "/api/openapi.json", "/api/docs",
                             "/api/docs/oauth2-redirect"})
#: The calendar feed carries its token in the path, not in a header.
CALENDAR_PATH = re.compile(r"^/api/(?:v1/)?calendar/(?P<token>[^/]+)\.ics$")
#: Largest request body accepted: a flag is a few hundred bytes.
MAX_BODY_BYTES = 1 << 20


def bearer_secret(headers: Headers) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class ApiGuard:
    """Pure ASGI middleware (no buffering, so event streams pass straight through). It counts
    every request to /api/ (but UNLIMITED_PATHS) against its token's and its address's
    allowances before the body is read or a route runs: a flood costs one dictionary lookup per
    request, never a parse or a database query."""

    def __init__(self, app: ASGIApp, state: ApiState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or not path.startswith(LIMITED_PREFIX)
                or path in UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check(scope, headers)
        except ApiProblem as exc:
            response = problem(exc.status, exc.detail, kind=exc.kind, title=exc.title,
                               headers=exc.headers, hint=exc.hint)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: Headers) -> None:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ApiProblem(413, "too-large", "Request too large",
                             f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        client = scope.get("client")
        address = client[0] if client else "unknown"
        calendar = CALENDAR_PATH.match(scope["path"])
        if calendar:
            limit_caller(self.state, address, calendar["token"], "calendar")
        else:
            limit_caller(self.state, address, bearer_secret(headers), "token")
