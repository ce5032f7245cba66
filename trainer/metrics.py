"""Evaluation metrics of the trainers, on ``sklearn.metrics`` where it has them.

Shapes: single-label data are 1-d class indices ``(n_items,)``; multi-label
data are ``(n_items, n_labels)`` 0/1 (or bool) matrices; ``scores`` are
real values of the same shape, higher meaning more likely.

**Macro-F1, the one definition used by every trainer**: the unweighted mean
of the per-label F1 over the labels that occur in the truth *or* in the
predictions of the evaluated set; a label that occurs in neither has no F1
and is left out; a label predicted but never true counts with F1 = 0. This
is scikit-learn's own rule for single-label data (``f1_score(...,
average="macro")`` averages over the union of the classes in ``y_true`` and
``y_pred``), applied to multi-label data by passing that union as
``labels=``. ``zero_division=0`` everywhere. (Until this module, the head
trainer averaged over the labels of the truth only, and the single-label
function of ``tagcore.metrics`` over the classes of ``y_true`` only.)

Micro-F1 pools the (item, label) decisions of every label. Ranking
figures (average precision, MAP, hit rate) are written out here because
they take relevance sets and break ties by position (stable order), which
``sklearn.metrics.average_precision_score`` does not; where no scores tie
they agree with it (tests/test_metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

# --- single-label and multi-label classification -------------------------------


def _matrix(values, what: str) -> np.ndarray:
    """``values`` as an (n_items, n_labels) bool matrix, or ValueError."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{what} must be (n_items, n_labels), got shape {array.shape}")
    return array.astype(bool)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Truth and predictions as two arrays of one shape: 1-d class indices
    or 2-d bool matrices."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.ndim == 2:
        return y_true.astype(bool), y_pred.astype(bool)
    if y_true.ndim != 1:
        raise ValueError(f"expected class indices (n,) or a 0/1 matrix (n, labels), got shape {y_true.shape}")
    return y_true.astype(int), y_pred.astype(int)


def accuracy(*, y_true, y_pred) -> float:
    """Fraction of items whose prediction is exactly the truth (for a 0/1
    matrix: the whole label set, as ``sklearn.metrics.accuracy_score``)."""
    y_true, y_pred = _pair(y_true, y_pred)
    if len(y_true) == 0:
        raise ValueError("accuracy of an empty set")
    return float(skm.accuracy_score(y_true, y_pred))


