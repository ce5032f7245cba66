"""Thresholds of the tag maps: the rule that uses no label
(:func:`rule_threshold`), the map's rule in numpy for fast refitting
(:class:`FastMap`), and the coordinate ascent that fits the genre map's
thresholds on the F1 of the written set (:func:`fit_thresholds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from trainer.tagmap.genres import is_subgenre
from trainer.tagmap.scoring import TruthMatrix, allmusic_score

if TYPE_CHECKING:
    from trainer.tagmap.data import Clips

#: The rule: half the tag's RULE_PERCENTILE-th percentile over the
#: reference clips.
RULE_PERCENTILE = 99
#: Candidate thresholds of a source: these percentiles of its scores. A
#: subgenre's sources only get the top ones (it is written on at most 10%
#: of the clips): AllMusic's genres cannot tell "progressive rock" from
#: "rock", so a subgenre fitted freely becomes a cheap second "Pop/Rock"
#: (MSD's "Progressive rock" at 0.013 was written on 7 of 10 GTZAN
#: classical clips).
QUANTILES = (50, 70, 80, 85, 90, 93, 95, 97, 98, 99, 99.5)
SUBGENRE_QUANTILES = (90, 93, 95, 97, 98, 99, 99.5)
#: The percentile a subgenre's threshold starts from.
SUBGENRE_START = 95


def rule_threshold(scores: np.ndarray) -> float:
    """Half the 99th percentile of a tag's scores over the reference clips
    (half what it reaches on the 1% of clips where it is most evident),
    kept in [0.005, 0.5] and rounded to 3 decimals."""
    return round(float(np.clip(0.5 * np.percentile(scores, RULE_PERCENTILE), 0.005, 0.5)), 3)


def rule_thresholds(clips: Sequence[Clips], tags: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """(bundle, tag) -> :func:`rule_threshold` of its scores over all of
    ``clips`` together."""
    out = {}
    for bundle, tag in tags:
        column = clips[0].tags[bundle].index(tag)
        out[(bundle, tag)] = rule_threshold(np.concatenate([c.scores[bundle][:, column] for c in clips]))
    return out


class FastMap:
    """The tagmap rule in numpy over a fixed input matrix, for fitting: the
    logit of each input once, then each rule's column on demand. Agrees
    with :class:`tagcore.families.tagmap.Model` (tests/test_tagmap_trainer.py)."""

    def __init__(self, x: np.ndarray, inputs: list[str], labels: list[str], rules: list[tuple]):
        eps = 1e-6
        p = np.clip(x.astype(np.float64), eps, 1 - eps)
        self.logits = np.log(p / (1 - p))
        self.index = {name: i for i, name in enumerate(inputs)}
        self.labels = labels
        self.rules = [list(r) for r in rules]
        self.by_label = {l: [j for j, r in enumerate(self.rules) if r[1] == l] for l in labels}

    def z(self, j: int) -> np.ndarray:
        """Rule ``j``'s logit per row (before the max over a label's rules)."""
        source, _, threshold, bias, *ceiling = self.rules[j]
        z = self.logits[:, self.index[source]] - np.log(threshold / (1 - threshold)) + bias
        if ceiling and ceiling[0] < 1:
            z = np.minimum(z, np.log(ceiling[0] / (1 - ceiling[0])))
        return z

    def column(self, label: str) -> np.ndarray:
        """A label's logit per row: the max over its rules, -inf without one."""
        js = self.by_label[label]
        if not js:
            return np.full(len(self.logits), -np.inf)
        return np.max([self.z(j) for j in js], axis=0)

    def logit_matrix(self) -> np.ndarray:
        """(rows, labels) logits of the map's scores."""
        return np.stack([self.column(l) for l in self.labels], axis=1)


def written(logits: np.ndarray, *, threshold: float = 0.5, count: int = 2) -> list[list[int]]:
    """Per row, the label indices the plugin writes: best first, score >=
    threshold, at most count (ties broken by index)."""
    cut = np.log(threshold / (1 - threshold))
    order = np.argsort(-logits, axis=1, kind="stable")[:, :count]
    return [[int(j) for j in row if logits[i, j] >= cut] for i, row in enumerate(order)]


def _percentile(p: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of scores ``p`` as a threshold: in
    [1e-4, 0.9999], rounded to 4 decimals."""
    return round(float(np.clip(np.percentile(p, q), 1e-4, 0.9999)), 4)


def fit_thresholds(sets: Sequence[tuple[FastMap, Sequence[Iterable[str]]]], free: Sequence[int], *,
                   passes: int = 3, min_gain: float = 1e-3) -> list[list]:
    """Coordinate ascent on the sum over ``sets`` (a FastMap of some clips
    and their AllMusic genres) of the F1 of the written set, over the
    thresholds of rules ``free``. Candidates for a rule: percentiles of its
    source's scores over all the clips (QUANTILES, SUBGENRE_QUANTILES for a
    subgenre, which also starts at its 95th percentile); a change is kept
    when it gains at least ``min_gain``. Returns the rules (every FastMap
    gets them too)."""
    rules = [list(r) for r in sets[0][0].rules]
    maps = [fast for fast, _ in sets]

    def scores_of(source: str) -> np.ndarray:
        return np.concatenate([1 / (1 + np.exp(-fast.logits[:, fast.index[source]])) for fast in maps])

    for j in free:
        if is_subgenre(rules[j][1]):
            rules[j][2] = _percentile(scores_of(rules[j][0]), SUBGENRE_START)
    for fast in maps:
        fast.rules = rules
    truths = [TruthMatrix(t) for _, t in sets]
    labels = maps[0].labels
    columns = [{l: fast.column(l) for l in labels} for fast in maps]

    def evaluate() -> float:
        return sum(allmusic_score(np.stack([c[l] for l in labels], axis=1), labels, t).f1
                   for c, t in zip(columns, truths))

    def refresh(label: str) -> None:
        for fast, c in zip(maps, columns):
            c[label] = fast.column(label)

    best = evaluate()
    for _ in range(passes):
        changed = False
        for j in free:
            source, label = rules[j][0], rules[j][1]
            levels = SUBGENRE_QUANTILES if is_subgenre(label) else QUANTILES
            p = scores_of(source)
            current = choice = rules[j][2]
            for t in sorted({_percentile(p, q) for q in levels}):
                rules[j][2] = t
                refresh(label)
                value = evaluate()
                if value >= best + min_gain:
                    best, choice = value, t
            rules[j][2] = choice
            refresh(label)
            changed |= choice != current
        if not changed:
            break
    return rules
