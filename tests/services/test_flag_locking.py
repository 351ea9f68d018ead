"""PostgreSQL: flags that merge into a clip while others act on it take row locks in one order
(source, then clip), see the clip as it is after a concurrent change, and never surface a
deadlock to the person flagging; an export sees the clip as it is when it records itself."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from polling import poll
from sqlalchemy import func, select, text

from clipper.context import Context
from clipper.permissions import Actor
from clipper.pipeline.lifecycle import lock_clip, move
from clipper.pipeline.packaging import export_clip
from clipper.services import flags, review
from clipper.services.flags import file_flag
from clipper.storage.tables import Clip, Event, Flag, RenderRow, Source

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


def test_a_flag_chosen_as_a_deadlock_victim_is_stored_again_exactly_once(pg, monkeypatch,
                                                                         caplog):
    """A writer that locks the clip and then its source (the order lock_clip exists to avoid)
    deadlocks with a merging flag, which holds the source and waits for the clip. PostgreSQL
    aborts the flag with 40P01 (its deadlock check runs first: it waited first, the writer
    checks only after 10 s); the flag is stored again once the writer is done, exactly once."""
    clip_id = ready_clip(pg)
    real, stores = flags._store, []

    def store(session, *args):
        stores.append(1)
        return real(session, *args)
    monkeypatch.setattr(flags, "_store", store)
    result: list = []
    errors: list[BaseException] = []

    def flag() -> None:
        try:
            result.append(file_flag(pg, Actor("vic", "volunteer"), URL, "8", "22", note="vic"))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    caplog.set_level(logging.INFO, logger=flags.__name__)
    with pg.db.session() as s:
        s.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        source_id = s.scalar(select(Clip.source_id).where(Clip.id == clip_id))
        s.execute(select(Clip.id).where(Clip.id == clip_id).with_for_update())
        flagger = threading.Thread(target=flag)
        flagger.start()
        poll(lambda: waiting_on_a_lock(pg), 20, "the flag to wait for the clip")
        # Returns once PostgreSQL has aborted the flag's transaction, which held the source.
        s.execute(select(Source.id).where(Source.id == source_id).with_for_update())
    flagger.join(30)
    assert errors == [] and len(result) == 1
    assert len(stores) == 2  # the deadlock victim, then the stored flag
    assert result[0].clip_id == clip_id and result[0].merged
    with pg.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Flag).where(Flag.by == "vic")) == 1
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "flag.merged")) == 1
    assert [r.getMessage() for r in caplog.records if r.name == flags.__name__] == [
        "storing a flag again after DeadlockDetected"]


def rendered_clip(ctx: Context, tmp_path: Path) -> int:
    """A rendered clip, its one render a file of random bytes (an export only links and
    checksums renders)."""
    render = tmp_path / "renders" / "16x9-crop.mp4"
    render.parent.mkdir(parents=True, exist_ok=True)
    render.write_bytes(os.urandom(50_000))
    with ctx.db.session() as s:
        src = Source(kind="url", key="url:https://news.example/x", location="https://news.example/x")
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, start=10.0, end=16.0, status="rendered", duration=6.0)
        s.add(clip)
        s.flush()
        s.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=16.0, note="promise",
                   by="vera"))
        s.add(RenderRow(clip_id=clip.id, format="16x9", fit="crop", captions="burn",
                        path=str(render), duration=6.0, width=320, height=180))
        s.flush()
        return clip.id


def test_an_export_that_waits_while_the_clip_is_rejected_does_not_undo_the_rejection(
        pg, tmp_path):
    """The export records itself under lock_clip: it waits for a reject that holds the clip
    and then sees `rejected`, instead of writing `exported` over it from a stale read."""
    clip_id = rendered_clip(pg, tmp_path)
    result = _while_rejected(pg, clip_id, lambda: export_clip(pg, clip_id, by="sam"))
    errors = [r for r in result if isinstance(r, BaseException)]
    assert errors == [] and len(result) == 1
    with pg.db.session() as s:
        clip = s.get(Clip, clip_id)
        assert (clip.status, clip.export_path) == ("rejected", result[0]["path"])
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "package.exported")) == 1


def _while_rejected(pg: Context, clip_id: int, act) -> list:
    """Run `act()` in a thread while this transaction holds the clip and rejects it; what it
    returned or raised."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(act())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    with pg.db.session() as s:
        move(s, lock_clip(s, clip_id), "rejected", actor="sam")
        worker = threading.Thread(target=run)
        worker.start()
        poll(lambda: waiting_on_a_lock(pg), 20, "the change to wait for the clip")
    worker.join(30)
    return outcome


def test_render_and_retry_decided_on_a_stale_status_never_undo_a_rejection(pg):
    """request_render and retry_clip take the clip under lock_clip: a render asked while a
    reject holds the clip is refused (a rejected clip is not renderable), not written over it."""
    from clipper.errors import Conflict
    from clipper.services.clips import retry_clip
    from clipper.services.renders import request_render

    clip_id = ready_clip(pg)
    with pg.db.session() as s:
        s.get(Clip, clip_id).media_path = "/nonexistent/clip.mp4"
    [outcome] = _while_rejected(pg, clip_id, lambda: request_render(pg, SAM, clip_id))
    assert isinstance(outcome, Conflict) and "rejected" in str(outcome)
    with pg.db.session() as s:
        assert s.get(Clip, clip_id).status == "rejected"
    # A failed clip retried while someone rejects it: the retry sees `rejected` and refuses.
    with pg.db.session() as s:
        s.get(Clip, clip_id).status = "failed"
    [outcome] = _while_rejected(pg, clip_id, lambda: retry_clip(pg, ANN, clip_id))
    assert isinstance(outcome, Conflict)
    with pg.db.session() as s:
        assert s.get(Clip, clip_id).status == "rejected"
