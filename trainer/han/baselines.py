"""The HAN trainer's baselines (appendix A.2): ML-KNN, binary relevance,
classifier chains, label powerset and an MLP on album vectors (the mean
of the review vectors), and the CNN and hierarchical LSTM on word ids
(trained through the shared loop by :mod:`trainer.han.train`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tagcore import text as T
from trainer.han.data import Prepared

#: The baselines, as named in the ablation table and ``--baselines``.
BASELINES = ("ML-KNN", "Binary Relevance", "Classifier Chains", "Label Powerset", "MLP", "CNN", "LSTM")
#: The baselines trained on word ids by the shared loop; the others fit album vectors.
NETWORKS = ("CNN", "LSTM")


def ml_knn(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, k: int = 10, s: float = 1.0) -> np.ndarray:
    """ML-KNN (Zhang & Zhou 2007) with Euclidean neighbours and Laplace
    smoothing ``s``: the posterior P(label | number of the k neighbours
    carrying it) for every test item, shape (n_test, m)."""
    y_train = np.asarray(y_train, dtype=bool)
    n, m = y_train.shape
    k = min(k, n - 1)

    def neighbours(a: np.ndarray, b: np.ndarray, exclude_self: bool) -> np.ndarray:
        d = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
        if exclude_self:
            np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    prior = (s + y_train.sum(0)) / (2 * s + n)
    counts = y_train[neighbours(x_train, x_train, True)].sum(1)  # (n, m): neighbours with each label
    with_label = np.zeros((k + 1, m))
    without = np.zeros((k + 1, m))
    for j in range(k + 1):
        hit = counts == j
        with_label[j] = (hit & y_train).sum(0)
        without[j] = (hit & ~y_train).sum(0)
    p_with = (s + with_label) / (s * (k + 1) + with_label.sum(0))
    p_without = (s + without) / (s * (k + 1) + without.sum(0))
    test_counts = y_train[neighbours(x_test, x_train, False)].sum(1)
    cols = np.arange(m)[None, :]
    a = prior * p_with[test_counts, cols]
    b = (1 - prior) * p_without[test_counts, cols]
    return a / (a + b)


def label_powerset(x_train, y_train, x_test, *, seed: int) -> np.ndarray:
    """Label powerset: one multinomial logistic regression over the label
    sets seen in training; a label's score is the summed probability of
    the sets holding it, (n_test, m)."""
    from trainer.linear import logistic_regression

    sets, classes = np.unique(np.asarray(y_train, dtype=np.int8), axis=0, return_inverse=True)
    # x_train comes standardised (vector_baseline): no second scaling.
    clf = logistic_regression(x=x_train, y=classes.ravel(), scale=False, seed=seed, max_iter=2000)
    return clf.predict_proba(x_test) @ sets[clf.classes_].astype(float)


def vector_baseline(name: str, p: Prepared, *, seed: int, k: int) -> np.ndarray:
    """Probabilities (n_albums, m) of an A.2 baseline fitted on the training
    album vectors (standardised with the training mean and deviation)."""
    from sklearn.multioutput import ClassifierChain, MultiOutputClassifier
    from sklearn.neural_network import MLPClassifier

    from trainer.linear import logistic_regression_model

    mean, std = p.vectors[p.train].mean(0), p.vectors[p.train].std(0) + 1e-6
    x = (p.vectors - mean) / std
    xt, yt = x[p.train], p.y[p.train].astype(int)
    if name == "ML-KNN":
        return ml_knn(xt, yt, x, k=k)
    if name == "Binary Relevance":
        clf = MultiOutputClassifier(logistic_regression_model(scale=False, max_iter=2000)).fit(xt, yt)
        return np.stack([est.predict_proba(x)[:, 1] for est in clf.estimators_], axis=1)
    if name == "Classifier Chains":
        chain = logistic_regression_model(scale=False, max_iter=2000)
        clf = ClassifierChain(chain, order="random", random_state=seed).fit(xt, yt)
        return clf.predict_proba(x)
    if name == "Label Powerset":
        return label_powerset(xt, yt, x, seed=seed)
    if name == "MLP":
        clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, early_stopping=True, random_state=seed).fit(xt, yt)
        return clf.predict_proba(x)
    raise ValueError(f"unknown baseline {name!r}")


# --- networks on word ids -------------------------------------------------------


def _compact(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, reviews, words) -> every album's words in one row, padding
    moved to the end: (batch, reviews * words) and the lengths (batch,)."""
    flat = ids.reshape(ids.shape[0], -1)
    order = torch.argsort((flat == T.PAD_ID).to(torch.int8), dim=1, stable=True)
    return torch.gather(flat, 1, order), (flat != T.PAD_ID).sum(1)


class CNN(nn.Module):
    """A.2's CNN: an album's words in one sequence (the first
    ``max_tokens``), two convolution layers each with kernels of widths 2,
    3 and 4 (ReLU, ``hidden`` channels per width), max over time, linear to
    the labels (sigmoid in the loss)."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, hidden: int, kernels=(2, 3, 4), max_tokens: int = 400):
        super().__init__()
        self.max_tokens = max_tokens
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(embeddings), freeze=False, padding_idx=0)
        dim = embeddings.shape[1]
        self.first = nn.ModuleList(nn.Conv1d(dim, hidden, k, padding=k // 2) for k in kernels)
        self.second = nn.ModuleList(nn.Conv1d(hidden * len(kernels), hidden, k, padding=k // 2) for k in kernels)
        self.output = nn.Linear(hidden * len(kernels), n_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        words, lengths = _compact(ids)
        lengths = lengths.clamp_max(self.max_tokens)
        words = words[:, : max(1, int(lengths.max()))]
        x = self.embedding(words).transpose(1, 2)
        steps = x.shape[2]
        x = torch.cat([F.relu(conv(x))[..., :steps] for conv in self.first], dim=1)
        x = torch.cat([F.relu(conv(x))[..., :steps] for conv in self.second], dim=1)
        mask = torch.arange(steps, device=x.device)[None, None, :] < lengths.clamp_min(1)[:, None, None]
        return self.output(x.masked_fill(~mask, float("-inf")).amax(dim=2))


class HierarchicalLSTM(nn.Module):
    """A.2's LSTM: a word-level LSTM's last state per review, a
    review-level LSTM's last state per album, linear to the labels."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(embeddings), freeze=False, padding_idx=0)
        self.words = nn.LSTM(embeddings.shape[1], hidden, batch_first=True)
        self.reviews = nn.LSTM(hidden, hidden, batch_first=True)
        self.output = nn.Linear(hidden, n_labels)
        self.hidden = hidden

    @staticmethod
    def _last(lstm, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = lstm(packed)
        return h[-1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        batch, n_reviews, n_words = ids.shape
        lengths = (ids != 0).sum(-1)
        present = lengths > 0
        flat = ids.reshape(-1, n_words)[present.reshape(-1)]
        vectors = self._last(self.words, self.embedding(flat), lengths.reshape(-1)[present.reshape(-1)])
        reviews = vectors.new_zeros(batch * n_reviews, self.hidden)
        reviews[present.reshape(-1)] = vectors
        reviews = reviews.reshape(batch, n_reviews, -1)
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)
        reviews = torch.gather(reviews, 1, order[..., None].expand_as(reviews))
        return self.output(self._last(self.reviews, reviews, present.sum(1).clamp_min(1)))
