"""Highlighting: find where a query's words and phrases occur in a segment's text."""

from __future__ import annotations

import re
import unicodedata

from clipper.search.query import Query, Term

SNIPPET_CHARS = 300
"""Longer segment text is cut to a window around the first match."""

MARK = "**"

_WORD = re.compile(r"[^\W_]+")


def _matches_at(words: list[tuple[str, int, int]], i: int, term: Term) -> bool:
    n = len(term.tokens)
    if i + n > len(words):
        return False
    for j, token in enumerate(term.tokens):
        word = words[i + j][0]
        last_prefix = term.prefix and j == n - 1
        if not (word.startswith(token) if last_prefix else word == token):
            return False
    return True


def text_words(text: str) -> list[tuple[str, int, int]]:
    """(lower-cased word, start, end) for each letter/digit run, as the indexes split text."""
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def bare_words(text: str) -> list[str]:
    """Just the lower-cased words of `text` (the fast path for scoring)."""
    return _WORD.findall(text.lower())


def term_count(words: list[str], term: Term) -> int:
    """How many times `term` (word, prefix or phrase) occurs in `words` (from bare_words)."""
    first, n = term.tokens[0], len(term.tokens)
    if n == 1:
        return sum(1 for w in words if w.startswith(first)) if term.prefix else words.count(first)
    middle, last = list(term.tokens[1:-1]), term.tokens[-1]
    count = 0
    for i, word in enumerate(words):
        if word == first and i + n <= len(words) and words[i + 1 : i + n - 1] == middle:
            end = words[i + n - 1]
            count += end.startswith(last) if term.prefix else end == last
    return count


def may_match(lowered: str, query: Query) -> bool:
    """False when `lowered` (lower-cased text) surely fails the query: some group has no term
    whose first token occurs in it even as a substring. A cheap test before `query_matches`."""
    return all(any(t.tokens[0] in lowered for t in group) for group in query.groups)


def query_matches(words: list[str], query: Query) -> bool:
    """The query's boolean meaning, evaluated in Python (same answer as the full-text index)."""
    if any(term_count(words, t) for t in query.excluded):
        return False
    return all(any(term_count(words, t) for t in group) for group in query.groups)


def find_spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Character ranges of `text` matched by the query's positive terms, merged and sorted."""
    words = text_words(text)
    spans = []
    for term in query.positive_terms():
        for i in range(len(words)):
            if _matches_at(words, i, term):
                spans.append((words[i][1], words[i + len(term.tokens) - 1][2]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _window(text: str, spans: list[tuple[int, int]], width: int) -> tuple[str, int]:
    """The part of `text` to show and the offset it starts at."""
    if len(text) <= width:
        return text, 0
    first = spans[0][0] if spans else 0
    start = max(0, min(first - width // 3, len(text) - width))
    space = text.rfind(" ", 0, start + 1)
    start = space + 1 if start and space >= 0 and start - space < 20 else start
    return text[start : start + width], start


def make_snippet(text: str, query: Query,
                 width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]], str]:
    """(plain text shown, match spans within it, the same text with **matches** marked)."""
    text = unicodedata.normalize("NFC", text)
    spans = find_spans(text, query)
    shown, offset = _window(text, spans, width)
    inside = [(max(s - offset, 0), min(e - offset, len(shown))) for s, e in spans]
    inside = [(s, e) for s, e in inside if s < e]
    prefix = "…" if offset > 0 else ""
    suffix = "…" if offset + len(shown) < len(text) else ""
    plain = prefix + shown + suffix
    shift = len(prefix)
    inside = [(s + shift, e + shift) for s, e in inside]
    return plain, inside, mark(plain, inside)


def mark(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span wrapped in ** markers."""
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MARK, text[start:end], MARK]
        last = end
    out.append(text[last:])
    return "".join(out)


def first_match_word(words: list[str], query: Query) -> int | None:
    """Index in `words` (a transcript's words as said, punctuation and all) of the first word
    where one of the query's positive terms starts; None when none does. A word may hold
    several tokens ("well-known"), and a phrase may run across words."""
    tokens = [(token, i, i) for i, word in enumerate(words)
              for token in _WORD.findall(unicodedata.normalize("NFC", str(word)).lower())]
    terms = query.positive_terms()
    for k, (_token, index, _) in enumerate(tokens):
        if any(_matches_at(tokens, k, term) for term in terms):
            return index
    return None
