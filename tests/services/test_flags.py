"""Filing flags end to end on both databases: validation, merging, and the real pipeline."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from clipper.errors import InvalidInput, UnsafeURL
from clipper.permissions import Actor
from clipper.services import flags
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from clipper.storage.tables import Clip, Event, Flag, Source

# The local command-line operator (`clipper flag --by ann`): the one who may name server files.
ANN, BOB, CAT, VOL = (Actor.operator(name) for name in ("ann", "bob", "cat", "vol"))


def _counts(ctx):
    with ctx.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Source, Clip, Flag))


@pytest.mark.parametrize("start,end,msg", [
    ("1:75", "2:00", "seconds place"), ("abc", "10", "not a time"), ("20", "10", "after start"),
    ("-5", "10", "negative"), ("0", "700", "longest allowed"),
])
def test_bad_times_store_nothing(ctx, broadcast, start, end, msg):
    with pytest.raises(InvalidInput, match=msg):
        file_flag(ctx, VOL, str(broadcast), start, end)
    assert _counts(ctx) == (0, 0, 0)


def test_private_url_is_refused_and_nothing_is_stored(ctx):
    with pytest.raises(UnsafeURL, match="CLIPPER_URL_ALLOWLIST"):
        file_flag(ctx, VOL, "http://10.1.2.3/news.m3u8", "1", "5")
    with pytest.raises(InvalidInput, match="http"):
        file_flag(ctx, VOL, "ftp://example.org/a.mp4", "1", "5")
    assert _counts(ctx) == (0, 0, 0)


def test_non_media_file_is_refused(ctx, tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    with pytest.raises(InvalidInput):
        file_flag(ctx, VOL, str(bogus), "1", "5")
    assert _counts(ctx) == (0, 0, 0)


@pytest.mark.parametrize("role", ["volunteer", "social", "editor", "admin"])
def test_only_the_operator_may_name_a_server_file(ctx, broadcast, tmp_path, role):
    """A dashboard user typing a path gets the same refusal whether or not the file exists."""
    someone = Actor(f"someone-{role}", role)
    missing = tmp_path / "no-such-recording.mp4"
    refusals = []
    for path in (str(broadcast), str(missing), f"file://{broadcast}"):
        with pytest.raises(InvalidInput) as refused:
            file_flag(ctx, someone, path, "2", "8")
        refusals.append(str(refused.value).replace(path, "PATH"))
    assert refusals[0] == refusals[1] and "is not a URL" in refusals[0]
    assert "exist" not in refusals[0] and "upload" in refusals[0]
    assert _counts(ctx) == (0, 0, 0)
    assert file_flag(ctx, ANN, str(broadcast), "2", "8").merged is False  # the operator may
    assert _counts(ctx) == (1, 1, 1)


def test_overlapping_flags_merge_and_credit_everyone(ctx, broadcast):
    a = file_flag(ctx, ANN, str(broadcast), "2", "8", note="first", tags="health")
    b = file_flag(ctx, BOB, str(broadcast), "4", "10", note="second", tags=["nhs"], urgency="high")
    c = file_flag(ctx, CAT, str(broadcast), "20", "25")
    assert (a.merged, b.merged, c.merged) == (False, True, False)
    assert a.clip_id == b.clip_id != c.clip_id
    st = clip_status(ctx, ANN, a.clip_id)
    assert (st["start"], st["end"]) == (2.0, 10.0)
    assert [f["by"] for f in st["flaggers"]] == ["ann", "bob"]
    assert st["flaggers"][1]["tags"] == ["nhs"] and st["urgency"] == "high"
    with ctx.db.session() as s:
        actions = [e.action for e in s.scalars(select(Event).where(Event.clip_id == a.clip_id))]
    assert actions.count("flag.created") == 1 and actions.count("flag.merged") == 1


def test_small_overlap_makes_a_new_clip(ctx, broadcast):
    a = file_flag(ctx, ANN, str(broadcast), "0", "10")
    b = file_flag(ctx, BOB, str(broadcast), "6", "16")  # overlap 4 s < half of 10 s
    assert a.clip_id != b.clip_id and not b.merged


def test_flag_runs_through_the_real_pipeline(ctx, broadcast, run_jobs):
    res = file_flag(ctx, ANN, str(broadcast), "3.3", "9.7", note="waiting lists")
    run_jobs(ctx)
    st = clip_status(ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["duration"] == pytest.approx(6.4, abs=0.041)
    assert set(st["stages"]) == {"fetch", "cut", "asr"}
    assert all(v["seconds"] > 0 for v in st["stages"].values())
    assert "opposition" in st["transcript"]["text"].lower()


def test_a_flag_on_sound_alone_runs_through_the_real_pipeline(sqlite_ctx, tmp_path, run_jobs):
    """A radio programme (no picture): the clip is its sound, transcribed, its still is the
    waveform of the moment (a missing picture once failed the whole clip), and it renders."""
    from clipper.services.renders import request_render
    from testmedia.mediagen import make_video
    from tests.conftest import BROADCAST_TEXT

    radio = make_video(tmp_path / "radio.m4a", 30, video=False, speech=BROADCAST_TEXT)
    res = file_flag(sqlite_ctx, ANN, str(radio), "3.3", "9.7")
    run_jobs(sqlite_ctx)
    st = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["duration"] == pytest.approx(6.4, abs=0.05)
    assert "opposition" in st["transcript"]["text"].lower()
    with sqlite_ctx.db.read() as s:
        thumb = Path(s.get(Clip, res.clip_id).thumbnail_path)
    assert thumb.read_bytes()[:2] == b"\xff\xd8"
    # Its social shape is its waveform with the words on it (an audiogram).
    request_render(sqlite_ctx, ANN, res.clip_id, formats="9x16", fit="pad", export=False)
    run_jobs(sqlite_ctx)
    st = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert st["status"] == "rendered", st["error"]
    (shape,) = st["renders"]
    assert (shape["width"], shape["height"], shape["captions"]) == (1080, 1920, "burn")


def test_a_flag_on_fragmented_mp4_hls_runs_through_the_real_pipeline(sqlite_ctx, broadcast_site,
                                                                      run_jobs):
    """HLS of fMP4 segments (ffmpeg 5.1 read none of it after a seek: "no playable media"):
    read piece by piece through the guard, cut, heard."""
    base, requested = broadcast_site
    before = len(requested)
    res = file_flag(sqlite_ctx, ANN, f"{base}/fmp4/index.m3u8", "0:09.3", "0:15.7")
    run_jobs(sqlite_ctx)
    st = clip_status(sqlite_ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    assert st["duration"] == pytest.approx(6.4, abs=0.05)
    assert "new schools" in st["transcript"]["text"].lower()
    assert "/fmp4/init.mp4" in requested[before:]


def test_merge_into_a_ready_clip_recuts_it(ctx, broadcast, run_jobs):
    a = file_flag(ctx, ANN, str(broadcast), "2", "6")
    run_jobs(ctx)
    first = clip_status(ctx, ANN, a.clip_id)
    b = file_flag(ctx, BOB, str(broadcast), "3", "8")
    assert b.merged and b.clip_id == a.clip_id and b.status == "queued"
    run_jobs(ctx)
    second = clip_status(ctx, ANN, a.clip_id)
    assert second["status"] == "ready" and second["version"] == first["version"] + 1
    assert second["duration"] == pytest.approx(6.0, abs=0.041)
    assert second["media_path"] != first["media_path"]


def test_clip_tags_collect_every_flaggers_tags(ctx, broadcast):
    from clipper.storage.tables import ClipTag

    a = file_flag(ctx, ANN, str(broadcast), "2", "8", tags="Health, NHS")
    file_flag(ctx, BOB, str(broadcast), "3", "8", tags=["nhs", "debate"])
    with ctx.db.session() as s:
        tags = sorted(s.scalars(select(ClipTag.tag).where(ClipTag.clip_id == a.clip_id)))
    assert tags == ["debate", "health", "nhs"]


# ---- storing a flag again after a deadlock, a serialisation failure or a busy database --------

URL = "http://127.0.0.1:9/debate.mp4"  # never fetched: no worker runs in these tests
LOCKED = sqlite3.OperationalError("database is locked")
DEADLOCK = psycopg.errors.DeadlockDetected("deadlock detected")
STORE = flags._store  # the real one, whatever a test has patched in


class _Psycopg2Error(Exception):
    """What psycopg2 raises: the SQLSTATE as `pgcode` rather than `sqlstate`."""

    pgcode = "40P01"


@pytest.mark.parametrize("exc,retry", [
    (OperationalError("INSERT", {}, DEADLOCK), True),
    (OperationalError("UPDATE", {}, psycopg.errors.SerializationFailure("could not serialize")),
     True),
    (OperationalError("UPDATE", {}, _Psycopg2Error("deadlock detected")), True),
    (OperationalError("BEGIN IMMEDIATE", {}, LOCKED), True),
    # Two first flags of one source: the retry finds the other's source row.
    (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), True),
    (OperationalError("INSERT", {}, psycopg.errors.AdminShutdown("terminating connection")),
     False),
    (OperationalError("INSERT", {}, psycopg.errors.QueryCanceled("statement timeout")), False),
    (OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error")), False),
])
def test_retryable_only_for_failures_that_storing_again_fixes(exc, retry):
    assert flags._retryable(exc) is retry


def _fail_after_storing(monkeypatch, orig: Exception, times: int) -> list[int]:
    """`_store` does all its work (source, clip, flag, event flushed), then its transaction
    fails with `orig` the first `times` calls; returns the list the calls are counted in."""
    calls: list[int] = []

    def store(session, *args):
        out = STORE(session, *args)
        session.flush()
        calls.append(out[0].flag_id)
        if len(calls) <= times:
            raise OperationalError("COMMIT", {}, orig)
        return out
    monkeypatch.setattr(flags, "_store", store)
    monkeypatch.setattr(flags.time, "sleep", lambda _s: None)
    return calls


@pytest.mark.parametrize("orig", [LOCKED, DEADLOCK], ids=["locked", "deadlock"])
def test_a_flag_whose_transaction_fails_once_is_stored_exactly_once(ctx, monkeypatch, orig):
    calls = _fail_after_storing(monkeypatch, orig, times=1)
    res = file_flag(ctx, VOL, URL, "10", "20", note="waiting lists promise")
    assert len(calls) == 2  # stored, rolled back, stored again
    assert _counts(ctx) == (1, 1, 1)
    with ctx.db.session() as s:
        flag = s.scalars(select(Flag)).one()
        assert (flag.id, flag.clip_id, flag.note) == (res.flag_id, res.clip_id,
                                                      "waiting lists promise")
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "flag.created")) == 1
    assert not res.merged and res.status == "queued"


def test_a_flag_is_not_stored_again_after_other_failures_or_too_many(ctx, monkeypatch):
    calls = _fail_after_storing(monkeypatch, sqlite3.OperationalError("disk I/O error"), 1)
    with pytest.raises(OperationalError, match="disk I/O"):
        file_flag(ctx, VOL, URL, "10", "20")
    assert len(calls) == 1 and _counts(ctx) == (0, 0, 0)
    calls = _fail_after_storing(monkeypatch, LOCKED, times=flags.STORE_TRIES)
    with pytest.raises(OperationalError, match="locked"):
        file_flag(ctx, VOL, URL, "10", "20")
    assert len(calls) == flags.STORE_TRIES and _counts(ctx) == (0, 0, 0)
