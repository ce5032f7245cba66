"""Heads: small classifiers on a frozen backbone's track embedding.

A head bundle's config.json names its backbone (``"input": {"kind":
"backbone", "bundle": "musicnn-msd"}``); the analysis pass runs the backbone
once per file and feeds its embedding, averaged over the track's patches,
to every head that reads it. A head is a logistic regression
(``hidden=0``) or a one-hidden-layer MLP, single-label (softmax) or
multi-label (sigmoid). The input is standardised with the training set's
mean and standard deviation, stored in the weights.

Input: (batch, n_inputs) float32 embeddings. Output: (batch, n_labels)
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import as_trained, check_input, config_from_dict, config_to_dict

FAMILY = "head"
INPUT = "backbone"
OUTPUTS = ("scores",)


@dataclass(frozen=True)
class Config:
    """Shape of a head.

    Attributes
    ----------
    n_inputs : int
        Length of the backbone's embedding.
    n_labels : int
    hidden : int
        Units of the hidden layer; 0 = logistic regression.
    multilabel : bool
        Sigmoid per label (several labels per track) instead of a softmax.
    dropout : float
        Dropout before the output layer, in training only.
    """

    n_inputs: int = 200
    n_labels: int = 10
    hidden: int = 0
    multilabel: bool = False
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class Model(nn.Module):
    """Standardisation, optional hidden layer (ReLU), linear output (logits)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_inputs))
        self.register_buffer("std", torch.ones(config.n_inputs))
        layers: list[nn.Module] = []
        width = config.n_inputs
        if config.hidden:
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers += [nn.Dropout(config.dropout), nn.Linear(width, config.n_labels)]
        self.layers = nn.Sequential(*layers)

    def set_standardisation(self, embeddings: torch.Tensor) -> None:
        """Take the input mean and standard deviation from training
        embeddings, shape (n, n_inputs)."""
        with torch.no_grad():
            self.mean.copy_(embeddings.mean(dim=0))
            self.std.copy_(embeddings.std(dim=0).clamp_min(1e-6))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers((embeddings - self.mean) / self.std)


def loss(logits: torch.Tensor, targets: torch.Tensor, *, multilabel: bool) -> torch.Tensor:
    """Binary cross-entropy on (batch, n_labels) 0/1 targets when
    ``multilabel``, else cross-entropy on class indices (batch,)."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    return F.cross_entropy(logits, targets)


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: the backbone's embedding, (n_inputs,)."""
    return (config.n_inputs,)


@torch.inference_mode()
def predict(model: Model, embeddings: torch.Tensor) -> torch.Tensor:
    """Label probabilities, shape (batch, n_labels): sigmoid per label for a
    multi-label head, else a softmax (rows sum to 1)."""
    check_input(embeddings, input_shape(model.config), what=FAMILY)
    model.eval()
    logits = model(embeddings)
    return torch.sigmoid(logits) if model.config.multilabel else torch.softmax(logits, dim=-1)


prepare_for_inference = as_trained
