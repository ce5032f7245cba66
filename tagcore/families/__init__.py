"""The model families, one module each, and the contract they all follow.

A family module declares what it is (checked by :func:`family_module` and
by tests/test_families.py):

- ``FAMILY``: its name, the ``"family"`` of its bundles' ``config.json``;
- ``INPUT``: what its bundles read, one of :data:`INPUT_KINDS`: ``"audio"``
  (an audio feature's patches), ``"backbone"`` (another bundle's
  embedding), ``"scores"`` (other bundles' label scores) or ``"text"``
  (lyrics, reviews...);
- ``OUTPUTS``: what its bundles may give, drawn from ``("scores",
  "embedding")``;
- ``Config``: a frozen dataclass of its hyper-parameters (paper defaults)
  with ``to_dict()`` / ``from_dict(data)``, the ``"model"`` object of a
  bundle's ``config.json`` (:func:`config_from_dict`, :func:`config_to_dict`);
- ``Model``: the ``torch.nn.Module``, built as ``Model(config)``;
- ``prepare_for_inference(model) -> model``: what
  :func:`tagcore.bundle.load_bundle` applies once the weights are in (batch
  norm folded into convolutions, say; :func:`as_trained` for most);
- what the analysis pass calls for its input kind (:class:`AudioFamily`,
  :class:`VectorFamily`, :class:`TextFamily`).

A family's training loss may sit beside its model (``loss``) but is no
part of the contract: the engine never calls it. Training-only machinery
lives in the trainer (triplet mining: :mod:`trainer.triplet_mining`;
monolabel sampling: :mod:`trainer.monolabel`).

:data:`FAMILIES` is the one registry: family name -> module path, imported
lazily by :func:`family_module`. Adding a family is one module here, one
line in :data:`FAMILIES`, one ``Example`` in tests/test_families.py (the
contract test fails until it is there) and its trainer.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any, Protocol, runtime_checkable

#: What a bundle reads (its ``input.kind``), by the family that runs it.
INPUT_KINDS = ("audio", "backbone", "scores", "text")
#: What a forward pass can give.
OUTPUT_KINDS = ("scores", "embedding")

FAMILIES = {
    # the disambig paper: audio genre classifier (CNN + GRU), monolabel training,
    # genre tag embeddings for related tags, duplicates, translation.
    "disambig": "tagcore.families.disambig",
    # Small classifiers on a frozen backbone's embedding (logistic
    # regression or MLP), run in the same pass as their backbone.
    "head": "tagcore.families.head",
    # Tag maps: labels of one vocabulary from other bundles' scores (data,
    # not trained), e.g. musicnn's tags onto beets' genre names.
    "tagmap": "tagcore.families.tagmap",
    # musicnn 0.1.0 (Pons & Serra 2019): pre-trained MSD/MTT taggers, ported.
    "musicnn": "tagcore.families.musicnn",
    # the samplecnn paper: sample-level CNN on raw waveforms (Lee et al. 2017's 3^9
    # model) trained with playlist-based tag propagation.
    "samplecnn": "tagcore.families.samplecnn",
    # the triplet paper: LSI-guided triplet embeddings (DPNN, 256-d) for similarity.
    "triplet": "tagcore.families.triplet",
    # the lyrics paper: genre from lyrics, LSTM with attention over GloVe (text input).
    "lyrics": "tagcore.families.lyrics",
    # Bag of words and word pairs (TF-IDF) and a linear softmax, calibrated:
    # text input (the default lyrics genre model, trainer.lyrics).
    "ngram": "tagcore.families.ngram",
    # the han paper: review-driven multi-label styles (HAN + label graph + soft
    # training), text input (an album's reviews).
    "han": "tagcore.families.han",
}


# --- The contract ------------------------------------------------------------


@runtime_checkable
class FamilyConfig(Protocol):
    """A family's ``Config``: a frozen dataclass, written to and read from
    the ``"model"`` object of a bundle's ``config.json``."""

    def to_dict(self) -> dict: ...

    @classmethod
    def from_dict(cls, data: dict) -> FamilyConfig: ...


