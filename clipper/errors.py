"""The one error tree: every failure a user can see is a ClipperError.

    ClipperError              message + hint, shown to people as is
    ├── InvalidInput          bad input; nothing was stored (CLI exit 2)
    │   └── UnsafeURL         URL refused by the fetch-safety rules
    ├── NotFound              no such clip / flag / user (CLI exit 2)
    ├── PermissionDenied      the role may not do this (CLI exit 2)
    ├── Conflict              the action clashes with the clip's state (CLI exit 2)
    └── ProcessingError       a pipeline stage failed (CLI exit 1)
        ├── PermanentError    retrying will not help (404, unsupported URL, broken media)
        └── TransientError    network trouble; the stage retries with backoff

Callers catch ClipperError at a boundary (job, page, CLI) and nowhere else.

StageDeferred is no failure and not in the tree: a stage raises it to be run again later.
StageInterrupted is not an Exception at all: the worker is stopping and hands its stage back.
"""

from __future__ import annotations


class ClipperError(Exception):
    """Base of all user-facing errors: `message` says what went wrong, `hint` how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InvalidInput(ClipperError):
    """The request itself is wrong; nothing was stored."""

    exit_code = 2


class UnsafeURL(InvalidInput):
    """The URL points somewhere Clipper must not fetch from."""


class NotFound(ClipperError):
    exit_code = 2


class PermissionDenied(ClipperError):
    exit_code = 2


class Conflict(ClipperError):
    exit_code = 2


class ProcessingError(ClipperError):
    """A pipeline stage failed."""


class PermanentError(ProcessingError):
    """Retrying will not help."""


class TransientError(ProcessingError):
    """Probably temporary (network); worth retrying."""


class StageDeferred(Exception):
    """Not a failure: the stage cannot do its work yet (a channel clip whose end has not been
    recorded). The runner puts the clip back in the queue and runs the stage again at `until`
    (Unix seconds), holding no worker meanwhile."""

    def __init__(self, until: float, reason: str = "") -> None:
        super().__init__(reason or f"deferred until {until:.3f}")
        self.until = until
        self.reason = reason


class StageInterrupted(BaseException):
    """The worker running a stage was asked to stop: the stage is handed back, not failed.

    A BaseException (like KeyboardInterrupt) so that no broad `except Exception` inside a
    stage's work can swallow it on its way up to the runner."""
