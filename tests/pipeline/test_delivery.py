"""Exported packages delivered to a real `rclone serve webdav` on loopback, on SQLite and
PostgreSQL: identical files, never a second copy, retried with backoff while the drive is down
and delivered when it comes back, failed at once for a remote rclone does not know, claimed by
one of two deliverers, shown in the status object (`delivered` once on the drive, `delivery`
however it is going) and on the clip page.

Time moves by passing `now=` to the deliverer, never by waiting; real processes are waited for
by polling with a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from polling import poll
from sqlalchemy import select

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.delivery import (
    CLAIM_MARGIN_SECONDS,
    PackageDeliveryLoop,
    _claim_one,
    deliver_packages,
    retry_delay,
)
from clipper.pipeline.packaging import export_clip
from clipper.services.clips import clip_status
from clipper.storage.tables import Clip, Delivery, Flag, RenderRow, Source

pytestmark = pytest.mark.services  # rclone: installed by scripts/setup.sh

OPERATOR = Actor.operator("ann")
NOTHING = {"delivered": 0, "retrying": 0, "failed": 0}


def free_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def webdav(folder: Path, port: int) -> Iterator[Path]:
    """The team's drive: `rclone serve webdav folder` on 127.0.0.1:port."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["rclone", "serve", "webdav", str(folder), "--addr",
                             f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: proc.poll() is not None or _listening(port), 10, "rclone serve webdav")
        assert proc.poll() is None, "rclone serve webdav exited"
        yield folder
    finally:
        proc.terminate()
        proc.wait(10)


def sharing(ctx: Context, port: int, tmp_path: Path,
            remote: str = "teamdrive:Clips/{date}") -> Context:
    """Delivery on, to the `teamdrive` remote at `port`, configured by environment variables
    (and an empty config file, so the machine's own rclone config plays no part)."""
    conf = tmp_path / "rclone.conf"
    conf.touch()
    env = {**ctx.settings.env, "RCLONE_CONFIG_TEAMDRIVE_TYPE": "webdav",
           "RCLONE_CONFIG_TEAMDRIVE_URL": f"http://127.0.0.1:{port}",
           "RCLONE_CONFIG_TEAMDRIVE_VENDOR": "other"}
    ctx.settings = dataclasses.replace(ctx.settings, share_remote=remote,
                                       rclone_config=str(conf), env=env)
    return ctx


def rendered_clip(ctx: Context, tmp_path: Path, note: str = "waiting lists promise") -> int:
    """A rendered clip straight in the database, its one render a file of random bytes: the
    export only links and checksums renders, so no ffmpeg is needed."""
    render = tmp_path / "renders" / f"{note[:8].replace(' ', '-')}-{os.urandom(3).hex()}.mp4"
    render.parent.mkdir(parents=True, exist_ok=True)
    render.write_bytes(os.urandom(200_000))
    with ctx.db.session() as s:
        src = Source(kind="url", key=f"url:{render.name}", location="https://news.example/x")
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, start=10.0, end=16.0, status="rendered", duration=6.0,
                    caption_text="Waiting lists will fall, says the minister.")
        s.add(clip)
        s.flush()
        s.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=16.0, note=note,
                   by="vera"))
        s.add(RenderRow(clip_id=clip.id, format="16x9", fit="crop", captions="burn",
                        path=str(render), duration=6.0, width=320, height=180))
        s.flush()
        return clip.id


def exported(ctx: Context, tmp_path: Path, note: str = "waiting lists promise") -> tuple[int, Path]:
    cid = rendered_clip(ctx, tmp_path, note)
    return cid, Path(export_clip(ctx, cid, by="sam")["path"])


def deliveries(ctx: Context) -> list[Delivery]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def landed(served: Path, row: Delivery) -> Path:
    """Where a delivery's remote path `teamdrive:Clips/...` lies in the served folder."""
    return served / row.remote_path.split(":", 1)[1]


def now() -> datetime:
    return datetime.now(UTC)


def test_retry_delays_grow_by_three_to_half_an_hour() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [10, 30, 90, 270, 810, 1800, 1800, 1800]


def test_no_remote_set_means_no_delivery(ctx: Context, tmp_path: Path) -> None:
    cid, _ = exported(ctx, tmp_path)
    assert deliveries(ctx) == []
    status = clip_status(ctx, OPERATOR, cid)
    assert status["delivered"] is None and status["delivery"] is None
    assert deliver_packages(ctx) == NOTHING


