"""The model families of the seed papers, one module each.

Every family module has the same small shape:

- ``Config``: a dataclass of the paper's hyper-parameters (paper defaults);
- ``Model``: the ``torch.nn.Module``;
- ``loss(...)``: the paper's training loss;
- ``predict(...)``: model input to label scores.

``FAMILIES`` maps the family name stored in a bundle's ``config.json`` to
its module path; :func:`family_module` imports it lazily.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES = {
    # seed 002: audio genre classifier (CNN + GRU), monolabel training,
    # genre tag embeddings for related tags, duplicates, translation.
    "disambig": "tagcore.families.disambig",
}


def family_module(name: str) -> ModuleType:
    """Import and return the module of model family ``name``."""
    try:
        return importlib.import_module(FAMILIES[name])
    except KeyError:
        raise ValueError(
            f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}"
        ) from None
