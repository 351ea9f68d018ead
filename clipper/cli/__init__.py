"""Entry points: the `clipper` command line, its `users` commands, the `up` supervisor and the
demo."""

from clipper.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
