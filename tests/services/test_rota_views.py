"""The rota's read-only views on both databases: the coverage grid by time slot, a person's own
shifts, and which channels nobody is watching now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from clipper.errors import PermissionDenied
from clipper.permissions import Actor
from clipper.services import rota
from clipper.services.channels import add_channel, pause_channel, remove_channel
from clipper.services.rota_views import my_shifts, unwatched, week_grid
from clipper.services.users import add_user

pytestmark = pytest.mark.services
OP = Actor.operator()
URL = "http://127.0.0.1:9/live/index.m3u8"
H = timedelta(hours=1)
#: A fixed "now" on the hour, a day ahead, so every shift below is still to come when added.
T = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def shift(ctx, channel: str, start: datetime, end: datetime, needs: int = 1) -> int:
    return rota.add_shifts(ctx, OP, channel, start.isoformat(), end.isoformat(), needs=needs)[0]


def z(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.fixture
def desk(ctx):
    for name in ("bbc", "itv", "sky", "c4", "c5"):
        add_channel(ctx, OP, name, URL)
    for name in ("ann", "bob", "cy"):
        add_user(ctx, OP, name, "volunteer", "password-1234")
    return ctx


def test_unwatched_lists_channels_without_anyone_on_a_running_shift(desk):
    ctx = desk
    ann = Actor("ann", "volunteer")
    watched = shift(ctx, "bbc", T - H, T + H)               # ann on it: watched
    rota.signup(ctx, OP, watched, user="ann")
    short = shift(ctx, "itv", T - H, T + H, needs=3)        # 1 of 3: short, still watched
    rota.signup(ctx, OP, short, user="bob")
    shift(ctx, "sky", T - H, T + H)                         # running, nobody on it
    shift(ctx, "sky", T + 2 * H, T + 3 * H)                 # sky's next one
    shift(ctx, "sky", T + 5 * H, T + 6 * H)
    cancelled = shift(ctx, "c4", T + H, T + 2 * H)          # c4: only a cancelled shift ahead
    rota.cancel_shift(ctx, OP, cancelled)
    ended = shift(ctx, "c5", T - 2 * H, T)                  # c5: cy's shift ends at T
    rota.signup(ctx, OP, ended, user="cy")
    shift(ctx, "c5", T, T + H)                              # starts at T, empty: not "next"
    shift(ctx, "c5", T + H, T + 2 * H)

    assert unwatched(ctx, ann, at=T) == [
        {"channel": "c4", "next_shift": None},
        {"channel": "c5", "next_shift": z(T + H)},
        {"channel": "sky", "next_shift": z(T + 2 * H)},
    ]
    # A minute earlier cy was still on c5; c5's next shift then is the one starting at T.
    assert [(r["channel"], r["next_shift"]) for r in unwatched(ctx, ann, at=T - H / 60)] == [
        ("c4", None), ("sky", z(T + 2 * H))]


def test_unwatched_skips_paused_and_removed_channels_and_cancelled_signups(desk):
    ctx = desk
    sid = shift(ctx, "bbc", T - H, T + H)
    rota.signup(ctx, OP, sid, user="ann")
    assert [r["channel"] for r in unwatched(ctx, OP, at=T)] == ["c4", "c5", "itv", "sky"]
    pause_channel(ctx, OP, "itv")
    remove_channel(ctx, OP, "c5")
    rota.remove_person(ctx, OP, sid, "ann")  # nobody left on bbc's shift
    assert unwatched(ctx, OP, at=T) == [
        {"channel": "bbc", "next_shift": None}, {"channel": "c4", "next_shift": None},
        {"channel": "sky", "next_shift": None}]


def test_unwatched_defaults_to_now_and_needs_view_rota(desk):
    ctx = desk
    rows = unwatched(ctx, Actor("ann", "volunteer"))
    assert [r["channel"] for r in rows] == ["bbc", "c4", "c5", "itv", "sky"]
    assert rows[0]["next_shift"] is None
    with pytest.raises(PermissionDenied):
        unwatched(ctx, Actor("ghost", "nobody"))


def test_week_grid_colours_each_three_hour_slot_in_the_viewers_zone(desk):
    """A covered evening and an empty morning on one day are two cells (not one "short" day),
    in the slots of the viewer's zone; cancelled shifts and unplanned time are "none"."""
    ctx = desk
    day = date(2030, 7, 1)  # summer: London is UTC+1
    at = datetime(2030, 7, 1, tzinfo=UTC)
    shift(ctx, "bbc", at + 7 * H, at + 9 * H)                       # empty morning
    evening = shift(ctx, "bbc", at + 18 * H, at + 20 * H)           # covered evening
    rota.signup(ctx, OP, evening, user="ann")
    short = shift(ctx, "itv", at + 22 * H, at + 26 * H, needs=2)    # 1 of 2, past midnight
    rota.signup(ctx, OP, short, user="bob")
    rota.cancel_shift(ctx, OP, shift(ctx, "sky", at + 12 * H, at + 13 * H))

    grid = week_grid(ctx, Actor("ann", "volunteer"), start_day=day, days=2)
    assert grid["days"] == ["2030-07-01", "2030-07-02"]
    assert grid["times"] == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00",
                             "21:00"]
    assert len(grid["slots"]) == 16 and grid["slots"][9] == {
        "day": "2030-07-02", "time": "03:00", "start": "2030-07-02T03:00:00Z",
        "end": "2030-07-02T06:00:00Z"}
    n, e, c, s = "none", "empty", "covered", "short"
    cells = {r["channel"]: r["cells"] for r in grid["rows"]}
    assert list(cells) == ["bbc", "c4", "c5", "itv", "sky"]  # every channel, by name
    assert cells["bbc"] == [n, n, e, n, n, n, c, n] + [n] * 8
    assert cells["itv"] == [n] * 7 + [s, s] + [n] * 7
    assert cells["sky"] == cells["c4"] == [n] * 16

    # In London the same shifts fall an hour later: 08:00-10:00 spans two slots.
    london = week_grid(ctx, OP, start_day=day, days=1, tz="Europe/London")
    assert london["slots"][0]["start"] == "2030-06-30T23:00:00Z"
    assert {r["channel"]: r["cells"] for r in london["rows"]}["bbc"] == [n, n, e, e, n, n, c, n]
    with pytest.raises(PermissionDenied):
        week_grid(ctx, Actor("ghost", "nobody"))


