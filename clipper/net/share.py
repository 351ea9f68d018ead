"""Copying a package folder to the team's shared drive with rclone (any remote rclone knows)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RCLONE = "rclone"
COPY_SECONDS = 3600.0
"""Default wall-clock limit of one copy (a package of renders can be a few hundred MB)."""
CONNECT_SECONDS = 15
IDLE_SECONDS = 60
ERROR_CHARS = 500

# rclone's exit codes (`rclone help flags`, "Exit Code"): 1 syntax or usage error, 2 other
# error, 3 directory not found, 4 file not found, 5 temporary error, 6 less serious error,
# 7 fatal error (retrying cannot help, e.g. an account suspended), 8 transfer limit reached.
_FATAL_EXIT = 7

# What rclone says when trying again cannot help until a person changes something: a remote
# name missing from the config, a broken or locked config, credentials refused. Anything else
# (connection refused, timeouts, name lookups, 5xx, rate limits) is taken as temporary, so an
# outage of the drive or the network is outlasted.
_PERMANENT = re.compile(
    r"didn't find section in config file|didn't find backend called|couldn't find type|"
    r"unknown backend|config file.*(?:encrypted|decrypt)|unable to decrypt|"
    r"\b401\b|\b403\b|unauthori[sz]ed|forbidden|access ?denied|permission denied|"
    r"invalid_grant|invalid_client|invalidaccesskeyid|signaturedoesnotmatch|"
    r"unable to authenticate|authentication failed|no such bucket|bucket.*does not exist",
    re.IGNORECASE)
# Lines rclone logs that are not the reason for a failure.
_NOISE = re.compile(r"NOTICE: Config file .* not found|^\s*$|^Transferred:|^Errors:|^Checks:|"
                    r"^Elapsed time:|^Transferring:|INFO  :")
_COPIED = re.compile(r"INFO  : .*: Copied \(")
_TIMESTAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s\"]+@", re.IGNORECASE)


@dataclass(frozen=True)
class CopyResult:
    """How one copy went. `permanent`: trying again cannot help (bad remote name, credentials
    refused, package gone); `transferred`: files actually sent (0 when all were there already)."""

    ok: bool
    error: str = ""
    permanent: bool = False
    transferred: int = 0


def destination(template: str, folder_name: str, *, date: str, clip: int | str) -> str:
    """`REMOTE:PATH/<folder_name>` from `CLIPPER_SHARE_REMOTE` with `{date}` and `{clip}`
    filled in (`teamdrive:Clips/{date}` -> `teamdrive:Clips/2026-11-30/12-waiting-lists`)."""
    base = template.format(date=date, clip=clip)
    joiner = "" if base.endswith((":", "/")) else "/"
    return f"{base}{joiner}{folder_name}"


def _reason(stderr: str) -> str:
    """rclone's error lines without timestamps and progress noise, the last ones kept."""
    lines = [_TIMESTAMP.sub("", ln).strip() for ln in stderr.splitlines()]
    useful = [ln for ln in lines if ln and not _NOISE.search(ln)]
    text = " | ".join(dict.fromkeys(useful)) or "rclone failed without saying why"
    # A URL's user:password is never stored or shown (the error goes to the clip page).
    text = _USERINFO.sub(r"\1***@", text)
    return text[-ERROR_CHARS:]


def classify(returncode: int, stderr: str) -> CopyResult:
    """A finished rclone run as a CopyResult (pure)."""
    if returncode == 0:
        return CopyResult(ok=True, transferred=len(_COPIED.findall(stderr)))
    reason = _reason(stderr)
    permanent = returncode == _FATAL_EXIT or bool(_PERMANENT.search(stderr))
    return CopyResult(ok=False, error=f"rclone exit {returncode}: {reason}", permanent=permanent)


def copy_args(source: Path, remote_path: str, *, config: str = "",
              every_file: bool = False) -> list[str]:
    """The rclone command line: one attempt of each file set (our caller does the retrying,
    with backoff), bounded connects and stalls, never a prompt, and `-v` so that the files it
    copied are listed."""
    args = [RCLONE, "copy", "--retries", "1", "--low-level-retries", "2",
            "--contimeout", f"{CONNECT_SECONDS}s", "--timeout", f"{IDLE_SECONDS}s",
            "--ask-password=false", "--stats", "0", "-v"]
    if every_file:
        args.append("--ignore-times")
    if config:
        args += ["--config", config]
    # `--` so that neither path can ever be read as an option.
    return [*args, "--", str(source), remote_path]


def copy_folder(source: str | Path, remote_path: str, *, config: str = "",
                env: Mapping[str, str] | None = None, timeout: float = COPY_SECONDS,
                stop: threading.Event | None = None, every_file: bool = False) -> CopyResult:
    """Copy the folder `source` to `remote_path` (`REMOTE:PATH`) with `rclone copy`; never raises.

    Idempotent: every file keeps its name, and rclone copy skips files already at the
    destination with the same size (and modification time or hash, where the remote keeps
    them), so running it again after a failure or a success never makes a second copy.
    `every_file` sends every file even so (`--ignore-times`): a re-exported package can change
    a file without changing its size, and not every drive keeps modification times or hashes.
    `config` is an rclone config file (else rclone's default, or remotes given by
    `RCLONE_CONFIG_<NAME>_*` in `env`). The run is killed after `timeout` seconds of wall clock,
    or as soon as `stop` is set (a temporary failure).
    """
    src = Path(source)
    if not src.is_dir():
        return CopyResult(ok=False, error=f"The package folder {src} is gone.", permanent=True)
    if config and not Path(config).is_file():
        return CopyResult(ok=False, permanent=True,
                          error=f"CLIPPER_RCLONE_CONFIG names {config}, which is not a file.")
    try:
        proc = subprocess.Popen(
            copy_args(src, remote_path, config=config, every_file=every_file),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace",
            env=dict(os.environ if env is None else env),
            # Its own session: Ctrl-C at `clipper up` reaches the supervisor, which stops us.
            start_new_session=True)
    except OSError as exc:  # not installed (yet): temporary, an admin can install it meanwhile
        return CopyResult(ok=False, error=f"rclone could not be started ({exc}); install it "
                                          "(Debian: apt-get install rclone).")
    deadline = time.monotonic() + timeout
    output = ""
    while True:
        try:
            # communicate() may be called again after a timeout without losing output.
            output, _ = proc.communicate(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            stopping = stop is not None and stop.is_set()
            if stopping or time.monotonic() > deadline:
                proc.kill()
                output, _ = proc.communicate()
                why = "stopped" if stopping else f"timed out after {timeout:g} s"
                return CopyResult(ok=False, error=f"rclone {why}: {_reason(output or '')}")
    return classify(proc.returncode, output or "")
