"""The one choke point that runs ffmpeg/ffprobe: logs the command, captures stderr, raises typed
errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ffmpeg

from clipper.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

# Local-only by default: a playlist or concat list must never make ffmpeg open other protocols.
LOCAL_PROTOCOLS = "file,pipe,concat,subfile"
PROBE_TIMEOUT = 60.0
_NOISE = ("Last message repeated", "deprecated", "Press [q]")


def last_error_line(stderr: str) -> str:
    """The last stderr line that says something useful."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if not any(n in line for n in _NOISE) and not line.startswith(("frame=", "size=")):
            return line
    return lines[-1] if lines else "no error output"


def compile_args(stream: Any, *, overwrite: bool = True) -> list[str]:
    """ffmpeg-python stream spec -> argv, with our global options (quiet, local protocols only)."""
    args = ffmpeg.compile(stream, cmd="ffmpeg", overwrite_output=overwrite)
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "error",
            "-protocol_whitelist", LOCAL_PROTOCOLS, *args[1:]]


#: How much lower an ffmpeg that yields runs (see `run`): enough that Whisper, at the worker's
#: own priority, keeps a core while x264 fills the rest.
YIELD_NICENESS = 5


def run(stream_or_args: Any, *, what: str, timeout: float | None = None,
        yield_cpu: bool = False, cwd: Path | None = None) -> str:
    """Run one ffmpeg command (an ffmpeg-python stream or an argv list); returns stderr.

    `yield_cpu`: run it at a lower priority, for picture work (cuts, thumbnails, renders) that
    would otherwise take both cores from a transcription running beside it — the clip waits
    for its transcript, and a burst of clips for the one Whisper; alone it runs as fast.
    `cwd`: the folder ffmpeg runs in, for file names given relative to it.
    Raises PermanentError naming `what` and the last useful stderr line on failure.
    """
    given = isinstance(stream_or_args, Sequence) and not isinstance(stream_or_args, str)
    args = list(stream_or_args) if given else compile_args(stream_or_args)
    log.debug("ffmpeg %s: %s", what, subprocess.list2cmdline(args))
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=cwd) as proc:
        if yield_cpu:
            _lower_priority(proc.pid)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise PermanentError(f"ffmpeg took too long to {what} (over {timeout:.0f} s).") from exc
        except BaseException:
            proc.kill()  # interrupted (a stop): leave no ffmpeg behind
            raise
    # ffmpeg 5.1 can exit 0 after "No space left on device", leaving a truncated file.
    if proc.returncode != 0 or "No space left on device" in stderr:
        raise failure(what, proc.returncode, stderr)
    return stderr


def _lower_priority(pid: int) -> None:
    """Renice a just-started process. Set before its threads start (the exec and library loading
    take milliseconds), so x264's threads inherit it; a process already gone is no matter."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0)
                                                 + YIELD_NICENESS))
    except OSError as exc:
        log.debug("could not lower the priority of ffmpeg %d: %s", pid, exc)


def failure(what: str, returncode: int, stderr: str) -> PermanentError | TransientError:
    """Pure: the error for an ffmpeg run that failed. Killed by a signal (a stop, the OOM
    killer) or out of disk space is no fault of the media: worth running again."""
    line = last_error_line(stderr)
    if returncode < 0:
        return TransientError(f"ffmpeg was stopped (signal {-returncode}) while trying to "
                              f"{what}.")
    if "No space left on device" in stderr:
        return TransientError(f"The disk is full: ffmpeg could not {what}.",
                              "Free some space (or lower CLIPPER_RETENTION_HOURS).")
    return PermanentError(f"ffmpeg could not {what}: {line}")


def probe(path: str, *, extra: Sequence[str] = ()) -> dict[str, Any]:
    """ffprobe a local file as JSON (format + streams); PermanentError when it is not media."""
    args = ["ffprobe", "-v", "error", "-protocol_whitelist", LOCAL_PROTOCOLS,
            "-print_format", "json", "-show_format", "-show_streams", *extra, str(path)]
    try:
        # A file that makes ffprobe hang (a crafted upload) must not hold a worker forever.
        proc = subprocess.run(args, capture_output=True, text=True, check=False,
                              timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise PermanentError(f"Reading {Path(path).name} as media took over "
                             f"{PROBE_TIMEOUT:.0f} s.",
                             "Check the file is a normal video.") from exc
    if proc.returncode != 0:
        raise PermanentError(f"Cannot read {path} as media: {last_error_line(proc.stderr)}")
    return json.loads(proc.stdout or "{}")
