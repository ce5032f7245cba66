"""Metrics, checked on hand-computed cases."""

import numpy as np
import pytest

from tagcore import metrics


@pytest.mark.parametrize(
    "truth, pred, acc, f1",
    [
        ([0, 1, 2], [0, 1, 2], 1.0, 1.0),
        ([0, 0, 1, 1], [0, 1, 1, 1], 0.75, (2 / 3 + 0.8) / 2),
        ([0, 0, 1, 1], [1, 1, 0, 0], 0.0, 0.0),
    ],
)
def test_accuracy_and_macro_f1(truth, pred, acc, f1):
    assert metrics.accuracy(truth, pred) == pytest.approx(acc)
    assert metrics.macro_f1(truth, pred, n_classes=3) == pytest.approx(f1)


def test_confusion_matrix_counts():
    m = metrics.confusion_matrix([0, 0, 1], [0, 1, 1], n_classes=2)
    assert m.tolist() == [[1, 1], [0, 1]]


def test_ranking_metrics():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    relevant = [{2}, {2}]
    assert metrics.hit_rate_at_k(sim, relevant, k=1) == 0.5
    assert metrics.hit_rate_at_k(sim, relevant, k=2) == 1.0
    assert metrics.mean_average_precision(sim, relevant) == pytest.approx((0.5 + 1.0) / 2)
