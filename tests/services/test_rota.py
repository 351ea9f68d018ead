"""The rota services on both databases: shifts, sign-ups, gaps, check-ins, stats, calendars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from polling import poll
from sqlalchemy import func, select

from clipper.errors import Conflict, InvalidInput, PermissionDenied
from clipper.permissions import Actor
from clipper.services import rota
from clipper.services.channels import add_channel
from clipper.services.users import add_user
from clipper.storage.tables import Shift, Signup
from tests.net.test_webhook import hook_server, url_of

pytestmark = pytest.mark.services
OP = Actor.operator()
URL = "http://127.0.0.1:9/live/index.m3u8"


def iso(t: datetime) -> str:
    return t.isoformat()


@pytest.fixture
def team(ctx):
    add_channel(ctx, OP, "news", URL)
    add_channel(ctx, OP, "sport", URL)
    for name, role in (("ann", "volunteer"), ("bob", "volunteer"), ("cat", "coordinator")):
        add_user(ctx, OP, name, role, "password-1234")
    return ctx


def count(ctx, table) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_signup_rules_coverage_gaps_and_cancel(team):
    ctx, ann, bob = team, Actor("ann", "volunteer"), Actor("bob", "volunteer")
    cat = Actor("cat", "coordinator")
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    h = timedelta(hours=1)
    a, = rota.add_shifts(ctx, cat, "news", iso(t0), iso(t0 + h), needs=1)
    b, = rota.add_shifts(ctx, cat, "news", iso(t0 + h), iso(t0 + 2 * h), needs=2)
    c, = rota.add_shifts(ctx, cat, "sport", iso(t0), iso(t0 + 2 * h))
    for bad in (("nope", iso(t0), iso(t0 + h)), ("news", iso(t0 + h), iso(t0))):
        with pytest.raises(InvalidInput):
            rota.add_shifts(ctx, cat, *bad)
    with pytest.raises(InvalidInput):
        rota.add_shifts(ctx, cat, "news", iso(t0), iso(t0 + h), needs=0)
    with pytest.raises(PermissionDenied):
        rota.add_shifts(ctx, ann, "news", iso(t0), iso(t0 + h))
    assert count(ctx, Shift) == 3

    rota.signup(ctx, ann, a)
    with pytest.raises(Conflict, match="full"):
        rota.signup(ctx, bob, a)
    with pytest.raises(Conflict, match="overlaps"):
        rota.signup(ctx, ann, c)
    with pytest.raises(PermissionDenied):
        rota.signup(ctx, ann, b, "bob")
    rota.signup(ctx, cat, b, "bob")
    assert count(ctx, Signup) == 2
    with pytest.raises(Conflict, match="ended"):
        rota.signup(ctx, bob, c, at=t0 + 3 * h)

    listed = {r["id"]: r for r in rota.list_shifts(ctx, ann, start_day=t0.date(), days=2)}
    assert listed[a]["status"] == "covered" and listed[a]["volunteers"] == ["ann"]
    assert listed[b]["status"] == "short" and listed[c]["status"] == "empty"
    assert listed[a]["start"] == t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    gaps = rota.gaps(ctx, ann, days=3)
    assert gaps == [{"channel": "news", "start": listed[b]["start"], "end": listed[b]["end"],
                     "missing": 1},
                    {"channel": "sport", "start": listed[c]["start"], "end": listed[c]["end"],
                     "missing": 1}]
    assert [r["shift_id"] for r in rota.now(ctx, ann, at=t0 + h / 2)] == [a, c]

    with pytest.raises(PermissionDenied, match="too late"):
        rota.cancel_signup(ctx, ann, a, at=t0 - h)
    rota.cancel_signup(ctx, ann, a, at=t0 - 4 * h)
    rota.signup(ctx, ann, a)  # signing up again after cancelling
    rota.cancel_signup(ctx, cat, a, "ann", at=t0 - h)  # a coordinator may, late


def test_weekly_repeat_dst_check_in_missed_stats_and_ical(team):
    ctx, ann, cat = team, Actor("ann", "volunteer"), Actor("cat", "coordinator")
    ids = rota.add_shifts(ctx, cat, "news", "2027-03-21T19:00+00:00", "2027-03-21T20:00+00:00",
                          weekly_until="2027-04-04")
    assert len(ids) == 3
    with ctx.db.session() as s:
        starts = [s.get(Shift, i).start for i in ids]
    # CLIPPER_TIMEZONE is UTC in tests: a UTC wall time never moves.
    assert [t.hour for t in starts] == [19, 19, 19]
    before = datetime(2027, 3, 1, tzinfo=UTC)
    for i in ids[:2]:
        rota.signup(ctx, ann, i, at=before)
    with pytest.raises(Conflict, match="check in while"):
        rota.check_in(ctx, ann, ids[0], at=before)
    rota.check_in(ctx, ann, ids[0], at=starts[0] + timedelta(minutes=5))
    assert rota.mark_missed(ctx, cat, now=datetime(2027, 4, 1, tzinfo=UTC)) == 1
    assert rota.stats(ctx, ann) == {"shifts_done": 1, "missed": 1, "flags_filed": 0,
                                    "flags_published": 0}
    with pytest.raises(PermissionDenied):
        rota.stats(ctx, ann, "cat")
    with pytest.raises(PermissionDenied):
        rota.ical(ctx, ann, "bob")
    cal = Calendar.from_ical(rota.ical(ctx, ann, "ann"))
    uids = [str(e["uid"]) for e in cal.walk("VEVENT")]
    assert uids == [f"shift-{ids[0]}@clipper", f"shift-{ids[1]}@clipper"]
    assert rota.ical(ctx, cat, "ann").count("BEGIN:VEVENT") == 2


def test_edit_cancel_shift_and_remove_person_tell_everyone(team):
    """Changes reach the team's webhook (a real server on loopback), one message each."""
    import dataclasses

    from clipper.storage.tables import Event

    with hook_server([]) as hook:
        team.settings = dataclasses.replace(team.settings, webhook_url=url_of(hook))
        _edit_cancel_and_remove(team, hook)
    with team.db.session() as s:
        actions = s.scalars(select(Event.action).where(Event.action.like("rota.%"))).all()
    assert {"rota.edited", "rota.removed", "rota.shift_cancelled"} <= set(actions)
    assert actions.count("rota.edited") == 1


