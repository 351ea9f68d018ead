"""A worker's lower CPU priority holds against other sessions (Linux autogroup scheduling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clipper.pipeline.worker import BACKGROUND_NICE, _lower_autogroup

# The CI machine's kernel schedules by autogroup (as Debian's and Ubuntu's do): no skip, a kernel
# without /proc/self/autogroup fails these loudly rather than checking nothing. A process placed
# in a non-root CPU cgroup (as some CI runners place their jobs) reads the file as empty: the
# kernel applies no autogroup to it, and the checks below hold for that too.
PROBE = ("import json, os; from clipper.pipeline.worker import lower_priority; lower_priority(); "
         "print(json.dumps([os.nice(0), open('/proc/self/autogroup').read().strip()]))")


def _probe(*, new_session: bool) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, start_new_session=new_session, check=True)
    nice, group = json.loads(out.stdout)
    return int(nice), group


def test_a_session_leading_worker_lowers_its_whole_session() -> None:
    # As `clipper up` starts it: its own session, so its own autogroup, which nice alone
    # would leave competing with the dashboard and the database as an equal.
    nice, group = _probe(new_session=True)
    assert nice == os.nice(0) + BACKGROUND_NICE
    assert group == "" or group.endswith(f"nice {BACKGROUND_NICE}")


def test_a_worker_in_someone_elses_session_leaves_the_session_alone() -> None:
    before = Path("/proc/self/autogroup").read_text().strip()
    _nice, group = _probe(new_session=False)
    assert group == before  # the terminal's (here: pytest's) session untouched


def test_no_autogroup_is_no_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "autogroup"
    _lower_autogroup(5, missing)
    assert not missing.exists()
