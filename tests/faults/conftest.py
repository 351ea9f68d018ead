"""Fixtures of the stack fault cases: a private Redis, and real `clipper up` stacks stopped
(and cleared) after each test whatever state the case left them in."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testmedia.faults import ClipperUp, RedisServer


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (a free port, nothing saved): kill -9 it at will."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def up() -> Iterator[Callable[..., ClipperUp]]:
    """Start `clipper up --no-dashboard` stacks; each is stopped (Ctrl-C, then -9 and its
    leftovers cleared) after the test."""
    stacks: list[ClipperUp] = []

    def start(env: dict[str, str], workers: int = 2) -> ClipperUp:
        stack = ClipperUp(env, workers=workers)
        stacks.append(stack)
        return stack.start()
    yield start
    for stack in stacks:
        stack.stop()