def _told(ctx, hook, count: int) -> list[dict]:
    """The webhook's messages once `count` have arrived: the services store them in the outbox,
    the deliverer (run here as `clipper up` runs it) posts them."""
    from clipper.pipeline.notifications import deliver_due

    def arrived() -> bool:
        deliver_due(ctx)
        return len(hook.bodies) >= count

    poll(arrived, 10, f"{count} webhook messages")
    return [payload for _type, payload in hook.bodies]


def _edit_cancel_and_remove(ctx, hook) -> None:
    ann, bob = Actor("ann", "volunteer"), Actor("bob", "volunteer")
    cat = Actor("cat", "coordinator")
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    h = timedelta(hours=1)
    a, = rota.add_shifts(ctx, cat, "news", iso(t0), iso(t0 + h), needs=2, note="debate")
    rota.signup(ctx, ann, a)
    rota.signup(ctx, bob, a)

    with pytest.raises(PermissionDenied):
        rota.edit_shift(ctx, ann, a, needs=3)
    with pytest.raises(InvalidInput):
        rota.edit_shift(ctx, cat, a, end=iso(t0 - h))
    with pytest.raises(InvalidInput):
        rota.edit_shift(ctx, cat, a, needs=0)
    with pytest.raises(Conflict, match="ended"):
        rota.edit_shift(ctx, cat, a, needs=3, at=t0 + 2 * h)
    assert hook.bodies == []

    out = rota.edit_shift(ctx, cat, a, end=iso(t0 + 2 * h), needs=3, note="leaders' debate")
    assert out["end"] == (t0 + 2 * h).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (out["needs"], out["status"], out["volunteers"]) == (3, "short", ["ann", "bob"])
    sent = _told(ctx, hook, 1)
    assert sent[-1]["event"] == "rota.shift_changed" and sent[-1]["volunteers"] == ["ann", "bob"]
    assert "ann, bob" in sent[-1]["text"] and set(sent[-1]["changed"]) == {"end", "needs", "note"}
    rota.edit_shift(ctx, cat, a, needs=3)  # nothing changed: nobody is told (the next is removal)

    with pytest.raises(PermissionDenied):
        rota.remove_person(ctx, ann, a, "bob")
    rota.remove_person(ctx, cat, a, "bob")
    with pytest.raises(Conflict, match="not on shift"):
        rota.remove_person(ctx, cat, a, "bob")
    sent = _told(ctx, hook, 2)
    assert sent[1]["event"] == "rota.person_removed" and sent[1]["user"] == "bob"
    assert rota.list_shifts(ctx, ann, start_day=t0.date(), days=2)[0]["volunteers"] == ["ann"]

    with pytest.raises(PermissionDenied):
        rota.cancel_shift(ctx, ann, a)
    rota.cancel_shift(ctx, cat, a)
    sent = _told(ctx, hook, 3)
    assert sent[2]["event"] == "rota.shift_cancelled" and sent[2]["volunteers"] == ["ann"]
    assert "cancelled" in sent[2]["text"]
    with pytest.raises(Conflict, match="already cancelled"):
        rota.cancel_shift(ctx, cat, a)
    with pytest.raises(Conflict, match="cancelled"):
        rota.edit_shift(ctx, cat, a, needs=1)
    assert rota.list_shifts(ctx, ann, start_day=t0.date(), days=2) == []
    assert rota.gaps(ctx, ann, days=3) == []
    assert len(_told(ctx, hook, 3)) == 3


