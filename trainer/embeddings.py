"""Per-patch outputs of audio backbones over a dataset, cached on disk.

Heads, tag mappings and the patch-count study all start from the same
numbers: for each file, the tag probabilities and the penultimate-layer
embedding of each backbone (musicnn-msd, musicnn-mtt) for each 3 s patch
of a centred excerpt. Decoding and the mel run once per file in the
analysis pass's workers (:func:`tagcore.analysis.decode_features`); the
backbones share the mel when their feature parameters are equal.

The cache is one ``.npz`` per (bundles and versions, feature, files and
their content, :func:`trainer.cache.file_identity`) under the user cache directory: a second call with
the same inputs reads it back in milliseconds.

Example
-------
>>> out = backbone_outputs(paths, bundles=["musicnn-msd"], patches=10)   # doctest: +SKIP
>>> out["musicnn-msd"].track_embeddings(patches=3).shape                  # doctest: +SKIP
(100, 200)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trainer.cache import file_identity


@dataclass
class PatchOutputs:
    """One backbone's outputs over a dataset.

    Attributes
    ----------
    labels : list of str
        The backbone's tags.
    scores : np.ndarray, shape (files, patches, labels), float32
        Tag probabilities per patch; NaN where a file had fewer patches.
    embeddings : np.ndarray, shape (files, patches, dim), float32
        Embedding per patch; NaN likewise.
    counts : np.ndarray, shape (files,), int
        Patches each file gave (0: it failed; ``errors`` says why).
    errors : dict
        File index -> message.
    """

    labels: list[str]
    scores: np.ndarray
    embeddings: np.ndarray
    counts: np.ndarray
    errors: dict[int, str]

    def _central(self, array: np.ndarray, patches: int | None) -> np.ndarray:
        """Mean over the ``patches`` central patches of each file (all when
        None); NaN rows for failed files."""
        out = np.full((array.shape[0], array.shape[2]), np.nan, np.float32)
        for i, count in enumerate(self.counts):
            if count == 0:
                continue
            take = count if patches is None else min(patches, count)
            start = (count - take) // 2
            out[i] = array[i, start : start + take].mean(axis=0)
        return out

    def track_scores(self, *, patches: int | None = None) -> np.ndarray:
        """(files, labels): tag probabilities averaged over central patches."""
        return self._central(self.scores, patches)

    def track_embeddings(self, *, patches: int | None = None) -> np.ndarray:
        """(files, dim): embeddings averaged over central patches."""
        return self._central(self.embeddings, patches)

    @property
    def ok(self) -> np.ndarray:
        return self.counts > 0


def _cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("beets-autotagml")) / "backbone-outputs"


def _fingerprint(paths: Sequence[str], configs: list[dict], feature: dict) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([[c["name"], str(c["version"])] for c in configs]).encode())
    digest.update(json.dumps(feature, sort_keys=True).encode())
    for path in paths:
        digest.update(f"{file_identity(path)}\n".encode())
    return digest.hexdigest()[:24]


def _read_cache(cache_file: Path, loaded) -> dict[str, PatchOutputs]:
    """The outputs of the bundles ``loaded`` stored in ``cache_file``."""
    with np.load(cache_file, allow_pickle=False) as data:
        errors = json.loads(str(data["errors"]))
        return {
            b.name: PatchOutputs(b.labels, data[f"{b.name}/scores"], data[f"{b.name}/embeddings"],
                                 data["counts"], {int(k): v for k, v in errors.items()})
            for b in loaded
        }


def _write_cache(cache_file: Path, outputs: dict[str, PatchOutputs]) -> None:
    """Store ``outputs`` (of bundles sharing counts and errors) in
    ``cache_file``, through a staging file replaced atomically."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    staging = cache_file.with_suffix(".partial.npz")
    first = next(iter(outputs.values()))
    arrays = {"counts": first.counts, "errors": np.array(json.dumps(first.errors))}
    for name, out in outputs.items():
        arrays[f"{name}/scores"] = out.scores
        arrays[f"{name}/embeddings"] = out.embeddings
    np.savez(staging, **arrays)
    os.replace(staging, cache_file)


