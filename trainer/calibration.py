"""Calibration of a softmax classifier from out-of-fold predictions.

Temperature scaling (one scalar T: probabilities softmax(logits / T)),
fitted by least cross-entropy on predictions a model made for songs it was
not trained on, and the decision threshold of the top label chosen on the
same predictions. :func:`cross_fitted_report` gives honest figures per
fold: fold k's temperature and threshold come from the other folds'
predictions only, and are scored on fold k.

Targets are distributions over the labels (a song with k gold labels has
1/k on each); a top-1 prediction is correct when it is in the gold set.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Thresholds tried for the top label's probability.
THRESHOLDS = tuple(round(0.20 + 0.025 * i, 3) for i in range(31))  # 0.2 .. 0.95


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def cross_entropy(*, probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean of -sum_j target_j ln p_j over rows (nats)."""
    return float(-(np.asarray(targets) * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1).mean())


def fit_temperature(*, logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises :func:`cross_entropy` of
    softmax(logits / T) (bounded search over ln T)."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        return cross_entropy(probs=softmax(logits, temperature=float(np.exp(log_t))), targets=targets)

    found = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def top1(*, probs: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct): the top label's probability per row and
    whether that label is in the row's gold set (``gold`` 0/1)."""
    pred = probs.argmax(axis=1)
    return probs.max(axis=1), np.asarray(gold)[np.arange(len(pred)), pred] > 0


def expected_calibration_error(*, confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width confidence bins of (share of rows in the bin) x
    |accuracy in the bin - mean confidence in the bin|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(total)


def share_and_precision(*, confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float]:
    """Share of rows whose top label reaches ``threshold`` and the share of
    those that are correct (NaN when none reaches it)."""
    kept = confidence >= threshold
    return float(kept.mean()), float(correct[kept].mean()) if kept.any() else float("nan")


def choose_threshold(*, confidence: np.ndarray, correct: np.ndarray, precision: float,
                     thresholds: Sequence[float] = THRESHOLDS, least: int = 20) -> float:
    """The smallest of ``thresholds`` at which the top labels that reach it
    are correct at least ``precision`` of the time (over at least
    ``least`` rows); the largest threshold when none is."""
    for threshold in thresholds:
        kept = confidence >= threshold
        if kept.sum() >= least and correct[kept].mean() >= precision:
            return float(threshold)
    return float(thresholds[-1])


def fold_figures(*, logits, targets, gold, temperature: float, threshold: float) -> dict:
    """Cross-entropy and ECE before (T = 1) and after ``temperature``, and
    the share and precision of top labels at ``threshold``, calibrated
    and not."""
    raw, scaled = softmax(logits), softmax(logits, temperature=temperature)
    conf_raw, correct = top1(probs=raw, gold=gold)
    conf, _ = top1(probs=scaled, gold=gold)
    share, precision = share_and_precision(confidence=conf, correct=correct, threshold=threshold)
    share_raw, precision_raw = share_and_precision(confidence=conf_raw, correct=correct, threshold=threshold)
    return {"share_with_label_uncalibrated": share_raw, "precision_of_label_uncalibrated": precision_raw,"rows": int(len(logits)), "temperature": temperature, "threshold": threshold,
            "accuracy": float(correct.mean()),
            "cross_entropy_before": cross_entropy(probs=raw, targets=targets),
            "cross_entropy_after": cross_entropy(probs=scaled, targets=targets),
            "ece_before": expected_calibration_error(confidence=conf_raw, correct=correct),
            "ece_after": expected_calibration_error(confidence=conf, correct=correct),
            "share_with_label": share, "precision_of_label": precision}


def calibrate(*, logits, targets, gold, precision: float) -> tuple[float, float]:
    """(temperature, threshold) fitted on these predictions: the
    temperature first, the threshold on the calibrated probabilities."""
    temperature = fit_temperature(logits=logits, targets=targets)
    confidence, correct = top1(probs=softmax(logits, temperature=temperature), gold=gold)
    return temperature, choose_threshold(confidence=confidence, correct=correct, precision=precision)


def cross_fitted_report(*, logits: np.ndarray, gold: np.ndarray, fold: np.ndarray, precision: float) -> dict:
    """Per fold k, :func:`fold_figures` on fold k's rows with a temperature
    and threshold fitted on the other folds' rows only; and the
    temperature and threshold fitted on every row (what a model trained on
    all the data ships), with the share and precision it gives at each
    threshold of :data:`THRESHOLDS` on those rows."""
    gold = np.asarray(gold, dtype=np.float64)
    targets = gold / gold.sum(axis=1, keepdims=True)
    per_fold = []
    for k in sorted(set(fold.tolist())):
        rest, here = fold != k, fold == k
        temperature, threshold = calibrate(logits=logits[rest], targets=targets[rest], gold=gold[rest],
                                           precision=precision)
        per_fold.append({"fold": int(k), **fold_figures(logits=logits[here], targets=targets[here], gold=gold[here],
                                                        temperature=temperature, threshold=threshold)})
    temperature, threshold = calibrate(logits=logits, targets=targets, gold=gold, precision=precision)
    confidence, correct = top1(probs=softmax(logits, temperature=temperature), gold=gold)
    curve = [{"threshold": t, **dict(zip(("share", "precision"),
                                         share_and_precision(confidence=confidence, correct=correct, threshold=t)))}
             for t in THRESHOLDS]
    return {"target_precision": precision, "per_fold": per_fold,
            "all": {"temperature": temperature, "threshold": threshold, "curve": curve,
                    "per_label": per_label(probs=softmax(logits, temperature=temperature), gold=gold,
                                           threshold=threshold)}}


def per_label(*, probs: np.ndarray, gold: np.ndarray, threshold: float) -> list[dict]:
    """Per label: the rows whose top label it is and reaches ``threshold``,
    and the share of those that are correct."""
    confidence, correct = top1(probs=probs, gold=gold)
    top = probs.argmax(axis=1)
    out = []
    for label in range(probs.shape[1]):
        kept = (top == label) & (confidence >= threshold)
        out.append({"label": label, "given": int(kept.sum()),
                    "precision": float(correct[kept].mean()) if kept.any() else float("nan")})
    return out
