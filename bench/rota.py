"""Rota benchmark: 30 channels x 4 weeks, 3,000 shifts and 1,000 volunteers with realistic
sign-ups (most shifts covered, some short, some empty) in SQLite and in a scratch PostgreSQL;
prints median and p95 of the coverage grid (`rota_views.week_grid`), the 7-day shift list it
reads (`list_shifts`) and `gaps(days=7)` (target: <= 200 ms each), then of a full run of the
coordinator's Rota page and a volunteer's My shifts page under Streamlit's AppTest (target:
<= 1 s each).

    .venv/bin/python bench/rota.py              # full size, both databases
    .venv/bin/python bench/rota.py --quick      # small sizes (the test suite runs this)
    .venv/bin/python bench/rota.py --backend sqlite
    .venv/bin/python bench/rota.py --no-pages   # the service calls alone
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from figures import percentile  # noqa: E402

from clipper.context import Context  # noqa: E402
from clipper.permissions import Actor  # noqa: E402
from clipper.services import rota, rota_views  # noqa: E402
from clipper.settings import Settings  # noqa: E402
from clipper.storage.database import Database  # noqa: E402
from clipper.storage.tables import Channel, Shift, Signup, User  # noqa: E402

TARGET_MS = 200.0
PAGE_TARGET_MS = 1000.0
WEEKS = 4
ROOT = Path(__file__).resolve().parents[1]
PAGES = {"rota": ROOT / "dashboard/coordinator/rota.py",
         "my_shifts": ROOT / "dashboard/volunteer/shifts.py"}
PASSWORD = "bench horse battery staple"


def build(db: Database, channels: int, shifts: int, volunteers: int, seed: int = 7) -> dict:
    """Back-to-back shifts per channel over 4 weeks from today 00:00 UTC; per shift 70% covered,
    20% short, 10% empty. Returns counts."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    per_channel = max(1, shifts // channels)
    length = timedelta(days=7 * WEEKS) / per_channel
    with db.session() as session:
        session.execute(insert(Channel), [
            {"name": f"channel-{c:02d}", "url": f"http://127.0.0.1:9/{c}/index.m3u8"}
            for c in range(channels)])
        session.execute(insert(User), [
            {"name": f"vol{u:04d}", "role": "volunteer", "password_hash": "x"}
            for u in range(volunteers)])
    with db.session() as session:
        channel_ids = [c.id for c in session.query(Channel).order_by(Channel.id)]
        user_ids = [u.id for u in session.query(User).order_by(User.id)]
        session.execute(insert(Shift), [
            {"channel_id": ch, "start": start + k * length, "end": start + (k + 1) * length,
             "needs": rng.choice((1, 1, 2, 2, 3)), "note": "", "created_by": "bench",
             "cancelled": False}
            for ch in channel_ids for k in range(per_channel)])
    with db.session() as session:
        rows = session.query(Shift.id, Shift.needs).all()
        signups = []
        for sid, needs in rows:
            roll = rng.random()
            n = needs if roll < 0.7 else (0 if roll >= 0.9 else rng.randint(0, needs - 1))
            for uid in rng.sample(user_ids, n):
                signups.append({"shift_id": sid, "user_id": uid,
                                "state": rng.choice(("signed", "signed", "checked_in"))})
        if signups:
            session.execute(insert(Signup), signups)
    return {"channels": len(channel_ids), "shifts": len(rows), "volunteers": len(user_ids),
            "signups": len(signups)}


def timed(fn, reps: int) -> tuple[list[float], object]:
    out, times = None, []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return times, out


def report(name: str, label: str, size: int, times: list[float], target: float,
           unit: str = "rows") -> bool:
    """Print one line of figures; True when p95 is within `target` ms."""
    p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
    print(f"[{name}] {label:<11} {size:5d} {unit}  median {p50:7.1f} ms, p95 {p95:7.1f} ms "
          f"over {len(times)} runs ({'ok' if p95 <= target else 'OVER'} <= {target:.0f} ms)")
    return p95 <= target


