"""The heads the evaluation trains or reads beside the maps: a GTZAN head
as the shipped ``genre10`` is one (logistic regression on the MSD
embedding, through :mod:`trainer.linear`), the installed ``genre10``
itself, and their probabilities as genre logits."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trainer.tagmap.genres import normalize
from trainer.tagmap.tables import GTZAN_GENRES, GTZAN_HEAD, MSD


def logistic_regression(x, y, *, seed: int = 0, grid: Sequence[float] | None = None):
    """A softmax logistic regression on standardised inputs, C chosen from
    ``grid`` (default :data:`trainer.linear.C_GRID`) by 5-fold CV (log-loss)
    on the training data only (:func:`trainer.linear.logistic_regression`);
    returns the fitted pipeline."""
    from trainer import linear

    return linear.logistic_regression(x=x, y=y, c_grid=linear.C_GRID if grid is None else grid, inner_folds=5,
                                      seed=seed, max_iter=5000)


def head_probabilities(train_x, train_y, test_x, *, seed: int = 0) -> np.ndarray:
    """A GTZAN head as genre10 is one: logistic regression on the
    standardised MSD embedding (:func:`logistic_regression`). Returns test
    probabilities, columns in GTZAN_GENRES order."""
    model = logistic_regression(train_x, train_y, seed=seed)
    classes = list(model.classes_)
    probs = model.predict_proba(test_x)
    return np.stack([probs[:, classes.index(g)] for g in GTZAN_GENRES], axis=1)


def shipped_gtzan_head(embedding: np.ndarray) -> np.ndarray | None:
    """The installed genre10 bundle's probabilities on MSD track embeddings
    (columns in GTZAN_GENRES order) when it is a head on musicnn-msd, else
    None."""
    import torch

    from tagcore.bundle import BundleError, load_bundle
    from tagcore.families import family_module

    try:
        bundle = load_bundle(GTZAN_HEAD)
    except BundleError:
        return None
    if bundle.family != "head" or bundle.backbone != MSD or sorted(bundle.labels) != sorted(GTZAN_GENRES):
        return None
    probs = family_module("head").predict(bundle.model, torch.from_numpy(embedding.astype(np.float32))).numpy()
    return np.stack([probs[:, bundle.labels.index(g)] for g in GTZAN_GENRES], axis=1)


def head_only_logits(probs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The head's probabilities as logits, labels as beets names."""
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)), [normalize(g) for g in GTZAN_GENRES]

