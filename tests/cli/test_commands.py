"""The `clipper` command line contract: flags, JSON keys, exit codes — against real workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipper.cli import main

pytestmark = pytest.mark.services

STATUS_KEYS = {"id", "status", "source", "start", "end", "duration", "media_path", "thumbnail_path",
               "error", "flaggers", "stages", "transcript", "srt_path", "vtt_path"}


@pytest.fixture
def cli_env(monkeypatch, make_settings, sqlite_url, redis_conn):
    s = make_settings(sqlite_url)
    env = {"CLIPPER_HOME": str(s.home), "DATABASE_URL": sqlite_url, "REDIS_URL": s.redis_url,
           "CLIPPER_URL_ALLOWLIST": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return {**os.environ, **env}


@pytest.fixture
def worker(cli_env):
    """A real `clipper worker` process on all queues."""
    proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "worker"], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.terminate()
    proc.wait(20)


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_flag_json_contract(cli_env, broadcast, capsys):
    assert main(["flag", str(broadcast), "--start", "1:02", "--end", "0:08.5", "--json"]) == 2
    assert "after start" in capsys.readouterr().err
    assert main(["flag", str(broadcast), "--start", "2", "--end", "6", "--note", "n", "--tag", "a",
                 "--tag", "b", "--urgency", "high", "--by", "ann", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"flag_id", "clip_id", "status", "merged"}
    assert out["merged"] is False and out["status"] == "queued"
    assert main(["flag", str(broadcast), "--start", "3", "--end", "7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["merged"] is True
    assert main(["status", str(out["clip_id"]), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert STATUS_KEYS <= set(st)
    assert st["flaggers"][0] == {"by": "ann", "note": "n", "tags": ["a", "b"], "urgency": "high",
                                 "at": st["flaggers"][0]["at"]}
    assert main(["list", "--status", "queued", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [out["clip_id"]] and "transcript" not in rows[0]


def test_invalid_inputs_exit_2_and_store_nothing(cli_env, capsys):
    assert main(["flag", "http://192.168.1.20/live.m3u8", "--start", "1", "--end", "5"]) == 2
    err = capsys.readouterr().err
    assert "private" in err and "CLIPPER_URL_ALLOWLIST" in err
    assert main(["flag", "/no/such/file.mp4", "--start", "1", "--end", "5"]) == 2
    assert main(["status", "999", "--json"]) == 2
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_flag_hls_url_wait_returns_a_ready_frame_accurate_clip(cli_env, worker, broadcast,
                                                               broadcast_site):
    from testmedia.mediagen import decode_gray, match_frame

    base, requested = broadcast_site
    start, end = 6.44, 17.72  # keyframes are every 2 s: neither time falls on one
    proc = run_cli("flag", f"{base}/hls/index.m3u8", "--start", str(start), "--end", str(end),
                   "--wait", "--json", "--timeout", "240", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["status"] == "ready" and st["flag_id"] and st["merged"] is False
    assert "%" in proc.stderr  # the progress bar
    assert Path(st["srt_path"]).exists() and Path(st["vtt_path"]).exists()
    src = decode_gray(broadcast)
    clip = decode_gray(Path(st["media_path"]))
    fps = 25
    first, _, _ = match_frame(clip[0], src)
    last, _, _ = match_frame(clip[-1], src)
    assert abs(first - round(start * fps)) <= 1
    assert abs(last - (round(end * fps) - 1)) <= 1
    segments = [p for p in requested if p.endswith(".ts")]
    assert 0 < len(set(segments)) < 8  # only the needed part of the programme was fetched


def test_wait_on_a_missing_url_exits_1_with_a_readable_error(cli_env, worker, broadcast_site):
    base, _ = broadcast_site
    proc = run_cli("flag", f"{base}/missing.mp4", "--start", "1", "--end", "4", "--wait", "--json",
                   "--quiet", "--timeout", "120", env=cli_env)
    assert proc.returncode == 1
    assert "%|" not in proc.stderr  # --quiet: no progress bar
    st = json.loads(proc.stdout)
    assert st["status"] == "failed" and "404" in st["error"]
    assert "Traceback" not in st["error"]


def test_transcript_render_export_published_commands(cli_env, sqlite_url, make_settings, redis_conn,
                                                     broadcast, run_jobs, tmp_path, capsys):
    from clipper.context import Context

    ctx = Context.build(make_settings(sqlite_url), redis_conn=redis_conn)
    assert main(["flag", str(broadcast), "--start", "8", "--end", "14", "--json"]) == 0
    cid = json.loads(capsys.readouterr().out)["clip_id"]
    run_jobs(ctx)
    assert main(["transcript", str(cid), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    fixed = tmp_path / "fixed.txt"
    assert "debate" in before["text"]
    fixed.write_text(before["text"].replace("debate", "hustings"))
    assert main(["transcript", str(cid), "--set-text-file", str(fixed), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert "hustings" in after["text"] and "debate" not in after["text"]
    assert main(["transcript", str(cid), "--set-text-file", str(tmp_path / "missing.txt")]) == 2
    capsys.readouterr()

    assert main(["render", str(cid), "--formats", "16x9", "--in", "0.5", "--out", "4.5",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rendering"
    run_jobs(ctx)
    assert main(["status", str(cid), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["status"] == "rendered"
            and st["renders"][0]["duration"] == pytest.approx(4.0, abs=0.05))
    assert set(st["renders"][0]) == {"format", "fit", "captions", "path", "duration", "width",
                                     "height"}
    assert main(["export", str(cid), "--out", str(tmp_path / "pkg"), "--json"]) == 0
    pkg = json.loads(capsys.readouterr().out)
    assert pkg["path"] == str(tmp_path / "pkg") and "caption.txt" in pkg["files"]
    assert main(["published", str(cid), "--platform", "tiktok",
                 "--url", "https://tiktok.com/@t/video/1"]) == 0
    capsys.readouterr()
    assert main(["status", str(cid), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"][0]["platform"] == "tiktok"
    ctx.db.dispose()


def _rendered_clip(db_url: str, tmp_path: Path) -> int:
    """A clip with one stored render (its file a stand-in: packaging copies, never decodes)."""
    from clipper.storage.database import Database
    from clipper.storage.tables import Clip, RenderRow, Source

    render = tmp_path / "renders" / "16x9.mp4"
    render.parent.mkdir()
    render.write_bytes(b"not really video")
    db = Database(db_url)
    try:
        with db.session() as session:
            src = Source(kind="url", key="http://127.0.0.1:9/show.mp4",
                         location="http://127.0.0.1:9/show.mp4")
            clip = Clip(source=src, start=8.0, end=14.0, duration=6.0, status="rendered")
            session.add_all([src, clip])
            session.flush()
            session.add(RenderRow(clip_id=clip.id, format="16x9", fit="crop", captions="none",
                                  path=str(render), duration=6.0, width=1920, height=1080))
            return clip.id
    finally:
        db.dispose()


def test_export_never_deletes_a_folder_it_did_not_write(cli_env, sqlite_url, tmp_path, capsys):
    cid = str(_rendered_clip(sqlite_url, tmp_path))
    out = tmp_path / "out"
    mine = out / "Documents"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own work")
    (out / "report.zip").write_text("not a package")

    assert main(["export", cid, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "empty or new folder" in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "my own work"
    assert main(["export", cid, "--out", str(out / "report")]) == 2  # report.zip is not ours
    assert "report.zip exists" in capsys.readouterr().err
    assert (out / "report.zip").read_text() == "not a package"
    assert sorted(p.name for p in out.iterdir()) == ["Documents", "report.zip"]  # no leftovers

    empty = out / "empty"
    empty.mkdir()
    for _ in range(2):  # a new or empty folder, then the package written there, re-exported
        assert main(["export", cid, "--out", str(empty), "--json"]) == 0
        pkg = json.loads(capsys.readouterr().out)
        assert pkg["path"] == str(empty) and "metadata.json" in pkg["files"]
    assert sorted(p.name for p in out.iterdir()) == ["Documents", "empty", "empty.zip",
                                                     "report.zip"]


def test_a_failed_export_leaves_the_earlier_package_whole(cli_env, sqlite_url, tmp_path, capsys,
                                                          monkeypatch):
    import clipper.media.package as package

    cid = str(_rendered_clip(sqlite_url, tmp_path))
    out = tmp_path / "out"
    assert main(["export", cid, "--out", str(out / "pkg"), "--json"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    before.update({f"pkg/{p.name}": p.read_bytes() for p in (out / "pkg").iterdir()})

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package, "_zip", disk_full)
    with pytest.raises(OSError, match="No space"):
        main(["export", cid, "--out", str(out / "pkg")])
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    after.update({f"pkg/{p.name}": p.read_bytes() for p in (out / "pkg").iterdir()})
    assert after == before and sorted(p.name for p in out.iterdir()) == ["pkg", "pkg.zip"]
