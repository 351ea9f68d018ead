"""The JSON endpoints under /api (and, out of the schema, their old /api/v1 aliases): flags,
clips, packages, search, the rota, alerts, oneself, health."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import FileResponse

from clipper import rota as rota_rules
from clipper.api.deps import Ctx, CurrentActor, Text
from clipper.api.models import (
    AlertOut,
    ClipStatus,
    FlagIn,
    FlagOut,
    Health,
    Me,
    MyFlag,
    OnNow,
    SearchHit,
    ShiftOut,
)
from clipper.api.problems import problem_responses
from clipper.errors import Conflict, InvalidInput
from clipper.permissions import require
from clipper.services import clips, flags, review, rota, rota_views, search, users, watches

#: Ids are 32-bit on PostgreSQL: a larger one can only be missing, and must say so (404),
#: not overflow the driver.
MAX_ID = 2**31 - 1
ClipId = Annotated[int, Path(ge=1, le=MAX_ID, description="The clip's id.")]
#: Common error answers of endpoints behind a token.
AUTHED = (401, 403, 422, 429)

#: Mounted at /api (the documented paths) and again at /api/v1 (the first release's paths,
#: kept working for existing scripts but left out of the schema): see `clipper.api.app`.
router = APIRouter()
#: Where the documented routes live: the `Location` of a new flag's clip is under it.
API_PREFIX = "/api"


def _errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(*sorted({*AUTHED, *extra}))


# ---- flags and clips --------------------------------------------------------------------------

def _flag_source(body: FlagIn) -> str | None:
    """The flag's `source` (or its deprecated spelling `url`), checked with the fields it takes:
    exactly one of a source and a channel (as the CLI checks SOURCE and --channel)."""
    if body.source is not None and body.url is not None:
        raise InvalidInput("Give the source once: `source` (`url` is its old name).",
                           'e.g. {"source": "https://…", "start": "1:07", "end": "1:41"}.')
    source = body.source if body.source is not None else body.url
    if (source is None) == (body.channel is None):
        raise InvalidInput("Give either a source or a channel (exactly one).",
                           'e.g. {"source": "https://…", "start": "1:07", "end": "1:41"}, or '
                           '{"channel": "NAME", "last": 30}.')
    if source is not None:
        only = [name for name in ("last", "date", "tz") if getattr(body, name) is not None]
        if only:
            raise InvalidInput(f"{', '.join(only)} only go with a channel.",
                               'Times on a URL are on its own timeline, e.g. "start": "1:07".')
        if body.start is None or body.end is None:
            raise InvalidInput("A flag on a URL needs a start and an end.",
                               'For example "start": "1:07.4", "end": "1:41.2".')
    return source


@router.post("/flags", status_code=201, tags=["flags"], response_model=None,
             summary="File a flag on a URL or a recorded channel",
             responses={201: {"model": FlagOut, "description": "Stored (and queued)."},
                        **_errors(409)})
def file_flag(body: FlagIn, ctx: Ctx, actor: CurrentActor, response: Response) -> dict[str, Any]:
    """Store the caller's flag (a new clip, or joined to an open clip of the same moment) and
    queue its work. Everything is checked first: a refusal (422) stores nothing."""
    source = _flag_source(body)
    if body.channel is not None:
        res = flags.flag_channel(ctx, actor, body.channel, start=body.start, end=body.end,
                                 last=body.last, date=body.date, tz=body.tz, note=body.note,
                                 tags=body.tags, urgency=body.urgency)
    else:
        assert source is not None and body.start is not None and body.end is not None
        res = flags.file_flag(ctx, actor, source, body.start, body.end, note=body.note,
                              tags=body.tags, urgency=body.urgency)
    response.headers["Location"] = f"{API_PREFIX}/clips/{res.clip_id}"
    return res.as_dict()


@router.get("/clips/{clip_id}", tags=["clips"], response_model=None,
            summary="One clip's status (the object `clipper status --json` prints)",
            responses={200: {"model": ClipStatus}, **_errors(404)})
def clip_status(clip_id: ClipId, ctx: Ctx, actor: CurrentActor) -> dict[str, Any]:
    """A volunteer sees only clips their own flags made; any other id reads as missing."""
    return clips.clip_status(ctx, actor, clip_id)


@router.get("/clips", tags=["clips"], response_model=None,
            summary="Clips, newest first (status objects without the transcript)",
            responses={200: {"model": list[ClipStatus]}, **_errors()})
def list_clips(ctx: Ctx, actor: CurrentActor,
               status: Annotated[Text | None, Query(max_length=24,
                                                    description="Only clips in this status.")]
               = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 200) -> list[dict[str, Any]]:
    """The whole desk's clips (social, editor, admin); a volunteer gets 403 and uses
    /me/flags."""
    return clips.list_clips(ctx, actor, status=status or None, limit=limit)


@router.get("/clips/{clip_id}/package", tags=["clips"], response_class=FileResponse,
            summary="Download a clip's distribution package (zip)",
            responses={200: {"content": {"application/zip": {}},
                             "description": "The package as a zip."}, **_errors(404, 409)})
def download_package(clip_id: ClipId, ctx: Ctx, actor: CurrentActor) -> FileResponse:
    """The zip `clipper export` (or Approve) built beside the package folder. For the social
    team (those who may approve); 409 while the clip has no package."""
    st = clips.clip_status(ctx, actor, clip_id)  # first: another's clip is a plain 404
    require(actor, "approve")
    zipped = next((f for f in review.package_files(st) if f.suffix == ".zip"), None)
    if zipped is None:
        raise Conflict(f"Clip {clip_id} has no exported package yet ({st['status']}).",
                       "Approve it, or run `clipper export`, first.")
    return FileResponse(zipped, media_type="application/zip", filename=FilePath(zipped).name)


@router.get("/me", tags=["me"], response_model=None, summary="Who the token acts for",
            responses={200: {"model": Me}, **_errors()})
def me(ctx: Ctx, actor: CurrentActor) -> dict[str, Any]:
    return users.my_account(ctx, actor)


@router.get("/me/flags", tags=["me"], response_model=None,
            summary="The caller's own flags, newest first, with their clip's status",
            responses={200: {"model": list[MyFlag]}, **_errors()})
def my_flags(ctx: Ctx, actor: CurrentActor,
             limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[dict[str, Any]]:
    return review.my_flags(ctx, actor, limit=limit)


# ---- search -----------------------------------------------------------------------------------

def _day(value: str | None, name: str) -> str | None:
    """A filter day as given; refused when it is so late the end of it overflows a date."""
    if value is not None:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            return value  # the search says what is wrong with it, as on the command line
        if day >= date.max:
            raise InvalidInput(f"{name} is not a date Clipper can search: {value!r}.",
                               "Write dates like 2026-11-23.")
    return value


ShortText = Annotated[Text | None, Query(max_length=200)]


@router.get("/search", tags=["search"], response_model=None,
            summary="Search every transcript (clips and channels' live transcripts)",
            responses={200: {"model": list[SearchHit],
                             "description": "The hits, best first: the very list "
                                            "`clipper search --json` prints."},
                       **_errors()})
def search_transcripts(
        ctx: Ctx, actor: CurrentActor,
        q: Annotated[Text, Query(min_length=1, max_length=500,
                                 description='words, "exact phrase", a OR b, -exclude, '
                                             'prefix*')],
        source: ShortText = None, since: ShortText = None, until: ShortText = None,
        status: ShortText = None, tag: ShortText = None,
        by: Annotated[Text | None, Query(max_length=200,
                                         description="any flag of the clip was raised by "
                                                     "this person")] = None,
        urgency: ShortText = None, channel: ShortText = None,
        scope: Literal["all", "clips", "channels"] = "all",
        limit: Annotated[int, Query(ge=1, le=100, description="hits per page (`--limit`)")]
        = 20,
        offset: Annotated[int, Query(ge=0, le=100_000, description="hits to skip "
                                                                    "(`--offset`)")] = 0
) -> list[dict[str, Any]]:
    """The same query language, filters and answer as `clipper search --json` (`scope` is its
    `--in`): clip hits with the CLI's keys, channel hits with `"kind": "channel"`. The next page
    is `offset` + `limit`; a page shorter than `limit` is the last."""
    filters = {"source": source, "since": _day(since, "since"), "until": _day(until, "until"),
               "status": status, "tag": tag, "by": by, "urgency": urgency, "channel": channel}
    page = search.search_transcripts(ctx, actor, q, scope=scope, limit=limit, offset=offset,
                                     **{k: v for k, v in filters.items() if v is not None})
    # Exactly what the CLI prints: its JSON goes through `json.dumps(default=str)`.
    return [hit.as_dict() for hit in page.hits]


# ---- the rota ---------------------------------------------------------------------------------

@router.get("/rota/now", tags=["rota"], response_model=None,
            summary="Who is watching what now",
            responses={200: {"model": list[OnNow]}, **_errors()})
def rota_now(ctx: Ctx, actor: CurrentActor) -> list[dict[str, Any]]:
    return rota.now(ctx, actor)


@router.get("/rota/shifts", tags=["rota"], response_model=None,
            summary="A person's shifts (yours unless `user` names someone else)",
            responses={200: {"model": list[ShiftOut]}, **_errors(404)})
def shifts(ctx: Ctx, actor: CurrentActor,
           user: Annotated[Text | None, Query(max_length=128,
                                              description="Someone else (coordinators).")]
           = None,
           days: Annotated[int, Query(ge=1, le=366)] = 28) -> list[dict[str, Any]]:
    """Shifts (signed up or checked in) not yet ended, from today for `days` days. Someone
    else's need a coordinator's role."""
    name = (user or "").strip()
    if not name or name == actor.name:
        return rota_views.my_shifts(ctx, actor, days=days)
    require(actor, "manage_rota")  # before any lookup: a refusal says nothing about `name`
    rota.stats(ctx, actor, name)  # NotFound, with the CLI's words, for no such person
    now = datetime.now(UTC)
    return [s for s in rota.list_shifts(ctx, actor, days=days, user=name)
            if rota_rules.parse_time(s["end"], "UTC") > now]


# ---- alerts -----------------------------------------------------------------------------------

def alert_since(value: str | None) -> str | float | None:
    """`since` as the alerts service takes it: Unix seconds, or ISO 8601 text; a time no
    clock can hold is refused here rather than overflowing in a conversion."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds <= 1e11:
            raise InvalidInput(f"since {value!r} is not a time Clipper can use.",
                               "Unix seconds, or ISO 8601 like 2026-11-30T19:00.")
        return seconds
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return value  # the service words the refusal, as for the dashboard
    if not 1 < parsed.year < 9999:
        raise InvalidInput(f"since {value!r} is not a time Clipper can use.",
                           "For example 2026-11-30T19:00.")
    return value


# ---- health -----------------------------------------------------------------------------------

@router.get("/health", tags=["health"], response_model=None,
            summary="The API is up (no token needed, never rate-limited)",
            responses={200: {"model": Health}})
def health() -> dict[str, bool]:
    """For load balancers and uptime checks: answers without touching the database."""
    return {"ok": True}


@router.get("/alerts", tags=["alerts"], response_model=None,
            summary="Watch-list alerts, newest first",
            responses={200: {"model": list[AlertOut]}, **_errors()})
def list_alerts(ctx: Ctx, actor: CurrentActor,
                since: Annotated[Text | None, Query(max_length=64,
                                                    description="ISO 8601 (without an offset: "
                                                                "CLIPPER_TIMEZONE) or Unix "
                                                                "seconds.")] = None,
                limit: Annotated[int, Query(ge=1, le=watches.MAX_ALERTS)] = 100
                ) -> list[dict[str, Any]]:
    """A volunteer sees the alerts of the channels they are on shift for now."""
    return watches.list_alerts(ctx, actor, since=alert_since(since), limit=limit)
