"""The API application: routes, problem details, the OpenAPI schema at /api/openapi.json."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from clipper.api import feeds, problems, routes
from clipper.api.deps import ApiState
from clipper.api.guard import ApiGuard
from clipper.settings import Settings

DESCRIPTION = """\
The clip desk over HTTP: the same services, and the same role checks, as the command line and
the dashboard. `GET /api/health` answers `{"ok": true}` without a token.

**Auth.** A personal API token, made by a person for themselves (`clipper tokens create`, or
the dashboard's Account page), sent as `Authorization: Bearer <token>`; it acts with its owner's
current role until revoked. The iCalendar feed is a private URL with its own calendar token.

**Limits.** `CLIPPER_API_RATE` requests a minute per token (and per address for calls without
one), in bursts of up to as many; an address over all its tokens five times that. More get
`429` with `Retry-After`. Counted in each API process. At most 4 open alert streams per
person; bodies up to 1 MiB.

**Errors** are problem details (RFC 9457, `application/problem+json`): `type`, `title`,
`status`, `detail` (the command line's message) and `hint`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app for `settings` (default: from the environment). Its Context (the database's
    connection, migrated) is built when the server starts and closed when it stops."""
    st = ApiState(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before the port takes requests: Slack wants `/clip` answered within 3 s, and the
        # first request must not be the one that connects and migrates. A database that cannot
        # be reached fails the start (`clipper up` starts the API again, with backoff).
        await run_in_threadpool(st.ctx)
        yield
        st.stopping.set()
        st.close()

    app = FastAPI(title="Clipper API", version="1", description=DESCRIPTION,
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
                  lifespan=lifespan)
    app.state.clipper = st
    app.add_middleware(ApiGuard, state=st)
    problems.install(app)
    for router in (routes.router, feeds.router):
        app.include_router(router, prefix=routes.API_PREFIX)
        # The first release served these under /api/v1: the same handlers answer there too,
        # so scripts written then keep working, but the schema documents /api alone.
        app.include_router(router, prefix="/api/v1", include_in_schema=False)

    # The Slack endpoints live in their own module (and are filled in there).
    from clipper.api import slack

    app.include_router(slack.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = problems.as_problem_media(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
