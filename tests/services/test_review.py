"""Review desk: queue order, claims (exclusive, lapsing, refreshed), edits, approve/reject,
roles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clipper.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from clipper.permissions import Actor
from clipper.services import review
from clipper.services.clips import clip_events, clip_status, list_clips
from clipper.storage.tables import Clip, Flag, Source, utcnow

ANN = Actor("ann", "social")
BOB = Actor("bob", "social")
VERA = Actor("vera", "volunteer")


def make_clip(ctx, *, status="ready", urgency="normal", age_min=0.0, by="vera", note="note",
              tags=("health",), duration=6.0) -> int:
    with ctx.db.session() as s:
        src = s.query(Source).first() or Source(kind="url", key="url:x", location="https://news.example/x")
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, start=10.0, end=10.0 + duration, status=status,
                    urgency=urgency, duration=duration,
                    created_at=utcnow() - timedelta(minutes=age_min))
        s.add(clip)
        s.flush()
        s.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=16.0, note=note,
                   tags=list(tags), urgency=urgency, by=by))
        return clip.id


def test_pure_helpers():
    now = utcnow()
    assert review.claim_active("ann", now - timedelta(minutes=14), now, 15)
    assert not review.claim_active("ann", now - timedelta(minutes=16), now, 15)
    assert not review.claim_active(None, now, now, 15)
    assert review.stage_label("cutting", 0.4) == "cut 40%"
    assert review.stage_label("ready", 1.0) == "ready"
    assert review.caption_counts("x" * 281)["X"] == (281, 280)
    with pytest.raises(InvalidInput):
        review.check_trim(3.0, 2.0, 6.0)
    with pytest.raises(InvalidInput):
        review.check_trim(0.0, 9.0, 6.0)
    review.check_trim(0.5, 5.5, 6.0)


def test_queue_is_most_urgent_then_oldest_with_notes(sqlite_ctx):
    old_normal = make_clip(sqlite_ctx, age_min=30)
    new_high = make_clip(sqlite_ctx, urgency="high", age_min=1)
    old_high = make_clip(sqlite_ctx, urgency="high", age_min=20, note="minister quote",
                         tags=("budget",))
    low = make_clip(sqlite_ctx, urgency="low", age_min=60)
    make_clip(sqlite_ctx, status="transcribing")
    q = review.review_queue(sqlite_ctx, ANN)
    assert [c["id"] for c in q] == [old_high, new_high, old_normal, low]
    assert q[0]["flaggers"][0]["note"] == "minister quote" and q[0]["tags"] == ["budget"]


def test_claim_is_exclusive_lapses_and_activity_refreshes(sqlite_ctx):
    cid = make_clip(sqlite_ctx)
    review.claim(sqlite_ctx, ANN, cid)
    with pytest.raises(Conflict, match="ann has already claimed"):
        review.claim(sqlite_ctx, BOB, cid)
    assert review.review_queue(sqlite_ctx, BOB)[0]["claimed_by"] == "ann"
    with pytest.raises(Conflict):
        review.set_caption(sqlite_ctx, BOB, cid, "mine now")
    # 14 minutes idle, then activity: the claim is refreshed and still holds.
    with sqlite_ctx.db.session() as s:
        s.get(Clip, cid).claimed_at = utcnow() - timedelta(minutes=14)
    review.set_caption(sqlite_ctx, ANN, cid, "Watch the minister")
    with pytest.raises(Conflict):
        review.claim(sqlite_ctx, BOB, cid)
    # 16 minutes idle: the claim has lapsed and bob may take it.
    with sqlite_ctx.db.session() as s:
        s.get(Clip, cid).claimed_at = utcnow() - timedelta(minutes=16)
    assert review.my_claim(sqlite_ctx, ANN) is None
    review.claim(sqlite_ctx, BOB, cid)
    assert review.my_claim(sqlite_ctx, BOB) == cid
    with pytest.raises(Conflict):
        review.set_trim(sqlite_ctx, ANN, cid, 1.0, 2.0)


def test_edits_need_a_claim_and_are_stored(sqlite_ctx):
    cid = make_clip(sqlite_ctx)
    with pytest.raises(Conflict, match="Claim it first"):
        review.set_caption(sqlite_ctx, ANN, cid, "hello")
    review.claim(sqlite_ctx, ANN, cid)
    counts = review.set_caption(sqlite_ctx, ANN, cid, "  hello  ")
    assert counts["X"] == (5, 280)
    review.set_trim(sqlite_ctx, ANN, cid, 0.5, 5.0)
    with pytest.raises(InvalidInput):
        review.set_trim(sqlite_ctx, ANN, cid, 0.5, 60.0)
    st = clip_status(sqlite_ctx, ANN, cid)
    assert (st["caption"], st["trim_in"], st["trim_out"]) == ("hello", 0.5, 5.0)
    review.release(sqlite_ctx, ANN, cid)
    review.claim(sqlite_ctx, BOB, cid)


def test_reject_needs_reason_and_the_flagger_sees_it(sqlite_ctx):
    cid = make_clip(sqlite_ctx, by="vera")
    review.claim(sqlite_ctx, ANN, cid)
    with pytest.raises(InvalidInput, match="reason"):
        review.reject(sqlite_ctx, ANN, cid, "  ")
    review.reject(sqlite_ctx, ANN, cid, "Already covered this morning")
    mine = review.my_flags(sqlite_ctx, VERA)
    assert (mine[0]["status"] == "rejected"
            and mine[0]["reject_reason"] == "Already covered this morning")
    assert "clip.rejected" in [e["action"] for e in clip_events(sqlite_ctx, ANN, cid)]
    assert review.review_queue(sqlite_ctx, ANN) == []


def test_approve_moves_to_approved_and_asks_for_renders(sqlite_ctx):
    cid = make_clip(sqlite_ctx)
    review.claim(sqlite_ctx, ANN, cid)
    with pytest.raises(Conflict, match="no media"):
        review.approve(sqlite_ctx, ANN, cid, formats=["9x16"])
    with sqlite_ctx.db.session() as s:
        s.get(Clip, cid).media_path = "/media/clips/1/v1/clip.mp4"
    with pytest.raises(InvalidInput):
        review.approve(sqlite_ctx, ANN, cid, formats=[])
    with pytest.raises(InvalidInput):
        review.approve(sqlite_ctx, ANN, cid, formats=["4x3"])
    with pytest.raises(InvalidInput):
        review.approve(sqlite_ctx, ANN, cid, formats=["9x16"], fit="stretch")
    assert clip_status(sqlite_ctx, ANN, cid)["status"] == "ready"  # refused requests change nothing
    plan = review.approve(sqlite_ctx, ANN, cid, formats=["9x16"], fit="pad", captions="burn")
    assert plan["formats"] == ["9x16"] and plan["fit"] == "pad"
    st = clip_status(sqlite_ctx, ANN, cid)
    assert st["status"] == "rendering"
    events = [e["action"] for e in clip_events(sqlite_ctx, ANN, cid)]
    assert "clip.approved" in events
    with sqlite_ctx.db.session() as s:
        assert s.get(Clip, cid).reviewed_by == "ann"


@pytest.mark.parametrize("call", [
    lambda ctx, cid: review.review_queue(ctx, VERA),
    lambda ctx, cid: review.claim(ctx, VERA, cid),
    lambda ctx, cid: review.approve(ctx, VERA, cid, formats=["16x9"]),
    lambda ctx, cid: review.reject(ctx, VERA, cid, "no"),
    lambda ctx, cid: review.export(ctx, VERA, cid),
    lambda ctx, cid: review.publish(ctx, VERA, cid, platform="X", url="https://x.com/1"),
    lambda ctx, cid: review.set_caption(ctx, Actor("ed", "editor"), cid, "x"),
])
def test_volunteers_and_editors_cannot_review(sqlite_ctx, call):
    cid = make_clip(sqlite_ctx)
    with pytest.raises(PermissionDenied):
        call(sqlite_ctx, cid)
    assert clip_status(sqlite_ctx, ANN, cid)["status"] == "ready"


def test_my_flags_shows_only_mine_with_stage(sqlite_ctx):
    cid = make_clip(sqlite_ctx, status="cutting", by="vera")
    with sqlite_ctx.db.session() as s:
        s.get(Clip, cid).progress = 0.5
    make_clip(sqlite_ctx, by="someone-else")
    mine = review.my_flags(sqlite_ctx, VERA)
    assert [(f["clip_id"], f["stage"]) for f in mine] == [(cid, "cut 50%")]


def test_save_upload_names_by_content_and_returns_a_source(sqlite_ctx, broadcast):
    data = broadcast.read_bytes()
    ref = review.save_upload(sqlite_ctx, VERA, "News.MP4", data)
    path = Path(ref.location)
    assert path.parent == (sqlite_ctx.settings.media_dir / "uploads").resolve()
    assert path.suffix == ".mp4" and ref.kind == "file" and ref.title == "News"
    again = review.save_upload(sqlite_ctx, VERA, "again.mp4", data)
    assert (again.location, again.key) == (ref.location, ref.key)  # the same content, one file
    with pytest.raises(InvalidInput):
        review.save_upload(sqlite_ctx, VERA, "notes.txt", b"x")
    with pytest.raises(InvalidInput, match="fake.mp4 is not a recording"):
        review.save_upload(sqlite_ctx, VERA, "fake.mp4", b"fake bytes")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the fake one is not kept
    with pytest.raises(PermissionDenied):
        review.save_upload(sqlite_ctx, Actor("x", "nobody"), "a.mp4", b"x")


def test_an_upload_streams_to_disk_and_one_over_the_limit_keeps_nothing(
        sqlite_url, make_settings, redis_conn, broadcast):
    from clipper.context import Context

    ctx = Context.build(make_settings(sqlite_url, CLIPPER_MAX_UPLOAD_MB="0.5"),
                        redis_conn=redis_conn)
    assert broadcast.stat().st_size > 2**19
    with broadcast.open("rb") as stream, pytest.raises(InvalidInput, match="larger than 0.5 MB"):
        review.save_upload(ctx, VERA, "long.mp4", stream)
    assert list((ctx.settings.media_dir / "uploads").iterdir()) == []  # no half-written copy
    big = Context.build(make_settings(sqlite_url), redis_conn=redis_conn)
    with broadcast.open("rb") as stream:
        ref = review.save_upload(big, VERA, "show.mp4", stream)
    assert Path(ref.location).read_bytes() == broadcast.read_bytes()


def test_a_volunteer_sees_the_clips_of_their_own_flags_only(sqlite_ctx):
    mine = make_clip(sqlite_ctx, by="vera")
    joined = make_clip(sqlite_ctx, by="someone-else")
    with sqlite_ctx.db.session() as s:  # vera's flag merged into someone else's clip
        clip = s.get(Clip, joined)
        s.add(Flag(clip_id=joined, source_id=clip.source_id, start=10.0, end=12.0, note="me too",
                   tags=[], urgency="normal", by="vera", merged=True))
    theirs = make_clip(sqlite_ctx, by="someone-else")
    review.claim(sqlite_ctx, ANN, mine)
    for cid in (mine, joined):
        assert clip_status(sqlite_ctx, VERA, cid)["id"] == cid
    assert "clip.claimed" in [e["action"] for e in clip_events(sqlite_ctx, VERA, mine)]
    missing = 999
    for call in (clip_status, clip_events):
        with pytest.raises(NotFound) as refused:
            call(sqlite_ctx, VERA, theirs)
        with pytest.raises(NotFound) as absent:
            call(sqlite_ctx, VERA, missing)
        # Another's clip reads exactly like a missing one: ids reveal nothing.
        assert str(refused.value) == str(absent.value).replace(str(missing), str(theirs))
    with pytest.raises(PermissionDenied):
        list_clips(sqlite_ctx, VERA)
    for desk in (ANN, Actor("ed", "editor"), Actor("ada", "admin"), Actor.operator("root")):
        assert clip_status(sqlite_ctx, desk, theirs)["id"] == theirs
        assert {c["id"] for c in list_clips(sqlite_ctx, desk)} == {mine, joined, theirs}
