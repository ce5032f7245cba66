"""Proposals for an item: the tags of a kind most related to the item's
tags, optionally mixed with a popularity prior; and P@k / R@k to judge them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tagcore.related.index import RelatedIndex, combined_scores
from tagcore.related.vocabulary import Vocabulary
from tagcore.spelling import spelling_key

PRIOR_SCALES = ("linear", "log")


def popularity_prior(vocabulary: Vocabulary, kind: str, *, scale: str = "linear") -> dict[str, float]:
    """name -> popularity of each ``kind`` tag in [0, 1], the most popular
    being 1: its document count over the largest count (``scale="linear"``)
    or ``log(1 + count) / log(1 + largest)`` (``"log"``, which keeps a
    tag on 30 tracks well above one on 2 without letting the head of the
    list drown everything else)."""
    if scale not in PRIOR_SCALES:
        raise ValueError(f"prior scale must be one of {PRIOR_SCALES}, got {scale!r}")
    tags = [vocabulary.tags[i] for i in vocabulary.of_kind(kind)]
    top = max((t.count for t in tags), default=0) or 1
    if scale == "log":
        return {t.name: float(np.log1p(t.count) / np.log1p(top)) for t in tags}
    return {t.name: t.count / top for t in tags}


def propose(
    index: RelatedIndex,
    query: Sequence[str],
    *,
    kind: str,
    count: int = 5,
    min_score: float = 0.0,
    exclude: Iterable[str] = (),
    prior: Mapping[str, float] | None = None,
    prior_weight: float = 0.0,
) -> list[tuple[str, float]]:
    """Up to ``count`` tags of ``kind`` related to the ``query`` tags (an
    item's genres, plus its styles when proposing moods), best first, as
    (name, score) with score >= ``min_score``. Unknown query tags are
    ignored; no known query tag gives an empty list. Names in ``exclude``
    (and the query itself) are never proposed. ``prior`` (name -> value in
    [0, 1], e.g. relative popularity) is mixed in as
    ``(1 - w) * score + w * prior`` with ``w = prior_weight``."""
    skip = {spelling_key(n) for n in (*query, *exclude)}
    indices = [i for i in index.vocabulary.of_kind(kind) if spelling_key(index.vocabulary.tags[i].name) not in skip]
    known_query = index.expand_groups([q for q in query if index.known(q)])
    if not indices or not known_query:
        return []
    names = [index.vocabulary.tags[i].name for i in indices]
    scores = combined_scores(index.sources, known_query, names, [kind] * len(names))
    if prior and prior_weight:
        p = np.array([prior.get(n, 0.0) for n in names])
        scores = (1 - prior_weight) * scores + prior_weight * p
    order = [j for j in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable") if not np.isnan(scores[j])]
    out = [(names[j], round(float(scores[j]), 4)) for j in order if scores[j] >= min_score]
    return out[:count]



def precision_recall_at_k(proposed: Sequence[str], truth: Iterable[str], *, k: int) -> tuple[float, float]:
    """P@k and R@k of a ranked list against a set of true names (matched by
    :func:`spelling_key`): hits in the first k over k, and over the true
    count. An empty truth raises ValueError."""
    truth_keys = {spelling_key(t) for t in truth}
    if not truth_keys:
        raise ValueError("precision/recall need at least one true tag")
    hits = sum(1 for p in list(proposed)[:k] if spelling_key(p) in truth_keys)
    return hits / k, hits / len(truth_keys)