def test_cli_edit_and_cancel_shift(tmp_path, sqlite_url):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "CLIPPER_HOME": str(tmp_path / "home"), "DATABASE_URL": sqlite_url,
           "CLIPPER_TIMEZONE": "UTC", "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}

    def clip(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clipper.cli", *argv], env=env, text=True,
                              capture_output=True, timeout=60)

    assert clip("channels", "add", "news", URL).returncode == 0
    r = clip("rota", "add", "--channel", "news", "--start", "2099-03-21T19:00",
             "--end", "2099-03-21T20:00", "--json")
    sid = str(json.loads(r.stdout)["shift_ids"][0])
    r = clip("rota", "edit", sid, "--end", "2099-03-21T21:00", "--needs", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["end"], out["needs"], out["status"]) == ("2099-03-21T21:00:00Z", 2, "empty")
    r = clip("rota", "edit", sid, "--end", "2099-03-21T18:00")
    assert r.returncode == 2 and "error:" in r.stderr
    assert clip("rota", "cancel-shift", sid).returncode == 0
    r = clip("rota", "cancel-shift", sid)
    assert r.returncode != 0 and "already cancelled" in r.stderr
    assert json.loads(clip("rota", "list", "--from", "2099-03-21", "--json").stdout) == []


def test_edit_shift_refusals_store_nothing(team):
    """needs below the people on it, end <= start, times overlapping another shift of someone
    on it, a cancelled or ended shift: each refused with a reason and a hint, nothing changed,
    nobody told."""
    from clipper.storage.tables import Event

    ctx, ann, bob = team, Actor("ann", "volunteer"), Actor("bob", "volunteer")
    cat = Actor("cat", "coordinator")
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    h = timedelta(hours=1)
    a, = rota.add_shifts(ctx, cat, "news", iso(t0), iso(t0 + h), needs=2)
    b, = rota.add_shifts(ctx, cat, "sport", iso(t0 + 2 * h), iso(t0 + 3 * h))
    c, = rota.add_shifts(ctx, cat, "sport", iso(t0 - 3 * h), iso(t0 - 2 * h))
    rota.signup(ctx, ann, a)
    rota.signup(ctx, bob, a)
    rota.signup(ctx, ann, b)

    def shift_a() -> dict:
        return next(s for s in rota.list_shifts(ctx, cat, start_day=t0.date() - timedelta(days=1),
                                                days=3) if s["id"] == a)

    def edits() -> int:
        with ctx.db.session() as s:
            return len(s.scalars(select(Event.id).where(Event.action == "rota.edited")).all())

    before = shift_a()
    with pytest.raises(Conflict, match="already has 2 people") as too_few:
        rota.edit_shift(ctx, cat, a, needs=1)
    assert "ann, bob" in too_few.value.message and "Take someone off" in too_few.value.hint
    with pytest.raises(InvalidInput, match="end after it starts"):
        rota.edit_shift(ctx, cat, a, start=iso(t0 + h))
    with pytest.raises(InvalidInput, match="end after it starts"):
        rota.edit_shift(ctx, cat, a, end=iso(t0))
    # ann is on b (from t0+2h): stretching a to t0+2h30 would overlap it.
    with pytest.raises(Conflict, match=f"ann is also on shift {b}") as clash:
        rota.edit_shift(ctx, cat, a, end=iso(t0 + 2.5 * h))
    assert "overlap" in clash.value.message and "take ann off" in clash.value.hint
    assert shift_a() == before and edits() == 0
    # Earlier and later, back to back with ann's shift b: no overlap, so it is done.
    out = rota.edit_shift(ctx, cat, a, start=iso(t0 - 2 * h), end=iso(t0 + 2 * h))
    assert (out["start"], out["end"]) == (rota.rota.iso(t0 - 2 * h), rota.rota.iso(t0 + 2 * h))
    # bob's shift c ends where a now starts; starting a earlier would overlap it.
    rota.signup(ctx, cat, c, "bob", at=t0 - 4 * h)
    with pytest.raises(Conflict, match=f"bob is also on shift {c}"):
        rota.edit_shift(ctx, cat, a, start=iso(t0 - 2.5 * h))
    with pytest.raises(Conflict, match="ended") as ended:
        rota.edit_shift(ctx, cat, c, needs=2, at=t0)
    assert ended.value.hint == "Create a new shift instead."
    rota.cancel_shift(ctx, cat, b)
    with pytest.raises(Conflict, match="cancelled"):
        rota.edit_shift(ctx, cat, b, needs=2)
    # A cancelled shift ann was on clashes with nothing: a may now take its time.
    rota.edit_shift(ctx, cat, a, end=iso(t0 + 3 * h))
    assert edits() == 2 and shift_a()["end"] == rota.rota.iso(t0 + 3 * h)
    with pytest.raises(Conflict, match="ended"):
        rota.edit_shift(ctx, cat, a, needs=3, at=t0 + 4 * h)
    with pytest.raises(InvalidInput, match="whole number"):
        rota.edit_shift(ctx, cat, a, needs="two")
    assert edits() == 2 and shift_a()["needs"] == 2


