"""Training with playlist-based tag propagation (the samplecnn paper, section IV-A),
on the shared loop :func:`trainer.loop.fit`.

Used by the sample-level CNN (:mod:`trainer.samplecnn`) and by the Spotify
MLP experiment (:mod:`trainer.samplecnn_spotify`); both import it, neither
imports the other for it. What the paper fixes and the shared loop does not
is given to the loop through its two hooks:

- :class:`trainer.loop.StreamBatches` (``batch_sampler``): each epoch a
  permutation of the training songs drawn from one numpy stream; the same
  stream then cuts each song's input (a random window) and walks its s'
  (:func:`make_collate`), in the order the paper's loop, written by hand
  here before, drew them: seeded runs give the same numbers as then;
- :func:`decay_on_rise` (``on_epoch``): SGD's learning rate divided by
  ``decay`` whenever the validation loss is higher than at the epoch
  before (the epoch's record keeps the rate it trained with, ``lr``).

Early stopping is the loop's: on ``val_loss``, ``patience`` epochs without a
new best, best weights restored.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tagcore.families import samplecnn
from trainer import propagation as prop
from trainer.loop import FitResult, Identity, LoopConfig, StreamBatches
from trainer.loop import fit as loop_fit


def make_collate(*, tags: np.ndarray, inputs: Callable, index: prop.PlaylistIndex | None, r: float, weighting: str,
                 rng: np.random.Generator) -> Callable:
    """collate(ids) -> (inputs, targets) for :func:`trainer.loop.fit`.

    ``inputs(ids, rng)``: (batch, ...) float tensor; targets: ``(y,)``, the
    songs' tags (batch, n_tags) float32, and with propagation (``index``
    and r > 0) also the tags of each song's s' and the weight of its
    supportive term (:func:`trainer.propagation.propagated_targets`)."""
    propagate = index is not None and r > 0

    def collate(items) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        ids = np.asarray(items)
        x = inputs(ids, rng)
        y = torch.from_numpy(np.asarray(tags[ids], dtype=np.float32))
        if not propagate:
            return x, (y,)
        _, targets, weights = prop.propagated_targets(index, ids, tags, r=r, rng=rng, weighting=weighting)
        return x, (y, torch.from_numpy(targets), torch.from_numpy(weights))

    return collate


def decay_on_rise(decay: float, *, log: Callable = print) -> Callable:
    """on_epoch hook: record the epoch's learning rate (``lr``), then divide
    every group's rate by ``decay`` when ``val_loss`` rose against the
    epoch before; log one line per epoch."""

    def on_epoch(optimizer: torch.optim.Optimizer, history: list[dict]) -> None:
        row = history[-1]
        row["lr"] = optimizer.param_groups[0]["lr"]
        if len(history) > 1 and row["val_loss"] > history[-2]["val_loss"]:
            for group in optimizer.param_groups:
                group["lr"] /= decay
        log(f"    epoch {row['epoch']}: train {row['train_loss']:.4f} val {row['val_loss']:.4f} lr {row['lr']:g}")

    return on_epoch


def fit(model: torch.nn.Module, *, train: np.ndarray, tags: np.ndarray, inputs: Callable, val_loss: Callable,
        index: prop.PlaylistIndex | None, r: float, weighting: str, epochs: int, patience: int, batch_size: int,
        lr: float, momentum: float, decay: float, seed: int, loss: Callable = samplecnn.loss, device: str = "cpu",
        precision: str = "fp32", log: Callable = print) -> FitResult:
    """Train ``model`` on the songs ``train`` (dataset ids) with eq. 3.

    inputs(ids, rng) -> (batch, ...) float tensor of the songs' inputs (a
    random window for audio); tags: (n_songs, n_tags) 0/1; val_loss(model)
    -> float, plain BCE on held-out songs. ``index``: playlists over the
    dataset ids holding training songs only (None: no propagation). Each
    epoch: a permutation, one walk per song (s' re-drawn every epoch), SGD
    steps; the learning rate is divided by ``decay`` whenever the validation
    loss is higher than at the epoch before; training stops after
    ``patience`` epochs without a new best, and the best weights are
    restored. All randomness comes from ``seed``. ``loss(logits, y)`` or,
    with propagation, ``loss(logits, y, targets, weights)``. Returns the
    loop's :class:`trainer.loop.FitResult` (``best_value``: the best
    validation loss; each history row has ``lr``)."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    config = LoopConfig(epochs=epochs, batch_size=batch_size, patience=patience, monitor="val_loss", mode="min",
                        seed=seed, device=device, precision=precision, log_every=0, label="samplecnn",
                        progress=False)
    return loop_fit(
        model, optimizer=optimizer, train_set=Identity(len(train)),
        collate=make_collate(tags=tags, inputs=inputs, index=index, r=r, weighting=weighting, rng=rng),
        loss_fn=lambda logits, targets: loss(logits, *targets),
        evaluate=lambda m: {"val_loss": float(val_loss(m))}, config=config,
        batch_sampler=StreamBatches(train, batch_size=batch_size, rng=rng), on_epoch=decay_on_rise(decay, log=log),
    )
