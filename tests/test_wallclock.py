"""Wall-clock times for channel flags: clock times, ISO 8601, dates, zones and DST (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from clipper.errors import InvalidInput
from clipper.timecode import (
    FUTURE_SLACK,
    check_wall_interval,
    format_wallclock,
    parse_date,
    parse_last,
    parse_wall_interval,
    parse_wallclock,
    readings,
)

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham"]


def unix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


NOW = unix("2026-11-30T20:00:00+00:00")


@pytest.mark.parametrize(("text", "expected"), [
    ("19:42:10", "2026-11-30T19:42:10+00:00"),
    ("19:42:10.5", "2026-11-30T19:42:10.500+00:00"),
    (" 7:05:00.125 ", "2026-11-30T07:05:00.125+00:00"),
    ("2026-11-30T19:42:10Z", "2026-11-30T19:42:10+00:00"),
    ("2026-11-30T19:42:10.250+00:00", "2026-11-30T19:42:10.250+00:00"),
    ("2026-11-30T20:42:10.25+01:00", "2026-11-30T19:42:10.250+00:00"),
    ("2026-11-30 19:42:10", "2026-11-30T19:42:10+00:00"),  # no offset: in the zone
    (1764531730.5, "2025-11-30T19:42:10.500+00:00"),  # Unix seconds from a program
])
def test_accepted_forms(text, expected):
    assert parse_wallclock(text, zone="UTC", now=NOW) == pytest.approx(unix(expected), abs=1e-6)


@pytest.mark.parametrize("text", ["", "19:42", "25:00:00", "19:60:00", "19:42:60", "19:42:10,5",
                                  "yesterday", "2026-13-01T10:00:00Z", "-19:42:10", "1e9x",
                                  float("nan"), -5.0, True])
def test_refused_with_an_example(text):
    with pytest.raises(InvalidInput) as err:
        parse_wallclock(text, zone="UTC", now=NOW)
    assert "19:42:10" in str(err.value) or "valid" in str(err.value) or "time of day" in str(
        err.value)


def test_a_bare_time_is_today_unless_that_is_over_12_hours_ahead():
    assert parse_wallclock("21:00:00", zone="UTC", now=NOW) == unix("2026-11-30T21:00:00+00:00")
    # 08:30 tomorrow would be 12.5 h ahead; today's 08:30 is 11.5 h ago.
    assert parse_wallclock("08:30:00", zone="UTC", now=NOW) == unix("2026-11-30T08:30:00+00:00")
    early = unix("2026-12-01T00:05:00+00:00")  # just after midnight, 23:59 means last night
    assert parse_wallclock("23:59:00", zone="UTC", now=early) == unix("2026-11-30T23:59:00+00:00")


def test_the_zone_and_the_date():
    assert (parse_wallclock("19:42:10", zone="Europe/Paris", now=NOW)
            == unix("2026-11-30T18:42:10+00:00"))
    day = parse_date("2026-11-02")
    assert (parse_wallclock("19:42:10", zone="UTC", now=NOW, day=day)
            == unix("2026-11-02T19:42:10+00:00"))
    with pytest.raises(InvalidInput, match="own date"):
        parse_wallclock("2026-11-30T19:42:10Z", zone="UTC", now=NOW, day=day)
    with pytest.raises(InvalidInput, match="Unknown time zone"):
        parse_wallclock("19:42:10", zone="Mars/Olympus", now=NOW)
    for bad in ("2026-11-31", "30/11/2026", "2026-1-5", ""):
        with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
            parse_date(bad)


def test_dst_gap_is_refused_and_an_ambiguous_time_is_the_latest_not_in_the_future():
    london = "Europe/London"
    spring = parse_date("2026-03-29")  # 01:00 -> 02:00
    with pytest.raises(InvalidInput, match="does not exist"):
        parse_wallclock("01:30:00", zone=london, now=NOW, day=spring)
    autumn = parse_date("2026-10-25")  # 02:00 BST -> 01:00 GMT: 01:30 happens twice
    first, second = unix("2026-10-25T00:30:00+00:00"), unix("2026-10-25T01:30:00+00:00")
    assert parse_wallclock("01:30:00", zone=london, now=NOW, day=autumn) == second
    between = unix("2026-10-25T01:00:00+00:00")  # only the first 01:30 has happened
    assert parse_wallclock("01:30:00", zone=london, now=between, day=autumn) == first


def test_interval_end_is_the_first_such_time_after_the_start():
    late = unix("2026-11-30T23:59:55+00:00")
    s, e = parse_wall_interval("23:59:50", "00:00:10", zone="UTC", now=late)
    assert (s, e) == (unix("2026-11-30T23:59:50+00:00"), unix("2026-12-01T00:00:10+00:00"))
    s, e = parse_wall_interval("19:42:10", "2026-11-30T19:42:40Z", zone="UTC", now=NOW)
    assert e - s == 30


def test_interval_and_last_checks():
    with pytest.raises(InvalidInput, match="after start"):
        check_wall_interval(NOW, NOW, max_seconds=600)
    with pytest.raises(InvalidInput, match="600"):
        check_wall_interval(NOW, NOW + 601, max_seconds=600)
    assert parse_last("30", max_seconds=600) == 30 and parse_last("1:30", max_seconds=600) == 90
    for bad in ("0", "601", "-5", "x"):
        with pytest.raises(InvalidInput):
            parse_last(bad, max_seconds=600)


def test_format_is_iso_utc_with_milliseconds():
    assert format_wallclock(unix("2026-11-30T19:42:10.25+00:00")) == "2026-11-30T19:42:10.250Z"
    assert format_wallclock(0.0004) == "1970-01-01T00:00:00.000Z"


# --- properties ------------------------------------------------------------------------------

instants = st.floats(min_value=unix("2000-01-01T00:00:00+00:00"),
                     max_value=unix("2037-12-31T00:00:00+00:00"), allow_nan=False)


def _same_reading_within_slack(local: datetime, tz: ZoneInfo, now: float) -> bool:
    """Whether the clock reading `local` shows on the day before or after too within 12 h of
    now: next to a day the clocks went forward on, that day is 23 h long, and a reading 11.5 h
    ahead is also 11.5 h ago (typed, it names one of the two)."""
    days = (local.date() - timedelta(days=1), local.date() + timedelta(days=1))
    return any(abs(t - now) <= FUTURE_SLACK
               for day in days for t in readings(day, local.time().replace(tzinfo=None), tz))


@given(instants, st.sampled_from(ZONES), st.floats(min_value=-FUTURE_SLACK + 1,
                                                   max_value=FUTURE_SLACK - 1))
@example(now=1002366900.0, zone="Pacific/Chatham", ahead=-39600.0)  # the clocks went forward
def test_a_typed_local_clock_time_names_that_time_today_or_the_day_before(now, zone, ahead):
    """Type the local clock reading of an instant within 12 h of now: an instant in the past
    comes back as itself; one ahead as itself when it is still today there (a reading of
    tomorrow means today's, or yesterday's when today's is over 12 h ahead). The DST-repeated
    hour aside, whose readings are ambiguous, and readings that name two instants within 12 h
    of now (a 23-hour day: today's is taken unless over 12 h ahead, as documented)."""
    tz = ZoneInfo(zone)
    target = round(now + ahead, 3)
    local = datetime.fromtimestamp(target, tz)
    ambiguous = (local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
                 or _same_reading_within_slack(local, tz, now))
    text = local.strftime("%H:%M:%S.%f")
    got = parse_wallclock(text, zone=zone, now=now)
    assert datetime.fromtimestamp(got, tz).strftime("%H:%M:%S.%f") == text
    assert got - now <= FUTURE_SLACK
    today = datetime.fromtimestamp(now, tz).date()
    if not ambiguous and (ahead <= 0 or local.date() == today):
        assert got == pytest.approx(target, abs=1e-6)
    elif not ambiguous:  # tomorrow's reading: the same reading today (or yesterday), passed
        assert got < now and datetime.fromtimestamp(got, tz).date() < local.date()


@given(instants, st.sampled_from(ZONES))
def test_iso_round_trips_in_any_zone(moment, zone):
    moment = round(moment, 3)
    stamp = datetime.fromtimestamp(moment, ZoneInfo(zone)).isoformat(timespec="milliseconds")
    assert parse_wallclock(stamp, zone="UTC", now=NOW) == pytest.approx(moment, abs=1e-6)
    assert parse_wallclock(format_wallclock(moment), zone=zone, now=NOW) == pytest.approx(
        moment, abs=1e-6)


@given(instants, st.floats(min_value=0.04, max_value=600), st.sampled_from(ZONES))
# Started on the second pass of London's repeated hour, with now after the start: the end is
# on that pass too, not a day later.
@example(start=1035676800.0, length=1.0, zone="Europe/London")
def test_a_clock_time_interval_keeps_its_length(start, length, zone):
    start, end = round(start, 3), round(start + length, 3)
    tz = ZoneInfo(zone)
    day = datetime.fromtimestamp(start, tz).date()
    a = datetime.fromtimestamp(start, tz).strftime("%H:%M:%S.%f")
    b = datetime.fromtimestamp(end, tz).strftime("%H:%M:%S.%f")
    s, e = parse_wall_interval(a, b, zone=zone, now=start + 3600, day=day)
    # Across a DST change the clock readings differ from the length by the change itself.
    shift = (datetime.fromtimestamp(end, tz).utcoffset()
             - datetime.fromtimestamp(start, tz).utcoffset())
    assert e > s
    if shift == timedelta(0) and datetime.fromtimestamp(start, tz).fold == 0:
        assert e - s == pytest.approx(end - start, abs=1e-5)


def test_examples_of_dates_far_apart():
    assert parse_date("2026-02-28") == date(2026, 2, 28)
    assert datetime.fromtimestamp(parse_wallclock("00:00:00", zone="UTC", now=NOW), UTC).day == 30
