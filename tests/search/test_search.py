"""Search against real SQLite (FTS5) and PostgreSQL (tsvector): matching, ranking, filters,
upkeep."""

from __future__ import annotations

import random
import threading
import time
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from clipper.errors import InvalidInput
from clipper.search import (
    HIT_KEYS,
    engine,
    index_ok,
    make_filters,
    reindex_clip,
    remove_clip,
    search,
)
from clipper.search.engine import search_session
from clipper.storage.database import Database
from clipper.storage.tables import Clip, Flag, SegmentRow, Source, TranscriptRow

LINES = {
    "phrase": "the waiting lists for surgery are growing",
    "reversed": "lists of people waiting outside the clinic",
    "stem": "we wait and we wait for a list",
    "waited": "patients waited for hours in the corridor",
    "nurses": "nurses say the budget cuts hurt",
    "doctors": "doctors warn about winter pressure",
    "hyphen": "a well-known face at the inquiry",
    "accent": "the café on the high street closed",
    "number": "inflation rose to 3.5% in March",
    "quote": "she said don't blame the nurses",
}


@pytest.fixture
def loaded(corpus: Any) -> dict[str, int]:
    """One clip per line, so a hit's clip id names the line."""
    return {name: corpus.clip([line]) for name, line in LINES.items()}


def names(db: Database, query: str, loaded: dict[str, int], **kw) -> set[str]:
    by_clip = {clip: name for name, clip in loaded.items() if not name.startswith("_")}
    return {by_clip[h.clip_id] for h in search(db, query, **kw).hits}


MATCHES = [
    ("waiting", {"phrase", "reversed"}),
    ("waiting lists", {"phrase", "reversed"}),
    ('"waiting lists"', {"phrase"}),
    ("WAITING Lists", {"phrase", "reversed"}),
    ("wait", {"stem"}),                               # no stemming: wait is not waiting
    ("wait*", {"phrase", "reversed", "stem", "waited"}),
    ('"waiting li"*', {"phrase"}),
    ("nurses OR doctors", {"nurses", "doctors", "quote"}),
    ("nurses -budget", {"quote"}),
    ('nurses -"budget cuts"', {"quote"}),
    ("the -nurses -waiting", {"accent", "hyphen", "waited"}),
    ("well-known", {"hyphen"}),
    ('"well known"', {"hyphen"}),
    ("known", {"hyphen"}),
    ("café", {"accent"}),
    ("cafe", set()),
    ("3.5%", {"number"}),
    ("don't", {"quote"}),
    ('"don t blame"', {"quote"}),
    ("surgery OR clinic waiting", {"phrase", "reversed"}),
    ("zebra", set()),
]


@pytest.mark.parametrize(("query", "expected"), MATCHES)
def test_matches(db: Database, loaded: dict[str, int], query: str, expected: set[str]) -> None:
    assert names(db, query, loaded) == expected


HOSTILE = [
    "", "   ", "OR", "OR OR", "AND", "NOT", "a OR OR b", "-", "--", "-a", "*", "**", "a**",
    "NEAR(", "NEAR(a b, 2)", "col:", "text:waiting", "^", "^waiting", '"', '""', '"""', '"a" "',
    "'; DROP TABLE clips; --", "\"; DROP TABLE segments; --", "') OR 1=1 --", "%", "_", "\\",
    "a\\' & !b:*", "'a' <-> 'b'", "a & b | !c", "(waiting", "waiting)", "{waiting}", "[x]",
    "x:* y:A", "🍰", "waiting 🍰", "نوبت انتظار", "待ちリスト", "ǅemal ﬁne", "\x00waiting",
    "\u200bwaiting", "e\u0301cole", "a" * 500, "a" * 501, "waiting " * 40, "x" * 3000,
    "-" * 400, "*" * 400, '"' * 300, "OR " * 100, "(" * 300, "NOT waiting", "waiting NOT lists",
]


def _search_or_refuse(db: Database, query: str) -> None:
    try:
        page = search(db, query)
    except InvalidInput as error:
        assert error.message  # a sentence for people, never an empty string
        return
    assert page.total >= len(page.hits)


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_input_is_searched_or_refused(db: Database, loaded: dict[str, int],
                                              query: str) -> None:
    _search_or_refuse(db, query)
    with db.session() as session:  # the tables are all still there
        assert session.scalar(select(func.count()).select_from(Clip)) == len(LINES)