def _compute_outputs(paths: list[str], loaded, params, *, patches: int, workers: int,
                     progress: bool) -> dict[str, PatchOutputs]:
    """Decode every file into ``params``' patches (in ``workers``
    processes) and run each bundle of ``loaded`` on them. Rows of files
    that fail stay NaN, with their error kept."""
    import torch

    from tagcore.analysis import decode_features
    from tagcore.audio import AudioError
    from tagcore.families import family_module
    from tagcore.features import feature_key
    from tagcore.workers import map_files

    n = len(paths)
    dims = [b.config["embedding_dim"] for b in loaded]
    scores = [np.full((n, patches, len(b.labels)), np.nan, np.float32) for b in loaded]
    embeds = [np.full((n, patches, d), np.nan, np.float32) for d in dims]
    counts = np.zeros(n, np.int32)
    errors: dict[int, str] = {}
    key = feature_key(params)
    job = functools.partial(decode_features, features=((key, params),), min_duration=params.min_samples / params.sample_rate)
    families = [family_module(b.family) for b in loaded]
    done = 0
    for index, _path, result in map_files(paths, job=job, workers=workers, timeout=120.0):
        value = result if isinstance(result, AudioError) else result.features[key]
        done += 1
        if isinstance(value, AudioError):
            errors[index] = str(value)
        else:
            x = torch.from_numpy(value)
            counts[index] = len(value)
            with torch.inference_mode():
                for slot, (bundle, family) in enumerate(zip(loaded, families)):
                    probs, embedding = family.predict_with_embedding(bundle.model, x)
                    scores[slot][index, : len(value)] = probs.numpy()
                    embeds[slot][index, : len(value)] = embedding.numpy()
        if progress and (done % 50 == 0 or done == n):
            print(f"  backbone outputs: {done}/{n} files", flush=True)
    return {b.name: PatchOutputs(b.labels, s, e, counts, errors) for b, s, e in zip(loaded, scores, embeds)}


def backbone_outputs(
    paths: Sequence[str],
    *,
    bundles: Sequence[str] = ("musicnn-msd", "musicnn-mtt"),
    patches: int = 10,
    workers: int = 2,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, PatchOutputs]:
    """Per-patch tag probabilities and embeddings of ``bundles`` for ``paths``.

    Parameters
    ----------
    paths : sequence of str
        Audio files.
    bundles : sequence of str
        Audio bundles giving scores and embeddings, all on the same log-mel
        patches (their excerpt is widened to ``patches`` patches, centred).
    patches : int
        Patches of the centred excerpt (10 x 3 s = 30 s for musicnn).
    workers : int
        Decoding processes.
    cache_dir : path or None
        Where the ``.npz`` cache goes (default: the user cache directory).

    Returns
    -------
    dict
        bundle name -> :class:`PatchOutputs`, rows in the order of ``paths``.
    """
    from tagcore.bundle import BundleError, load_bundle
    from tagcore.features import feature_key, feature_spec

    loaded = [load_bundle(name) for name in bundles]
    base = {feature_key(b.features) for b in loaded}
    if len(base) != 1 or loaded[0].features.patch_frames == 0:
        raise BundleError(f"{', '.join(bundles)}: backbones must share one patched log-mel feature")
    params = dataclasses.replace(loaded[0].features, excerpt_frames=patches * loaded[0].features.patch_frames)
    paths = [os.fspath(p) for p in paths]
    cache = Path(cache_dir) if cache_dir else _cache_root()
    cache_file = cache / f"{_fingerprint(paths, [b.config for b in loaded], feature_spec(params))}.npz"
    if cache_file.is_file():
        return _read_cache(cache_file, loaded)
    outputs = _compute_outputs(paths, loaded, params, patches=patches, workers=workers, progress=progress)
    _write_cache(cache_file, outputs)
    return outputs