def test_export_is_delivered_identical_and_again_without_a_second_copy(
        ctx: Context, tmp_path: Path) -> None:
    port = free_port()
    sharing(ctx, port, tmp_path)
    cid, package = exported(ctx, tmp_path)
    [row] = deliveries(ctx)
    day = row.created_at.date().isoformat()  # CLIPPER_TIMEZONE is UTC here
    assert row.state == "pending" and row.source_path == str(package)
    assert row.remote_path == f"teamdrive:Clips/{day}/{package.name}"
    status = clip_status(ctx, OPERATOR, cid)
    assert status["status"] == "exported"
    assert status["delivered"] is None  # not on the drive yet
    assert status["delivery"] == {"state": "pending", "remote": "teamdrive",
                                  "path": f"Clips/{day}/{package.name}", "attempts": 0,
                                  "error": None, "at": None}
    with webdav(tmp_path / "drive", port) as served:
        assert deliver_packages(ctx) == {**NOTHING, "delivered": 1}
        [row] = deliveries(ctx)
        assert contents(landed(served, row)) == contents(package)
        assert {"metadata.json", "caption.txt", f"{cid}-16x9-crop.mp4"} <= set(contents(package))
        assert deliver_packages(ctx) == NOTHING  # delivered rows are done

        # Exported again (the package rebuilt in place): delivered again, into the same folder.
        export_clip(ctx, cid, by="sam")
        waiting = clip_status(ctx, OPERATOR, cid)
        assert waiting["delivery"]["state"] == "pending"
        assert waiting["delivered"]["path"] == f"Clips/{day}/{package.name}"  # the first copy
        assert deliver_packages(ctx) == {**NOTHING, "delivered": 1}
        rows = deliveries(ctx)
        assert [r.state for r in rows] == ["delivered", "delivered"]
        assert rows[0].remote_path == rows[1].remote_path
        assert [p.name for p in (served / "Clips" / day).iterdir()] == [package.name]
        assert contents(landed(served, rows[1])) == contents(package)

    status = clip_status(ctx, OPERATOR, cid)
    assert status["delivered"] == {"remote": "teamdrive", "path": f"Clips/{day}/{package.name}",
                                   "at": status["delivered"]["at"]}
    at = datetime.fromisoformat(status["delivered"]["at"])
    assert at == rows[1].delivered_at and at.utcoffset() == timedelta(0)
    assert status["delivery"] == {**status["delivered"], "state": "delivered", "attempts": 1,
                                  "error": None}
    assert status["export_path"] == str(package)  # the keys that were there are unchanged


def test_drive_down_is_retried_with_backoff_and_delivered_when_it_is_back(
        ctx: Context, tmp_path: Path) -> None:
    port = free_port()
    sharing(ctx, port, tmp_path, remote="teamdrive:Clips/{clip}")
    cid, package = exported(ctx, tmp_path)
    t0 = now()
    assert deliver_packages(ctx, now=t0) == {**NOTHING, "retrying": 1}
    [row] = deliveries(ctx)
    assert row.state == "pending" and row.attempts == 1
    assert "connection refused" in row.last_error
    assert row.next_attempt_at == t0 + timedelta(seconds=10)
    assert row.remote_path == f"teamdrive:Clips/{cid}/{package.name}"
    status = clip_status(ctx, OPERATOR, cid)
    shown = status["delivery"]
    assert status["delivered"] is None  # null until the package is on the drive
    assert shown["state"] == "pending" and shown["attempts"] == 1
    assert (shown["remote"], shown["path"]) == ("teamdrive", f"Clips/{cid}/{package.name}")
    assert "connection refused" in shown["error"]

    assert deliver_packages(ctx, now=t0 + timedelta(seconds=9)) == NOTHING  # not due yet
    assert deliver_packages(ctx, now=t0 + timedelta(seconds=11)) == {**NOTHING, "retrying": 1}
    assert deliveries(ctx)[0].next_attempt_at == t0 + timedelta(seconds=11 + 30)

    with webdav(tmp_path / "drive", port) as served:
        later = t0 + timedelta(seconds=45)
        assert deliver_packages(ctx, now=later) == {**NOTHING, "delivered": 1}
        [row] = deliveries(ctx)
        assert row.state == "delivered" and row.attempts == 3 and row.last_error is None
        assert row.delivered_at == later
        assert contents(landed(served, row)) == contents(package)
    assert clip_status(ctx, OPERATOR, cid)["delivered"] == {
        "remote": "teamdrive", "path": f"Clips/{cid}/{package.name}", "at": later.isoformat()}


def test_a_drive_down_for_a_day_is_given_up(ctx: Context, tmp_path: Path) -> None:
    sharing(ctx, free_port(), tmp_path)
    exported(ctx, tmp_path)
    t0 = now()
    assert deliver_packages(ctx, now=t0) == {**NOTHING, "retrying": 1}
    assert deliver_packages(ctx, now=t0 + timedelta(hours=24)) == {**NOTHING, "failed": 1}
    [row] = deliveries(ctx)
    assert row.state == "failed" and row.attempts == 2 and row.next_attempt_at is None
    assert "connection refused" in row.last_error