def test_team_stats_match_stats_in_a_few_queries(team):
    """Each person's numbers equal `stats` for them; the queries do not grow with the team."""
    from sqlalchemy import event

    from clipper.services.users import disable_user
    from clipper.storage.tables import Clip, Flag, Publication, Source

    ctx, cat = team, Actor("cat", "coordinator")
    for i in range(6):
        add_user(ctx, OP, f"v{i}", "volunteer", "password-1234")
    add_user(ctx, OP, "gone", "volunteer", "password-1234")
    disable_user(ctx, OP, "gone")
    base = datetime(2027, 3, 1, 19, tzinfo=UTC)
    h = timedelta(hours=1)
    ids = [rota.add_shifts(ctx, cat, "news", iso(base + 2 * k * h), iso(base + (2 * k + 1) * h),
                           needs=2)[0]
           for k in range(3)]
    early = base - timedelta(days=1)
    for sid in ids:
        rota.signup(ctx, cat, sid, "ann", at=early)
    rota.signup(ctx, cat, ids[0], "bob", at=early)
    rota.check_in(ctx, Actor("ann", "volunteer"), ids[0], at=base)
    rota.mark_missed(ctx, cat, now=base + 10 * h)  # ann missed 2, bob 1
    with ctx.db.session() as s:
        src = Source(kind="url", key="url:x", location="https://news.example/x")
        s.add(src)
        s.flush()
        clips = [Clip(source_id=src.id, start=0.0, end=5.0) for _ in range(2)]
        s.add_all(clips)
        s.flush()
        s.add_all([Flag(clip_id=clips[0].id, source_id=src.id, start=0, end=5, by="ann"),
                   Flag(clip_id=clips[1].id, source_id=src.id, start=0, end=5, by="ann"),
                   Flag(clip_id=clips[0].id, source_id=src.id, start=1, end=5, by="v3")])
        s.add_all([Publication(clip_id=clips[0].id, platform="X", url="https://x.example/1",
                               by="sam"),
                   Publication(clip_id=clips[0].id, platform="TikTok", url="https://t.example/1",
                               by="sam")])

    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001 (SQLAlchemy's hook)
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", seen)
    try:
        rows = rota.team_stats(ctx, cat)
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", seen)
    assert len(statements) <= 4, statements
    names = [r["name"] for r in rows]
    assert names == sorted(names) and "gone" not in names and len(names) == 9
    by_name = {r["name"]: r for r in rows}
    assert by_name["ann"] == {"name": "ann", "role": "volunteer", "shifts_done": 1, "missed": 2,
                              "flags_filed": 2, "flags_published": 1}
    assert by_name["v3"]["flags_published"] == 1 and by_name["bob"]["missed"] == 1
    for r in rows:
        assert {k: v for k, v in r.items() if k not in ("name", "role")} == rota.stats(
            ctx, cat, r["name"])
    with pytest.raises(PermissionDenied):
        rota.team_stats(ctx, Actor("ann", "volunteer"))


def test_missed_shifts_latest_first_within_days(team):
    ctx, cat = team, Actor("cat", "coordinator")
    h = timedelta(hours=1)
    base = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    old, = rota.add_shifts(ctx, cat, "sport", iso(base - timedelta(days=20)),
                           iso(base - timedelta(days=20) + h))
    a, = rota.add_shifts(ctx, cat, "news", iso(base), iso(base + h), needs=2)
    b, = rota.add_shifts(ctx, cat, "sport", iso(base + 2 * h), iso(base + 3 * h))
    early = base - timedelta(days=30)
    for sid, who in ((old, "ann"), (a, "ann"), (a, "bob"), (b, "bob")):
        rota.signup(ctx, cat, sid, who, at=early)
    rota.check_in(ctx, Actor("bob", "volunteer"), a, at=base)
    assert rota.missed_shifts(ctx, cat) == []  # nothing marked yet
    assert rota.mark_missed(ctx, cat, now=datetime.now(UTC)) == 3
    got = rota.missed_shifts(ctx, cat)
    assert [(r["shift_id"], r["user"], r["channel"]) for r in got] == [(b, "bob", "sport"),
                                                                       (a, "ann", "news")]
    assert got[0]["start"] == rota.rota.iso(base + 2 * h)
    assert len(rota.missed_shifts(ctx, cat, days=30)) == 3
    assert len(rota.missed_shifts(ctx, cat, days=30, limit=1)) == 1
    with pytest.raises(InvalidInput):
        rota.missed_shifts(ctx, cat, days=0)
    with pytest.raises(PermissionDenied):
        rota.missed_shifts(ctx, Actor("ann", "volunteer"))


def test_nobody_is_taken_off_a_shift_that_has_ended(team):
    """Not by themselves, not by a coordinator (cancel or remove): once a shift is over its
    sign-ups are the record of who watched it; while it runs a coordinator still may."""
    ctx, ann, cat = team, Actor("ann", "volunteer"), Actor("cat", "coordinator")
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    h = timedelta(hours=1)
    sid, = rota.add_shifts(ctx, cat, "news", iso(t0), iso(t0 + 2 * h), needs=2)
    rota.signup(ctx, ann, sid)
    rota.signup(ctx, cat, sid, "bob")
    after = t0 + 2 * h
    for call in (lambda: rota.cancel_signup(ctx, cat, sid, "ann", at=after),
                 lambda: rota.cancel_signup(ctx, ann, sid, at=after + h),
                 lambda: rota.remove_person(ctx, cat, sid, "bob", at=after)):
        with pytest.raises(Conflict, match=f"Shift {sid} ended at .*can no longer be taken off"
                           ) as ended:
            call()
        assert "record who watched it" in ended.value.hint
    assert rota.list_shifts(ctx, cat, start_day=t0.date())[0]["volunteers"] == ["ann", "bob"]
    # While it runs, a coordinator may still take people off.
    assert rota.cancel_signup(ctx, cat, sid, "ann", at=after - h)["late"] is True
    assert rota.remove_person(ctx, cat, sid, "bob", at=after - h / 60)["state"] == "cancelled"
    assert rota.list_shifts(ctx, cat, start_day=t0.date())[0]["volunteers"] == []
