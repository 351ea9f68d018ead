"""rclone copies to a real `rclone serve webdav` on loopback: files arrive identical, a second
copy sends nothing and makes no second folder, a server that is down is a temporary failure,
an unknown remote or refused credentials a permanent one; plus the pure parts (destinations,
failure classification, the setting's check)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import poll

from clipper.errors import InvalidInput
from clipper.net.share import classify, copy_args, copy_folder, destination
from clipper.settings import Settings

# scripts/setup.sh installs rclone, so CI has it: no skip, a missing rclone fails loudly.
needs_rclone = pytest.mark.services


def free_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def webdav(folder: Path, port: int, *auth: str) -> Iterator[subprocess.Popen]:
    """`rclone serve webdav folder` on 127.0.0.1:port (with `--user U --pass P` when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = ["--user", auth[0], "--pass", auth[1]] if auth else []
    proc = subprocess.Popen(["rclone", "serve", "webdav", str(folder), "--addr",
                             f"127.0.0.1:{port}", *extra], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: proc.poll() is not None or _listening(port), 10, "rclone serve webdav")
        assert proc.poll() is None, "rclone serve webdav exited"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def remote_env(port: int, **more: str) -> dict[str, str]:
    """The `teamdrive` remote, configured by environment as an admin could."""
    return {"PATH": os.environ.get("PATH", ""), "RCLONE_CONFIG_TEAMDRIVE_TYPE": "webdav",
            "RCLONE_CONFIG_TEAMDRIVE_URL": f"http://127.0.0.1:{port}",
            "RCLONE_CONFIG_TEAMDRIVE_VENDOR": "other", **more}


def package(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "12-16x9-crop.mp4").write_bytes(os.urandom(300_000))
    (folder / "caption.txt").write_text("Waiting lists will fall.\n")
    (folder / "metadata.json").write_text('{"clip_id": 12}\n')
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_destination_fills_placeholders_and_appends_the_folder_name() -> None:
    assert destination("teamdrive:Clips/{date}", "12-waiting", date="2026-11-30", clip=12) \
        == "teamdrive:Clips/2026-11-30/12-waiting"
    assert destination("teamdrive:", "12-x", date="d", clip=12) == "teamdrive:12-x"
    assert destination("s3:bucket/{clip}/", "12-x", date="d", clip=12) == "s3:bucket/12/12-x"


def test_the_setting_takes_an_rclone_remote_and_known_placeholders_only(tmp_path: Path) -> None:
    def remote(value: str) -> str:
        return Settings.from_env({"CLIPPER_HOME": str(tmp_path),
                                  "CLIPPER_SHARE_REMOTE": value}).share_remote

    assert remote("") == ""
    assert remote("teamdrive:Clips/{date}") == "teamdrive:Clips/{date}"
    assert remote("my drive:Clips/{clip}") == "my drive:Clips/{clip}"
    assert remote(":webdav,url='http://h':x") == ":webdav,url='http://h':x"
    for bad in ("/srv/clips", "Clips/{date}", "-x:y", "teamdrive:{title}", "teamdrive:{"):
        with pytest.raises(InvalidInput, match="CLIPPER_SHARE_REMOTE"):
            remote(bad)


def test_failures_are_classified_from_rclone_exit_code_and_words() -> None:
    assert classify(0, "INFO  : a.txt: Copied (new)\nINFO  : b: Copied (replaced existing)\n") \
        .transferred == 2
    down = classify(1, '2026/11/30 08:40:49 Failed to create file system for "teamdrive:x": '
                       "dial tcp 127.0.0.1:9: connect: connection refused\n")
    assert not down.ok and not down.permanent and "connection refused" in down.error
    assert "2026/11/30" not in down.error
    for permanent in ("didn't find section in config file", "401 Unauthorized",
                      "googleapi: Error 403: Forbidden", "oauth2: invalid_grant",
                      "ssh: handshake failed: ssh: unable to authenticate"):
        assert classify(1, permanent).permanent, permanent
    assert classify(7, "account suspended").permanent
    assert not classify(5, "503 Service Unavailable").permanent
    leaked = classify(1, "Propfind http://ann:s3cret@drive.lan/x: 500")
    assert "s3cret" not in leaked.error and "***@drive.lan" in leaked.error


def test_command_line_never_prompts_and_ends_options_before_the_paths() -> None:
    args = copy_args(Path("/x/-pkg"), "teamdrive:C/-pkg", config="/etc/r.conf")
    assert args[:2] == ["rclone", "copy"] and "--ask-password=false" in args
    assert args[args.index("--retries") + 1] == "1"
    assert args[args.index("--low-level-retries") + 1] == "2"
    assert args[args.index("--config") + 1] == "/etc/r.conf"
    assert args[-3:] == ["--", "/x/-pkg", "teamdrive:C/-pkg"]


@pytest.mark.services
@needs_rclone
def test_copy_arrives_identical_and_a_second_copy_changes_nothing(tmp_path: Path) -> None:
    src = package(tmp_path / "exports" / "12-waiting-lists")
    served, port = tmp_path / "served", free_port()
    with webdav(served, port):
        first = copy_folder(src, "teamdrive:Clips/2026-11-30/12-waiting-lists",
                            env=remote_env(port))
        assert first.ok, first.error
        assert first.transferred == 3
        landed = served / "Clips" / "2026-11-30" / "12-waiting-lists"
        assert contents(landed) == contents(src)
        again = copy_folder(src, "teamdrive:Clips/2026-11-30/12-waiting-lists",
                            env=remote_env(port))
        assert again.ok and again.transferred == 0  # everything was there already
    assert [p.name for p in (served / "Clips" / "2026-11-30").iterdir()] == ["12-waiting-lists"]
    assert contents(landed) == contents(src)


@pytest.mark.services
@needs_rclone
def test_config_file_names_the_remote(tmp_path: Path) -> None:
    src = package(tmp_path / "12-pkg")
    port = free_port()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[office]\ntype = webdav\nurl = http://127.0.0.1:{port}\nvendor = other\n")
    with webdav(tmp_path / "served", port):
        res = copy_folder(src, "office:in/12-pkg", config=str(conf),
                          env={"PATH": os.environ.get("PATH", "")})
    assert res.ok, res.error
    assert contents(tmp_path / "served" / "in" / "12-pkg") == contents(src)
    missing = copy_folder(src, "office:in/12-pkg", config=str(tmp_path / "nope.conf"))
    assert missing.permanent and "not a file" in missing.error


@pytest.mark.services
@needs_rclone
def test_server_down_is_temporary_and_unknown_remote_or_bad_password_permanent(
        tmp_path: Path) -> None:
    src = package(tmp_path / "12-pkg")
    port = free_port()
    down = copy_folder(src, "teamdrive:x/12-pkg", env=remote_env(port), timeout=60)
    assert not down.ok and not down.permanent and "connection refused" in down.error
    unknown = copy_folder(src, "nosuchdrive:x/12-pkg", env=remote_env(port))
    assert unknown.permanent and "didn't find section in config file" in unknown.error
    with webdav(tmp_path / "served", port, "ann", "right"):
        wrong = copy_folder(src, "teamdrive:x/12-pkg", env=remote_env(
            port, RCLONE_CONFIG_TEAMDRIVE_USER="ann",
            RCLONE_CONFIG_TEAMDRIVE_PASS=_obscure("wrong")))
        assert wrong.permanent and "401" in wrong.error
        right = copy_folder(src, "teamdrive:x/12-pkg", env=remote_env(
            port, RCLONE_CONFIG_TEAMDRIVE_USER="ann",
            RCLONE_CONFIG_TEAMDRIVE_PASS=_obscure("right")))
        assert right.ok, right.error
    gone = copy_folder(tmp_path / "no-such-package", "teamdrive:x/y", env=remote_env(port))
    assert gone.permanent and "gone" in gone.error


@pytest.mark.services
@needs_rclone
def test_stop_kills_a_copy_that_hangs(tmp_path: Path) -> None:
    """A server that accepts and never answers: the copy ends as soon as `stop` is set."""
    src = package(tmp_path / "12-pkg")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stop = threading.Event()
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        began = time.monotonic()
        res = copy_folder(src, "teamdrive:x/12-pkg", env=remote_env(silent.getsockname()[1]),
                          stop=stop)
        timer.cancel()
    assert not res.ok and not res.permanent and "stopped" in res.error
    assert time.monotonic() - began < 5


def _obscure(password: str) -> str:
    return subprocess.run(["rclone", "obscure", password], capture_output=True, text=True,
                          check=True).stdout.strip()
