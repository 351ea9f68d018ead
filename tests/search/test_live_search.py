"""Search across channels: channels' live transcripts are indexed like clip transcripts and found
beside them (real SQLite FTS5 and PostgreSQL tsvector, both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, update

from clipper.errors import InvalidInput
from clipper.search import (
    CHANNEL_HIT_KEYS,
    HIT_KEYS,
    ChannelHit,
    Hit,
    engine,
    format_page,
    index_ok,
    make_filters,
    page_json,
    rebuild_index,
    search,
)
from clipper.search.engine import search_session
from clipper.search.index import index_size_bytes
from clipper.storage.database import Database, alembic_config
from clipper.storage.tables import Channel, LiveSegment, Source

Corpus = Any  # tests/search/conftest.py's Corpus, through the `corpus` fixtures
BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # as the search conftest's
BASE_WALL = BASE_TIME.timestamp()

LIVE_LINES = {
    "phrase": "the waiting lists for surgery are growing",
    "reversed": "lists of people waiting outside the clinic",
    "stem": "we wait and we wait for a list",
    "nurses": "nurses say the budget cuts hurt",
    "doctors": "doctors warn about winter pressure",
    "hyphen": "a well-known face at the inquiry",
    "quote": "she said don't blame the nurses",
}

LIVE_MATCHES = [
    ("waiting", {"phrase", "reversed"}),
    ('"waiting lists"', {"phrase"}),
    ("wait", {"stem"}),
    ("wait*", {"phrase", "reversed", "stem"}),
    ('"waiting li"*', {"phrase"}),
    ("nurses OR doctors", {"nurses", "doctors", "quote"}),
    ("nurses -budget", {"quote"}),
    ('nurses -"budget cuts"', {"quote"}),
    ('"well known"', {"hyphen"}),
    ("don't", {"quote"}),
    ("surgery OR clinic waiting", {"phrase", "reversed"}),
    ("'; DROP TABLE live_segments; --", set()),
    ("zebra", set()),
]


@pytest.fixture
def on_air(corpus: Corpus) -> dict[str, int]:
    """One live segment per line on channel "bbc"; names by live segment id."""
    bbc = corpus.channel("bbc")
    return {name: corpus.live(bbc, line) for name, line in LIVE_LINES.items()}


def channel_names(db: Database, query: str, on_air: dict[str, int], **kw: Any) -> set[str]:
    by_id = {sid: name for name, sid in on_air.items()}
    return {by_id[h.segment_id] for h in search(db, query, **kw).hits if h.kind == "channel"}


@pytest.mark.parametrize(("query", "expected"), LIVE_MATCHES)
def test_query_language_over_live_transcripts(db: Database, on_air: dict[str, int], query: str,
                                              expected: set[str]) -> None:
    assert channel_names(db, query, on_air) == expected


@pytest.mark.parametrize("strategy", ["walk", "scan"])
def test_strategies_agree_on_live_transcripts(db: Database, on_air: dict[str, int],
                                              strategy: str) -> None:
    """Starting from one channel's rows (SQLite matches them in Python, PostgreSQL checks tsv
    per row) agrees with walking the text index, in matches and in ranking."""
    by_id = {sid: name for name, sid in on_air.items()}
    with db.session() as session:
        for query, expected in LIVE_MATCHES:
            page = search_session(session, query, make_filters(channel="bbc"), strategy=strategy)
            assert {by_id[h.segment_id] for h in page.hits} == expected, query
            assert [h.score for h in page.hits] == sorted((h.score for h in page.hits),
                                                          reverse=True)


def test_channel_hit_fields_and_json(db: Database, corpus: Corpus) -> None:
    bbc = corpus.channel("bbc-news")
    at = datetime(2026, 11, 30, 19, 42, 10, tzinfo=UTC).timestamp()
    corpus.live(bbc, "opening words", at=at - 5)
    sid = corpus.live(bbc, "and the waiting lists are long", at=at, seconds=6.0,
                      source="captions")
    page = search(db, "waiting lists")
    [hit] = page.hits
    assert isinstance(hit, ChannelHit) and hit.kind == "channel"
    assert (hit.segment_id, hit.channel) == (sid, "bbc-news")
    assert (hit.wall_start, hit.wall_end) == (at, at + 6.0)
    assert hit.at == pytest.approx(at + 2 * 1.0)  # "waiting" is the third of six words
    assert hit.at_utc == "2026-11-30T19:42:12.000Z"
    assert hit.snippet == "and the **waiting** **lists** are long"
    assert hit.transcript == "captions" and hit.score > 0
    assert [w[2] for w in hit.words][:3] == ["and", "the", "waiting"]
    data = hit.as_dict()
    assert tuple(data) == CHANNEL_HIT_KEYS and data["clip_id"] is None
    assert data["kind"] == "channel" and data["at_utc"] == hit.at_utc
    # The contract: wall-clock times in ISO 8601 UTC.
    assert (data["wall_start"], data["wall_end"]) == ("2026-11-30T19:42:10.000Z",
                                                      "2026-11-30T19:42:16.000Z")
    assert page_json(page).count('"kind": "channel"') == 1
    text = format_page(page, tz="Europe/London")
    assert "channel bbc-news  2026-11-30 19:42:12 Europe/London" in text
    assert "(at 2026-11-30T19:42:12.000Z)" in text


def test_a_phrase_across_words_and_untimed_words(db: Database, corpus: Corpus) -> None:
    """`at` is the first word of a phrase that matches; without word timings, the segment's
    start."""
    bbc = corpus.channel("bbc")
    corpus.live(bbc, "lists waiting: waiting, lists!", at=BASE_WALL, seconds=4.0)
    with db.session() as session:
        untimed = LiveSegment(channel_id=bbc, wall_start=BASE_WALL + 10, wall_end=BASE_WALL + 14,
                              text="more waiting lists", words=[], source="captions")
        session.add(untimed)
    hits = search(db, '"waiting lists"').hits
    assert sorted(h.at for h in hits) == [BASE_WALL + 2.0, BASE_WALL + 10]


def test_clip_hits_keep_their_keys_beside_channel_hits(db: Database, corpus: Corpus) -> None:
    clip = corpus.clip(["the budget speech"])
    corpus.live(corpus.channel("bbc"), "reaction to the budget")
    hits = search(db, "budget").hits
    assert {h.kind for h in hits} == {"clip", "channel"}
    [clip_hit] = [h for h in hits if isinstance(h, Hit)]
    assert clip_hit.clip_id == clip and tuple(clip_hit.as_dict()) == HIT_KEYS


def test_index_follows_inserts_edits_and_deletes(db: Database, corpus: Corpus) -> None:
    bbc, itv = corpus.channel("bbc"), corpus.channel("itv")
    first = corpus.live(bbc, "the minister said waiting lists")
    corpus.live(itv, "the minister said nothing")
    assert {h.channel for h in search(db, "minister").hits} == {"bbc", "itv"}
    with db.session() as session:  # a corrected caption line
        session.execute(update(LiveSegment).where(LiveSegment.id == first)
                        .values(text="the minister said waiting times"))
    assert search(db, "lists").hits == []
    assert [h.segment_id for h in search(db, '"waiting times"').hits] == [first]
    with db.session() as session:  # an old transcript trimmed away
        session.execute(delete(LiveSegment).where(LiveSegment.id == first))
        assert index_ok(session)
    assert search(db, "waiting").hits == []
    with db.session() as session:  # a channel removed takes its transcript along
        session.execute(delete(Channel).where(Channel.id == itv))
    assert search(db, "minister").hits == []
    with db.session() as session:
        assert index_ok(session)
        rebuild_index(session)
        assert index_size_bytes(session, "live_segments") >= 0
    corpus.live(bbc, "the minister is back")
    assert [h.channel for h in search(db, "minister").hits] == ["bbc"]


def test_ranked_with_clip_hits_by_relevance_then_recency(db: Database, corpus: Corpus) -> None:
    bbc = corpus.channel("bbc")
    once_clip = corpus.clip(["waiting lists grow while the minister talks about other things"])
    twice_live = corpus.live(bbc, "waiting lists grow and waiting lists shrink at the same time")
    once_live = corpus.live(bbc, "waiting lists grow while the minister talks about other things",
                            at=BASE_WALL + 3600)  # an hour after the clip was flagged
    hits = search(db, '"waiting lists"').hits
    assert [(h.kind, getattr(h, "segment_id", None)) for h in hits[:1]] == \
        [("channel", twice_live)]
    # Equal scores: the live line, said after the clip was flagged, comes first.
    assert [h.kind for h in hits[1:]] == ["channel", "clip"]
    assert hits[1].segment_id == once_live and hits[2].clip_id == once_clip
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]


def test_a_recent_clip_outranks_an_older_equal_channel_hit(db: Database, corpus: Corpus) -> None:
    bbc = corpus.channel("bbc")
    old_live = corpus.live(bbc, "the same words", at=BASE_WALL - 86400)
    clip = corpus.clip(["the same words"])
    hits = search(db, "same words").hits
    assert hits[0].kind == "clip" and hits[0].clip_id == clip
    assert hits[1].segment_id == old_live


def test_pages_mix_both_kinds_stably(db: Database, corpus: Corpus) -> None:
    bbc = corpus.channel("bbc")
    made = []
    for i in range(5):
        made.append(("clip", corpus.clip([f"strike talk {i} " + "strike " * (i % 3)])))
        made.append(("channel", corpus.live(bbc, f"strike news {i} " + "strike " * (i % 2))))
    pages = [search(db, "strike", limit=3, offset=o) for o in (0, 3, 6, 9)]
    seen = [(h.kind, h.clip_id if h.kind == "clip" else h.segment_id)
            for p in pages for h in p.hits]
    assert sorted(seen) == sorted(made)
    whole = search(db, "strike", limit=10)
    assert [(h.kind, h.clip_id if h.kind == "clip" else h.segment_id)
            for h in whole.hits] == seen
    assert (whole.total, whole.total_exact) == (10, True)


@pytest.fixture
def mixed(corpus: Corpus) -> dict[str, int]:
    """Clips and live lines on two channels, said on different days."""
    bbc, itv = corpus.channel("bbc"), corpus.channel("itv")
    day = 86400.0
    with corpus.db.session() as session:  # a clip of the bbc channel (source "channel:bbc")
        src = Source(kind="channel", key="channel:bbc", location="bbc", title="bbc")
        session.add(src)
        session.flush()
        bbc_source = src.id
    return {
        "clip_health": corpus.clip(["strike news clip"], tags=["health"], status="ready",
                                   age_days=2),
        "clip_of_bbc": corpus.clip(["strike news from a bbc clip"], source_id=bbc_source,
                                   start=BASE_WALL - 100, status="approved", age_days=2),
        "bbc_old": corpus.live(bbc, "strike news said long ago", at=BASE_WALL - 10 * day),
        "bbc_new": corpus.live(bbc, "strike news said today", at=BASE_WALL),
        "itv_new": corpus.live(itv, "strike news on the other side", at=BASE_WALL + 60),
    }


MIXED_FILTERS = [
    ({}, {"clip_health", "clip_of_bbc", "bbc_old", "bbc_new", "itv_new"}),
    ({"scope": "clips"}, {"clip_health", "clip_of_bbc"}),
    ({"scope": "channels"}, {"bbc_old", "bbc_new", "itv_new"}),
    ({"scope": "CHANNELS"}, {"bbc_old", "bbc_new", "itv_new"}),
    ({"channel": "bbc"}, {"clip_of_bbc", "bbc_old", "bbc_new"}),
    ({"channel": "bbc", "scope": "channels"}, {"bbc_old", "bbc_new"}),
    ({"channel": "itv"}, {"itv_new"}),
    ({"channel": "nowhere"}, set()),
    ({"channel": "%"}, set()),
    ({"tag": "health"}, {"clip_health"}),                   # clip-only filters: no channels
    ({"status": "approved"}, {"clip_of_bbc"}),
    ({"source": "bbc"}, {"clip_of_bbc"}),
    ({"by": "vol1"}, {"clip_health", "clip_of_bbc"}),
    ({"urgency": "normal"}, {"clip_health", "clip_of_bbc"}),
    ({"since": date(2026, 3, 1)}, {"bbc_new", "itv_new"}),  # the clips were flagged 02-27
    ({"until": date(2026, 2, 25)}, {"bbc_old"}),
    ({"since": "2026-02-19", "until": "2026-02-19"}, {"bbc_old"}),
    ({"channel": "bbc", "since": date(2026, 3, 1)}, {"bbc_new"}),
]


def _mixed_names(page: Any, mixed: dict[str, int]) -> set[str]:
    clips = {v: k for k, v in mixed.items() if k.startswith("clip")}
    live = {v: k for k, v in mixed.items() if not k.startswith("clip")}
    return {clips[h.clip_id] if h.kind == "clip" else live[h.segment_id] for h in page.hits}


@pytest.mark.parametrize(("kwargs", "expected"), MIXED_FILTERS)
def test_filters_over_clips_and_channels(db: Database, mixed: dict[str, int], kwargs: dict,
                                         expected: set[str]) -> None:
    assert _mixed_names(search(db, "strike news", **kwargs), mixed) == expected


@pytest.mark.parametrize("strategy", ["walk", "scan"])
def test_filters_agree_on_both_strategies(db: Database, mixed: dict[str, int],
                                          strategy: str) -> None:
    for kwargs, expected in MIXED_FILTERS:
        with db.session() as session:
            page = search_session(session, "strike news", make_filters(**kwargs),
                                  strategy=strategy)
        assert _mixed_names(page, mixed) == expected, kwargs


@pytest.mark.parametrize("kwargs", [
    {"scope": "everything"}, {"scope": "channels", "status": "ready"},
    {"scope": "channels", "tag": "health"}, {"channel": " "}, {"channel": "bbc\x00"},
])
def test_bad_channel_filters_are_refused(db: Database, kwargs: dict) -> None:
    with pytest.raises(InvalidInput) as refused:
        search(db, "strike", **kwargs)
    assert refused.value.message


def test_walk_windows_find_the_newest_live_matches(db: Database, corpus: Corpus,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL looks in a recent id window first and widens it; with tiny windows every
    step of that runs, for live segments too, and the newest matches still come back."""
    monkeypatch.setattr(engine, "PG_FIRST_WINDOW", 3)
    monkeypatch.setattr(engine, "CANDIDATE_CAP", 4)
    bbc = corpus.channel("bbc")
    old = [corpus.live(bbc, "budget speech", at=BASE_WALL - 30 * 86400 + i) for i in range(3)]
    for i in range(3):
        corpus.live(bbc, f"filler {i}", at=BASE_WALL - 20 * 86400 + i)
    new = [corpus.live(bbc, "budget reaction", at=BASE_WALL + i) for i in range(5)]
    page = search(db, "budget", scope="channels", limit=20)
    assert page.total == 4 and not page.total_exact
    assert {h.segment_id for h in page.hits} == set(new[1:])
    assert {h.segment_id for h in search(db, "budget", until=date(2026, 2, 20)).hits} == set(old)
    assert ({h.segment_id for h in search(db, "reaction", since=date(2026, 3, 1)).hits}
            == set(new[1:]))


