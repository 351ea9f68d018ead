"""The boxes an MP4 (ISO BMFF) file is made of: walking them in a buffer (pure)."""

from __future__ import annotations

import struct
from collections.abc import Iterator


def boxes(buf: bytes, pos: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of each box in buf[pos:end], in order. A box may end past
    the buffer (a header read without its body); a size too small for a header stops the walk."""
    end = len(buf) if end is None else end
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos:pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", buf[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < head:
            return
        yield kind.decode("latin-1"), pos + head, pos + size
        pos += size


def child(buf: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    """(payload start, end) of the first `kind` box in buf[start:end], or None."""
    return next(((s, e) for k, s, e in boxes(buf, start, end) if k == kind), None)
