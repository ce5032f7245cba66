"""The related-tags model: sources of relatedness between tag names and
their weighted combination.

A :class:`Source` holds tag vectors (related by the cosine of their rows) or
a square similarity matrix (an audio model's tag similarity);
:func:`combined_scores` averages the sources that know both tags, weighted.
A :class:`RelatedIndex` is what a related-tags bundle holds: a vocabulary,
its sources and an alias table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tagcore import lsi
from tagcore.related.aliases import alias_targets
from tagcore.related.vocabulary import KINDS, Tag, UnknownTag, Vocabulary
from tagcore.spelling import closest_spellings, spelling_key


@dataclass
class Source:
    """One source of relatedness: ``vectors`` (n, d) for ``names`` (any
    spelling: matched by :func:`spelling_key`), or a precomputed square
    ``similarity`` (n, n) between ``names`` (an audio tag similarity).
    ``weight`` scales its vote in :func:`combined_scores`; a ``fallback``
    source votes only where no other source can score. ``kinds`` (one per
    name, optional) lets a name that exists in two kinds ("Playful" mood
    and theme) keep one vector per kind: candidates given with their kind
    are looked up by (kind, name) first."""

    name: str
    names: list[str]
    weight: float = 1.0
    vectors: np.ndarray | None = None
    similarity: np.ndarray | None = None
    fallback: bool = False
    kinds: list[str] | None = None

    def __post_init__(self):
        if (self.vectors is None) == (self.similarity is None):
            raise ValueError(f"source {self.name}: give vectors or a similarity matrix, not both or neither")
        rows = (self.vectors if self.vectors is not None else self.similarity).shape[0]
        if rows != len(self.names):
            raise ValueError(f"source {self.name}: {rows} rows for {len(self.names)} names")
        if self.similarity is not None and self.similarity.shape != (rows, rows):
            raise ValueError(f"source {self.name}: similarity must be square, got {self.similarity.shape}")
        self.index: dict[str, int] = {}
        for i, n in enumerate(self.names):
            self.index.setdefault(spelling_key(n), i)
        if self.kinds is not None and len(self.kinds) != len(self.names):
            raise ValueError(f"source {self.name}: {len(self.kinds)} kinds for {len(self.names)} names")
        self.kind_index = {(k, spelling_key(n)): i for i, (n, k) in enumerate(zip(self.names, self.kinds or ()))}
        if self.vectors is not None:
            self.unit = lsi.l2_normalise(self.vectors).astype(np.float32)

    def rows(self, names: Sequence[str], kinds: Sequence[str] | None = None) -> list[int | None]:
        """Row of each name (None when unknown); with ``kinds``, the row of
        that kind where this source has kinds."""
        if kinds is None or not self.kind_index:
            return [self.index.get(spelling_key(n)) for n in names]
        return [self.kind_index.get((k, spelling_key(n)), self.index.get(spelling_key(n))) for n, k in zip(names, kinds)]

    def scores(self, query: Sequence[str | Sequence[str]], candidates: Sequence[str],
               kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of each candidate with the query, shape (n_candidates,),
        and a mask of the candidates this source can score (known candidate,
        at least one known query tag).

        ``query`` holds tag names or groups of names (one query tag with its
        aliases, :meth:`RelatedIndex.expand_groups`): each group's centroid
        of unit vectors is normalised, and the query is the normalised mean
        of the group centroids, so every group weighs the same however many
        names it has. For a similarity matrix, the mean of each group's rows,
        then the mean over groups."""
        groups = [[r for r in self.rows([g] if isinstance(g, str) else list(g)) if r is not None] for g in query]
        groups = [g for g in groups if g]
        c = self.rows(candidates, kinds)
        known = np.array([r is not None for r in c], dtype=bool)
        out = np.zeros(len(candidates), dtype=np.float64)
        if not groups or not known.any():
            return out, np.zeros(len(candidates), dtype=bool)
        cols = np.array([r for r in c if r is not None])
        if self.vectors is not None:
            centroid = np.mean([_unit(self.unit[g].mean(axis=0)) for g in groups], axis=0)
            out[known] = self.unit[cols] @ _unit(centroid)
        else:
            out[known] = np.nanmean([np.nanmean(self.similarity[np.ix_(g, cols)], axis=0) for g in groups], axis=0)
        return out, known



