"""Decode a dataset once into log-mel matrices (in memory)."""

from __future__ import annotations

import functools
import sys
from typing import Sequence

import numpy as np

from tagcore.audio import AudioError, read_excerpts
from tagcore.features import MelParams, log_mel_spectrogram
from trainer.datasets import Record
from trainer.progress import Progress


def compute_log_mels(
    records: Sequence[Record],
    *,
    params: MelParams,
    max_seconds: float | None = None,
    workers: int = 2,
    timeout: float = 60.0,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Log-mel matrix (frames, n_mels) of each record, keyed by record key.

    At most ``max_seconds`` around the middle of each track are decoded
    (None: whole tracks). Returns (features, failures) where failures are
    messages naming the file and the cause; failed records are left out.
    """
    transform = functools.partial(log_mel_spectrogram, params=params)
    features: dict[str, np.ndarray] = {}
    failures: list[str] = []
    progress = Progress(len(records), label="decoding")
    for index, _path, result in read_excerpts(
        [r.path for r in records],
        sample_rate=params.sample_rate,
        duration=max_seconds,
        transform=transform,
        workers=workers,
        timeout=timeout,
    ):
        if isinstance(result, BaseException):
            failures.append(str(result))
        else:
            features[records[index].key] = result
        progress.update(1)
    progress.close()
    for message in failures:
        print(f"skipped: {message}", file=sys.stderr)
    return features, failures
