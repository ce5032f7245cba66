"""Tag maps: one vocabulary's labels from other bundles' label scores.

A tag-map bundle reads the scores of one or more bundles (``"input":
{"kind": "scores", "bundles": ["musicnn-msd", "musicnn-mtt"]}``; the pass
concatenates their score vectors in that order, each in its own label
order) and gives scores over its own labels (beets' genre names, mood
words, instruments...). No training: the map is data, written by a person
or chosen on evidence, and shipped in the bundle's weights
(``python -m trainer tagmap`` writes the shipped ones from the tables of
:mod:`trainer.tagmap`).

The fusion rule, per target label ``g``::

    z_s   = min(logit(p_s) - logit(t_s) + b_s, logit(c_s))   source s: threshold t_s,
                                                             bias b_s, ceiling c_s
    y_g   = sigmoid(max over sources s mapped to g of z_s)

so a target passes 0.5 exactly when one of its sources passes its own
threshold (with ``b_s = 0``; musicnn's sigmoid outputs are small and differ
in scale from tag to tag: "jazz" at 0.2 is confident, "rock" at 0.2 is
not), and the strongest source decides its confidence. ``b_s`` (a bias, 0
by default) lets one source rank above another, at the price of moving
where it passes 0.5 (to ``sigmoid(logit(t_s) - b_s)``); ``c_s`` (a
ceiling, 1 = none, the default) caps what a source can give. Together they
rank sources in tiers: the mood map gives the quadrant head's words a bias
and musicnn's mood tags a ceiling below it, so the first mood comes from
the quadrant head whatever the input. A target without a source scores 0.

Input: (batch, n_inputs) probabilities. Output: (batch, n_labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tagcore.families import as_trained, check_input, config_from_dict, config_to_dict, frozen_tuple

FAMILY = "tagmap"
INPUT = "scores"
OUTPUTS = ("scores",)
_EPS = 1e-6


@dataclass(frozen=True)
class Config:
    """The map.

    Attributes
    ----------
    inputs : list of str
        ``"bundle:label"`` for each input score, in the order the pass
        concatenates them (documentation and a check of the input width).
    n_labels : int
        Number of target labels.
    entries : list of [input index, target index, threshold, bias(, ceiling)]
        Which input feeds which target, above which probability it counts
        (0 < threshold < 1), its bias in logits, and optionally the most it
        can give (0 < ceiling <= 1; 1, the default, is no ceiling).
    """

    inputs: list[str] = field(default_factory=list)
    n_labels: int = 1
    entries: list[list[float]] = field(default_factory=list)

    def __post_init__(self):
        frozen_tuple(self, "inputs", str)
        frozen_tuple(self, "entries", tuple)
        for entry in self.entries:
            if len(entry) not in (4, 5):
                raise ValueError(f"a tagmap entry is [input, target, threshold, bias(, ceiling)], not {entry!r}")
            source, target, threshold, _ = entry[:4]
            if not (0 <= int(source) < len(self.inputs) and 0 <= int(target) < self.n_labels):
                raise ValueError(f"tagmap entry {entry!r} is out of range")
            if not 0.0 < float(threshold) < 1.0:
                raise ValueError(f"tagmap threshold must be in (0, 1), not {threshold!r}")
            if len(entry) == 5 and not 0.0 < float(entry[4]) <= 1.0:
                raise ValueError(f"tagmap ceiling must be in (0, 1], not {entry[4]!r}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


def _ceiling_logits(entries: list[list[float]]) -> torch.Tensor:
    ceilings = torch.tensor([float(e[4]) if len(e) == 5 else 1.0 for e in entries], dtype=torch.float64)
    return torch.where(ceilings < 1.0, torch.logit(ceilings.clamp(max=1 - 1e-12)), torch.inf).float()


class Model(nn.Module):
    """The map as tensors: for each entry, its input, target, threshold
    logit minus bias, and ceiling logit (buffers, saved in the bundle's
    weights)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        entries = torch.tensor([list(e[:4]) for e in config.entries], dtype=torch.float64).reshape(-1, 4)
        self.register_buffer("source", entries[:, 0].long())
        self.register_buffer("target", entries[:, 1].long())
        self.register_buffer("offset", (torch.logit(entries[:, 2]) - entries[:, 3]).float())
        self.register_buffer("ceiling", _ceiling_logits(config.entries).reshape(-1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Maps written before ceilings existed have none: no ceiling.
        state_dict.setdefault(prefix + "ceiling", _ceiling_logits(self.config.entries).reshape(-1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        """Target logits, (batch, n_labels); -inf where no source maps."""
        if scores.shape[-1] != len(self.config.inputs):
            raise ValueError(f"tagmap expects {len(self.config.inputs)} input scores, got {scores.shape[-1]}")
        z = torch.logit(scores.float().clamp(_EPS, 1 - _EPS))[:, self.source] - self.offset
        z = torch.minimum(z, self.ceiling)
        out = torch.full((scores.shape[0], self.config.n_labels), float("-inf"), dtype=z.dtype, device=z.device)
        return out.scatter_reduce(1, self.target.expand(scores.shape[0], -1), z, reduce="amax", include_self=True)


def loss(*args, **kwargs):
    """A tag map is not trained: its entries are data."""
    raise NotImplementedError("tagmap bundles are written, not trained")


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: the source bundles' scores, concatenated, (len(inputs),)."""
    return (len(config.inputs),)


@torch.inference_mode()
def predict(model: Model, scores: torch.Tensor) -> torch.Tensor:
    """Target probabilities, (batch, n_labels)."""
    check_input(scores, input_shape(model.config), what=FAMILY)
    return torch.sigmoid(model(scores))


def build(*, inputs: list[str], labels: list[str], rules) -> tuple[Config, Model]:
    """A map from readable rules ``(input "bundle:label", target label,
    threshold, bias)`` or ``(..., bias, ceiling)``. Raises ValueError naming
    an unknown input or label."""
    index = {name: i for i, name in enumerate(inputs)}
    target = {name: i for i, name in enumerate(labels)}
    entries = []
    for rule in rules:
        source, label, threshold, bias, *rest = rule
        if source not in index:
            raise ValueError(f"tagmap rule names unknown input {source!r}")
        if label not in target:
            raise ValueError(f"tagmap rule names unknown target {label!r}")
        if len(rest) > 1:
            raise ValueError(f"a tagmap rule is (input, target, threshold, bias(, ceiling)), not {rule!r}")
        entry = [index[source], target[label], float(threshold), float(bias)]
        if rest and float(rest[0]) < 1.0:
            entry.append(float(rest[0]))
        entries.append(entry)
    config = Config(inputs=list(inputs), n_labels=len(labels), entries=entries)
    return config, Model(config)


prepare_for_inference = as_trained
