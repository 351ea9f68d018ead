"""`pytest -m "not services"` passes with no Redis, PostgreSQL, ffmpeg or espeak-ng to reach."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.services, pytest.mark.slow]  # runs pytest itself in a subprocess

ROOT = Path(__file__).resolve().parent.parent


def test_pure_tests_need_no_services(tmp_path: Path) -> None:
    """A test that needs a service but is not marked `services` fails here, not on a laptop."""
    bin_dir = tmp_path / "bin"  # PATH holds python alone: no ffmpeg, ffprobe, espeak-ng, redis
    bin_dir.mkdir()
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "HF_HUB_OFFLINE": "1",
           "CLIPPER_TEST_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens on port 1
           "CLIPPER_TEST_PG_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x",
           "REDIS_URL": "redis://127.0.0.1:1/0",
           "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-browsers")}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "not services", "-q",
                           "-p", "no:cacheprovider", "--hypothesis-profile", "pure-split",
                           "--basetemp", str(tmp_path / "run")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) > 0, summary
    assert re.search(r"\d+ deselected", summary), summary  # the service tests were left out
