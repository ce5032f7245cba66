"""The one logistic regression of the trainers: scikit-learn's
``StandardScaler`` + ``LogisticRegression`` in a pipeline.

Every linear baseline and probe of the trainers (the MFCC baseline of
:mod:`trainer.baseline`, the GTZAN head of the tag maps, the TF-IDF
baseline of the lyrics trainer, the album-vector baselines of the HAN
trainer) is built here, so they share one solver (L-BFGS, softmax over
classes), one penalty convention and one way of choosing C.

Penalty: scikit-learn's, ``||W||^2 / 2 + C * sum of the items' cross-entropy``
(the biases are not penalised). An L2 strength ``l2`` per item, as in
``mean cross-entropy + l2 * ||W||^2``, is ``C = 1 / (2 * n_items * l2)``
(:func:`c_for_l2`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

#: The inverse L2 strengths an inner cross-validation tries by default.
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


def c_for_l2(*, l2: float, n_items: int) -> float:
    """scikit-learn's C for the objective ``mean cross-entropy + l2 * ||W||^2``
    over ``n_items`` training items."""
    return 1.0 / (2.0 * n_items * l2)


def logistic_regression_model(*, c: float = 1.0, seed: int = 0, scale: bool | str = True,
                              max_iter: int = 2000) -> Pipeline:
    """An unfitted pipeline: ``StandardScaler`` (unless ``scale`` is False;
    ``with_mean=False``, so sparse inputs stay sparse, when ``scale`` is
    ``"sparse"``) then a softmax ``LogisticRegression(C=c)`` (L-BFGS,
    ``random_state=seed``). For wrappers such as scikit-learn's
    ``MultiOutputClassifier``; to fit one, use :func:`logistic_regression`."""
    steps = []
    if scale:
        steps.append(StandardScaler(with_mean=scale != "sparse"))
    steps.append(LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    return make_pipeline(*steps)


def logistic_regression(*, x, y: Sequence[int], c: float = 1.0, c_grid: Sequence[float] | None = None,
                        inner_folds: int = 5, seed: int = 0, scale: bool | str = True, max_iter: int = 2000,
                        sample_weight: np.ndarray | None = None) -> Pipeline:
    """A fitted :func:`logistic_regression_model` on ``x`` (n_items, dim),
    dense or sparse, and class labels ``y`` (n_items,).

    With ``c_grid``, C is the value of the grid with the lowest log-loss in
    an ``inner_folds``-fold stratified cross-validation (shuffled with
    ``seed``) over (x, y) alone, and the pipeline is refitted on all of it
    with that C; otherwise ``c`` is used. ``sample_weight``: a weight per
    item (no grid search with weights). The pipeline's ``classes_`` are the
    labels seen in ``y``, in sorted order; ``predict`` gives labels,
    ``predict_proba`` columns in ``classes_`` order."""
    model = logistic_regression_model(c=c, seed=seed, scale=scale, max_iter=max_iter)
    if c_grid is None:
        fit_options = {} if sample_weight is None else {"logisticregression__sample_weight": sample_weight}
        return model.fit(x, y, **fit_options)
    if sample_weight is not None:
        raise ValueError("a grid over C takes no sample weights")
    search = GridSearchCV(model, {"logisticregression__C": [float(v) for v in c_grid]}, scoring="neg_log_loss",
                          cv=StratifiedKFold(inner_folds, shuffle=True, random_state=seed))
    return search.fit(x, y).best_estimator_


def chosen_c(model: Pipeline) -> float:
    """The C of a fitted :func:`logistic_regression` pipeline."""
    return float(model[-1].C)
