"""A worker's lower CPU priority holds against other sessions (Linux autogroup scheduling)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clipper.pipeline.worker import BACKGROUND_NICE, _lower_autogroup

# The CI machine's kernel schedules by autogroup (as Debian's and Ubuntu's do): no skip, a kernel
# without /proc/self/autogroup fails these loudly rather than checking nothing.
PROBE = ("import os; from clipper.pipeline.worker import lower_priority; lower_priority(); "
         "print(os.nice(0)); print(open('/proc/self/autogroup').read().strip())")


def _probe(*, new_session: bool) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, start_new_session=new_session, check=True)
    return out.stdout.splitlines()


def test_a_session_leading_worker_lowers_its_whole_session() -> None:
    # As `clipper up` starts it: its own session, so its own autogroup, which nice alone
    # would leave competing with the dashboard and the database as an equal.
    nice, group = _probe(new_session=True)
    assert int(nice) == os.nice(0) + BACKGROUND_NICE
    assert group.endswith(f"nice {BACKGROUND_NICE}")


def test_a_worker_in_someone_elses_session_leaves_the_session_alone() -> None:
    before = Path("/proc/self/autogroup").read_text().split()[-1]
    _nice, group = _probe(new_session=False)
    assert group.split()[-1] == before  # the terminal's (here: pytest's) session untouched


def test_no_autogroup_is_no_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "autogroup"
    _lower_autogroup(5, missing)
    assert not missing.exists()