def test_fuzzed_input_never_breaks(db: Database, loaded: dict[str, int]) -> None:
    rng = random.Random(7)
    alphabet = list('"-*():^\'\\;%_&|!<>~{}[],.@#/ ORANDNEAR') + ["OR", "AND", "NOT", "waiting",
                                                                   "é", "🍰", "\x00", "\t"]
    for _ in range(150):
        _search_or_refuse(db, "".join(rng.choices(alphabet, k=rng.randint(1, 30))))
    assert names(db, "waiting", loaded) == {"phrase", "reversed"}


def test_sql_in_the_query_is_just_words(db: Database, corpus: Any) -> None:
    clip = corpus.clip(["they tried to drop table clips live on air"])
    hits = search(db, "'; DROP TABLE clips; --").hits
    assert [h.clip_id for h in hits] == [clip]


def test_hit_fields_and_json_keys(db: Database, corpus: Any) -> None:
    source = corpus.source("https://news.example/stream", title="Evening News")
    clip = corpus.clip(["opening words here", "the waiting lists are long"], source_id=source,
                       start=60.0, status="approved")
    page = search(db, "waiting lists")
    [hit] = page.hits
    assert (hit.clip_id, hit.start, hit.end) == (clip, 5.0, 10.0)
    assert (hit.source_start, hit.source_end) == (65.0, 70.0)
    assert (hit.source, hit.status) == ("https://news.example/stream", "approved")
    assert hit.snippet == "the **waiting** **lists** are long"
    assert [hit.text[s:e] for s, e in hit.spans] == ["waiting", "lists"]
    assert [w[2] for w in hit.words] == ["the", "waiting", "lists", "are", "long"]
    assert hit.score > 0
    assert set(hit.as_dict()) == set(HIT_KEYS)
    assert (page.total, page.total_exact, page.has_more) == (1, True, False)


def test_more_occurrences_rank_higher(db: Database, corpus: Any) -> None:
    once = corpus.clip(["waiting lists grow while the minister talks about other things"])
    twice = corpus.clip(["waiting lists grow and waiting lists shrink at the same time"])
    newest_once = corpus.clip(["waiting lists grow while the minister talks about other things"])
    ids = [h.clip_id for h in search(db, '"waiting lists"').hits]
    assert ids == [twice, newest_once, once]  # equal scores: the newer clip first


def test_newer_wins_ties_even_when_created_in_other_order(db: Database, corpus: Any) -> None:
    old = corpus.clip(["the same words"], age_days=30)
    new = corpus.clip(["the same words"], age_days=1)
    older_still = corpus.clip(["the same words"], age_days=90)
    assert [h.clip_id for h in search(db, "same words").hits] == [new, old, older_still]


