"""Search benchmark: build a synthetic news-transcript corpus in SQLite and PostgreSQL, print
index build time, index size and p50/p95 latency of a fixed mix of 20 searches, then of 6
searches aimed at channels' live transcripts.

The corpus is clip transcripts (`segments`) plus channels' live transcripts (`live_segments`:
20 channels, the last week, 5-8 s per segment, newest highest id as the live transcriber
writes them). The 20-query mix searches both wherever its filters allow (the clip-only filters
leave channels out); the channel mix uses --in channels, --channel and dates.

    .venv/bin/python bench/search.py                   # 1,000,000 + 50,000 segments, both
    .venv/bin/python bench/search.py --segments 100000 --live-segments 20000 --backend sqlite

Data lives in a temp dir / a throwaway PostgreSQL database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipper.search import search  # noqa: E402
from clipper.search.index import index_size_bytes  # noqa: E402
from clipper.storage.database import Database, alembic_config  # noqa: E402

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
SEGMENTS_PER_CLIP = 20
SOURCES = 500
CHANNELS = 20
LIVE_DAYS = 7
END_TIME = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_DAYS = 730

CORE = """the of and to a in that is for it on was with he as i his be at by you had not are
this but from or have an they which one were her all she there would their we him been has when
who will more no if out so said what up its about into than them can only other new some could
time these two may then do first any my now such like our over man me even most made after also
did many before must through back years where much your way well down should because each just
those people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year
off come since against go came right used take three""".split()

NEWS = """government minister prime nhs health nurses doctors hospital patients waiting lists
budget tax economy inflation prices energy bills police crime court judge election vote voters
party labour conservative leader council school teachers strike union workers pay rise cuts
housing homes rent climate emissions war ukraine russia china trade deal border migrants
parliament committee report inquiry scandal spokesperson announced billion million percent
week month today yesterday tomorrow morning evening interview statement chancellor secretary
opposition policy plans funding crisis services care social benefits pension rates bank
interest mortgage families children""".split()

FIRST = "keir rishi liz boris angela emma james sarah david rachel yvette wes ed jeremy".split()
LAST = "starmer sunak truss johnson rayner reeves cooper streeting miliband hunt badenoch".split()

ONSETS = ["", "b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
          "pl", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "oo", "ou"]
CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]

STATUSES = ["ready"] * 6 + ["approved"] * 2 + ["published", "rejected", "failed", "transcribing"]
TAGS = ["health", "nhs", "economy", "crime", "climate", "education", "housing", "politics",
        "immigration", "energy", "transport", "defence", "europe", "scotland", "wales", "local",
        "sport", "culture", "science", "gaffe"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Common English and news words first, then names, then made-up pronounceable words."""
    words = list(dict.fromkeys(CORE + NEWS + FIRST + LAST))
    seen = set(words)
    while len(words) < size:
        syllables = rng.choice((1, 2, 2, 3, 3, 4))
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(syllables))
        if len(word) > 2 and word not in seen:
            seen.add(word)
            words.append(word)
    return words


def segment_texts(n: int, vocab: list[str], rng: random.Random) -> Iterator[str]:
    """Zipf-distributed words, 8-25 per segment, with a few stock phrases and numbers."""
    weights = list(itertools.accumulate(1.0 / (rank + 2.7) ** 1.05 for rank in range(len(vocab))))
    stream = iter(rng.choices(vocab, cum_weights=weights, k=n * 17))
    for i in range(n):
        words = [next(stream) for _ in range(rng.randint(8, 25))]
        if i % 997 == 0:
            words.insert(rng.randrange(len(words)), "waiting lists")
        if i % 101 == 0:
            words.insert(rng.randrange(len(words)), "the prime minister")
        if i % 13 == 0:
            words.insert(rng.randrange(len(words)), f"{rng.randint(2, 99)} percent")
        if i % 50 == 0:
            words.insert(rng.randrange(len(words)), f"{rng.choice(FIRST)} {rng.choice(LAST)}")
        words[0] = words[0].capitalize()
        yield " ".join(words) + rng.choice((".", ".", ".", "?", ","))


