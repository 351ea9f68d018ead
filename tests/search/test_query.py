"""The query language: parsing, compiling per backend, and highlighting (pure, no database)."""

from __future__ import annotations

import pytest

from clipper.errors import InvalidInput
from clipper.search.query import EMPTY_MESSAGE, MAX_QUERY_CHARS, parse_query, to_fts5, to_tsquery
from clipper.search.snippet import bare_words, make_snippet, may_match, query_matches

PARSES = [
    # typed text, the query it means (str(Query))
    ("waiting lists", "waiting lists"),
    ("  Waiting   LISTS ", "waiting lists"),
    ('"waiting lists"', '"waiting lists"'),
    ("nurses OR doctors", "nurses OR doctors"),
    ("pay nurses OR doctors", "pay nurses OR doctors"),
    ("a OR b OR c", "a OR b OR c"),
    ("nurses -budget", "nurses -budget"),
    ('nurses -"budget cuts"', 'nurses -"budget cuts"'),
    ("wait*", "wait*"),
    ('"waiting li"*', '"waiting li"*'),
    ("a AND b", "a b"),
    ("or", "or"),                      # lower-case or is a word
    ("OR", "or"),                      # an operator with nothing around it is a word
    ("OR OR", "or or"),
    ("a OR", "a or"),
    ("OR a", "or a"),
    ("AND", "and"),
    ("a OR -b", "a or -b"),
    ("-a b", "b -a"),
    ("--a b", "b -a"),
    ("NEAR(a b)", "\"near a\" b"),  # punctuation inside a word makes a phrase
    ("col:value", '"col value"'),
    ("^start", "start"),
    ("well-known", '"well known"'),
    ("don't", '"don t"'),
    ('"unbalanced quote', "unbalanced quote"),
    ('say "waiting lists', "say waiting lists"),
    ("a* *b *", "a* b"),
    ("fo*o", '"fo o"'),
    ("3.5%", '"3 5"'),
    ("'; DROP TABLE clips; --", "drop table clips"),
    ("café 🍰 naïve", "café naïve"),
    ("ÉCOLE", "école"),
    ("a a b", "a a b"),
    ("x OR x", "x"),
]


@pytest.mark.parametrize(("typed", "meaning"), PARSES)
def test_parse(typed: str, meaning: str) -> None:
    assert str(parse_query(typed)) == meaning


REFUSED = [
    ("", EMPTY_MESSAGE),
    ("   ", EMPTY_MESSAGE),
    ("-", EMPTY_MESSAGE),
    ("*", EMPTY_MESSAGE),
    ("-budget", EMPTY_MESSAGE),
    ('-"budget cuts" -tax', EMPTY_MESSAGE),
    ("^ ( ) : ; ' \" ", EMPTY_MESSAGE),
    ("🍰🍰", EMPTY_MESSAGE),
    ("x" * (MAX_QUERY_CHARS + 1), "Search is too long"),
    (" ".join(["w"] * 40), "Search has too many words"),
]


@pytest.mark.parametrize(("typed", "message"), REFUSED)
def test_refused(typed: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_query(typed)
    assert caught.value.message.startswith(message)


def test_exclusion_only_has_a_hint() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_query("-budget")
    assert "narrow" in (caught.value.hint or "")


COMPILED = [
    # typed, FTS5 MATCH, PostgreSQL to_tsquery text
    ("waiting lists", '"waiting" AND "lists"', "('waiting') & ('lists')"),
    ('"waiting lists"', '"waiting lists"', "(('waiting' <-> 'lists'))"),
    ("a OR b c", '("a" OR "b") AND "c"', "('a' | 'b') & ('c')"),
    ("a -b", '("a") NOT "b"', "('a') & !('b')"),
    ("a -b -c", '("a") NOT ("b" OR "c")', "('a') & !('b') & !('c')"),
    ("wait*", '"wait" *', "('wait':*)"),
    ('"waiting li"*', '"waiting li" *', "(('waiting' <-> 'li':*))"),
    ("NEAR( x) AND y", "\"near\" AND \"x\" AND \"y\"", "('near') & ('x') & ('y')"),
]


@pytest.mark.parametrize(("typed", "fts5", "tsquery"), COMPILED)
def test_compile(typed: str, fts5: str, tsquery: str) -> None:
    query = parse_query(typed)
    assert to_fts5(query) == fts5
    assert to_tsquery(query) == tsquery


SNIPPETS = [
    # segment text, query, marked-up snippet
    ("The waiting lists are long", "waiting lists", "The **waiting** **lists** are long"),
    ("The waiting lists are long", '"waiting lists"', "The **waiting lists** are long"),
    ("lists of waiting rooms", '"waiting lists"', "lists of waiting rooms"),
    ("Waiting, waited, wait.", "wait*", "**Waiting**, **waited**, **wait**."),
    ("a well-known face", "well-known", "a **well-known** face"),
    ("nurses and doctors", "nurses OR doctors -x", "**nurses** and **doctors**"),
]


@pytest.mark.parametrize(("segment", "typed", "marked"), SNIPPETS)
def test_snippet(segment: str, typed: str, marked: str) -> None:
    plain, spans, snippet = make_snippet(segment, parse_query(typed))
    assert snippet == marked
    assert plain == segment
    assert [plain[s:e] for s, e in spans] == [part for part in marked.split("**")[1::2]]


def test_long_segment_snippet_is_windowed_around_the_match() -> None:
    text = "filler " * 100 + "the waiting lists grew " + "tail " * 100
    plain, spans, snippet = make_snippet(text, parse_query("waiting"), width=120)
    assert len(plain) <= 122 and plain.startswith("…") and plain.endswith("…")
    assert [plain[s:e] for s, e in spans] == ["waiting"]
    assert "**waiting**" in snippet


MATCHING = [
    ("The Prime Minister said", "prime minister", True),
    ("The Prime Minister said", '"minister prime"', False),
    ("nurses and doctors", "nurses OR surgeons", True),
    ("nurses and doctors", "surgeons OR midwives", False),
    ("government policy", "gov*", True),
    ("government policy", "government -policy", False),
    ("a mismatched word", "match", False),       # "match" is inside "mismatched": not a word
    ("waiting-lists grow", '"waiting lists"', True),
]


@pytest.mark.parametrize(("segment", "typed", "expected"), MATCHING)
def test_query_matches_and_its_cheap_pretest(segment: str, typed: str, expected: bool) -> None:
    """`may_match` may say yes wrongly (a substring) but never no to a real match."""
    query = parse_query(typed)
    assert query_matches(bare_words(segment), query) is expected
    if expected:
        assert may_match(segment.lower(), query)
    assert not may_match("nothing relevant here", query)