def test_unknown_remote_fails_at_once_with_the_reason(ctx: Context, tmp_path: Path) -> None:
    sharing(ctx, free_port(), tmp_path, remote="nosuchdrive:Clips/{date}")
    cid, _ = exported(ctx, tmp_path)
    assert deliver_packages(ctx) == {**NOTHING, "failed": 1}
    [row] = deliveries(ctx)
    assert row.state == "failed" and row.attempts == 1
    assert "didn't find section in config file" in row.last_error
    status = clip_status(ctx, OPERATOR, cid)
    shown = status["delivery"]
    assert status["delivered"] is None
    assert shown["state"] == "failed" and shown["at"] is None
    assert shown["remote"] == "nosuchdrive" and shown["path"].startswith("Clips/")
    assert "didn't find section" in shown["error"]
    assert deliver_packages(ctx, now=now() + timedelta(hours=1)) == NOTHING  # never again


def test_two_deliverers_at_once_copy_each_package_once(ctx: Context, tmp_path: Path) -> None:
    port = free_port()
    sharing(ctx, port, tmp_path)
    packages = [exported(ctx, tmp_path, f"story number {i}")[1] for i in range(4)]
    other = Context.build(ctx.settings)  # a second process's own pool
    results: list[dict[str, int]] = []
    start = threading.Barrier(2)

    def deliver(c: Context) -> None:
        start.wait(10)
        results.append(deliver_packages(c))

    try:
        with webdav(tmp_path / "drive", port) as served:
            threads = [threading.Thread(target=deliver, args=(c,)) for c in (ctx, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            rows = deliveries(ctx)
            assert sum(r["delivered"] for r in results) == 4, results
            assert [(r.state, r.attempts) for r in rows] == [("delivered", 1)] * 4  # one claim each
            for row, package in zip(rows, packages, strict=True):
                assert contents(landed(served, row)) == contents(package)
    finally:
        other.db.dispose()


def test_a_dead_deliverers_claim_runs_out_and_another_delivers(ctx: Context,
                                                               tmp_path: Path) -> None:
    port = free_port()
    sharing(ctx, port, tmp_path)
    exported(ctx, tmp_path)
    t0 = now()
    claimed = _claim_one(ctx, t0, 60.0, set())  # ... and then that deliverer died
    assert claimed is not None and claimed.attempts == 1
    with webdav(tmp_path / "drive", port):
        assert deliver_packages(ctx, now=t0 + timedelta(seconds=30), timeout=60.0) == NOTHING
        after = t0 + timedelta(seconds=60 + CLAIM_MARGIN_SECONDS + 1)
        assert deliver_packages(ctx, now=after, timeout=60.0) == {**NOTHING, "delivered": 1}
    [row] = deliveries(ctx)
    assert row.state == "delivered" and row.attempts == 2


def test_the_loop_in_clipper_up_delivers_within_seconds(ctx: Context, tmp_path: Path) -> None:
    port = free_port()
    sharing(ctx, port, tmp_path)
    loop = PackageDeliveryLoop(ctx, every=0.2)
    loop.start()
    try:
        with webdav(tmp_path / "drive", port) as served:
            cid, package = exported(ctx, tmp_path)
            shown = poll(lambda: clip_status(ctx, OPERATOR, cid)["delivered"], 30,
                         "the delivery")
            assert shown["remote"] == "teamdrive"
            assert contents(served / shown["path"]) == contents(package)
    finally:
        loop.stop()
    assert not loop.is_alive()


def test_clip_page_shows_the_delivery_and_remote_path(sqlite_ctx: Context, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from clipper.services import users
    from dashboard.deps import TOKEN_KEY

    ctx = sharing(sqlite_ctx, free_port(), tmp_path, remote="nosuchdrive:Clips")
    cid, package = exported(ctx, tmp_path)
    deliver_packages(ctx)
    users.add_user(ctx, Actor.operator("setup"), "sam", "social", "correct horse battery")
    for key in ("CLIPPER_HOME", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(key, ctx.settings.env[key] if key != "DATABASE_URL"
                           else ctx.settings.database_url)
    page = Path(__file__).resolve().parents[2] / "dashboard" / "clip.py"
    at = AppTest.from_file(str(page), default_timeout=30)
    at.session_state[TOKEN_KEY] = users.authenticate(ctx, "sam", "correct horse battery")
    at.query_params["id"] = str(cid)
    at.run()
    assert not at.exception
    text = "\n".join(str(e.value) for kind in ("markdown", "subheader", "error")
                     for e in getattr(at, kind))
    assert "Shared drive" in text and "failed" in text
    assert f"nosuchdrive:Clips/{package.name}" in text
    assert "didn't find section in config file" in text