def bench_pages(name: str, ctx: Context, reps: int) -> bool:
    """Full runs of the Rota page (a coordinator) and My shifts (the volunteer on the most
    coming shifts) under AppTest, in this process, on the database the dashboard finds through
    the environment; one warm-up run each (imports, first queries) is not counted."""
    from sqlalchemy import func, select
    from streamlit.testing.v1 import AppTest

    from clipper.services import users
    from dashboard import deps

    # Session state set, and the cache cleared, outside a run: Streamlit would warn of a missing
    # ScriptRunContext among the figures. (Its own log setup resets levels, not `disabled`.)
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").disabled = True
    operator = Actor.operator("bench")
    users.add_user(ctx, operator, "coord", "coordinator", PASSWORD)
    with ctx.db.read() as session:
        busiest = session.execute(
            select(User.name).join(Signup, Signup.user_id == User.id)
            .join(Shift, Shift.id == Signup.shift_id).where(Shift.end > datetime.now(UTC))
            .group_by(User.name).order_by(func.count().desc(), User.name).limit(1)).scalar()
    volunteer = busiest or "vol0000"
    users.set_password(ctx, operator, volunteer, PASSWORD)
    os.environ.update({"CLIPPER_HOME": str(ctx.settings.home),
                       "DATABASE_URL": ctx.settings.database_url, "CLIPPER_TIMEZONE": "UTC"})
    ok = True
    try:
        for label, who in (("rota", "coord"), ("my_shifts", volunteer)):
            at = AppTest.from_file(str(PAGES[label]), default_timeout=120)
            at.session_state[deps.TOKEN_KEY] = users.authenticate(ctx, who, PASSWORD)
            times = []
            for _ in range(reps + 1):
                t = time.perf_counter()
                at.run()
                times.append((time.perf_counter() - t) * 1000)
                if at.exception:
                    raise RuntimeError(f"{label} page failed: {at.exception[0].value}")
            # Size: the options of its pickers and its buttons, what grows with the rota.
            size = sum(len(b.options) for b in at.selectbox) + len(at.button)
            ok &= report(name, f"page {label}", size, times[1:], PAGE_TARGET_MS, "choices")
    finally:
        # The pages' Context is cached per database URL: close its pool before the database goes.
        env = os.environ
        deps._context(env["CLIPPER_HOME"], env["DATABASE_URL"], env.get("REDIS_URL", "")).close()
        deps._context.clear()
    return ok


def bench_backend(name: str, db: Database, settings: Settings, args: argparse.Namespace) -> bool:
    t = time.perf_counter()
    sizes = build(db, args.channels, args.shifts, args.volunteers)
    print(f"[{name}] {sizes['channels']} channels, {sizes['shifts']:,} shifts, "
          f"{sizes['volunteers']:,} volunteers, {sizes['signups']:,} signups "
          f"(built in {time.perf_counter() - t:.1f} s)")
    ctx = Context(settings=settings, db=db, _redis=None)
    who = Actor("coord", "coordinator")
    ok = True
    cases = [("grid", lambda: rota_views.week_grid(ctx, who, days=7)),
             ("list_shifts", lambda: rota.list_shifts(ctx, who, days=7)),
             ("gaps", lambda: rota.gaps(ctx, who, days=7))]
    for label, fn in cases:
        fn()  # warm up
        times, out = timed(fn, args.reps)
        size = len(out["rows"]) if isinstance(out, dict) else len(out)
        ok &= report(name, label, size, times, TARGET_MS)
    if not args.no_pages:
        ok &= bench_pages(name, ctx, args.page_reps)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--shifts", type=int, default=3000)
    parser.add_argument("--volunteers", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--page-reps", type=int, default=10, help="timed runs of each page")
    parser.add_argument("--no-pages", action="store_true", help="skip the dashboard pages")
    parser.add_argument("--quick", action="store_true", help="3 channels, 120 shifts, 50 "
                        "volunteers, 3 runs: checks the script works, not the speed")
    args = parser.parse_args(argv)
    if args.quick:
        args.channels, args.shifts, args.volunteers, args.reps, args.page_reps = 3, 120, 50, 3, 2
    ok = True
    with tempfile.TemporaryDirectory(prefix="clipper-bench-rota-") as tmp:
        env = {"CLIPPER_HOME": tmp, "CLIPPER_TIMEZONE": "UTC", "PATH": ""}
        if args.backend in ("sqlite", "both"):
            url = f"sqlite:///{tmp}/rota.db"
            db = Database(url)
            try:
                ok &= bench_backend("sqlite", db, Settings.from_env(
                    {**env, "DATABASE_URL": url}), args)
            finally:
                db.dispose()
        if args.backend in ("postgresql", "both"):
            from pgdb import scratch_postgres

            with scratch_postgres("clipper_bench_rota") as db:
                ok &= bench_backend("postgresql", db, Settings.from_env(
                    {**env, "DATABASE_URL": db.url}), args)
    print("all within target" if ok else "SOME OVER TARGET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
