"""Rota benchmark: 30 channels x 4 weeks, 3,000 shifts and 1,000 volunteers with realistic
sign-ups (most shifts covered, some short, some empty) in SQLite and in a scratch PostgreSQL;
prints median and p95 of the coverage grid (`rota_views.week_grid`), the 7-day shift list it
reads (`list_shifts`) and `gaps(days=7)`. Target: <= 200 ms each.

    .venv/bin/python bench/rota.py              # full size, both databases
    .venv/bin/python bench/rota.py --quick      # small sizes (the test suite runs this)
    .venv/bin/python bench/rota.py --backend sqlite
"""

from __future__ import annotations

import argparse
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
WEEKS = 4


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
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        size = len(out["rows"]) if isinstance(out, dict) else len(out)
        ok = ok and p95 <= TARGET_MS
        print(f"[{name}] {label:<11} {size:5d} rows  median {p50:7.1f} ms, p95 {p95:7.1f} ms "
              f"over {args.reps} runs ({'ok' if p95 <= TARGET_MS else 'OVER'} "
              f"<= {TARGET_MS:.0f} ms)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--shifts", type=int, default=3000)
    parser.add_argument("--volunteers", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 channels, 120 shifts, 50 "
                        "volunteers, 3 runs: checks the script works, not the speed")
    args = parser.parse_args(argv)
    if args.quick:
        args.channels, args.shifts, args.volunteers, args.reps = 3, 120, 50, 3
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
