"""Raw-waveform excerpts of a dataset, decoded once and kept in one ``.npz``.

The sample-level CNN (:mod:`tagcore.families.samplecnn`) reads raw audio;
training on a dataset needs a few model inputs per track many times. They
are cut exactly as the analysis pass cuts them at tagging time
(:func:`tagcore.analysis.decode_features` with a
:class:`tagcore.features.WaveParams`: centred, non-overlapping patches of
``patch_samples`` at ``sample_rate``), stored as float16 in one ``.npz``
under the user cache directory, keyed by the files' content (trainer.cache.file_identity)
and the feature parameters. A second call with the same inputs reads it back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore.features import WaveParams, feature_key, feature_spec
from trainer.cache import file_identity


@dataclass
class Waveforms:
    """Excerpts of a dataset.

    ``audio``: (files, patches, patch_samples) float16, zeros where a file
    gave fewer patches; ``counts``: (files,) patches each file gave (0: it
    failed, ``errors`` says why, by file index)."""

    audio: np.ndarray
    counts: np.ndarray
    errors: dict[int, str]


def _cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("beets-autotagml")) / "waveforms"


def _fingerprint(paths: Sequence[str], params: WaveParams) -> str:
    digest = hashlib.sha256(json.dumps(feature_spec(params), sort_keys=True).encode())
    for path in paths:
        digest.update(f"{file_identity(path)}\n".encode())
    return digest.hexdigest()[:24]


def waveform_excerpts(paths: Sequence[str], *, params: WaveParams, workers: int = 1,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Waveforms:
    """The ``params.patches`` centred waveform patches of every file (see
    the module docstring); rows in the order of ``paths``. A file that
    cannot be decoded, or holds less than one patch, gets count 0 and a
    message in ``errors``; the others are kept."""
    from tagcore.analysis import decode_features
    from tagcore.audio import AudioError
    from tagcore.workers import map_files

    paths = [os.fspath(p) for p in paths]
    cache = Path(cache_dir) if cache_dir else _cache_root()
    cache_file = cache / f"{_fingerprint(paths, params)}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as data:
            errors = {int(k): v for k, v in json.loads(str(data["errors"])).items()}
            return Waveforms(data["audio"], data["counts"], errors)
    key = feature_key(params)
    audio = np.zeros((len(paths), params.patches, params.patch_samples), np.float16)
    counts = np.zeros(len(paths), np.int32)
    errors: dict[int, str] = {}
    job = functools.partial(decode_features, features=((key, params),),
                            min_duration=params.min_samples / params.sample_rate)
    for done, (index, _, result) in enumerate(map_files(paths, job=job, workers=workers, timeout=120.0), start=1):
        value = result if isinstance(result, AudioError) else result.features[key]
        if isinstance(value, AudioError):
            errors[index] = str(value)
        else:
            counts[index] = len(value)
            audio[index, : len(value)] = value.astype(np.float16)
        if progress and (done % 50 == 0 or done == len(paths)):
            print(f"  waveforms: {done}/{len(paths)} files", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache_file.with_suffix(".partial.npz")
    np.savez(staging, audio=audio, counts=counts, errors=np.array(json.dumps(errors)))
    os.replace(staging, cache_file)
    return Waveforms(audio, counts, errors)