@runtime_checkable
class Family(Protocol):
    """What every family module declares (see the module docstring)."""

    FAMILY: str
    INPUT: str
    OUTPUTS: tuple[str, ...]
    Config: type
    Model: type

    def prepare_for_inference(self, model: Any) -> Any: ...


@runtime_checkable
class AudioFamily(Family, Protocol):
    """``INPUT == "audio"``: batches of patches of the bundle's audio
    feature, (patches, ...) as :func:`tagcore.features.compute_feature`
    gives them. Tensors in, tensors out (batch first)."""

    #: Patches per forward pass on a CPU (the analysis pass takes at least
    #: 256 on a GPU).
    INFERENCE_CHUNK: int

    def input_shape(self, config: Any) -> tuple[int | None, ...]:
        """Shape of one input (a patch), None where any size goes."""

    def predict(self, model: Any, x: Any) -> Any:
        """Label probabilities (batch, n_labels)."""

    def embed(self, model: Any, x: Any) -> Any:
        """Embeddings (batch, embedding_dim)."""

    def predict_with_embedding(self, model: Any, x: Any) -> tuple[Any, Any]:
        """Both, from one forward pass."""


@runtime_checkable
class VectorFamily(Family, Protocol):
    """``INPUT`` ``"backbone"`` (an embedding, (batch, n_inputs)) or
    ``"scores"`` (other bundles' probabilities, concatenated in the order
    the bundle lists them, (batch, n_inputs))."""

    def input_shape(self, config: Any) -> tuple[int | None, ...]:
        """``(n_inputs,)``: the length of one input vector."""

    def predict(self, model: Any, x: Any) -> Any:
        """Label probabilities (batch, n_labels) of a float32 tensor."""


@runtime_checkable
class TextFamily(Family, Protocol):
    """``INPUT == "text"``: raw texts (an album's reviews, a song's lyrics).

    One rule for a text the model cannot read (no words, another language):
    its row is NaN, "no prediction", and its reason is given
    (:func:`texts_checked`); never a row of zeros, which would read as a
    confident "none of these labels"."""

    def predict_texts_checked(self, model: Any, texts: Sequence[str]) -> tuple[Any, list[str | None]]:
        """Probabilities (len(texts), n_labels) float32, NaN rows for the
        texts it cannot read, and per text None or why it was not read."""

    def predict_texts(self, model: Any, texts: Sequence[str]) -> Any:
        """The probabilities of :meth:`predict_texts_checked` alone."""


#: The protocol a family of each input kind follows.
PROTOCOLS: dict[str, type] = {"audio": AudioFamily, "backbone": VectorFamily, "scores": VectorFamily,
                              "text": TextFamily}


def family_module(name: str) -> Family:
    """Import and return the module of model family ``name``.

    Raises ValueError for a name not in :data:`FAMILIES` (naming the closest
    one) and TypeError for a module that breaks the contract."""
    from tagcore.spelling import did_you_mean

    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}"
                         f"{did_you_mean(name, FAMILIES)}")
    key = (name, FAMILIES[name])
    if key not in _CHECKED:
        module = importlib.import_module(FAMILIES[name])
        check_family(module, name=name)
        _CHECKED[key] = module
    return _CHECKED[key]


#: (name, module path) -> the module, once checked (the pass asks per batch).
_CHECKED: dict[tuple[str, str], Any] = {}


def check_family(module: Any, *, name: str) -> None:
    """Raise TypeError naming what ``module`` lacks to be family ``name``."""
    kind = getattr(module, "INPUT", None)
    if kind not in INPUT_KINDS:
        raise TypeError(f"family {name}: INPUT must be one of {list(INPUT_KINDS)}, not {kind!r}")
    protocol = PROTOCOLS[kind]
    missing = [member for member in _members(protocol) if not hasattr(module, member)]
    if missing:
        raise TypeError(f"family {name} ({kind} input) lacks {', '.join(missing)}")
    if module.FAMILY != name:
        raise TypeError(f"family {name}: its module says FAMILY = {module.FAMILY!r}")
    outputs = tuple(module.OUTPUTS)
    if not outputs or not set(outputs) <= set(OUTPUT_KINDS):
        raise TypeError(f"family {name}: OUTPUTS must be drawn from {list(OUTPUT_KINDS)}, not {outputs!r}")


