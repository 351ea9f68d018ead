"""Timecode parsing and interval checks."""

import pytest

from clipper.errors import InvalidInput
from clipper.timecode import format_timecode, parse_interval, parse_timecode


@pytest.mark.parametrize("text,seconds", [
    ("75", 75.0), ("75.5", 75.5), ("1:15", 75.0), ("01:01:15.250", 3675.25), ("0", 0.0),
    (" 2:03 ", 123.0), ("1:15.5", 75.5), ("10:00:00", 36000.0), (12, 12.0), (1.5, 1.5),
])
def test_parses_accepted_forms(text, seconds):
    assert parse_timecode(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "abc", "-5", "1:75", "1:60:00", "1::2", "1:2:3:4", "75s", "1,5", "nan", "inf", "1e3",
    ":30", "30:", "--1", "0x10", float("nan"), -1.0, True,
])
def test_refuses_everything_else_with_an_example(text):
    with pytest.raises(InvalidInput) as err:
        parse_timecode(text)
    assert "1:15" in str(err.value) or "valid" in str(err.value)


def test_negative_time_says_it_is_negative():
    with pytest.raises(InvalidInput, match="negative"):
        parse_timecode("-3")


def test_interval_end_must_follow_start():
    with pytest.raises(InvalidInput, match="after start"):
        parse_interval("1:30", "1:30", max_seconds=600)
    with pytest.raises(InvalidInput, match="after start"):
        parse_interval("90", "80", max_seconds=600)


def test_interval_longer_than_the_cap_is_refused_with_a_shorter_example():
    with pytest.raises(InvalidInput) as err:
        parse_interval("0", "10:01", max_seconds=600)
    assert "600" in err.value.message and "--end" in (err.value.hint or "")
    assert parse_interval("0", "10:00", max_seconds=600) == (0.0, 600.0)


def test_format_round_trips():
    for s in (0.0, 75.5, 3675.25, 59.999):
        assert parse_timecode(format_timecode(s)) == pytest.approx(s, abs=0.001)
