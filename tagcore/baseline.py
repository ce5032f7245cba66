"""The MFCC-statistics + logistic-regression genre baseline.

Each clip becomes a fixed vector: the mean and standard deviation over time
of 20 MFCCs and of their first differences (80 numbers), computed from the
same 96-band mel spectrogram the CNN sees (dB-scaled, then a DCT-II). A
multinomial logistic regression with L2 penalty is fitted on standardised
vectors with L-BFGS. It is the classic bag-of-frames reference that any
learnt audio model must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np



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


@dataclass
class LogisticRegression:
    """Multinomial logistic regression on standardised features (torch L-BFGS)."""

    l2: float = 1e-2
    max_iter: int = 500
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, *, n_classes: int) -> "LogisticRegression":
        import torch

        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(0)
        self.scale = x.std(0) + 1e-8
        xs = torch.from_numpy((x - self.mean) / self.scale)
        ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
        weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS([weight, bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(xs @ weight + bias, ys) + self.l2 * (weight**2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        self.weight = weight.detach().numpy()
        self.bias = bias.detach().numpy()
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision_function(x).argmax(axis=1)