def test_my_shifts_are_the_persons_own_live_sign_ups_with_everyone_on_them(desk):
    """Filtered in SQL (list_shifts' `user`): signed or checked in, not yet ended, not cancelled,
    each shift still listing everyone on it."""
    ctx = desk
    now = datetime.now(UTC).replace(microsecond=0)
    both = shift(ctx, "bbc", T, T + H, needs=2)
    for name in ("ann", "bob"):
        rota.signup(ctx, OP, both, user=name)
    bobs = shift(ctx, "itv", T + 2 * H, T + 3 * H)
    rota.signup(ctx, OP, bobs, user="bob")
    left = shift(ctx, "sky", T + 4 * H, T + 5 * H)
    rota.signup(ctx, OP, left, user="ann")
    rota.cancel_signup(ctx, OP, left, user="ann")
    dropped = shift(ctx, "c4", T + 6 * H, T + 7 * H)
    rota.signup(ctx, OP, dropped, user="ann")
    rota.cancel_shift(ctx, OP, dropped)
    ended = shift(ctx, "c5", now - 3 * H, now - 2 * H)
    rota.signup(ctx, OP, ended, user="ann", at=now - 4 * H)

    mine = my_shifts(ctx, Actor("ann", "volunteer"))
    assert [(s["id"], s["volunteers"]) for s in mine] == [(both, ["ann", "bob"])]
    assert [s["channel"] for s in my_shifts(ctx, Actor("bob", "volunteer"))] == ["bbc", "itv"]
    assert my_shifts(ctx, Actor("cy", "volunteer")) == []
    assert [s["id"] for s in rota.list_shifts(ctx, OP, days=3, channel="itv", user="bob")] == [
        bobs]
    assert rota.list_shifts(ctx, OP, days=3, channel="itv", user="ann") == []
