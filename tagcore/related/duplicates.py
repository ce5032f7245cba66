"""Duplicate spellings in a library's tag names: names that are likely one
tag, by spelling key, alias or near spelling backed by a high similarity."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tagcore.spelling import spelling_key


@dataclass(frozen=True)
class DuplicateGroup:
    """Spellings judged to name one tag, the ``canonical`` one to keep,
    and why (``"spelling"``: same :func:`spelling_key` or alias;
    ``"similar"``: near spelling with a high similarity)."""

    names: tuple[str, ...]
    canonical: str
    reason: str
    score: float | None = None


def find_duplicates(
    names: Mapping[str, int] | Sequence[str],
    *,
    normalise: Callable[[str], str] | None = None,
    canonical: Callable[[str], str | None] | None = None,
    similarity: Callable[[str, str], float | None] | None = None,
    min_similarity: float = 0.8,
    min_ratio: float = 0.8,
) -> list[DuplicateGroup]:
    """Groups of ``names`` (optionally with their item counts) that are
    likely one tag.

    Two names join when their :func:`spelling_key` of ``normalise(name)``
    agree (``normalise`` defaults to the identity; pass an alias rewrite such
    as lastgenre's "hiphop" -> "hip hop"), or when their keys are nearly the
    same (difflib ratio >= ``min_ratio``) *and* ``similarity`` (a
    relatedness in [-1, 1], None when unknown) is at least
    ``min_similarity``. Names differing only in case or punctuation always
    join.

    The canonical name of a group is ``canonical(name)`` of the first
    member (most frequent first, ties broken by the shorter, then the
    alphabetically first) for which it returns a name (e.g. the genre
    tree's spelling), else that first member. ``names`` lists the canonical
    name first if it is a member, then by decreasing count and case-folded
    name. Groups of one name are not returned. Order: groups by decreasing
    total count, then canonical name.
    """
    counts = dict(names) if isinstance(names, Mapping) else {n: 1 for n in names}
    norm = normalise or (lambda s: s)
    listed = sorted(counts)
    sets = _DisjointSets(listed)
    by_key: dict[str, list[str]] = defaultdict(list)
    for n in listed:
        by_key[spelling_key(norm(n)) or spelling_key(n)].append(n)
    for members in by_key.values():
        for other in members[1:]:
            sets.join(members[0], other)
    reasons: dict[str, str] = {}
    scores: dict[str, float] = {}
    if similarity is not None:
        reasons, scores = _join_similar(sets, by_key, similarity, min_similarity=min_similarity, min_ratio=min_ratio)
    groups: dict[str, list[str]] = defaultdict(list)
    for n in listed:
        groups[sets.root(n)].append(n)
    out = [_group(members, counts=counts, canonical=canonical, reason=reasons.get(r, "spelling"), score=scores.get(r))
           for r, members in groups.items() if len(members) >= 2]
    out.sort(key=lambda g: (-sum(counts[m] for m in g.names), g.canonical))
    return out


class _DisjointSets:
    """Names in disjoint sets (union-find): :meth:`root` names the set a
    name is in; :meth:`join` puts the second name's set under the first's
    root."""

    def __init__(self, names: Sequence[str]):
        self.parent = {n: n for n in names}

    def root(self, n: str) -> str:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def join(self, a: str, b: str) -> None:
        self.parent[self.root(b)] = self.root(a)


def _join_similar(sets: _DisjointSets, by_key: Mapping[str, list[str]],
                  similarity: Callable[[str, str], float | None], *, min_similarity: float,
                  min_ratio: float) -> tuple[dict[str, str], dict[str, float]]:
    """Join the sets of two spelling keys that are nearly the same (difflib
    ratio >= ``min_ratio``) and whose first names are similar enough; returns
    the reason (``"similar"``) and best similarity, by the set's root."""
    reasons: dict[str, str] = {}
    scores: dict[str, float] = {}
    keys = sorted(by_key)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            first_a, first_b = by_key[a][0], by_key[b][0]
            if sets.root(first_a) == sets.root(first_b):
                continue
            if difflib.SequenceMatcher(None, a, b).ratio() < min_ratio:
                continue
            s = similarity(first_a, first_b)
            if s is not None and s >= min_similarity:
                sets.join(first_a, first_b)
                root = sets.root(first_a)
                reasons[root] = "similar"
                scores[root] = max(scores.get(root, -1.0), float(s))
    return reasons, scores


def _group(members: list[str], *, counts: Mapping[str, int], canonical: Callable[[str], str | None] | None,
           reason: str, score: float | None) -> DuplicateGroup:
    """The group of ``members``, its canonical name chosen and its names
    ordered as :func:`find_duplicates` says."""
    ranked = sorted(members, key=lambda m: (-counts[m], len(m), m))
    chosen = None
    if canonical is not None:
        for m in ranked:
            chosen = canonical(m)
            if chosen:
                break
    chosen = chosen or ranked[0]
    shown = sorted(members, key=lambda m: (m != chosen, -counts[m], m.casefold(), m))
    return DuplicateGroup(tuple(shown), chosen, reason, score)
