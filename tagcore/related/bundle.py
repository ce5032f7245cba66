"""The related-tags bundle on disk: ``config.json`` and
``weights.safetensors``; the only file access of :mod:`tagcore.related`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tagcore.related.index import RelatedIndex, Source
from tagcore.related.vocabulary import Tag, Vocabulary

RELATED_FORMAT = "tagcore-related-tags"
VECTORS_FILE = "weights.safetensors"


def save_index(directory, index: RelatedIndex, *, name: str, version: str, provenance: dict,
               metrics: dict | None = None, defaults: dict | None = None) -> None:
    """Write ``index`` as a related-tags bundle: ``config.json`` (format,
    vocabulary as [name, kind, count], sources' names and weights, aliases,
    provenance, metrics) and ``weights.safetensors`` (one float32 tensor per
    source: vectors (n, d) or a square similarity). Written to a temporary
    sibling folder that replaces ``directory`` once complete."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tensors, sources = {}, []
    for s in index.sources:
        kind = "vectors" if s.vectors is not None else "similarity"
        tensors[s.name] = np.ascontiguousarray((s.vectors if s.vectors is not None else s.similarity), dtype=np.float32)
        sources.append({"name": s.name, "weight": s.weight, "kind": kind, "fallback": s.fallback, "names": list(s.names),
                        "kinds": s.kinds})
    config = {
        "format": RELATED_FORMAT, "format_version": 1, "name": name, "version": str(version),
        "vocabulary": [[t.name, t.kind, t.count] for t in index.vocabulary.tags],
        "sources": sources, "aliases": index.aliases, "defaults": defaults or {},
        "provenance": provenance, "metrics": metrics or {},
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(tensors, str(staging / VECTORS_FILE))
        (staging / "config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        for f in staging.iterdir():
            f.chmod(0o644)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            os.replace(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class RelatedBundleError(ValueError):
    """A related-tags bundle cannot be read; the message names the file."""


def default_related_bundle():
    """The shipped related-tags bundle's folder (tagcore/bundles/related-tags)."""
    return Path(__file__).resolve().parents[1] / "bundles" / "related-tags"


def load_index(directory=None) -> tuple[RelatedIndex, dict]:
    """Read a related-tags bundle (default: the shipped one); returns the
    index and its config. Raises RelatedBundleError naming the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory) if directory is not None else default_related_bundle()
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RelatedBundleError(f"{config_path}: cannot read ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != RELATED_FORMAT:
        raise RelatedBundleError(f"{config_path}: not a {RELATED_FORMAT} bundle")
    try:
        tensors = load_file(str(directory / VECTORS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RelatedBundleError(f"{directory / VECTORS_FILE}: cannot read ({exc})") from None
    try:
        vocabulary = Vocabulary([Tag(str(n), str(k), int(c)) for n, k, c in config["vocabulary"]])
        sources = []
        for s in config["sources"]:
            array = tensors[s["name"]]
            if s["kind"] == "vectors":
                sources.append(Source(s["name"], list(s["names"]), float(s["weight"]), vectors=array,
                                      fallback=bool(s.get("fallback")), kinds=s.get("kinds")))
            else:
                sources.append(Source(s["name"], list(s["names"]), float(s["weight"]), similarity=array,
                                      fallback=bool(s.get("fallback")), kinds=s.get("kinds")))
        aliases = {str(k): (str(v) if isinstance(v, str) else [str(x) for x in v])
                   for k, v in (config.get("aliases") or {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise RelatedBundleError(f"{config_path}: malformed ({exc})") from None
    return RelatedIndex(vocabulary, sources, aliases), config
