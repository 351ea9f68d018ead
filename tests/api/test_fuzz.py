"""Schemathesis fuzzes the live server from its own OpenAPI schema: no input gets a 5xx."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from apiserver import SETUP, LiveApi
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from clipper.context import Context
from clipper.domain import Segment, Transcript, Word
from clipper.permissions import Actor
from clipper.pipeline.transcripts import store_transcript
from clipper.services.channels import add_channel
from clipper.services.flags import file_flag
from clipper.services.rota import add_shifts, signup
from clipper.storage.tables import Alert, Clip

#: Examples per operation, per mode (data that fits the schema, data that does not) and per
#: database: enough to reach the refusals and the edges (huge ids, NUL, odd times) while the
#: whole run stays well under a minute.
EXAMPLES = 40


@pytest.fixture
def api_schema(api: LiveApi, ctx: Context) -> schemathesis.BaseSchema:
    """The schema as the live server serves it, with things to find: a clip (id 1) with a
    transcript, a recorded channel with an alert, and a shift running now."""
    add_channel(ctx, SETUP, "news", "http://127.0.0.1:9/live/index.m3u8")
    clip_id = file_flag(ctx, Actor.operator("ada"), "http://127.0.0.1:9/news.mp4", "1", "7",
                        note="minister", tags=["health"]).clip_id
    words = (Word(0.2, 0.6, "waiting"), Word(0.6, 1.0, "lists"))
    now = datetime.now(UTC)
    with ctx.db.session() as session:
        store_transcript(session, session.get(Clip, clip_id),
                         Transcript("waiting lists", "en", "test", "test",
                                    (Segment(0.2, 1.0, "waiting lists", words),)), by="system")
        session.add(Alert(watch="nhs", channel="news", wall_start=time.time() - 5,
                          wall_end=time.time() - 3, text="waiting lists"))
    [shift] = add_shifts(ctx, SETUP, "news", (now - timedelta(hours=1)).isoformat(),
                         (now + timedelta(hours=1)).isoformat())
    signup(ctx, SETUP, shift, "ada")
    # The event stream never ends by itself; tests/api/test_api.py covers it.
    return (schemathesis.openapi.from_url(f"{api.url}/api/openapi.json")
            .exclude(path_regex=r"/alerts/stream$"))


def test_no_generated_input_gets_a_server_error(api_schema, api: LiveApi, record_property):
    # As an admin: every endpoint's code runs past its role check.
    headers = {"Authorization": f"Bearer {api.tokens['ada']}"}
    calls: dict[str, int] = {}
    # Schemathesis's own pytest plugin does not run under this pytest; its Python API does:
    # one Hypothesis test per operation and mode, each case sent to the live server.
    for result in api_schema.get_all_operations():
        operation = result.ok()
        # An operation that takes nothing (the health check) has no wrong input to make.
        takes_input = any(True for _ in operation.iter_parameters()) or bool(
            operation.get_request_payload_content_types())
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else \
            (GenerationMode.POSITIVE,)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                response = case.call(headers=headers, timeout=30)
                calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
                case.validate_response(response, checks=[not_a_server_error], headers=headers)

            check()
    record_property("schemathesis_cases", sum(calls.values()))
    print(f"schemathesis: {sum(calls.values())} cases over {len(calls)} operations")
    assert len(calls) >= 12, sorted(calls)
