"""The model families of the seed papers, one module each.

Every family module has the same small shape:

- ``Config``: a dataclass of the paper's hyper-parameters (paper defaults);
- ``Model``: the ``torch.nn.Module``;
- ``loss(...)``: the paper's training loss (the triplet family's, tied to
  its online triplet mining, is training-only: :mod:`trainer.triplet_mining`);
- ``predict(...)``: model input to label scores.

A family whose bundles give embeddings too (``"outputs": ["scores",
"embedding"]``) has ``Model.embed`` (or a module-level ``embed``) and may
have ``predict_with_embedding`` doing both in one forward. A family may
have ``prepare_for_inference(model) -> model`` (e.g. batch norm folded into
convolutions), which :func:`tagcore.bundle.load_bundle` applies. Text
families have ``predict_texts(model, texts) -> (batch, n_labels)``.

``FAMILIES`` maps the family name stored in a bundle's ``config.json`` to
its module path; :func:`family_module` imports it lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict
from types import ModuleType

FAMILIES = {
    # seed 002: audio genre classifier (CNN + GRU), monolabel training,
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
    # seed 004: sample-level CNN on raw waveforms (Lee et al. 2017's 3^9
    # model) trained with playlist-based tag propagation.
    "samplecnn": "tagcore.families.samplecnn",
    # seed 001: LSI-guided triplet embeddings (DPNN, 256-d) for similarity.
    "triplet": "tagcore.families.triplet",
    # seed 003: genre from lyrics, LSTM with attention over GloVe (text input).
    "lyrics": "tagcore.families.lyrics",
    # seed 000: review-driven multi-label styles (HAN + label graph + soft
    # training), text input (an album's reviews).
    "han": "tagcore.families.han",
}


def config_from_dict(cls, data: dict, *, what: str):
    """``cls(**data)`` for a family's Config dataclass, refusing keys it
    does not know (a ValueError naming them and ``what`` the config is)."""
    unknown = set(data) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    return cls(**data)


def config_to_dict(config) -> dict:
    """A family's Config dataclass as a JSON-ready dict: tuples (channel
    widths, pooling shapes, vocabularies) become lists, nested ones too."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    return {name: plain(value) for name, value in asdict(config).items()}


def family_module(name: str) -> ModuleType:
    """Import and return the module of model family ``name``."""
    try:
        return importlib.import_module(FAMILIES[name])
    except KeyError:
        raise ValueError(
            f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}"
        ) from None
