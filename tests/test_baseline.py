"""The MFCC + logistic-regression baseline."""

import numpy as np

from tagcore.baseline import LogisticRegression, dct_matrix, mfcc_statistics_from_logmel


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


def test_logistic_regression_separates_separable_classes():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [5, 5], [0, 5]], dtype=float)
    y = np.repeat(np.arange(3), 30)
    x = centres[y] + rng.normal(size=(90, 2))
    clf = LogisticRegression().fit(x, y, n_classes=3)
    assert (clf.predict(x) == y).mean() > 0.95
    x_new = centres + 0.1
    assert clf.predict(x_new).tolist() == [0, 1, 2]