def rows(n_segments: int,
         seed: int = 42) -> tuple[list[tuple], list[tuple], list[tuple], Iterator[tuple]]:
    """(sources, clips, flags, segments) as tuples in column order of the INSERTs below."""
    rng = random.Random(seed)
    vocab = vocabulary(40_000, rng)
    n_clips = max(1, n_segments // SEGMENTS_PER_CLIP)
    created0 = END_TIME - timedelta(days=SPAN_DAYS)
    sources = [(s + 1, "url", f"https://tv{s}.example/live/{s}", f"https://tv{s}.example/live/{s}",
                f"Channel {s} News", created0.replace(tzinfo=None)) for s in range(SOURCES)]
    clips, flags = [], []
    for c in range(n_clips):
        at = (created0 + timedelta(days=SPAN_DAYS * c / n_clips)).replace(tzinfo=None)
        source = rng.randrange(SOURCES) + 1
        start = float(rng.randrange(0, 36_000))
        status = rng.choice(STATUSES)
        urgency = "high" if rng.random() < 0.1 else "normal"
        clips.append((c + 1, source, start, start + 100.0, status, 1, urgency, 1.0, "", at, at))
        tags = json.dumps(rng.sample(TAGS, rng.randint(0, 3)))
        flags.append((c + 1, c + 1, source, start, start + 100.0, "", tags,
                      urgency, f"volunteer{rng.randrange(200)}", False, at))

    def segments() -> Iterator[tuple]:
        for i, line in enumerate(segment_texts(n_segments, vocab, rng)):
            clip = min(i // SEGMENTS_PER_CLIP + 1, n_clips)
            idx = i - (clip - 1) * SEGMENTS_PER_CLIP
            yield (i + 1, clip, idx, 5.0 * idx, 5.0 * idx + 5.0, line, "[]")

    return sources, clips, flags, segments()


def live_rows(n_live: int, seed: int = 7) -> tuple[list[tuple], Iterator[tuple]]:
    """(channels, live segments) as tuples in column order of the INSERTs below: every channel
    says a segment in turn, the newest at END_TIME, so ids rise with the wall clock."""
    rng = random.Random(seed)
    vocab = vocabulary(40_000, random.Random(42))  # the clips' words: the same language
    now = END_TIME.replace(tzinfo=None)
    channels = [(c + 1, f"ch{c}", f"https://tv{c}.example/live.m3u8", False, "recording",
                 "program-date-time", now) for c in range(CHANNELS)]
    step = LIVE_DAYS * 86400 / max(n_live, 1) * CHANNELS  # seconds between one channel's lines
    end = END_TIME.timestamp()

    def segments() -> Iterator[tuple]:
        for i, line in enumerate(segment_texts(n_live, vocab, rng)):
            wall = end - (n_live - 1 - i) / CHANNELS * step
            seconds = rng.uniform(5.0, 8.0)
            yield (i + 1, i % CHANNELS + 1, wall, wall + seconds, line, "[]", "whisper", now)

    return channels, segments()


LIVE_SQL = {
    "channels": "INSERT INTO channels (id, name, url, paused, state, clock, created_at)"
                " VALUES ({})",
    "live_segments": "INSERT INTO live_segments (id, channel_id, wall_start, wall_end, text,"
                     " words, source, created_at) VALUES ({})",
}

SQL = {
    "sources": "INSERT INTO sources (id, kind, key, location, title, created_at) VALUES ({})",
    "clips": "INSERT INTO clips (id, source_id, start, \"end\", status, version, urgency, progress,"
             " caption_text, created_at, updated_at) VALUES ({})",
    "flags": "INSERT INTO flags (id, clip_id, source_id, start, \"end\", note, tags, urgency, by,"
             " merged, created_at) VALUES ({})",
    "segments": "INSERT INTO segments (id, clip_id, idx, start, \"end\", text, words) VALUES ({})",
}


def load_sqlite(db: Database, data: tuple, sql: dict[str, str] = SQL) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        for table, batch in zip(sql, data, strict=True):
            width = len(sql[table].split("(")[1].split(","))
            cur.executemany(sql[table].format(", ".join("?" * width)), batch)
        cur.execute("COMMIT")
    finally:
        raw.close()


def load_postgres(db: Database, data: tuple, sql: dict[str, str] = SQL) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, batch in zip(sql, data, strict=True):
            columns = sql[table].split("(", 1)[1].split(")")[0]
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        for table in sql:
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))")
        raw.commit()
    finally:
        raw.close()


