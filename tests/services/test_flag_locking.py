"""PostgreSQL: flags that merge into a clip while others act on it take row locks in one order
(source, then clip), see the clip as it is after a concurrent change, and never surface a
deadlock to the person flagging."""

from __future__ import annotations

import threading

import pytest
from polling import poll
from sqlalchemy import select, text

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.lifecycle import move
from clipper.services import review
from clipper.services.flags import file_flag
from clipper.storage.tables import Clip, Flag

pytestmark = [pytest.mark.postgres,
              pytest.mark.parametrize("backend", ["postgres"], indirect=True)]
ANN, SAM = Actor.operator("ann"), Actor("sam", "social")
URL = "http://127.0.0.1:9/debate.mp4"  # never fetched: no worker runs here


@pytest.fixture
def pg(ctx):
    """A Context on a fresh PostgreSQL database (the `ctx` fixture, PostgreSQL only)."""
    return ctx


def ready_clip(ctx: Context) -> int:
    res = file_flag(ctx, ANN, URL, "10", "20")
    with ctx.db.session() as s:
        s.get(Clip, res.clip_id).status = "ready"
    return res.clip_id


def waiting_on_a_lock(ctx: Context) -> bool:
    with ctx.db.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar())


def test_a_flag_waiting_while_the_clip_is_approved_does_not_undo_the_approval(pg):
    clip_id = ready_clip(pg)
    result: list = []
    with pg.db.session() as s:
        # Any writer that holds only the clip row (an approve, a render's finish) …
        clip = s.scalars(select(Clip).where(Clip.id == clip_id).with_for_update(of=Clip)).first()
        move(s, clip, "approved", actor="sam")
        flagger = threading.Thread(target=lambda: result.append(
            file_flag(pg, Actor("vic", "volunteer"), URL, "8", "22")))
        flagger.start()
        poll(lambda: waiting_on_a_lock(pg), 20, "the flag to wait for the clip")
    flagger.join(20)
    # … commits while the flag waits: the flag joins the approved clip without re-cutting it.
    assert result and result[0].clip_id == clip_id and result[0].merged
    with pg.db.session() as s:
        clip = s.get(Clip, clip_id)
        assert (clip.status, clip.version, clip.start, clip.end) == ("approved", 1, 10.0, 20.0)
        assert len(s.scalars(select(Flag).where(Flag.clip_id == clip_id)).all()) == 2


def test_flags_and_reviews_of_one_clip_at_once_never_deadlock_or_lose_a_flag(pg):
    clip_id = ready_clip(pg)
    review.claim(pg, SAM, clip_id)
    errors: list[BaseException] = []
    go = threading.Barrier(8)

    def flags(n: int) -> None:
        go.wait()
        for i in range(10):
            try:
                file_flag(pg, Actor(f"v{n}", "volunteer"), URL, str(11 + i % 3), "19",
                          note=f"{n}-{i}")
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    def reviews(n: int) -> None:
        go.wait()
        for i in range(10):
            try:
                review.set_caption(pg, SAM, clip_id, f"caption {n}-{i}")
                review.touch(pg, SAM, clip_id)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
    threads = ([threading.Thread(target=flags, args=(n,)) for n in range(4)]
               + [threading.Thread(target=reviews, args=(n,)) for n in range(4)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with pg.db.session() as s:
        notes = {f.note for f in s.scalars(select(Flag).where(Flag.clip_id == clip_id))}
        assert {f"{n}-{i}" for n in range(4) for i in range(10)} <= notes
        assert s.scalar(select(Clip.status).where(Clip.id == clip_id)) == "ready"
