"""`clipper models convert-openai`, then `clipper flag --wait` with each engine
returns a transcript."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.services


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_flag_wait_returns_a_transcript_with_each_engine(engine, tmp_path, sqlite_url, redis_conn,
                                                          broadcast):
    home = tmp_path / "home"
    env = {**os.environ, "CLIPPER_HOME": str(home), "DATABASE_URL": sqlite_url,
           "REDIS_URL": "redis://127.0.0.1:6379/9", "HF_HUB_OFFLINE": "1",
           "CLIPPER_WHISPER_ENGINE": engine}
    if engine == "openai-whisper":
        ckpt = tmp_path / "tiny.en.pt"
        conv = subprocess.run([sys.executable, "-m", "clipper.cli", "models", "convert-openai",
                               "--out", str(ckpt)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert conv.returncode == 0, conv.stderr
        assert Path(conv.stdout.strip()) == ckpt and ckpt.stat().st_size > 30_000_000
        env["CLIPPER_WHISPER_MODEL"] = str(ckpt)
    worker = subprocess.Popen([sys.executable, "-m", "clipper.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc = subprocess.run([sys.executable, "-m", "clipper.cli", "flag", str(broadcast),
                               "--start", "3.3", "--end", "9.7", "--wait", "--json",
                               "--timeout", "240"],
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        worker.terminate()
        worker.wait(30)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    t = st["transcript"]
    assert st["status"] == "ready" and t["engine"] == engine
    assert "opposition" in t["text"].lower()
    words = [w for s in t["segments"] for w in s["words"]]
    assert words and all(w["end"] >= w["start"] for w in words)
    assert Path(st["srt_path"]).read_text().strip() and "WEBVTT" in Path(st["vtt_path"]).read_text()
    assert "asr" in st["stages"]