def _members(protocol: type) -> list[str]:
    """The attribute and method names a protocol declares, its bases' too."""
    names: dict[str, None] = {}
    for cls in reversed(protocol.__mro__):
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        names.update(dict.fromkeys(getattr(cls, "__annotations__", {})))
        names.update(dict.fromkeys(k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")))
    return list(names)


# --- Helpers every family uses ------------------------------------------------


def as_trained(model: Any) -> Any:
    """``prepare_for_inference`` of a family that needs none: the model as is."""
    return model


def check_input(x: Any, shape: Sequence[int | None], *, what: str) -> None:
    """Refuse a batch ``x`` (tensor or array) that is not (batch, *shape),
    None in ``shape`` matching any size: a ValueError (a TypeError for
    something without a shape) naming ``what`` reads it and both shapes."""
    got = getattr(x, "shape", None)
    if got is None:
        raise TypeError(f"{what} expects a tensor of shape {_shape_text(shape)}, not {type(x).__name__}")
    got = tuple(got)
    if len(got) != len(shape) + 1 or any(want not in (None, n) for want, n in zip(shape, got[1:])):
        raise ValueError(f"{what} expects input of shape {_shape_text(shape)}, got {got}")


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join(["batch", *("any" if n is None else str(n) for n in shape)]) + ")"


def check_texts(texts: Any, *, what: str) -> list[str]:
    """``texts`` (any iterable of strings) as a list (None read as ""), or
    a TypeError naming ``what`` reads them: a bare string is not a list of
    texts."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise TypeError(f"{what} expects a sequence of texts, not {type(texts).__name__}")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not (t is None or isinstance(t, str))]
    if bad:
        raise TypeError(f"{what} expects texts as str, not {bad[0]}")
    return ["" if t is None else t for t in texts]


def config_from_dict(cls, data: dict, *, what: str):
    """``cls(**data)`` for a family's Config dataclass. Refuses a key it
    does not know with a ValueError naming it, ``what`` the config is, and
    the closest known key."""
    from tagcore.spelling import did_you_mean

    if not isinstance(data, dict):
        raise TypeError(f"the {what} config must be an object, not {type(data).__name__}")
    known = list(cls.__dataclass_fields__)
    for key in sorted(set(data) - set(known)):
        raise ValueError(f"unknown {what} config key {key!r}{did_you_mean(key, known)}")
    return cls(**data)


def config_to_dict(config) -> dict:
    """A family's Config dataclass as a JSON-ready dict: tuples (channel
    widths, pooling shapes, vocabularies) become lists, nested ones too."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    return {name: plain(value) for name, value in asdict(config).items()}


def frozen_tuple(config, name: str, convert=lambda v: v) -> None:
    """In a frozen Config's ``__post_init__``: store field ``name`` as a
    tuple of ``convert(item)`` (JSON gives lists)."""
    object.__setattr__(config, name, tuple(convert(v) for v in getattr(config, name)))


def texts_checked(rows: Sequence[int], probs: Any, problems: Sequence[str | None], *, n_labels: int):
    """The one rule of the text families: (len(problems), n_labels) float32
    probabilities, ``probs`` (len(rows), n_labels) in the ``rows`` of the
    texts that were read, NaN ("no prediction") in the others; and the
    problems as a list. ``rows`` must be the texts whose problem is None."""
    import numpy as np

    if list(rows) != [i for i, problem in enumerate(problems) if problem is None]:
        raise ValueError("texts_checked: rows must be exactly the texts without a problem")
    out = np.full((len(problems), n_labels), np.nan, dtype=np.float32)
    if len(rows):
        out[list(rows)] = probs
    return out, list(problems)
