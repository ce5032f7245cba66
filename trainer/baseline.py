"""The MFCC-statistics + logistic-regression genre baseline.

Each clip becomes a fixed vector: the mean and standard deviation over time
of 20 MFCCs and of their first differences (80 numbers), computed from the
same 96-band mel spectrogram the CNN sees (dB-scaled, then a DCT-II). A
softmax logistic regression (:mod:`trainer.linear`) is fitted on the
standardised vectors with an L2 penalty of ``L2`` per item. It is the
classic bag-of-frames reference that any learnt audio model must beat.
"""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline

from trainer import linear

#: L2 strength of the baseline's regression: mean cross-entropy + L2 * ||W||^2.
L2 = 1e-2


def dct_matrix(*, n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape (n_out, n_in)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc_from_mel(mel_power: np.ndarray, *, n_mfcc: int = 20) -> np.ndarray:
    """MFCCs of a (frames, n_mels) mel *power* spectrogram, shape (frames, n_mfcc)."""
    db = 10.0 * np.log10(np.maximum(mel_power, 1e-10))
    return db @ dct_matrix(n_in=mel_power.shape[1], n_out=n_mfcc).T


def mfcc_statistics_from_logmel(log_mel: np.ndarray, *, log_c: float, n_mfcc: int = 20) -> np.ndarray:
    """Baseline vector from a log-compressed mel ``log(1 + C mel)``, shape (4 * n_mfcc,).

    The compression is undone (``expm1(x) / C``) to get the mel power back.
    """
    mel_power = np.expm1(log_mel.astype(np.float64)) / log_c
    mfcc = mfcc_from_mel(mel_power, n_mfcc=n_mfcc)
    delta = np.diff(mfcc, axis=0) if len(mfcc) > 1 else np.zeros_like(mfcc)
    return np.concatenate([mfcc.mean(0), mfcc.std(0), delta.mean(0), delta.std(0)]).astype(np.float32)


def fit_classifier(*, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Pipeline:
    """The baseline's classifier on MFCC statistics ``x`` (n, 80) and class
    indices ``y`` (n,): :func:`trainer.linear.logistic_regression` with the
    penalty ``L2`` per item. ``predict`` gives class indices."""
    return linear.logistic_regression(x=np.asarray(x, dtype=np.float64), y=y,
                                      c=linear.c_for_l2(l2=L2, n_items=len(x)), seed=seed)
