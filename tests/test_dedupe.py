"""Merge decisions for duplicate flags (pure)."""

import pytest

from clipper.dedupe import Candidate, choose_clip, merged_interval, same_moment


@pytest.mark.parametrize("a,b,same", [
    ((0, 10), (5, 15), True),     # overlap 5 = half of 10
    ((0, 10), (6, 16), False),    # overlap 4 < 5
    ((0, 60), (10, 20), True),    # contained: overlap is all of the shorter
    ((0, 10), (10, 20), False),   # touching is not overlapping
    ((0, 100), (95, 105), True),  # shorter is 10, overlap 5
    ((0, 100), (96, 106), False),
])
def test_same_moment_needs_half_of_the_shorter_interval(a, b, same):
    assert same_moment(a, b) is same
    assert same_moment(b, a) is same


def test_choose_clip_prefers_largest_overlap_and_skips_closed_clips():
    cands = [Candidate(1, 0, 10, "ready"), Candidate(2, 4, 14, "queued"),
             Candidate(3, 5, 15, "published"), Candidate(4, 5, 15, "rejected")]
    assert choose_clip((5, 15), cands).clip_id == 2
    assert choose_clip((100, 110), cands) is None
    assert choose_clip((5, 15), cands[2:]) is None


def test_merged_interval_is_the_union_capped():
    assert merged_interval((10, 20), (15, 30), max_seconds=600) == (10, 30)
    assert merged_interval((0, 500), (300, 700), max_seconds=600) == (0, 600)
