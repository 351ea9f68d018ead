"""The ffconcat list that makes a section's timeline linear in wall-clock time (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper.media.concat import SegmentFile, concat_listing


def test_each_file_lasts_until_the_next_starts_and_the_last_its_own_length():
    files = [SegmentFile(Path("/rec/a.ts"), 100.0, 2.08),
             SegmentFile(Path("/rec/b.ts"), 102.0, 2.0),
             SegmentFile(Path("/rec/c.ts"), 110.5, 1.5)]  # 6.5 s missing before c
    lines = concat_listing(files).splitlines()
    assert lines == ["ffconcat version 1.0",
                     "file '/rec/a.ts'", "duration 2.000000",
                     "file '/rec/b.ts'", "duration 8.500000",  # the gap is a timestamp jump
                     "file '/rec/c.ts'", "duration 1.500000"]


def test_quotes_in_paths_are_escaped_and_nothing_is_refused():
    listing = concat_listing([SegmentFile(Path("/rec/it's.ts"), 1.0, 2.0)])
    assert "file '/rec/it'\\''s.ts'" in listing
    with pytest.raises(ValueError):
        concat_listing([])