def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def combined_scores(sources: Sequence[Source], query: Sequence[str | Sequence[str]], candidates: Sequence[str],
                    kinds: Sequence[str] | None = None) -> np.ndarray:
    """Weighted mean, over the sources that can score it, of each
    candidate's cosine with ``query``; fallback sources (weight 1) only
    where no other source can; NaN where none can. Shape (n_candidates,)."""
    total = np.zeros(len(candidates))
    weight = np.zeros(len(candidates))
    for source in sorted(sources, key=lambda s: s.fallback):
        s, known = source.scores(query, candidates, kinds)
        if source.fallback:
            known = known & (weight == 0)
        w = 1.0 if source.fallback else source.weight
        total[known] += w * s[known]
        weight[known] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


@dataclass
class RelatedIndex:
    """The vocabulary (kinds), the sources, and ``aliases`` (spelling key
    -> vocabulary name or names) for common names the vocabulary spells
    otherwise ("hip hop" -> "Rap", "metal" -> ["Pop/Rock", "Heavy Metal"]);
    what a related-tags bundle holds."""

    vocabulary: Vocabulary
    sources: list[Source]
    aliases: dict[str, str | list[str]] = field(default_factory=dict)

    def expand(self, query: Sequence[str]) -> list[str]:
        """``query`` plus the alias targets of each name the vocabulary
        does not hold (an alias maps to one name or a list of names; order
        kept, no repeats by spelling): :meth:`expand_groups`, flattened."""
        out, seen = [], set()
        for n in (n for group in self.expand_groups(query) for n in group):
            if n and spelling_key(n) not in seen:
                seen.add(spelling_key(n))
                out.append(n)
        return out

    def expand_groups(self, query: Sequence[str]) -> list[list[str]]:
        """One group per query name: the name, then its alias targets when
        the vocabulary does not hold it (see :meth:`Source.scores`)."""
        return [[name, *([] if self.vocabulary.find(name) else alias_targets(self.aliases.get(spelling_key(name))))]
                for name in query]

    def nearest(self, name: str, *, kinds: Sequence[str] = KINDS, n: int = 10,
                exclude_same: bool = True) -> list[tuple[Tag, float]]:
        """The ``n`` vocabulary tags of ``kinds`` most related to ``name``
        (any source may know it), best first, with their scores. The tag
        itself (same spelling) is left out when ``exclude_same``. Raises
        :class:`UnknownTag` when no source and no vocabulary entry knows the
        name."""
        key = spelling_key(name)
        if not self.known(name):
            pool = [t.name for t in self.vocabulary.tags] + [n for s in self.sources for n in s.names]
            raise UnknownTag(name, closest_spellings(name, pool))
        indices = [i for i, t in enumerate(self.vocabulary.tags) if t.kind in kinds]
        if exclude_same:
            indices = [i for i in indices if spelling_key(self.vocabulary.tags[i].name) != key]
        names = [self.vocabulary.tags[i].name for i in indices]
        scores = combined_scores(self.sources, self.expand_groups([name]), names, [self.vocabulary.tags[i].kind for i in indices])
        order = [j for j in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable") if not np.isnan(scores[j])]
        return [(self.vocabulary.tags[indices[j]], float(scores[j])) for j in order[:n]]

    def known(self, name: str) -> bool:
        """Whether the vocabulary, an alias or a source knows ``name``."""
        key = spelling_key(name)
        return bool(self.vocabulary.find(name)) or key in self.aliases or any(key in s.index for s in self.sources)
