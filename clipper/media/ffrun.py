"""The one choke point that runs ffmpeg/ffprobe: logs the command, captures stderr, raises typed
errors."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from typing import Any

import ffmpeg

from clipper.errors import PermanentError

log = logging.getLogger(__name__)

# Local-only by default: a playlist or concat list must never make ffmpeg open other protocols.
LOCAL_PROTOCOLS = "file,pipe,concat,subfile"
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


def run(stream_or_args: Any, *, what: str, timeout: float | None = None) -> str:
    """Run one ffmpeg command (an ffmpeg-python stream or an argv list); returns stderr.

    Raises PermanentError naming `what` and the last useful stderr line on failure.
    """
    given = isinstance(stream_or_args, Sequence) and not isinstance(stream_or_args, str)
    args = list(stream_or_args) if given else compile_args(stream_or_args)
    log.debug("ffmpeg %s: %s", what, subprocess.list2cmdline(args))
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PermanentError(f"ffmpeg took too long to {what} (over {timeout:.0f} s).") from exc
    if proc.returncode != 0:
        raise PermanentError(f"ffmpeg could not {what}: {last_error_line(proc.stderr)}")
    return proc.stderr


def probe(path: str, *, extra: Sequence[str] = ()) -> dict[str, Any]:
    """ffprobe a local file as JSON (format + streams); PermanentError when it is not media."""
    args = ["ffprobe", "-v", "error", "-protocol_whitelist", LOCAL_PROTOCOLS,
            "-print_format", "json", "-show_format", "-show_streams", *extra, str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PermanentError(f"Cannot read {path} as media: {last_error_line(proc.stderr)}")
    return json.loads(proc.stdout or "{}")
