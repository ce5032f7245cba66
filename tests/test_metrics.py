"""trainer.metrics: hand-computed cases, the written-down macro-F1 rule, and
agreement of the ranking figures with scikit-learn where no scores tie."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trainer import metrics


@pytest.mark.parametrize(
    "truth, pred, acc, f1",
    [
        ([0, 1, 2], [0, 1, 2], 1.0, 1.0),
        ([0, 0, 1, 1], [0, 1, 1, 1], 0.75, (2 / 3 + 0.8) / 2),
        ([0, 0, 1, 1], [1, 1, 0, 0], 0.0, 0.0),
    ],
)
def test_accuracy_and_macro_f1(truth, pred, acc, f1):
    assert metrics.accuracy(y_true=truth, y_pred=pred) == pytest.approx(acc)
    assert metrics.macro_f1(y_true=truth, y_pred=pred) == pytest.approx(f1)


def test_macro_f1_averages_over_the_labels_of_truth_or_predictions_single_label():
    # Class 2 is predicted once but never true: F1 0, and it counts.
    # Per class: 0 -> 2/3, 1 -> 1, 2 -> 0. Truth only: 0.833; the union (our rule): 0.556.
    truth, pred = [0, 0, 1], [0, 2, 1]
    assert metrics.macro_f1(y_true=truth, y_pred=pred) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics.evaluated_labels(y_true=truth, y_pred=pred).tolist() == [0, 1, 2]
    # A class in neither (3 of n_labels=4) has no F1 and is left out.
    assert metrics.f1_per_label(y_true=truth, y_pred=pred, n_labels=4).tolist() == pytest.approx([2 / 3, 1, 0, 0])


def test_macro_f1_averages_over_the_labels_of_truth_or_predictions_multilabel():
    y = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    d = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], dtype=bool)
    # labels 0 and 1 right (F1 1), label 2 predicted only (F1 0), label 3 in neither (left out)
    assert metrics.evaluated_labels(y_true=y, y_pred=d).tolist() == [0, 1, 2]
    assert metrics.macro_f1(y_true=y, y_pred=d) == pytest.approx(2 / 3)  # truth only would give 1.0
    assert metrics.macro_f1(y_true=np.zeros((2, 3)), y_pred=np.zeros((2, 3))) == 0.0


def test_multilabel_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    d = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.8, 0.1], [0.6, 0.5, 0.1], [0.2, 0.1, 0.3]])
    # tp = 2, fp = 1, fn = 2 -> micro-F1 = 4 / (4 + 1 + 2)
    assert metrics.micro_f1(y_true=y, y_pred=d) == pytest.approx(4 / 7)
    # per label: F1 1, 2/3, 0 -> macro 5/9 (all three labels are true somewhere)
    assert metrics.f1_per_label(y_true=y, y_pred=d).tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    assert metrics.macro_f1(y_true=y, y_pred=d) == pytest.approx(5 / 9)
    # top labels: 0 (right), 0 (wrong), 2 (right) -> 1/3
    assert metrics.one_error(y_true=y, scores=scores) == pytest.approx(1 / 3)
    # 3 wrong cells of 9
    assert metrics.hamming_loss(y_true=y, y_pred=d) == pytest.approx(3 / 9)
    table = metrics.frequency_extremes_f1(y_train=y, y_true=y, y_pred=d, labels=["a", "b", "c"], k=1)
    assert table["most"] == [("c", pytest.approx(2 / 3), 0.0)] and table["fewest"][0][0] == "b"


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.macro_f1(y_true=[0, 1], y_pred=[0, 1, 1])
    with pytest.raises(ValueError, match="n_labels"):
        metrics.hamming_loss(y_true=[0, 1], y_pred=[0, 1])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy(y_true=[], y_pred=[])


def test_confusion_matrix_counts():
    m = metrics.confusion_matrix(y_true=[0, 0, 1], y_pred=[0, 1, 1], n_classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_ranking_metrics():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    relevant = [{2}, {2}]
    assert metrics.hit_rate_at_k(similarity=sim, relevant=relevant, k=1) == 0.5
    assert metrics.hit_rate_at_k(similarity=sim, relevant=relevant, k=2) == 1.0
    assert metrics.mean_average_precision(similarity=sim, relevant=relevant) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError):
        metrics.average_precision(scores=np.ones(3), relevant=set())


def test_average_precision_and_label_map_agree_with_sklearn_without_ties():
    rng = np.random.default_rng(0)
    y = rng.random((40, 5)) < 0.3
    y[0] = True  # every label has a true item
    scores = rng.random((40, 5))  # continuous: no ties
    for j in range(5):
        relevant = set(np.flatnonzero(y[:, j]).tolist())
        assert metrics.average_precision(scores=scores[:, j], relevant=relevant) == pytest.approx(
            average_precision_score(y[:, j], scores[:, j]))
    assert metrics.label_map(y_true=y, scores=scores) == pytest.approx(average_precision_score(y, scores))


def test_random_ranking_ap_is_the_expectation_over_orders():
    for n, r in [(5, 1), (5, 2), (6, 3), (4, 4)]:
        relevant = set(range(r))
        aps = []
        for order in itertools.permutations(range(n)):
            scores = np.empty(n)
            scores[list(order)] = np.arange(n, 0, -1)  # order[0] ranked first
            aps.append(metrics.average_precision(scores=scores, relevant=relevant))
        assert metrics.random_ranking_ap(n=n, relevant=r) == pytest.approx(np.mean(aps))
