"""The training loop shared by the families: device choice, epochs over
mini-batches, early stopping on validation loss, progress with ETA."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from trainer.progress import Progress


def choose_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU; or the named device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class History:
    """Per-epoch train and validation loss; ``best_epoch`` is 1-based."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def fit(
    model: torch.nn.Module,
    *,
    optimiser: torch.optim.Optimizer,
    train_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    val_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
    patience: int,
    device: torch.device,
    label: str = "training",
    batches_per_epoch: int | None = None,
) -> History:
    """Train ``model``; keep the weights of the epoch with the lowest
    validation loss (early stopping after ``patience`` epochs without
    improvement). ``train_batches(epoch)`` yields (inputs, targets) for one
    epoch; ``val_batches()`` the validation set (None: no early stopping,
    the last epoch is kept)."""
    history = History()
    best_state, best_loss = None, math.inf
    start = time.monotonic()
    progress = Progress(epochs * (batches_per_epoch or 1), label=label)
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for inputs, targets in train_batches(epoch):
            inputs, targets = inputs.to(device), targets.to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(targets)
            count += len(targets)
            if batches_per_epoch:
                progress.update(1, epoch=epoch, loss=total / count)
        history.train_loss.append(total / max(count, 1))
        if not batches_per_epoch:
            progress.update(1, epoch=epoch, loss=history.train_loss[-1])
        if val_batches is None:
            continue
        val_loss = evaluate_loss(model, val_batches(), loss_fn=loss_fn, device=device)
        history.val_loss.append(val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, history.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - history.best_epoch >= patience:
            break
    progress.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.train_loss)
    history.seconds = time.monotonic() - start
    return history


@torch.no_grad()
def evaluate_loss(model, batches, *, loss_fn, device) -> float:
    """Mean loss over (inputs, targets) batches, model in eval mode."""
    model.eval()
    total, count = 0.0, 0
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        total += loss_fn(model(inputs), targets).item() * len(targets)
        count += len(targets)
    return total / max(count, 1)
