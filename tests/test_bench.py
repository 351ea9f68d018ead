"""The benchmark scripts still run (tiny sizes): a broken benchmark is found here, not on the
night."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.services, pytest.mark.postgres]  # runs bench/ on SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parent.parent


def test_search_benchmark_runs_on_both_databases() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "search.py"), "--segments", "3000",
                          "--rounds", "1"], capture_output=True, text=True, timeout=240,
                         check=True).stdout
    for backend in ("sqlite", "postgresql"):
        assert re.search(rf"\[{backend}\] 3,000 segments: .*index build [\d.]+ s, index size",
                         out), out
        assert re.search(rf"\[{backend}\] latency .* p50 [\d.]+ ms, p95 [\d.]+ ms wall", out), out
        # every one of the 20 queries printed a line with its hit count
        assert len(re.findall(rf"\[{backend}\] +[\d.]+ ms +\d+\+? hits", out)) == 20, out


def test_rota_benchmark_runs_on_both_databases() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "rota.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, check=True).stdout
    for backend in ("sqlite", "postgresql"):
        assert re.search(rf"\[{backend}\] 3 channels, 120 shifts, 50 volunteers, [\d,]+ signups",
                         out), out
        for label in ("grid", "list_shifts", "gaps"):
            assert re.search(rf"\[{backend}\] {label} +\d+ rows  median +[\d.]+ ms, "
                             rf"p95 +[\d.]+ ms over 3 runs", out), out
        for page in ("rota", "my_shifts"):  # the dashboard pages, run under AppTest
            assert re.search(rf"\[{backend}\] page {page} +\d+ choices  median +[\d.]+ ms, "
                             rf"p95 +[\d.]+ ms over 2 runs", out), out


def test_live_asr_benchmark_quick_mode_runs() -> None:
    """One Whisper channel (10/8) and one captioned channel airing a ~25 s programme: about half a
    minute, most of it airtime."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "live_asr.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, check=True).stdout
    assert re.search(r"offline \(order A\): WER [\d.]+, the watches find \d of 2 phrases", out), out
    assert re.search(r"whisper 10/8 +\d+ +\d+ +\d+  (p50|n/a)", out), out
    # Captions carry the text exactly: both phrases alert, no near-miss does.
    assert re.search(r"captions +2 +0 +0  p50 +-?[\d.]+ s, p95", out), out
    assert re.search(r"10/8: [\d.]+ CPU s per audio s per channel", out), out
    assert re.search(r"Peak RSS: recorder \d+ MB, 10/8 \d+ MB; whole tree \d+ MB", out), out
