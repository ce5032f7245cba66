"""Evaluation metrics as pure numpy functions.

Classification: accuracy, per-class and macro F1, confusion matrix.
Ranking (seed 002, section 3): hit rate at k and mean average precision of
a similarity ranking against sets of relevant items.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], *, n_classes: int) -> np.ndarray:
    """Counts C[i, j] of items of true class i predicted as j, shape (n, n)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of items whose predicted class is the true class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        raise ValueError("accuracy of an empty set")
    return float(np.mean(y_true == y_pred))


def f1_per_class(y_true: Sequence[int], y_pred: Sequence[int], *, n_classes: int) -> np.ndarray:
    """F1 of each class, shape (n_classes,); 0 where a class has neither
    true nor predicted items."""
    matrix = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    denom = predicted + actual
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], *, n_classes: int) -> float:
    """Unweighted mean of the per-class F1 over classes present in y_true."""
    present = np.unique(np.asarray(y_true, dtype=int))
    return float(f1_per_class(y_true, y_pred, n_classes=n_classes)[present].mean())


def hit_rate_at_k(similarity: np.ndarray, relevant: Sequence[set[int]], *, k: int) -> float:
    """HR@k: fraction of queries (rows of ``similarity``, shape
    (n_queries, n_candidates)) with at least one relevant candidate among
    their k most similar."""
    top = np.argsort(-np.asarray(similarity), axis=1, kind="stable")[:, :k]
    hits = [bool(set(row.tolist()) & rel) for row, rel in zip(top, relevant)]
    return float(np.mean(hits))


def average_precision(scores: np.ndarray, relevant: set[int]) -> float:
    """Average precision of ranking candidates by descending score."""
    if not relevant:
        raise ValueError("average precision needs at least one relevant item")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits, total = 0, 0.0
    for rank, candidate in enumerate(order, start=1):
        if int(candidate) in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def mean_average_precision(similarity: np.ndarray, relevant: Sequence[set[int]]) -> float:
    """MAP over the rows of ``similarity``."""
    return float(np.mean([average_precision(row, rel) for row, rel in zip(similarity, relevant)]))


# --- Multi-label classification (seed 000, section 5.1) -----------------------
# y: (n_items, n_labels) 0/1 truth; decisions: (n_items, n_labels) 0/1
# predictions (scores thresholded); scores: (n_items, n_labels) real values.


def _binary(matrix, what: str) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2:
        raise ValueError(f"{what} must be (n_items, n_labels), got shape {array.shape}")
    return array.astype(bool)


def multilabel_counts(y, decisions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, false positives and false negatives,
    three (n_labels,) int arrays."""
    y, d = _binary(y, "y"), _binary(decisions, "decisions")
    if y.shape != d.shape:
        raise ValueError(f"y {y.shape} and decisions {d.shape} differ in shape")
    return (y & d).sum(0), (~y & d).sum(0), (y & ~d).sum(0)


def f1_per_label(y, decisions) -> np.ndarray:
    """F1 of each label, (n_labels,) float; 0 where a label has neither
    true nor predicted items."""
    tp, fp, fn = multilabel_counts(y, decisions)
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(tp), dtype=float), where=denom > 0)


def micro_f1(y, decisions) -> float:
    """F1 of the counts pooled over every label (section 5.1: "aggregates
    the contributions of all labels")."""
    tp, fp, fn = (int(v.sum()) for v in multilabel_counts(y, decisions))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def macro_f1_multilabel(y, decisions) -> float:
    """Unweighted mean of the per-label F1 over the labels that occur in
    ``y`` or in ``decisions`` (a label with neither has no F1)."""
    tp, fp, fn = multilabel_counts(y, decisions)
    used = (tp + fp + fn) > 0
    return float(f1_per_label(y, decisions)[used].mean()) if used.any() else 0.0


def one_error(y, scores) -> float:
    """Fraction of items whose top-scored label is not one of their true
    labels (ties: the first label in order). Items without a true label
    are left out."""
    y = _binary(y, "y")
    scores = np.asarray(scores, dtype=float)
    has = y.any(1)
    if not has.any():
        raise ValueError("one-error needs at least one item with a true label")
    top = np.argmax(scores[has], axis=1)
    return float(np.mean(~y[has][np.arange(len(top)), top]))


def hamming_loss(y, decisions) -> float:
    """Fraction of wrong (item, label) decisions over all n_items x n_labels."""
    y, d = _binary(y, "y"), _binary(decisions, "decisions")
    return float(np.mean(y != d))


def frequency_extremes_f1(y_train, y, decisions, labels, *, k: int = 5) -> dict:
    """Table 4: the F1 of the ``k`` most and ``k`` least frequent labels
    by their share of training items (ties by label order). Returns
    ``{"most": [(label, share, f1), ...], "fewest": [...]}``."""
    share = np.asarray(y_train, dtype=float).mean(0)
    f1 = f1_per_label(y, decisions)
    order = sorted(range(len(labels)), key=lambda i: (-share[i], i))
    rows = [(labels[i], float(share[i]), float(f1[i])) for i in order]
    return {"most": rows[:k], "fewest": rows[::-1][:k]}
