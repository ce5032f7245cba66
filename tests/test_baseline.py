"""The MFCC + logistic-regression baseline (trainer.baseline) and the one
logistic regression of the trainers (trainer.linear)."""

import numpy as np
import pytest
import scipy.sparse
from sklearn.preprocessing import StandardScaler

from trainer import linear
from trainer.baseline import L2, dct_matrix, fit_classifier, mfcc_statistics_from_logmel


def test_dct_is_orthonormal():
    basis = dct_matrix(n_in=96, n_out=96)
    assert np.allclose(basis @ basis.T, np.eye(96), atol=1e-10)


def test_statistics_vector_shape_and_log_compression_is_undone():
    rng = np.random.default_rng(0)
    mel_power = rng.uniform(0.0, 1.0, size=(50, 96))
    log_mel = np.log1p(10000.0 * mel_power).astype(np.float32)
    vector = mfcc_statistics_from_logmel(log_mel, log_c=10000.0)
    assert vector.shape == (80,)
    db = 10 * np.log10(np.maximum(mel_power, 1e-10))
    expected_first = (db @ dct_matrix(n_in=96, n_out=20).T).mean(0)
    assert np.allclose(vector[:20], expected_first, rtol=1e-3, atol=1e-2)


def blobs(seed=1, n=30):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [5, 5], [0, 5]], dtype=float)
    y = np.repeat(np.arange(3), n)
    return centres, centres[y] + rng.normal(size=(3 * n, 2)), y


def test_baseline_classifier_separates_separable_classes():
    centres, x, y = blobs()
    clf = fit_classifier(x=x, y=y)
    assert (clf.predict(x) == y).mean() > 0.95
    assert clf.predict(centres + 0.1).tolist() == [0, 1, 2]


def test_baseline_penalty_is_l2_per_item():
    # At the optimum of mean CE + L2 ||W||^2 the gradient vanishes: X^T (P - Y) / n + 2 L2 W = 0.
    _, x, y = blobs(n=20)
    clf = fit_classifier(x=x, y=y)
    xs = StandardScaler().fit_transform(x)
    probs = clf.predict_proba(x)
    weight = clf[-1].coef_.T  # (dim, classes)
    gradient = xs.T @ (probs - np.eye(3)[y]) / len(x) + 2 * L2 * weight
    assert np.abs(gradient).max() < 1e-4
    assert linear.c_for_l2(l2=L2, n_items=len(x)) == pytest.approx(1 / (2 * len(x) * L2))


def test_grid_chooses_c_by_inner_cv_and_is_seeded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 10))
    y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    model = linear.logistic_regression(x=x, y=y, c_grid=[1e-4, 1.0], seed=0)
    assert linear.chosen_c(model) == 1.0  # a signal to learn: the weak penalty wins on log-loss
    noise = rng.integers(0, 2, size=120)
    again = [linear.chosen_c(linear.logistic_regression(x=x, y=noise, c_grid=[1e-4, 1.0, 100.0], seed=5))
             for _ in range(2)]
    assert again[0] == again[1]
    with pytest.raises(ValueError, match="weights"):
        linear.logistic_regression(x=x, y=y, c_grid=[1.0], sample_weight=np.ones(120))


def test_sparse_inputs_and_weights():
    x = scipy.sparse.csr_matrix(np.eye(6))
    y = np.array([0, 0, 0, 1, 1, 1])
    model = linear.logistic_regression(x=x, y=y, scale="sparse", c=10.0, sample_weight=np.full(6, 0.5))
    assert model.predict(x).tolist() == y.tolist()
    plain = linear.logistic_regression(x=x, y=y, scale=False, c=10.0)
    assert len(plain.steps) == 1 and plain.predict(x).tolist() == y.tolist()
