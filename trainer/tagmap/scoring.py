"""How a genre option is scored: against a clip's AllMusic genres, each
written label counted for the AllMusic genre it falls under
(:func:`allmusic_score`), and on GTZAN by the accuracy of its top genre
(:func:`gtzan_accuracy`). Pooled over clips (micro), as
docs/models/tagmap.md defines them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from trainer.tagmap.genres import allmusic_genre, gtzan_class
from trainer.tagmap.tables import OUTSIDE_TREE_TO_ALLMUSIC, TOP_TO_ALLMUSIC


@dataclass
class GenreScore:
    hit: float  # top genre among the clip's AllMusic genres, over expressible clips
    hit_all: float  # the same over all clips
    precision: float
    recall: float
    f1: float
    none: float  # share of clips left without a genre
    expressible: float  # share of clips with an AllMusic genre the option can express

    def as_dict(self) -> dict:
        return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


class TruthMatrix:
    """Clips' AllMusic genres as a boolean matrix (clips x genres); its
    columns include every genre a label can count for."""

    def __init__(self, truth: Sequence[Iterable[str]]):
        truth = [set(t) for t in truth]
        names = sorted(set().union(*truth, TOP_TO_ALLMUSIC.values(), OUTSIDE_TREE_TO_ALLMUSIC.values()))
        self.index = {g: i for i, g in enumerate(names)}
        self.matrix = np.zeros((len(truth), len(names)), bool)
        for i, genres in enumerate(truth):
            for g in genres:
                self.matrix[i, self.index[g]] = True


def _said(logits: np.ndarray, column: np.ndarray, n_genres: int, *, threshold: float,
          count: int, min_count: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The written set as AllMusic genres: (clips, n_genres + 1) booleans
    (last column: labels without an AllMusic genre) and, per clip, whether
    any label was written (the best ``min_count`` whatever their score,
    then those >= ``threshold``, at most ``count``)."""
    rows = np.arange(len(logits))
    cut = np.log(threshold / (1 - threshold))
    said = np.zeros((len(logits), n_genres + 1), bool)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :count]
    any_written = np.zeros(len(logits), bool)
    for k in range(order.shape[1]):
        j = order[:, k]
        ok = (logits[rows, j] >= cut) | ((k < min_count) & np.isfinite(logits[rows, j]))
        said[rows[ok], column[j[ok]]] = True
        any_written |= ok
    return said, any_written


def allmusic_score(logits: np.ndarray, labels: list[str], truth: Sequence[Iterable[str]] | TruthMatrix, *,
                   threshold: float = 0.5, count: int = 2, min_count: int = 0,
                   allmusic_labels: bool = False) -> GenreScore:
    """Scores of a genre option on AllMusic genres, per clip, pooled:

    - ``hit``: the top label (best score, whatever its value) counts for one
      of the clip's AllMusic genres; over the clips having an AllMusic genre
      that some label of the option counts for (``expressible``);
    - ``precision``/``recall``/``f1``: of the AllMusic genres the written
      labels (>= ``threshold``, at most ``count``, best first) count for,
      against all the clip's AllMusic genres (two written labels counting
      for one genre count once);
    - ``none``: share of clips with no label written;
    - ``min_count``: the best ``min_count`` labels are written whatever
      their score (the plugin's rule for genres).

    ``logits``: (clips, labels), -inf for a label the option cannot say;
    ``allmusic_labels``: the labels are AllMusic genres themselves (a head
    trained on them), not beets genre names counted through lastgenre's tree.
    """
    truth = truth if isinstance(truth, TruthMatrix) else TruthMatrix(truth)
    column = np.array([truth.index.get(l if allmusic_labels else allmusic_genre(l), -1) for l in labels])
    can = np.zeros(truth.matrix.shape[1] + 1, bool)  # last slot: labels with no AllMusic genre
    for j, c in enumerate(column):
        if np.isfinite(logits[:, j]).any():
            can[c] = True
    can = can[:-1]
    rows = np.arange(len(logits))
    t = np.concatenate([truth.matrix, np.zeros((len(logits), 1), bool)], axis=1)
    top = np.argmax(logits, axis=1)
    hits = t[rows, column[top]] & np.isfinite(logits[rows, top])
    expressible = (truth.matrix & can).any(axis=1)
    said, any_written = _said(logits, column, truth.matrix.shape[1], threshold=threshold, count=count,
                              min_count=min_count)
    said, t = said[:, :-1], t[:, :-1]
    tp, fp, fn = int((said & t).sum()), int((said & ~t).sum()), int((t & ~said).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    n = len(logits)
    return GenreScore(hit=float(hits.sum()) / max(int(expressible.sum()), 1), hit_all=float(hits.sum()) / n,
                      precision=precision, recall=recall,
                      f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                      none=float((~any_written).mean()), expressible=float(expressible.mean()))


def gtzan_accuracy(logits: np.ndarray, labels: list[str], truth: Sequence[str]) -> float:
    """Accuracy of the top genre among the labels that name a GTZAN genre."""
    classes = [gtzan_class(l) for l in labels]
    keep = [j for j, c in enumerate(classes) if c]
    best = np.array(keep)[np.argmax(logits[:, keep], axis=1)]
    return float(np.mean([classes[j] == t for j, t in zip(best, truth)]))


def broad_logits(logits: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A genre option's scores as the plugin writes ``genres`` with
    ``audio_styles`` on: one column per broad genre
    (:func:`tagcore.genre_levels.broad_genre`), the best of its labels."""
    from tagcore.genre_levels import broad_genre

    roots = list(dict.fromkeys(broad_genre(label) for label in labels))
    out = np.full((len(logits), len(roots)), -np.inf)
    for j, label in enumerate(labels):
        r = roots.index(broad_genre(label))
        out[:, r] = np.maximum(out[:, r], logits[:, j])
    return out, roots
