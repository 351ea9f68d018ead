"""Recorded channels' decisions: gaps, waiting for the end to air, refusing flags (pure)."""

from __future__ import annotations

import pytest

from clipper.errors import InvalidInput
from clipper.pipeline.channel_media import (
    Recording,
    between_gaps,
    flag_refusal,
    missing,
    wait_until,
)
from clipper.pipeline.jobs import retry_interval
from clipper.pipeline.sources import SOURCE_KINDS, check_channel_name, resolve_source
from clipper.settings import Settings

SPANS = [(100.0, 102.0), (102.1, 104.0), (110.0, 112.0), (112.0, 114.0)]


def test_missing_lists_uncovered_seconds_beyond_the_tolerance():
    assert missing(SPANS, 101.0, 113.0) == [(104.0, 110.0)]
    assert missing(SPANS, 95.0, 120.0) == [(95.0, 100.0), (104.0, 110.0), (114.0, 120.0)]
    assert missing(SPANS, 105.0, 109.0) == [(105.0, 109.0)]  # wholly in the gap
    assert missing(SPANS, 100.5, 103.9) == []  # the 0.1 s seam is jitter, not a gap
    assert missing([], 1.0, 2.0) == [(1.0, 2.0)]
    assert missing(SPANS, 100.0, 104.0, tolerance=0.0) == [(102.0, 102.1)]


def test_gaps_between_segments_ignore_the_ends():
    assert between_gaps(SPANS) == [(104.0, 110.0)]
    assert between_gaps([(0.0, 5.0), (1.0, 2.0), (5.2, 6.0)]) == []  # a long segment covers
    assert between_gaps([]) == []


@pytest.mark.parametrize(("recorded_to", "now", "expected"), [
    (203.0, 201.0, None),  # end + pad recorded: cut now
    (185.0, 190.0, 202.0 + 5.0),  # 5 s behind live: look when 202 should be recorded
    (None, 190.0, 202.0),  # nothing recorded yet
    (199.0, 200.5, 202.0 + 1.5),
    (199.0, 230.0, 233.0),  # end passed, 31 s behind: when 202 should be recorded
    (201.2, 201.5, 202.5),  # at least a second from now
    (150.0, 240.0, 261.0),  # recording far behind: no later than the grace's end
    (199.0, 261.0, None),  # the grace is over: cut what there is
])
def test_wait_until(recorded_to, now, expected):
    got = wait_until(200.0, pad=2.0, now=now, recorded_to=recorded_to, grace=60.0)
    assert got == (None if expected is None else pytest.approx(expected))


def test_retry_interval_is_whole_seconds_and_never_zero():
    assert retry_interval(100.2, 100.0) == 1 and retry_interval(103.5, 100.0) == 4
    assert retry_interval(90.0, 100.0) == 1


def rec(**kw) -> Recording:
    base = {"first": 1000.0, "last_end": 2000.0, "overlaps": True, "before": None, "after": None}
    return Recording(**(base | kw))


@pytest.mark.parametrize(("start", "end", "recording", "words"), [
    (500.0, 600.0, rec(), "older than that"),
    (900.0, 990.0, rec(overlaps=False), "wholly before it"),
    (1500.0, 1510.0, rec(overlaps=False, before=1480.0, after=1600.0), "wholly inside a gap"),
    (2010.0, 2020.0, rec(overlaps=False, before=2000.0), "recorded nothing since"),
    (1950.0, 1960.0, rec(first=None, last_end=None, overlaps=False), "has been recorded yet"),
])
def test_refusals_say_why(start, end, recording, words):
    why = flag_refusal("news", start, end, recording, now=4000.0, retention_seconds=3400.0,
                       grace=60.0)
    assert why is not None and words in why and "news" in why


@pytest.mark.parametrize(("start", "end", "recording"), [
    (1500.0, 1510.0, rec()),
    (990.0, 1010.0, rec()),  # partly before the recording began: clipped with a gap
    (3990.0, 4010.0, rec(last_end=3980.0, overlaps=False)),  # not aired yet: waits
    (3970.0, 3990.0, rec(first=None, last_end=None, overlaps=False)),  # new channel: waits
])
def test_accepted(start, end, recording):
    assert flag_refusal("news", start, end, recording, now=4000.0, retention_seconds=3400.0,
                        grace=60.0) is None


def test_the_channel_kind_checks_names_and_claims_no_typed_text(tmp_path):
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path)})
    kind = SOURCE_KINDS["channel"]
    assert kind.check(" bbc-news_2 ", settings).key == "channel:bbc-news_2"
    assert not kind.claims("news") and not kind.claims("http://x/live.m3u8")
    with pytest.raises(InvalidInput, match="neither a URL"):  # a name typed is not a channel
        resolve_source("news", settings, server_paths=True)
    for bad in ("", "a b", "x" * 41, "news/../etc", "ünï"):
        with pytest.raises(InvalidInput, match="channel name"):
            check_channel_name(bad)
