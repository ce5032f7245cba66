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

An optional **gate** keeps a map's labels consistent with one decision
among competing classes (the mood map's and energy map's: the quadrant
head's four quadrants). Per item:

    candidates = the gate's classes left by the vetoes (an input at or above
                 a veto's threshold keeps only the veto's classes)
    decided    = the candidates whose probability >= margin x the best
                 candidate's (margin 1: the best alone; ties join)
    a gated label scores 0 unless decided is not empty and every decided
    class is among its classes (exact labels: decided equals its classes)

so two gated labels whose classes are disjoint never both score above 0
("happy" of Q1 and "sad" of Q3), and a word shared by two classes ("mellow"
of Q3 and Q4) can be written when the decision is between them. Labels
the gate does not name are never masked.

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
    gate_inputs : list of int
        Input indices of the gate's competing classes (probabilities);
        empty: no gate.
    gate_margin : float
        A class joins the decision when its probability is at least this
        share of the best candidate's (0 < margin <= 1).
    gate_vetoes : list of [input index, threshold, class position, ...]
        When the input is at or above the threshold, only these classes
        (positions in ``gate_inputs``) stay candidates.
    gate_labels : list of [target index, exact, class position, ...]
        A gated label and its classes; ``exact`` 1: written only when the
        decision is exactly its classes, 0: when the decision is within them.
    """

    inputs: list[str] = field(default_factory=list)
    n_labels: int = 1
    entries: list[list[float]] = field(default_factory=list)
    gate_inputs: list[int] = field(default_factory=list)
    gate_margin: float = 1.0
    gate_vetoes: list[list[float]] = field(default_factory=list)
    gate_labels: list[list[int]] = field(default_factory=list)

    def __post_init__(self):
        frozen_tuple(self, "inputs", str)
        frozen_tuple(self, "entries", tuple)
        frozen_tuple(self, "gate_inputs", int)
        frozen_tuple(self, "gate_vetoes", tuple)
        frozen_tuple(self, "gate_labels", lambda e: tuple(int(v) for v in e))
        object.__setattr__(self, "gate_margin", float(self.gate_margin))
        _check_gate(self)
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
        """The config as JSON; a map without a gate leaves the gate keys out
        (maps written before gates existed read back the same)."""
        data = config_to_dict(self)
        if not self.gate_inputs:
            for key in ("gate_inputs", "gate_margin", "gate_vetoes", "gate_labels"):
                data.pop(key)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


def _check_gate(config: Config) -> None:
    """Raise ValueError naming the first malformed part of the gate."""
    n_classes = len(config.gate_inputs)
    if any(not 0 <= i < len(config.inputs) for i in config.gate_inputs):
        raise ValueError(f"tagmap gate_inputs {list(config.gate_inputs)!r} are out of range")
    if not 0.0 < config.gate_margin <= 1.0:
        raise ValueError(f"tagmap gate_margin must be in (0, 1], not {config.gate_margin!r}")
    if (config.gate_vetoes or config.gate_labels) and not n_classes:
        raise ValueError("tagmap gate_vetoes and gate_labels need gate_inputs")
    for veto in config.gate_vetoes:
        if (len(veto) < 3 or not 0 <= int(veto[0]) < len(config.inputs) or not 0.0 < float(veto[1]) < 1.0
                or any(not 0 <= int(c) < n_classes for c in veto[2:])):
            raise ValueError(f"a tagmap gate veto is [input, threshold in (0, 1), class, ...], not {list(veto)!r}")
    for entry in config.gate_labels:
        if (len(entry) < 3 or not 0 <= entry[0] < config.n_labels or entry[1] not in (0, 1)
                or any(not 0 <= c < n_classes for c in entry[2:])):
            raise ValueError(f"a tagmap gate label is [target, exact 0/1, class, ...], not {list(entry)!r}")


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
        # The gate lives in config.json only (non-persistent buffers), so
        # maps written before gates existed load unchanged.
        n_classes = len(config.gate_inputs)
        classes = torch.zeros(config.n_labels, max(n_classes, 1), dtype=torch.bool)
        gated, exact = torch.zeros(config.n_labels, dtype=torch.bool), torch.zeros(config.n_labels, dtype=torch.bool)
        for target, is_exact, *members in config.gate_labels:
            classes[target, members] = True
            gated[target], exact[target] = True, bool(is_exact)
        vetoes = torch.zeros(len(config.gate_vetoes), max(n_classes, 1), dtype=torch.bool)
        for k, (_, _, *members) in enumerate(config.gate_vetoes):
            vetoes[k, [int(c) for c in members]] = True
        self.register_buffer("gate_index", torch.tensor(config.gate_inputs, dtype=torch.long), persistent=False)
        self.register_buffer("gate_classes", classes, persistent=False)
        self.register_buffer("gate_gated", gated, persistent=False)
        self.register_buffer("gate_exact", exact, persistent=False)
        self.register_buffer("veto_input", torch.tensor([int(v[0]) for v in config.gate_vetoes], dtype=torch.long),
                             persistent=False)
        self.register_buffer("veto_threshold", torch.tensor([float(v[1]) for v in config.gate_vetoes]),
                             persistent=False)
        self.register_buffer("veto_classes", vetoes, persistent=False)

    def decided(self, scores: torch.Tensor) -> torch.Tensor:
        """(batch, classes) booleans: the gate's decided classes per item
        (all False when the vetoes leave no candidate)."""
        p = scores.float()[:, self.gate_index]
        candidate = torch.ones_like(p, dtype=torch.bool)
        if len(self.veto_input):
            fired = scores.float()[:, self.veto_input] >= self.veto_threshold  # (batch, vetoes)
            excluded = fired[:, :, None] & ~self.veto_classes[None]  # (batch, vetoes, classes)
            candidate &= ~excluded.any(dim=1)
        p = torch.where(candidate, p, torch.full_like(p, -1.0))
        best = p.max(dim=1, keepdim=True).values
        return candidate & (p >= self.config.gate_margin * best)

    def allowed(self, scores: torch.Tensor) -> torch.Tensor:
        """(batch, n_labels) booleans: labels the gate lets through."""
        decided = self.decided(scores)[:, None, :]  # (batch, 1, classes)
        classes = self.gate_classes[None]  # (1, labels, classes)
        within = ~(decided & ~classes).any(dim=-1)
        exact = ~(decided ^ classes).any(dim=-1)
        ok = torch.where(self.gate_exact[None], exact, within) & decided.any(dim=-1)
        return ok | ~self.gate_gated[None]

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
        out = out.scatter_reduce(1, self.target.expand(scores.shape[0], -1), z, reduce="amax", include_self=True)
        if len(self.gate_index):
            out = out.masked_fill(~self.allowed(scores), float("-inf"))
        return out


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


def _gate_fields(gate: dict | None, index: dict[str, int], target: dict[str, int]) -> dict:
    """The Config's gate fields from a readable gate: ``{"classes": [input
    names], "margin": m, "vetoes": [(input, threshold, [classes])],
    "labels": {label: [classes]}, "exact": [labels]}``."""
    if not gate:
        return {}

    def known(name: str, table: dict[str, int], what: str) -> int:
        if name not in table:
            raise ValueError(f"tagmap gate names unknown {what} {name!r}")
        return table[name]

    classes = {name: k for k, name in enumerate(gate["classes"])}
    return {
        "gate_inputs": [known(c, index, "input") for c in gate["classes"]],
        "gate_margin": float(gate.get("margin", 1.0)),
        "gate_vetoes": [[known(source, index, "input"), float(threshold), *(known(c, classes, "class") for c in keep)]
                        for source, threshold, keep in gate.get("vetoes", ())],
        "gate_labels": [[known(label, target, "target"), int(label in gate.get("exact", ())),
                         *(known(c, classes, "class") for c in members)]
                        for label, members in gate.get("labels", {}).items()],
    }


def build(*, inputs: list[str], labels: list[str], rules, gate: dict | None = None) -> tuple[Config, Model]:
    """A map from readable rules ``(input "bundle:label", target label,
    threshold, bias)`` or ``(..., bias, ceiling)``, and an optional readable
    gate (:func:`_gate_fields`). Raises ValueError naming an unknown input,
    label or class."""
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
    config = Config(inputs=list(inputs), n_labels=len(labels), entries=entries,
                    **_gate_fields(gate, index, target))
    return config, Model(config)


prepare_for_inference = as_trained
