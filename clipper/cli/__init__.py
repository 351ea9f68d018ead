"""Entry points: the `clipper` command line, its `users` commands, the `up` supervisor and the
demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `clipper` command in this process (tests call it; see `console`)."""
    from clipper.cli.commands import main as run

    return run(argv)


def build_parser() -> Any:
    """The `clipper` argument parser."""
    from clipper.cli.commands import build_parser as build

    return build()


def console() -> int:
    """The `clipper` console script and `python -m clipper.cli`: a process of its own, so the
    garbage collector waits until the command is under way. Starting builds some 200,000
    long-lived objects (SQLAlchemy's mappings above all) and collecting among them was ~10% of a
    one-shot command's start-up; a long-running command turns it back on (`commands.main`)."""
    import gc

    gc.disable()
    return main()


__all__ = ["build_parser", "console", "main"]
