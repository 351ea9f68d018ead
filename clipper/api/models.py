"""Request bodies and the documented shapes of responses (the OpenAPI schema's vocabulary)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clipper.api.deps import Text

#: A time as a number: seconds on a source's timeline, or Unix seconds on a channel. Bounded,
#: so no number reaches a date conversion that cannot hold it (year 2286 is far enough).
Seconds = Annotated[float, Field(ge=0, le=1e10, allow_inf_nan=False)]
#: A time as text: `1:07.4`, `75`, `19:42:10`, or ISO 8601.
TimeText = Annotated[Text, Field(min_length=1, max_length=64)]


class FlagIn(BaseModel):
    """A flag: on a source (`source`: a URL, `start`, `end` on its own timeline) or on a
    recorded channel (`channel` with wall-clock `start`/`end`, or the `last` N seconds up to
    now)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"source": "https://example.org/news.m3u8", "start": "1:07.4", "end": "1:41.2",
         "note": "waiting lists promise", "tags": ["health"], "urgency": "high"},
        {"channel": "bbc-news", "last": 30},
        {"channel": "bbc-news", "start": "19:42:10", "end": "19:43:05", "tz": "Europe/London"},
    ]})

    source: Annotated[Text, Field(max_length=4096)] | None = Field(
        None, description="An http(s) URL yt-dlp handles (direct MP4 and HLS included), as "
                          "`clipper flag SOURCE` takes it. A file path is for the local "
                          "operator only, never over HTTP.")
    # The first release's name for `source`: still taken so that existing scripts keep working.
    url: Annotated[Text, Field(max_length=4096)] | None = Field(
        None, description="Deprecated: the old name of `source`.",
        json_schema_extra={"deprecated": True})
    channel: Annotated[Text, Field(max_length=64)] | None = Field(
        None, description="A recorded live channel, flagged by the clock.")
    start: Seconds | TimeText | None = Field(
        None, description="On a URL: `1:07.4`, `75`, `01:01:15.250` (seconds on its timeline). "
                          "On a channel: `19:42:10`, ISO 8601, or Unix seconds.")
    end: Seconds | TimeText | None = Field(None, description="As `start`.")
    last: Seconds | TimeText | None = Field(
        None, description="Channel only: the last N seconds up to now (instead of start/end).")
    date: Annotated[Text, Field(max_length=32)] | None = Field(
        None, description="Channel only: the day (YYYY-MM-DD) of a bare start/end time.")
    tz: Annotated[Text, Field(max_length=64)] | None = Field(
        None, description="Channel only: the zone of a bare start/end time "
                          "(default CLIPPER_TIMEZONE).")
    note: Annotated[Text, Field(max_length=4000)] = ""
    tags: Annotated[list[Annotated[Text, Field(max_length=64)]], Field(max_length=50)] = []
    urgency: Literal["low", "normal", "high"] = "normal"


class FlagOut(BaseModel):
    """The flag filed: as `clipper flag --json` prints it."""

    flag_id: int
    clip_id: int
    status: str
    merged: bool = Field(description="True when the flag joined an open clip of the same moment.")


class Flagger(BaseModel):
    by: str
    note: str
    tags: list[str]
    urgency: str
    at: str


class Delivered(BaseModel):
    """The package is on the shared drive: the rclone remote, its folder there, and when."""

    remote: str = Field(description="The rclone remote's name, e.g. `teamdrive`.")
    path: str = Field(description="The package folder on that remote, e.g. "
                                  "`Clips/2026-11-30/12-minister`.")
    at: str = Field(description="When it was delivered (ISO 8601, UTC).")


class DeliveryState(BaseModel):
    """The latest copy of the package to the shared drive, however it is going."""

    state: Literal["pending", "delivered", "failed"]
    remote: str
    path: str
    attempts: int
    error: str | None = Field(description="The last failed attempt's reason.")
    at: str | None = Field(description="When it was delivered (ISO 8601, UTC); null before.")


class ClipStatus(BaseModel):
    """The status object, exactly as `clipper status --json` prints it (the list leaves out
    `transcript`). A channel clip adds `channel`, `wall_start`, `wall_end` and `gaps`."""

    model_config = ConfigDict(extra="allow")

    id: int
    status: str
    source: str
    start: float
    end: float
    duration: float | None
    media_path: str | None
    thumbnail_path: str | None
    error: str | None
    flaggers: list[Flagger]
    stages: dict[str, Any]
    srt_path: str | None
    vtt_path: str | None
    renders: list[dict[str, Any]]
    published: list[dict[str, Any]]
    delivered: Delivered | None = Field(
        description="Null until the exported package is on the shared drive.")
    delivery: DeliveryState | None = Field(
        description="The latest delivery, pending or failed included; null when none.")
    transcript: dict[str, Any] | None = None


class MyFlag(BaseModel):
    model_config = ConfigDict(extra="allow")

    flag_id: int
    clip_id: int
    status: str
    source: str


class SearchHit(BaseModel):
    """One hit as `clipper search --json` prints it. A clip hit: `clip_id`, `start`, `end`
    (on the clip), `source_start`, `source_end`, `snippet` (matches in **bold**), `source`,
    `status`, `score`. A channel hit: `"kind": "channel"`, `channel`, `clip_id` (null),
    `wall_start`, `wall_end` (ISO 8601 UTC), `at` (Unix seconds), `at_utc`, `snippet`,
    `transcript`, `score`."""

    model_config = ConfigDict(extra="allow")

    snippet: str
    score: float


class Health(BaseModel):
    ok: bool


class OnNow(BaseModel):
    channel: str
    shift_id: int
    volunteers: list[str]
    until: str


class ShiftOut(BaseModel):
    id: int
    channel: str
    start: str
    end: str
    needs: int
    volunteers: list[str]
    status: str
    note: str


class AlertOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    watch: str
    channel: str
    wall_start: str
    wall_end: str
    text: str
    flag_id: int | None
    clip_id: int | None


class Me(BaseModel):
    name: str
    role: str
    timezone: str
    email: str | None