def query_mix(n_segments: int) -> list[tuple[str, dict]]:
    """20 searches: rare and common words, phrases, OR, prefix, exclusion, with and without
    filters."""
    recent = (END_TIME - timedelta(days=30)).date()
    rng = random.Random(42)
    vocab = vocabulary(40_000, rng)
    rare, rarer = vocab[12_000], vocab[30_000]
    return [
        (rare, {}),
        (rarer, {}),
        ("starmer", {}),
        ("the", {}),
        ("government", {}),
        ("the government", {}),
        ('"waiting lists"', {}),
        ('"prime minister"', {}),
        ('"of the"', {}),
        ("nurses OR doctors", {}),
        (f"{rare} OR {rarer}", {}),
        ("gov*", {}),
        (rare[:3] + "*", {}),
        ("government -minister", {}),
        ("the", {"status": "published"}),
        ('"waiting lists"', {"source": "tv7.example"}),
        ("government", {"since": recent}),
        ("nurses", {"tag": "health"}),
        (rare, {"by": "volunteer17"}),
        ("the", {"source": "tv123.example"}),
    ]


def channel_mix() -> list[tuple[str, dict]]:
    """6 searches of the channels' live transcripts alone: words, a phrase, a prefix, one
    channel, one channel over the last two days, every channel over the last day."""
    rng = random.Random(42)
    vocab = vocabulary(40_000, rng)
    last_two = (END_TIME - timedelta(days=2)).date()
    return [
        (vocab[3_000], {"scope": "channels"}),
        ('"prime minister"', {"scope": "channels"}),
        ("gov*", {"scope": "channels"}),
        ("the government", {"channel": "ch3"}),
        ("nurses OR doctors", {"channel": "ch7", "since": last_two}),
        ("government", {"scope": "channels", "since": (END_TIME - timedelta(days=1)).date()}),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _cpu_ns(pid: int | str) -> int:
    """Nanoseconds process `pid` has run on a CPU (Linux schedstat; independent of other load)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _cpu_now(session) -> int:
    """CPU time of this process plus, for PostgreSQL, the server process serving `session`."""
    total = _cpu_ns("self")
    if session.get_bind().dialect.name == "postgresql":
        if "backend_pid" not in session.info:
            session.info["backend_pid"] = session.execute(
                text("SELECT pg_backend_pid()")).scalar_one()
        total += _cpu_ns(session.info["backend_pid"])
    return total


def run_mix(db: Database, mix: list[tuple[str, dict]], rounds: int) -> dict:
    per_query: dict[int, list[float]] = {i: [] for i in range(len(mix))}
    cpu: list[float] = []
    totals: dict[int, str] = {}
    with db.session() as session:
        for i, (q, kw) in enumerate(mix):  # warm-up round, not counted
            page = search(session, q, **kw)
            totals[i] = f"{page.total}{'' if page.total_exact else '+'}"
    for _ in range(rounds):
        for i, (q, kw) in enumerate(mix):
            with db.session() as session:
                c0 = _cpu_now(session)
                t0 = time.perf_counter()
                search(session, q, **kw)
                per_query[i].append((time.perf_counter() - t0) * 1000)
                cpu.append((_cpu_now(session) - c0) / 1e6)
    flat = [v for vs in per_query.values() for v in vs]
    return {"p50": percentile(flat, 50), "p95": percentile(flat, 95), "per_query": per_query,
            "totals": totals, "cpu50": percentile(cpu, 50), "cpu95": percentile(cpu, 95)}


def bench_backend(name: str, url: str, n_segments: int, rounds: int, n_live: int) -> None:
    db = Database(url, migrate_now=False)
    cfg = alembic_config(db.engine)
    load = load_sqlite if name == "sqlite" else load_postgres
    command.upgrade(cfg, "0001")
    t0 = time.perf_counter()
    load(db, rows(n_segments))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # 0002 builds the text index; 0003 derives clip_tags from the flags just loaded; on
    # PostgreSQL 0004 copies the tags onto the segments and rebuilds the GIN index with them.
    command.upgrade(cfg, "0013")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load(db, live_rows(n_live), LIVE_SQL)
    live_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    command.upgrade(cfg, "head")  # 0014 indexes the live transcripts just loaded
    live_build_s = time.perf_counter() - t0
    with db.session() as session:
        size = index_size_bytes(session)
        live_size = index_size_bytes(session, "live_segments")
    if name == "postgresql":
        # A running server's autovacuum keeps statistics and the visibility map current; this
        # one may have it off, and a bulk load leaves neither.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"[{name}] {n_segments:,} segments: generate+load {load_s:.1f} s, "
          f"index build {build_s:.1f} s, index size {size / 1e6:.1f} MB", flush=True)
    print(f"[{name}] {n_live:,} live segments on {CHANNELS} channels over {LIVE_DAYS} days: "
          f"generate+load {live_load_s:.1f} s, index build {live_build_s:.1f} s, "
          f"index size {live_size / 1e6:.1f} MB", flush=True)
    # The 20-query mix keeps its output lines (tests/test_bench.py reads them); the channel
    # searches' lines say "channels" first.
    for label, mix in (("", query_mix(n_segments)), ("channels ", channel_mix())):
        result = run_mix(db, mix, rounds)
        for i, (q, kw) in enumerate(mix):
            times = result["per_query"][i]
            print(f"[{name}]   {label}{statistics.median(times):7.1f} ms  "
                  f"{result['totals'][i]:>6} hits  {q} {kw or ''}")
        print(f"[{name}] {label}latency over {rounds} rounds of {len(mix)} queries (first "
              f"page of 20): p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms wall; "
              "CPU time (client + server process) "
              f"p50 {result['cpu50']:.1f} ms, p95 {result['cpu95']:.1f} ms", flush=True)
    db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--live-segments", type=int,
                        help="segments of channels' live transcripts (default: 1 in 20 of "
                             "--segments, 50,000 for a million)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep-sqlite", type=Path, help="build the SQLite file here and keep it")
    parser.add_argument("--keep-postgres", help="build this PostgreSQL database and keep it")
    args = parser.parse_args(argv)
    if args.live_segments is None:
        args.live_segments = args.segments // 20
    if args.keep_sqlite or args.keep_postgres:
        if args.keep_sqlite:
            bench_backend("sqlite", f"sqlite:///{args.keep_sqlite}", args.segments, args.rounds,
                          args.live_segments)
        if args.keep_postgres:
            _create_database(args.keep_postgres)
            bench_backend("postgresql", f"{PG_SERVER}/{args.keep_postgres}", args.segments,
                          args.rounds, args.live_segments)
        return
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="clipper-bench-") as tmp:
            bench_backend("sqlite", f"sqlite:///{tmp}/bench.db", args.segments, args.rounds,
                          args.live_segments)
    if args.backend in ("postgresql", "both"):
        name = f"clipper_bench_{uuid.uuid4().hex[:8]}"
        _create_database(name)
        try:
            bench_backend("postgresql", f"{PG_SERVER}/{name}", args.segments, args.rounds,
                          args.live_segments)
        finally:
            _drop_database(name)


def _admin(sql: str) -> None:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


def _create_database(name: str) -> None:
    _admin(f'CREATE DATABASE "{name}"')


def _drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