def test_date_filters_use_when_it_was_said(db: Database, corpus: Corpus) -> None:
    """A live line's day is its wall clock's (UTC), not when the row was written."""
    bbc = corpus.channel("bbc")
    late = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()
    sid = corpus.live(bbc, "midnight news", at=late)
    assert [h.segment_id for h in search(db, "midnight", since="2026-03-01",
                                         until="2026-03-01").hits] == [sid]
    assert search(db, "midnight", since="2026-03-02").hits == []
    assert BASE_TIME + timedelta(hours=12) > datetime.fromtimestamp(late, UTC)


@pytest.fixture
def fresh(backend: str, tmp_path) -> Iterator[Database]:
    """A brand-new database of its own, so migrating it down harms no other test."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield db
        db.dispose()
        return
    from pgdb import scratch_postgres

    with scratch_postgres("clipper_search") as db:
        yield db


def test_migration_indexes_live_rows_written_before_it(fresh: Database,
                                                      corpus_factory: Any) -> None:
    corpus = corpus_factory(fresh)
    bbc = corpus.channel("bbc")
    first = corpus.live(bbc, "words said before the index existed")
    cfg = alembic_config(fresh.engine)
    command.downgrade(cfg, "0013")
    second = corpus.live(bbc, "more words said without any index")
    command.upgrade(cfg, "head")
    assert [h.segment_id for h in search(fresh, "before").hits] == [first]
    assert {h.segment_id for h in search(fresh, "words").hits} == {first, second}
    with fresh.session() as session:
        assert index_ok(session)
        assert index_size_bytes(session, "live_segments") > 0
