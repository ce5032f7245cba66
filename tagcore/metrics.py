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