def confusion_matrix(*, y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of items of true class i predicted as j, shape
    (n_classes, n_classes), int64."""
    y_true, y_pred = _pair(y_true, y_pred)
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64)


def evaluated_labels(*, y_true, y_pred) -> np.ndarray:
    """Indices of the labels that occur in the truth or the predictions:
    the labels macro-F1 averages over (see the module docstring)."""
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.ndim == 2:
        return np.flatnonzero(y_true.any(axis=0) | y_pred.any(axis=0))
    return np.union1d(y_true, y_pred)


def f1_per_label(*, y_true, y_pred, n_labels: int | None = None) -> np.ndarray:
    """F1 of each label (class), shape (n_labels,); 0 where a label has
    neither true nor predicted items. ``n_labels`` is needed for class
    indices (default: one more than the largest index seen); a 0/1 matrix
    gives it by its width."""
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.ndim == 2:
        n_labels = y_true.shape[1]
    elif n_labels is None:
        n_labels = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if n_labels == 0:
        return np.zeros(0)
    return skm.f1_score(y_true, y_pred, labels=np.arange(n_labels), average=None, zero_division=0).astype(float)


def macro_f1(*, y_true, y_pred) -> float:
    """Macro-F1 as the module docstring defines it: the mean per-label F1
    over the labels in the truth or the predictions; 0.0 when neither holds
    any label (an empty set)."""
    y_true, y_pred = _pair(y_true, y_pred)
    used = evaluated_labels(y_true=y_true, y_pred=y_pred)
    if len(used) == 0:
        return 0.0
    return float(skm.f1_score(y_true, y_pred, labels=used, average="macro", zero_division=0))


def micro_f1(*, y_true, y_pred) -> float:
    """Multi-label (0/1 matrices): F1 of the true positives, false positives and false negatives pooled
    over every label ("aggregates the contributions of all labels"); 0.0
    when nothing is true or predicted."""
    y_true, y_pred = _matrix(y_true, "y_true"), _matrix(y_pred, "y_pred")
    return float(skm.f1_score(y_true, y_pred, average="micro", zero_division=0))


def hamming_loss(*, y_true, y_pred) -> float:
    """Fraction of wrong (item, label) decisions over all n_items x n_labels."""
    y_true, y_pred = _matrix(y_true, "y_true"), _matrix(y_pred, "y_pred")
    return float(skm.hamming_loss(y_true, y_pred))


def one_error(*, y_true, scores) -> float:
    """Fraction of items whose top-scored label is not one of their true
    labels (ties: the first label in order). Items without a true label are
    left out; ValueError when no item has one."""
    y_true = _matrix(y_true, "y_true")
    scores = np.asarray(scores, dtype=float)
    has = y_true.any(axis=1)
    if not has.any():
        raise ValueError("one-error needs at least one item with a true label")
    top = np.argmax(scores[has], axis=1)
    return float(np.mean(~y_true[has][np.arange(len(top)), top]))


def frequency_extremes_f1(*, y_train, y_true, y_pred, labels: Sequence[str], k: int = 5) -> dict:
    """The F1 of the ``k`` most and ``k`` least frequent labels by their
    share of training items (ties by label order). Returns
    ``{"most": [(label, share, f1), ...], "fewest": [...]}``."""
    share = np.asarray(y_train, dtype=float).mean(axis=0)
    f1 = f1_per_label(y_true=y_true, y_pred=y_pred)
    order = sorted(range(len(labels)), key=lambda i: (-share[i], i))
    rows = [(labels[i], float(share[i]), float(f1[i])) for i in order]
    return {"most": rows[:k], "fewest": rows[::-1][:k]}


# --- rankings ------------------------------------------------------------------


def average_precision(*, scores: np.ndarray, relevant: set[int]) -> float:
    """Average precision of ranking candidates by descending score (ties:
    the earlier candidate first): the mean over the relevant candidates of
    the precision at their rank. ValueError when nothing is relevant."""
    if not relevant:
        raise ValueError("average precision needs at least one relevant item")
    order = np.argsort(-np.asarray(scores), kind="stable")
    is_relevant = np.isin(order, list(relevant))
    ranks = np.flatnonzero(is_relevant) + 1
    return float(np.sum(np.arange(1, len(ranks) + 1) / ranks) / len(relevant))


def mean_average_precision(*, similarity: np.ndarray, relevant: Sequence[set[int]]) -> float:
    """MAP over the rows (queries) of ``similarity``, shape (n_queries,
    n_candidates), each with its set of relevant candidates."""
    return float(np.mean([average_precision(scores=row, relevant=rel) for row, rel in zip(similarity, relevant)]))


def hit_rate_at_k(*, similarity: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """HR@k: fraction of queries (rows of ``similarity``, shape (n_queries,
    n_candidates)) with at least one relevant candidate among their k most
    similar (ties: the earlier candidate first)."""
    top = np.argsort(-np.asarray(similarity), axis=1, kind="stable")[:, :k]
    hits = [bool(set(row.tolist()) & rel) for row, rel in zip(top, relevant)]
    return float(np.mean(hits))


def label_map(*, y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean over labels (columns with at least one true item) of the average
    precision of ranking the items by that label's score; ``y_true`` and
    ``scores`` (n_items, n_labels)."""
    y_true = _matrix(y_true, "y_true")
    return float(np.mean([average_precision(scores=scores[:, j], relevant=set(np.flatnonzero(y_true[:, j]).tolist()))
                          for j in range(y_true.shape[1]) if y_true[:, j].any()]))


def random_ranking_ap(*, n: int, relevant: int) -> float:
    """Expected average precision of a uniformly random order of ``n`` items
    of which ``relevant`` are relevant:
    ``(H_n + (r - 1) / (n - 1) * (n - H_n)) / n`` (H_n the harmonic number)."""
    if n == 1:
        return 1.0
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    return (harmonic + (relevant - 1) / (n - 1) * (n - harmonic)) / n
