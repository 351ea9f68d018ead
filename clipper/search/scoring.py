"""Relevance for SQLite hits: Okapi BM25 computed in Python over the candidate segments.

FTS5's own bm25() counts, for every query term, all rows containing it before scoring the
first row: ~100 ms for "the" in a million segments. Here a term's document frequency is
exact up to DF_SAMPLE rows and otherwise estimated from how densely it occurs among the
newest DF_SAMPLE matches (see engine._document_frequencies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from clipper.search.query import Query, Term
from clipper.search.snippet import bare_words, term_count

K1 = 1.2
B = 0.75

DF_SAMPLE = 1000
"""Matches read per term to count (or estimate) its document frequency."""


def idf(df: int, n_docs: int) -> float:
    """BM25's inverse document frequency (always positive)."""
    return math.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)


def bm25_scores(texts: Sequence[str], query: Query, df: Mapping[Term, int],
                n_docs: int) -> list[float]:
    """One BM25 score per text (higher = better); a phrase counts as one term, as in FTS5."""
    terms = query.positive_terms()
    docs = [bare_words(t) for t in texts]
    avgdl = (sum(len(d) for d in docs) / len(docs)) if docs else 1.0
    weights = {t: idf(df.get(t, 1), max(n_docs, 1)) for t in terms}
    scores = []
    for words in docs:
        norm = K1 * (1 - B + B * len(words) / max(avgdl, 1.0))
        score = 0.0
        for term in terms:
            tf = term_count(words, term)
            score += weights[term] * tf * (K1 + 1) / (tf + norm) if tf else 0.0
        scores.append(score)
    return scores