def test_pagination_is_stable_and_complete(db: Database, corpus: Any) -> None:
    clips = [corpus.clip([f"budget talk number {i} " + "budget " * (i % 3)]) for i in range(7)]
    pages = [search(db, "budget", limit=3, offset=o) for o in (0, 3, 6, 9)]
    seen = [h.clip_id for p in pages for h in p.hits]
    assert sorted(seen) == sorted(clips) and len(seen) == 7
    assert [p.has_more for p in pages] == [True, True, False, False]
    assert [h.clip_id for h in search(db, "budget", limit=7).hits] == seen
    scores = [h.score for p in pages for h in p.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.fixture
def filtered(corpus: Any) -> dict[str, int]:
    bbc = corpus.source("https://bbc.example/live/news", title="BBC Live")
    itv = corpus.source("/media/uploads/itv_debate.mp4", title="ITV Debate")
    return {
        "bbc_ready": corpus.clip(["strike news one"], source_id=bbc, status="ready",
                                 age_days=10, tags=["Health", "nhs"], by="ana"),
        "bbc_approved": corpus.clip(["strike news two"], source_id=bbc, status="approved",
                                    age_days=5, tags=["economy"], by="ben", urgency="high"),
        "itv_ready": corpus.clip(["strike news three"], source_id=itv, status="ready",
                                 age_days=1, tags=["health", "Économie"], by="ben"),
        "_bbc_id": bbc,
    }


FILTERS = [
    ({}, {"bbc_ready", "bbc_approved", "itv_ready"}),
    ({"source": "bbc.example"}, {"bbc_ready", "bbc_approved"}),
    ({"source": "ITV debate"}, {"itv_ready"}),          # title, any case
    ({"source": "itv_"}, {"itv_ready"}),                # _ is literal, not a wildcard
    ({"source": "%"}, set()),
    ({"source": "nowhere"}, set()),
    ({"status": "ready"}, {"bbc_ready", "itv_ready"}),
    ({"status": "ready,approved"}, {"bbc_ready", "bbc_approved", "itv_ready"}),
    ({"status": ["approved"]}, {"bbc_approved"}),
    ({"tag": "health"}, {"bbc_ready", "itv_ready"}),     # tags compare case-insensitively
    ({"tag": "nhs"}, {"bbc_ready"}),
    ({"tag": "sport"}, set()),
    ({"tag": "Économie"}, {"itv_ready"}),
    ({"tag": '"health"'}, set()),
    ({"by": "ben"}, {"bbc_approved", "itv_ready"}),
    ({"urgency": "high"}, {"bbc_approved"}),
    ({"since": date(2026, 2, 24)}, {"bbc_approved", "itv_ready"}),   # 5 days before BASE_TIME
    ({"until": date(2026, 2, 24)}, {"bbc_ready", "bbc_approved"}),   # inclusive day
    ({"since": "2026-02-19", "until": "2026-02-19"}, {"bbc_ready"}),
    ({"since": date(2026, 2, 20), "until": date(2026, 2, 23)}, set()),
    ({"status": "ready", "tag": "health", "by": "ben"}, {"itv_ready"}),
]


@pytest.mark.parametrize(("kwargs", "expected"), FILTERS)
def test_filters(db: Database, filtered: dict[str, int], kwargs: dict, expected: set[str]) -> None:
    assert names(db, "strike news", filtered, **kwargs) == expected


@pytest.mark.parametrize("strategy", ["walk", "scan"])
def test_filters_agree_on_both_strategies(db: Database, filtered: dict[str, int],
                                          strategy: str) -> None:
    """Filters give the same clips whether the search walks the text index newest-first (with
    its date floor and ceiling) or starts from the filtered segments."""
    by_clip = {clip: name for name, clip in filtered.items() if not name.startswith("_")}
    for kwargs, expected in FILTERS:
        filters = make_filters(**kwargs)
        with db.session() as session:
            page = search_session(session, "strike news", filters, strategy=strategy)
        assert {by_clip[h.clip_id] for h in page.hits} == expected, kwargs


def test_walk_windows_find_the_newest_matches(db: Database, corpus: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL looks in a recent id window first and widens it; with tiny windows every
    step of that runs, and the newest matches still come back in full."""
    monkeypatch.setattr(engine, "PG_FIRST_WINDOW", 3)
    monkeypatch.setattr(engine, "CANDIDATE_CAP", 4)
    old = [corpus.clip(["budget speech", "filler words here"], age_days=30) for _ in range(3)]
    new = [corpus.clip([f"filler {i}", "budget reaction"]) for i in range(5)]
    page = search(db, "budget", limit=20)
    assert page.total == 4 and not page.total_exact
    assert {h.clip_id for h in page.hits} == set(new[1:])
    assert {h.clip_id for h in search(db, "budget", until=date(2026, 2, 20)).hits} == set(old)
    assert {h.clip_id for h in search(db, "reaction", since=date(2026, 3, 1)).hits} == set(new[1:])


def test_source_id_filter(db: Database, filtered: dict[str, int]) -> None:
    assert (names(db, "strike", filtered, source=filtered["_bbc_id"])
            == {"bbc_ready", "bbc_approved"})
    assert (names(db, "strike", filtered, source=str(filtered["_bbc_id"]))
            == {"bbc_ready", "bbc_approved"})


BAD_FILTERS = [
    {"since": "yesterday"},
    {"until": "2026-13-01"},
    {"since": date(2026, 3, 2), "until": date(2026, 3, 1)},
    {"status": ""},
    {"tag": "  "},
    {"source": ""},
    {"limit": 0},
    {"limit": 1000},
    {"offset": -1},
    {"offset": 5000},
    {"source": "bbc\x00"},
    {"tag": "a\x00b"},
    {"by": "\x1b[31m"},
    {"status": ["ready", "x\x00"]},
    {"urgency": "\x00"},
]


@pytest.mark.parametrize("kwargs", BAD_FILTERS)
def test_bad_filters_are_refused(db: Database, kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        search(db, "strike", **kwargs)


def test_edit_reindexes(db: Database, corpus: Any) -> None:
    clip = corpus.clip(["the minister said waiting lists", "second line"])
    with db.session() as session:  # an editor fixes a word in place
        session.execute(update(SegmentRow).where(SegmentRow.clip_id == clip, SegmentRow.idx == 0)
                        .values(text="the minister said waiting times"))
        reindex_clip(session, clip)
    assert search(db, "lists").hits == []
    assert [h.clip_id for h in search(db, '"waiting times"').hits] == [clip]
    with db.session() as session:  # a fresh transcript replaces every segment
        session.query(SegmentRow).filter_by(clip_id=clip).delete()
        session.flush()
        corpus.write_transcript_segments(session, clip, ["completely new words"])
        reindex_clip(session, clip)
        assert index_ok(session)
    assert search(db, "waiting OR second").hits == []
    assert [h.clip_id for h in search(db, "completely new").hits] == [clip]


def test_remove_clip(db: Database, corpus: Any) -> None:
    gone = corpus.clip(["budget day speech"])
    kept = corpus.clip(["budget day reaction"])
    with db.session() as session:
        remove_clip(session, gone)
        session.query(TranscriptRow).filter_by(clip_id=gone).delete()
        remove_clip(session, gone)  # twice is fine
    assert [h.clip_id for h in search(db, "budget").hits] == [kept]
    with db.session() as session:
        assert index_ok(session)
        assert session.scalar(select(func.count()).select_from(Source)) == 2


@pytest.mark.parametrize("strategy", ["walk", "scan"])
def test_strategies_agree(db: Database, loaded: dict[str, int], strategy: str) -> None:
    """Starting from a small filtered set ("scan"; SQLite matches it in Python) must agree with
    walking the text index ("walk"), in matches and in ranking."""
    by_clip = {clip: name for name, clip in loaded.items()}
    with db.session() as session:
        for query, expected in MATCHES:
            page = search_session(session, query, make_filters(status="ready"), strategy=strategy)
            assert {by_clip[h.clip_id] for h in page.hits} == expected, query
            assert ([h.score for h in page.hits]
                    == sorted((h.score for h in page.hits), reverse=True))


def test_search_accepts_an_open_session(db: Database, loaded: dict[str, int]) -> None:
    with db.session() as session:
        page = search(session, '"waiting lists"')
    assert [h.clip_id for h in page.hits] == [loaded["phrase"]]


def test_tag_added_after_the_transcript_is_found(db: Database, corpus: Any) -> None:
    """A later flag merging into a clip brings new tags; search sees them at once
    (on PostgreSQL a trigger copies them onto the clip's segments)."""
    clip = corpus.clip(["the nurses walked out", "pay talks resume"], tags=["strike"])
    other = corpus.clip(["nurses again"], tags=["health"])
    assert {h.clip_id for h in search(db, "nurses", tag="health").hits} == {other}
    with db.session() as session:
        session.add(Flag(clip_id=clip, source_id=session.get(Clip, clip).source_id, start=100.0,
                         end=105.0, tags=["Health"], by="vol2"))
    assert {h.clip_id for h in search(db, "nurses", tag="health").hits} == {clip, other}
    assert {h.clip_id for h in search(db, "pay", tag="strike").hits} == {clip}
    with db.session() as session:  # a re-transcribed clip keeps its tags
        session.query(SegmentRow).filter_by(clip_id=clip).delete()
        session.flush()
        corpus.write_transcript_segments(session, clip, ["nurses vote on the offer"])
    assert {h.clip_id for h in search(db, "vote", tag="health").hits} == {clip}


def test_tag_added_while_the_transcript_is_being_replaced(pg_db: Database,
                                                          corpus_factory: Any) -> None:
    """A flag's new tag landing while the asr stage rewrites the clip's segments (clip locked)
    must reach the new segments, not only the old ones being deleted. PostgreSQL only: SQLite
    runs one writer at a time, so the two cannot overlap there."""
    db, corpus = pg_db, corpus_factory(pg_db)
    clip = corpus.clip(["old words"], tags=["strike"])
    flagged: list[BaseException] = []

    def flag() -> None:
        try:
            with db.session() as session:
                session.add(Flag(clip_id=clip, source_id=source_id, start=100.0, end=105.0,
                                 tags=["health"], by="vol2"))
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            flagged.append(exc)

    with db.session() as rewriting:
        source_id = rewriting.get(Clip, clip, with_for_update=True).source_id
        rewriting.query(SegmentRow).filter_by(clip_id=clip).delete()
        rewriting.flush()
        corpus.write_transcript_segments(rewriting, clip, ["nurses walk out"])
        rewriting.flush()
        thread = threading.Thread(target=flag)
        thread.start()
        deadline = time.monotonic() + 20
        while not _someone_waits_for_a_lock(db):
            assert thread.is_alive() and time.monotonic() < deadline, "the flag did not wait"
            time.sleep(0.02)
    thread.join(20)
    assert not flagged and not thread.is_alive()
    assert {h.clip_id for h in search(db, "nurses", tag="health").hits} == {clip}


def _someone_waits_for_a_lock(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.scalar(text("SELECT count(*) FROM pg_stat_activity"
                                     " WHERE wait_event_type = 'Lock'"
                                     " AND datname = current_database()")))
