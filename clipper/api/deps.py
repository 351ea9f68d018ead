"""What every route needs: the app's Context, the caller's address, rate limits, the Actor."""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from clipper.api.problems import ApiProblem
from clipper.api.ratelimit import RateLimiter, retry_after
from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.tokens import actor_for_token, token_hash
from clipper.settings import Settings

#: One address may make this many times CLIPPER_API_RATE over all its tokens: people behind
#: one NAT each get their own allowance, one machine with many tokens still has a ceiling.
ADDRESS_FACTOR = 5


class ApiState:
    """Per app: the settings, one Context (built when the server starts), the rate limiters,
    and whether the server is stopping (open event streams end then)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.per_key = RateLimiter(settings.api_rate)
        self.per_address = RateLimiter(settings.api_rate * ADDRESS_FACTOR)
        self.stopping = threading.Event()
        self.streams: Counter[str] = Counter()  # open event streams, by person
        self._ctx: Context | None = None
        self._lock = threading.Lock()

    def ctx(self) -> Context:
        # Built by the app's lifespan when the server starts (so the first request, a Slack
        # `/clip` perhaps, with 3 s to be answered, does not wait for the database's connection
        # and migration), and here on first use where no server ran the lifespan. Not in
        # `create_app()`, which must stay cheap (the OpenAPI schema needs no database).
        with self._lock:
            if self._ctx is None:
                self._ctx = Context.build(self.settings)
            return self._ctx

    def open_stream(self, who: str, most: int) -> bool:
        """Count a stream `who` opens; False (and not counted) when they have `most` open."""
        with self._lock:
            if self.streams[who] >= most:
                return False
            self.streams[who] += 1
            return True

    def close_stream(self, who: str) -> None:
        with self._lock:
            self.streams[who] -= 1
            if self.streams[who] <= 0:
                del self.streams[who]

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._ctx.close()
                self._ctx = None


def state(request: Request) -> ApiState:
    return request.app.state.clipper


def get_ctx(request: Request) -> Context:
    """The app's Context (a dependency: `ctx: Context = Depends(get_ctx)`)."""
    return state(request).ctx()


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes X-Forwarded-For only from FORWARDED_ALLOW_IPS,
    127.0.0.1 by default, so a reverse proxy on the same host passes the real one)."""
    return request.client.host if request.client else "unknown"


def limit(limiter: RateLimiter, key: str) -> None:
    """Spend one request of `key`'s allowance, or refuse with 429 and when to come back."""
    wait = limiter.take(key)
    if wait:
        seconds = retry_after(wait)
        raise ApiProblem(429, "rate-limited", "Too many requests",
                         f"Too many requests; try again in {seconds} s.",
                         headers={"Retry-After": str(seconds)},
                         hint="Requests are limited per API token and per address.")


def limit_caller(st: ApiState, address: str, secret: str | None, kind: str) -> None:
    """The rate limits, before any database work: the address's ceiling, then the token's own
    allowance (keyed by its hash; the token itself is not kept) or, without one, the
    address's."""
    limit(st.per_address, f"addr:{address}")
    if secret:
        limit(st.per_key, f"{kind}:{token_hash(secret)}")
    else:
        limit(st.per_key, f"anon:{address}")


def unauthorized() -> ApiProblem:
    """401, the same for a missing, unknown or revoked token and a disabled account."""
    return ApiProblem(
        401, "unauthorized", "Not logged in", "A valid API token is needed.",
        headers={"WWW-Authenticate": 'Bearer realm="clipper"'},
        hint="Send Authorization: Bearer <token>; make one with `clipper tokens create` or on "
             "the dashboard's Account page.")

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="A personal API token (`clipper tokens create`, or the "
                                "dashboard's Account page), sent as `Authorization: Bearer …`.")


def authenticated(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None,
                                                     Depends(bearer)]) -> Actor:
    """The person the Bearer token acts for (the rate limits were counted already, by
    `guard.ApiGuard`); 401 for a missing, unknown or revoked token or a disabled account, all
    alike."""
    secret = creds.credentials if creds else None
    actor = actor_for_token(state(request).ctx(), secret, "api") if secret else None
    if actor is None:
        if secret:
            # A wrong token also spends the address's anonymous allowance, so guessing tokens
            # from one address is limited like calling without one.
            limit(state(request).per_key, f"anon:{client_address(request)}")
        raise unauthorized()
    return actor


CurrentActor = Annotated[Actor, Depends(authenticated)]
Ctx = Annotated[Context, Depends(get_ctx)]


def clean_text(value: Any) -> Any:
    """Refuse text no database can store (NUL; unpaired surrogates, which are not UTF-8):
    422 here, not a crash in the driver."""
    if isinstance(value, str) and any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("must not contain NUL or unpaired surrogate characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: A string parameter or field checked by `clean_text`.
Text = Annotated[str, AfterValidator(clean_text)]
