"""The path of one track through the engine: file -> excerpt -> features ->
model -> label scores. Decoding runs in worker processes (bounded time per
file); the model runs in this process on batches of equal-length inputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from tagcore.audio import AudioError, read_excerpts
from tagcore.bundle import Bundle
from tagcore.features import excerpt_features


@dataclass
class TrackResult:
    """Outcome for one input path: ``scores`` (label -> probability) or an
    ``error`` message naming the file and the cause. ``index`` is the
    position of the path in the input."""

    index: int
    path: str
    scores: dict[str, float] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def top_labels(scores: dict[str, float], *, threshold: float, count: int) -> list[tuple[str, float]]:
    """At most ``count`` (label, score) pairs with score >= ``threshold``,
    best first; ties broken by label for a stable order."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(label, score) for label, score in ranked if score >= threshold][: max(count, 0)]


class Tagger:
    """Scores audio files with one bundle.

    Parameters
    ----------
    bundle : Bundle
        A loaded bundle (:func:`tagcore.bundle.load_bundle`).
    batch_size : int
        Inputs per forward pass.
    workers : int
        Decoding processes (0 = decode in this process, no timeout).
    timeout : float
        Seconds allowed to decode one file before it is reported as failed.
    """

    def __init__(self, bundle: Bundle, *, batch_size: int = 16, workers: int = 2, timeout: float = 30.0):
        self.bundle = bundle
        self.params = bundle.features
        self.batch_size = batch_size
        self.workers = workers
        self.timeout = timeout

    def scores_for(self, mels: list[np.ndarray]) -> np.ndarray:
        """Label probabilities for equal-length (frames, n_mels) inputs,
        shape (len(mels), n_labels)."""
        import torch

        from tagcore.families import family_module

        family = family_module(self.bundle.family)
        batch = torch.from_numpy(np.stack(mels))
        return family.predict(self.bundle.model, batch).cpu().numpy()

    def analyse(self, paths: Iterable[str]) -> Iterator[TrackResult]:
        """Yield one TrackResult per path, in completion order."""
        transform = functools.partial(excerpt_features, params=self.params)
        pending: dict[int, list[tuple[int, str, np.ndarray]]] = {}
        labels = self.bundle.labels

        def flush(frames: int) -> Iterator[TrackResult]:
            group = pending.pop(frames)
            probs = self.scores_for([m for _, _, m in group])
            for (index, path, _), row in zip(group, probs):
                yield TrackResult(index, path, scores={l: float(p) for l, p in zip(labels, row)})

        for index, path, result in read_excerpts(
            paths,
            sample_rate=self.params.sample_rate,
            duration=self.params.excerpt_seconds,
            transform=transform,
            workers=self.workers,
            timeout=self.timeout,
        ):
            if isinstance(result, AudioError):
                yield TrackResult(index, str(path), error=str(result))
                continue
            if isinstance(result, BaseException):
                yield TrackResult(index, str(path), error=f"{path}: {result}")
                continue
            pending.setdefault(result.shape[0], []).append((index, str(path), result))
            # Inputs of equal length share a forward pass; tracks shorter than
            # the excerpt have their own lengths, so flush everything once
            # batch_size inputs wait: memory stays bounded by the batch.
            if sum(len(group) for group in pending.values()) >= self.batch_size:
                for frames in list(pending):
                    yield from flush(frames)
        for frames in list(pending):
            yield from flush(frames)
