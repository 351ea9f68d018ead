"""Fixtures of the stack fault cases: a private Redis (with or without an append-only file), a
misbehaving webhook, and real `clipper up` stacks stopped (and cleared) after each test whatever
state the case left them in."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clipper.context import Context
from testmedia.faults import ClipperUp, RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultparts import AofRedis, WebHook  # noqa: E402  (beside this file; bench/faults.py too)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (a free port, nothing saved): kill -9 it at will."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def aof_redis() -> Iterator[AofRedis]:
    """The compose layout's Redis (append-only file, fsync every second), of this test's own:
    kill -9 it and it comes back with what it had."""
    with AofRedis() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebHook]:
    """A team webhook on a loopback port of its own, down until the test says otherwise."""
    with WebHook("down") as hook:
        yield hook


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


@pytest.fixture
def stack_ctx() -> Iterator[list[Context]]:
    """Contexts a test builds on a stack's settings, closed after it."""
    made: list[Context] = []
    yield made
    for ctx in made:
        ctx.close()
