"""The rota's pure decisions: DST repeats, coverage, overlap, gap merging. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clipper import rota
from clipper.errors import Conflict, InvalidInput


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_weekly_repeat_keeps_london_wall_time_across_both_clock_changes():
    s = rota.parse_time("2027-03-21T19:00", "Europe/London")
    e = rota.parse_time("2027-03-21T21:00", "Europe/London")
    assert s == utc(2027, 3, 21, 19)
    spring = rota.weekly(s, e, "Europe/London", date(2027, 4, 4))
    assert [a for a, _ in spring] == [utc(2027, 3, 21, 19), utc(2027, 3, 28, 18),
                                      utc(2027, 4, 4, 18)]
    assert all(b - a == timedelta(hours=2) for a, b in spring)
    s2 = rota.parse_time("2027-10-24T19:00", "Europe/London")
    autumn = rota.weekly(s2, s2 + timedelta(hours=1), "Europe/London", date(2027, 11, 7))
    assert [a for a, _ in autumn] == [utc(2027, 10, 24, 18), utc(2027, 10, 31, 19),
                                      utc(2027, 11, 7, 19)]


def test_parse_time_offsets_and_refusals():
    assert rota.parse_time("2027-03-21T19:00:00+01:00", "UTC") == utc(2027, 3, 21, 18)
    assert rota.parse_time("2027-03-21T19:00Z", "Europe/London") == utc(2027, 3, 21, 19)
    with pytest.raises(InvalidInput):
        rota.parse_time("tomorrow", "UTC")
    with pytest.raises(InvalidInput):
        rota.parse_day("2027-13-01")


def test_weekly_refusals():
    s = utc(2027, 1, 4, 19)
    with pytest.raises(InvalidInput, match="end after"):
        rota.weekly(s, s, "UTC", None)
    with pytest.raises(InvalidInput, match="before the first"):
        rota.weekly(s, s + timedelta(hours=1), "UTC", date(2027, 1, 3))
    with pytest.raises(InvalidInput, match="at most"):
        rota.weekly(s, s + timedelta(hours=1), "UTC", date(2029, 1, 1))
    assert len(rota.weekly(s, s + timedelta(hours=1), "UTC", date(2027, 1, 4))) == 1
    with pytest.raises(InvalidInput):
        rota.check_shift(s, s + timedelta(hours=1), 0)


def test_needs_never_below_the_people_on_the_shift():
    rota.check_needs(7, 2, ["ann", "bob"])
    rota.check_needs(7, 3, ["ann", "bob"])
    with pytest.raises(Conflict, match="already has 2 people \\(ann, bob\\)") as exc:
        rota.check_needs(7, 1, ["ann", "bob"])
    assert "at least 2" in exc.value.hint


def test_status_and_overlap():
    assert [rota.status(2, n) for n in (0, 1, 2, 3)] == ["empty", "short", "covered", "covered"]
    a, b, c = utc(2027, 1, 1, 18), utc(2027, 1, 1, 19), utc(2027, 1, 1, 20)
    assert not rota.overlaps(a, b, b, c)  # back to back
    assert rota.overlaps(a, c, b, c)


def test_gaps_merge_back_to_back_and_take_the_most_missing():
    t = [utc(2027, 1, 1, h) for h in range(24)]
    got = rota.merge_gaps([
        ("news", t[18], t[19], 1, 0),      # empty
        ("news", t[19], t[20], 2, 0),      # empty, back to back: one gap, 2 missing
        ("news", t[20], t[21], 1, 1),      # covered: ends the gap
        ("news", t[22], t[23], 2, 1),      # short on its own
        ("sport", t[18], t[20], 1, 0),
    ])
    assert got == [rota.Gap("news", t[18], t[20], 2), rota.Gap("news", t[22], t[23], 1),
                   rota.Gap("sport", t[18], t[20], 1)]
    assert rota.merge_gaps([("news", t[1], t[2], 1, 1)]) == []


shifts = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 50), st.integers(1, 6),
                            st.integers(1, 3), st.integers(0, 3)), max_size=25)


@given(shifts)
def test_gaps_cover_every_short_shift_and_never_touch(raw):
    base = utc(2027, 1, 1)
    hour = timedelta(hours=1)
    items = [(ch, base + s * hour, base + (s + d) * hour, n, p) for ch, s, d, n, p in raw]
    got = rota.merge_gaps(items)
    for ch, s, e, n, p in items:
        inside = [g for g in got if g.channel == ch and g.start <= s and e <= g.end]
        if p < n:  # a covered shift may lie inside the gap its short neighbours make
            assert inside and inside[0].missing >= n - p
    for g, h in zip(got, got[1:], strict=False):
        assert g.start < g.end
        if g.channel == h.channel:
            assert g.end < h.start  # maximal: merged gaps neither overlap nor touch


def test_slot_bounds_are_local_wall_times_across_daylight_saving():
    """3-hour slots from local midnight: eight a day whatever the clocks do; on London's
    spring-forward day the 00:00 slot lasts two real hours, on the autumn one four."""
    week = rota.slot_bounds(date(2027, 1, 4), 7, "UTC")
    assert len(week) == 7 * 8 + 1 and week[0] == utc(2027, 1, 4) and week[-1] == utc(2027, 1, 11)
    assert all(b - a == timedelta(hours=3) for a, b in zip(week, week[1:], strict=False))
    spring = rota.slot_bounds(date(2027, 3, 28), 1, "Europe/London")
    assert spring[:3] == [utc(2027, 3, 28, 0), utc(2027, 3, 28, 2), utc(2027, 3, 28, 5)]
    assert spring[-1] == utc(2027, 3, 28, 23)  # midnight BST
    autumn = rota.slot_bounds(date(2027, 10, 31), 1, "Europe/London")
    assert autumn[1] - autumn[0] == timedelta(hours=4) and len(autumn) == 9
    assert rota.slot_bounds(date(2027, 1, 4), 1, "UTC", hours=6)[1] == utc(2027, 1, 4, 6)
    with pytest.raises(InvalidInput, match="whole hours"):
        rota.slot_bounds(date(2027, 1, 4), 1, "UTC", hours=5)


def test_grid_cells_colour_each_slot_by_the_shifts_in_it():
    """A covered evening and an empty morning on one day are two cells, not one "short" day;
    a slot half covered and half empty is short; a slot without shifts is NONE."""
    edges = rota.slot_bounds(date(2027, 1, 4), 1, "UTC")  # 00, 03, ..., 21, 24
    t = [utc(2027, 1, 4, h) for h in range(24)]
    got = rota.grid_cells([
        ("news", t[6], t[9], "empty"),                           # the 06:00 slot
        ("news", t[19], t[21], "covered"),                       # inside the 18:00 slot
        ("sport", t[10], t[14], "covered"),                      # 09:00 and 12:00 slots
        ("sport", t[14], t[15], "empty"),                        # 12:00 slot: now mixed
        ("sport", t[20], utc(2027, 1, 5, 2), "short"),           # 18:00, 21:00, then off grid
        ("sport", utc(2027, 1, 3, 22), t[1], "covered"),         # from the day before
    ], edges, ["c4", "news"])
    n, e, c, s = rota.NONE, "empty", "covered", "short"
    assert got == {"c4": [n] * 8,
                   "news": [n, n, e, n, n, n, c, n],
                   "sport": [c, n, n, c, s, n, s, s]}
    # Touching a slot's edge is not overlapping it (half-open, like shifts).
    assert rota.grid_cells([("x", t[3], t[6], "covered")], edges)["x"] == [n, c] + [n] * 6
    assert [rota.coverage(x) for x in ([], ["covered"], ["empty", "empty"], ["covered", "short"],
                                       ["covered", "empty"])] == [n, c, e, s, s]
