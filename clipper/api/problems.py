"""Errors as RFC 9457 problem details: Clipper's error tree, validation, HTTP errors, crashes."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipper.errors import (
    ClipperError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProcessingError,
    TransientError,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
#: Problem types are tag URIs (RFC 4151, as RFC 9457 suggests for types nobody dereferences).
TYPE_PREFIX = "tag:clipper,2026:problem/"

#: ClipperError subclasses -> (HTTP status, problem type, title); the nearest class wins.
#: PermissionDenied is 403: where an object's existence must not leak (another volunteer's
#: clip) the services already raise the same NotFound as for a missing one.
CLIPPER_STATUS: dict[type[ClipperError], tuple[int, str, str]] = {
    InvalidInput: (422, "invalid-input", "Invalid input"),
    NotFound: (404, "not-found", "Not found"),
    PermissionDenied: (403, "forbidden", "Not allowed"),
    Conflict: (409, "conflict", "Conflict"),
    TransientError: (503, "temporary", "Temporarily unavailable"),
    ProcessingError: (500, "processing-failed", "Processing failed"),
    ClipperError: (500, "error", "Error"),
}


class Problem(BaseModel):
    """An error (RFC 9457). `detail` is the message the command line prints after `error: `."""

    type: str = Field(description="What kind of problem: a tag URI, or about:blank.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong here, and how to put it right.")
    hint: str | None = Field(None, description="How to put it right, when there is a way.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Input validation: each field's location and message.")


class ApiProblem(Exception):
    """A problem the API itself raises (not logged in, too many requests)."""

    def __init__(self, status: int, kind: str, title: str, detail: str, *,
                 headers: dict[str, str] | None = None, hint: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.headers, self.hint = headers or {}, hint


def problem(status: int, detail: str, *, kind: str | None = None, title: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem-details response; `kind` None means about:blank (the status says it all)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + kind if kind else "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def clipper_status(exc: ClipperError) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in CLIPPER_STATUS:
            return CLIPPER_STATUS[cls]  # type: ignore[index]
    return CLIPPER_STATUS[ClipperError]


async def _clipper_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClipperError)
    status, kind, title = clipper_status(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return problem(status, str(exc), kind=kind, title=title, hint=exc.hint)


async def _api_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return problem(exc.status, exc.detail, kind=exc.kind, title=exc.title, headers=exc.headers,
                   hint=exc.hint)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only the location and message: pydantic's `input` and `ctx` may hold anything the
    # client sent (or exceptions), which need not even be JSON.
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "Invalid request."
    return problem(422, detail, kind="invalid-input", title="Invalid input",
                   hint="Nothing was stored. See /api/docs for what each field takes.",
                   errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"There is nothing at {request.url.path}."
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client: it may name files, queries, secrets.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "Something went wrong on the server; it has been logged.",
                   hint="Try again; if it keeps happening, tell an admin the time it happened.")


def install(app: FastAPI) -> None:
    """Answer every error the app can raise as problem details."""
    app.add_exception_handler(ClipperError, _clipper_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _crash)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses (problem+json, see `openapi`)."""
    words = {400: "Bad request.", 401: "No valid API token.", 403: "Your role may not do this.",
             404: "No such thing (or none you may see).", 409: "It clashes with the clip's state.",
             422: "Invalid input; nothing was stored.",
             429: "Too many requests; wait `Retry-After` seconds."}
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Problem, "description": words.get(status, "Error.")}
        if status == 429:
            entry["headers"] = {"Retry-After": {
                "description": "Seconds until a request would be accepted.",
                "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {
                "description": "Bearer: send `Authorization: Bearer <token>`.",
                "schema": {"type": "string"}}}
        out[status] = entry
    return out


def as_problem_media(schema: dict[str, Any]) -> dict[str, Any]:
    """Post-process a generated OpenAPI document: every 4xx/5xx body is problem+json with the
    Problem schema (FastAPI would say application/json, and its own 422 shape)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            if not isinstance(op, dict):
                continue
            for code, response in op.get("responses", {}).items():
                if str(code)[:1] in ("4", "5"):
                    response["content"] = {MEDIA_TYPE: {"schema": ref}}
                    if str(code) == "422":
                        response["description"] = "Invalid input; nothing was stored."
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
