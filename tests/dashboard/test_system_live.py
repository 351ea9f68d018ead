"""The System page's live transcript controls: the "Transcribe live" box per channel and in the
add form, how far behind each transcript is, and warnings when transcription cannot keep up."""

from __future__ import annotations

import time
from pathlib import Path

from channel_segments import store_spans
from sqlalchemy import select

from clipper.permissions import Actor
from clipper.services.channels import add_channel, channel_status
from clipper.storage.tables import Channel, LiveAsrState

SYSTEM = Path(__file__).resolve().parents[2] / "dashboard" / "admin" / "system.py"
OP = Actor.operator("ops")
URL = "http://127.0.0.1:9/live.m3u8"


def asr_state(ctx, name: str, **values) -> None:
    with ctx.db.session() as s:
        cid = s.scalar(select(Channel.id).where(Channel.name == name))
        row = s.get(LiveAsrState, cid) or LiveAsrState(channel_id=cid)
        for key, value in values.items():
            setattr(row, key, value)
        s.add(row)


def open_system(open_app):
    at = open_app("ada", SYSTEM)
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_transcribe_box_switches_a_channel_and_its_lag_is_shown(open_app, desk, page_text):
    add_channel(desk, OP, "news-one", URL)
    now = time.time()
    store_spans(desk, "news-one", [(now - 60 + 2 * i, 2.0) for i in range(30)])
    at = open_system(open_app)
    box = at.checkbox(key="asr_news-one")
    assert box.label == "Transcribe live" and box.value is False
    assert "Transcript (" not in page_text(at)

    box.check().run()
    assert not at.exception, at.exception
    assert "news-one is transcribed live." in at.success[0].value
    status = channel_status(desk, OP, "news-one")
    assert status["transcribe"] == "auto"
    assert "Transcript (auto) 0 s behind" in page_text(at)

    asr_state(desk, "news-one", done_until=now - 12, load=0.05, source="whisper")
    at.run()
    assert "Transcript (auto) 12 s behind · 5% of a core" in page_text(at)
    assert not at.warning

    at.checkbox(key="asr_news-one").uncheck().run()
    assert "news-one is no longer transcribed" in at.success[0].value
    assert channel_status(desk, OP, "news-one")["transcribe"] is None


def test_warnings_when_a_transcript_lags_or_the_core_cannot_keep_up(open_app, desk, page_text):
    now = time.time()
    for name in ("one", "two", "three"):
        add_channel(desk, OP, name, URL, transcribe="whisper")
        store_spans(desk, name, [(now - 600 + 2 * i, 2.0) for i in range(300)])
    asr_state(desk, "one", done_until=now - 300, load=0.4)  # catching up after an outage
    asr_state(desk, "two", done_until=now - 20, load=1.3)  # alone it needs more than a core
    asr_state(desk, "three", done_until=now - 10, load=0.1, error="ffmpeg could not join")
    at = open_system(open_app)
    warnings = [w.value for w in at.warning]
    assert any("Live transcription needs 1.8× what one core gives" in w for w in warnings)
    assert any("one is 5 min behind the recording" in w for w in warnings)
    assert any("Transcribing two takes longer than the audio lasts (1.3× real time)" in w
               for w in warnings)
    assert not any("three" in w for w in warnings)
    assert "Last transcription problem: ffmpeg could not join" in page_text(at)
    assert "Transcript (whisper) 10 s behind · 10% of a core" in page_text(at)


def test_a_channel_added_with_the_box_ticked_is_transcribed(open_app, desk):
    at = open_system(open_app)
    at.text_input(key="chan_name").input("news-two")
    at.text_input(key="chan_url").input(URL)
    at.checkbox(key="chan_transcribe").check()
    at.button(key="FormSubmitter:add_channel-Add channel").click().run()
    assert not at.exception, at.exception
    assert "Added news-two" in at.success[0].value
    assert channel_status(desk, OP, "news-two")["transcribe"] == "auto"
    assert at.checkbox(key="chan_transcribe").value is False
    assert at.checkbox(key="asr_news-two").value is True
