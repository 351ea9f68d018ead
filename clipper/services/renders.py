"""Social renders, the distribution package, and the publish log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clipper.context import Context
from clipper.roles import Actor


def request_render(ctx: Context, clip_id: int, *, by: Actor | str,
                   formats: Sequence[str] = ("16x9", "1x1", "9x16"), fit: str = "crop",
                   captions: str = "burn", trim_in: float | None = None, trim_out: float | None = None,
                   export: bool = True) -> dict[str, Any]:
    """Queue renders of an approved/ready clip (status -> rendering); export the package after."""
    raise NotImplementedError


def export_package(ctx: Context, clip_id: int, *, by: Actor | str, out_dir: str | None = None) -> dict[str, Any]:
    """Build the package folder + zip; returns {"path", "zip", "files"}."""
    raise NotImplementedError


def mark_published(ctx: Context, clip_id: int, *, platform: str, url: str, by: Actor | str) -> None:
    raise NotImplementedError
