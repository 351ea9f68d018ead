"""Search query language: parse what an editor types into a small AST, compile it per backend.

Language (anything else is searched as plain words, never an error from the database):

    waiting lists        every word must occur in the segment (AND)
    "waiting lists"      exact phrase: these words, adjacent, in this order
    nurses OR doctors    either side; OR (capitals) binds tighter than the implicit AND
    -budget  -"a b"      exclude segments containing the word / phrase
    wait*                prefix: wait, waiting, waited ...  ("waiting li"* works too)

Words are runs of letters and digits, compared case-insensitively and *without stemming*:
"wait" does not find "waiting" (use wait*), so a quoted phrase matches exactly what was said.
Accents are kept ("cafe" does not find "café"). `AND` between words is accepted as the
implicit AND; `OR`/`AND` anywhere they cannot be operators, lone `-` or `*`, stray quotes and
punctuation (`NEAR(`, `col:`, `^`, SQL) are read as plain text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from clipper.errors import InvalidInput

MAX_QUERY_CHARS = 500
"""Longer input is refused (each lexeme must also stay under PostgreSQL's 2 KB limit)."""

MAX_TERMS = 32
"""More words/phrases than this is refused: nobody types it, and it only costs time."""

EMPTY_MESSAGE = "Search needs at least one word to look for, e.g. waiting lists"

_WORD = re.compile(r"[^\W_]+")
_OPERATORS = {"OR", "AND"}


@dataclass(frozen=True)
class Term:
    """A word (one token) or an exact phrase (several); `prefix` makes the last token a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False

    def __str__(self) -> str:
        text = " ".join(self.tokens)
        text = f'"{text}"' if len(self.tokens) > 1 else text
        return text + ("*" if self.prefix else "")


@dataclass(frozen=True)
class Query:
    """AND of `groups` (each an OR of terms), minus any segment matching an `excluded` term."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()

    def positive_terms(self) -> tuple[Term, ...]:
        return tuple(term for group in self.groups for term in group)

    def __str__(self) -> str:
        parts = [" OR ".join(str(t) for t in group) for group in self.groups]
        return " ".join(parts + [f"-{t}" for t in self.excluded])


def tokenize(text: str) -> list[str]:
    """Lower-cased letter/digit runs: the same split the indexes use (FTS5 unicode61, PG regexp)."""
    return [m.group().lower() for m in _WORD.finditer(unicodedata.normalize("NFC", text))]


# --- lexing: text -> items ("term", Term, negated) | ("op", "OR"/"AND", raw) ---------------


def _lex_quoted(text: str, i: int, negated: bool, items: list) -> int:
    close = text.find('"', i + 1)
    if close < 0:  # unbalanced quote: drop it and read the rest as plain words
        return i + 1
    end = close + 1
    prefix = end < len(text) and text[end] == "*"
    tokens = tokenize(text[i + 1 : close])
    if tokens:
        items.append(("term", Term(tuple(tokens), prefix), negated))
    return end + (1 if prefix else 0)


def _lex_bare(chunk: str, items: list) -> None:
    if chunk in _OPERATORS:
        items.append(("op", chunk, chunk))
        return
    negated = chunk.startswith("-")
    body = chunk.lstrip("-")
    prefix = body.endswith("*")
    tokens = tokenize(body)
    if tokens:  # '-' or '*' alone, or pure punctuation/emoji, carries nothing to search for
        prefix = prefix and body.rstrip("*")[-1:].isalnum()
        items.append(("term", Term(tuple(tokens), prefix), negated))


def _lex(text: str) -> list:
    items: list = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == '"' or (ch == "-" and text[i + 1 : i + 2] == '"'):
            negated = ch == "-"
            i = _lex_quoted(text, i + 1 if negated else i, negated, items)
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != '"':
                j += 1
            _lex_bare(text[i:j], items)
            i = j
    return items


# --- parsing: items -> Query -------------------------------------------------------------


def _is_positive(item: tuple | None) -> bool:
    return item is not None and item[0] == "term" and not item[2]


def _resolve_operators(items: list) -> list:
    """An OR/AND counts as an operator only between two positive terms; else it is a word."""
    out: list = []
    for k, item in enumerate(items):
        if item[0] == "op":
            after = items[k + 1] if k + 1 < len(items) else None
            before = out[-1] if out else None
            if not (_is_positive(before) and _is_positive(after)):
                item = ("term", Term((item[1].lower(),)), False)
        out.append(item)
    return out


def parse_query(text: str) -> Query:
    """Parse an editor's search text; raises InvalidInput when there is nothing to search for."""
    if not isinstance(text, str):
        raise InvalidInput("Search text must be text.")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Search is too long ({len(text)} characters).",
                           f"Keep it under {MAX_QUERY_CHARS} characters.")
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or = False
    for item in _resolve_operators(_lex(text)):
        if item[0] == "op":
            pending_or = item[1] == "OR"
        elif item[2]:
            excluded.append(item[1])
        elif pending_or and groups:
            groups[-1].append(item[1])
            pending_or = False
        else:
            groups.append([item[1]])
    if sum(len(g) for g in groups) + len(excluded) > MAX_TERMS:
        raise InvalidInput("Search has too many words.",
                           f"Use at most {MAX_TERMS} words or phrases.")
    if not groups:
        hint = "Exclusions like -budget only narrow a search." if excluded else None
        raise InvalidInput(EMPTY_MESSAGE, hint)
    return Query(tuple(tuple(dict.fromkeys(g)) for g in groups), tuple(dict.fromkeys(excluded)))


# --- compiling ----------------------------------------------------------------------------


def _fts5_term(term: Term) -> str:
    quoted = '"' + " ".join(t.replace('"', '""') for t in term.tokens) + '"'
    return quoted + (" *" if term.prefix else "")


def _fts5_any(terms: tuple[Term, ...]) -> str:
    inner = " OR ".join(_fts5_term(t) for t in terms)
    return f"({inner})" if len(terms) > 1 else inner


def to_fts5(query: Query) -> str:
    """An FTS5 MATCH expression with every token quoted (pass it as a bound parameter)."""
    positive = " AND ".join(_fts5_any(g) for g in query.groups)
    if not query.excluded:
        return positive
    return f"({positive}) NOT {_fts5_any(query.excluded)}"


def _ts_lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def _ts_term(term: Term) -> str:
    parts = [_ts_lexeme(t) for t in term.tokens]
    if term.prefix:
        parts[-1] += ":*"
    return f"({' <-> '.join(parts)})" if len(parts) > 1 else parts[0]


def _ts_any(terms: tuple[Term, ...]) -> str:
    return "(" + " | ".join(_ts_term(t) for t in terms) + ")"


def to_tsquery(query: Query) -> str:
    """Text for PostgreSQL `to_tsquery('simple', :q)`: quoted lexemes, <-> phrases, :* prefixes."""
    parts = [_ts_any(g) for g in query.groups]
    parts += [f"!{_ts_any((t,))}" for t in query.excluded]
    return " & ".join(parts)
