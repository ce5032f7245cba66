"""Tag maps: one vocabulary's labels from other bundles' label scores.

A tag-map bundle reads the scores of one or more bundles (``"input":
{"kind": "scores", "bundles": ["musicnn-msd", "musicnn-mtt"]}``; the pass
concatenates their score vectors in that order, each in its own label
order) and gives scores over its own labels (beets' genre names, mood
words, instruments...). No training: the map is data, written by a person
or chosen on evidence, and shipped in the bundle's weights.

The fusion rule, per target label ``g``::

    z_s   = logit(p_s) - logit(t_s)           source s, its threshold t_s
    y_g   = sigmoid(max over sources s mapped to g of (z_s + b_s))

so a target passes 0.5 exactly when one of its sources passes its own
threshold (musicnn's sigmoid outputs are small and differ in scale from
tag to tag: "jazz" at 0.2 is confident, "rock" at 0.2 is not), and the
strongest source decides its confidence. ``b_s`` (a bias, 0 by default)
lets one source rank above another: the mood map gives the quadrant head's
moods a higher bias than musicnn's mood tags, so the first mood comes from
the quadrant head. A target without a source scores 0.

Input: (batch, n_inputs) probabilities. Output: (batch, n_labels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

FAMILY = "tagmap"
_EPS = 1e-6


@dataclass
class Config:
    """The map.

    Attributes
    ----------
    inputs : list of str
        ``"bundle:label"`` for each input score, in the order the pass
        concatenates them (documentation and a check of the input width).
    n_labels : int
        Number of target labels.
    entries : list of [input index, target index, threshold, bias]
        Which input feeds which target, above which probability it counts
        (0 < threshold < 1), and its bias in logits.
    """

    inputs: list[str] = field(default_factory=list)
    n_labels: int = 1
    entries: list[list[float]] = field(default_factory=list)

    def __post_init__(self):
        for entry in self.entries:
            if len(entry) != 4:
                raise ValueError(f"a tagmap entry is [input, target, threshold, bias], not {entry!r}")
            source, target, threshold, _ = entry
            if not (0 <= int(source) < len(self.inputs) and 0 <= int(target) < self.n_labels):
                raise ValueError(f"tagmap entry {entry!r} is out of range")
            if not 0.0 < float(threshold) < 1.0:
                raise ValueError(f"tagmap threshold must be in (0, 1), not {threshold!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown {FAMILY} config keys: {sorted(unknown)}")
        return cls(**data)


class Model(nn.Module):
    """The map as tensors: for each entry, its input, target, threshold
    logit and bias (buffers, saved in the bundle's weights)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        entries = torch.tensor(config.entries, dtype=torch.float64).reshape(-1, 4)
        self.register_buffer("source", entries[:, 0].long())
        self.register_buffer("target", entries[:, 1].long())
        self.register_buffer("offset", (torch.logit(entries[:, 2]) - entries[:, 3]).float())

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        """Target logits, (batch, n_labels); -inf where no source maps."""
        if scores.shape[-1] != len(self.config.inputs):
            raise ValueError(f"tagmap expects {len(self.config.inputs)} input scores, got {scores.shape[-1]}")
        z = torch.logit(scores.float().clamp(_EPS, 1 - _EPS))[:, self.source] - self.offset
        out = torch.full((scores.shape[0], self.config.n_labels), float("-inf"), dtype=z.dtype, device=z.device)
        return out.scatter_reduce(1, self.target.expand(scores.shape[0], -1), z, reduce="amax", include_self=True)


def loss(*args, **kwargs):
    """A tag map is not trained: its entries are data."""
    raise NotImplementedError("tagmap bundles are written, not trained")


@torch.inference_mode()
def predict(model: Model, scores: torch.Tensor) -> torch.Tensor:
    """Target probabilities, (batch, n_labels)."""
    return torch.sigmoid(model(scores))


def build(*, inputs: list[str], labels: list[str], rules: list[tuple[str, str, float, float]]) -> tuple[Config, Model]:
    """A map from readable rules ``(input "bundle:label", target label,
    threshold, bias)``. Raises ValueError naming an unknown input or label."""
    index = {name: i for i, name in enumerate(inputs)}
    target = {name: i for i, name in enumerate(labels)}
    entries = []
    for source, label, threshold, bias in rules:
        if source not in index:
            raise ValueError(f"tagmap rule names unknown input {source!r}")
        if label not in target:
            raise ValueError(f"tagmap rule names unknown target {label!r}")
        entries.append([index[source], target[label], float(threshold), float(bias)])
    config = Config(inputs=list(inputs), n_labels=len(labels), entries=entries)
    return config, Model(config)
