"""The training loop shared by every family.

A family supplies a model, an optimiser, a map-style training set of
``(input, target)`` items with a ``collate`` function, a loss and an
``evaluate(model) -> {metric: value}`` function; :func:`fit` does the rest:

- device: CUDA, then Apple MPS, then CPU (``device`` overrides);
- precision: bf16 autocast on CUDA where supported, else fp16 with a grad
  scaler; fp32 on CPU and MPS (``precision`` overrides);
- distributed data parallel when launched by ``torchrun`` (torch.distributed,
  NCCL on CUDA, gloo on CPU): each process sees its own shard of every
  epoch's permutation, gradients are averaged, every process evaluates;
- gradient accumulation over ``accumulate`` micro-batches;
- a checkpoint every ``checkpoint_every`` optimiser steps and at each epoch
  end, and ``resume``: the checkpoint holds model, optimiser, scaler, RNG
  and early-stopping state and the position inside the epoch, and the data
  order and crops depend only on (seed, epoch, index), so a run killed at
  any point and resumed ends exactly where an uninterrupted run ends;
- early stopping on ``monitor`` (the best weights are restored at the end);
- a progress line with throughput and ETA, and JSON-lines logs;
- two hooks for the families whose papers fix more: ``batch_sampler``
  (the batches of an epoch, e.g. drawn from the family's own random
  stream) and ``on_epoch`` (after each evaluation: a learning-rate
  schedule, extra fields in the epoch's record, a log line).

Checkpoints are ``torch.save`` dictionaries of tensors and plain values,
read back with ``weights_only=True``: nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer.progress import Progress

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"


def choose_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU; or the named device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto, fp32, bf16, fp16) on
    ``device``; None means plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r} (auto, fp32, bf16, fp16)")
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --- distributed ------------------------------------------------------------


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str = "auto") -> tuple[Distributed, torch.device]:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)
    and return this process's place and device (``cuda:LOCAL_RANK`` on GPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), choose_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world_size, local_rank), device


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one process.

    The permutation of ``range(n)`` depends only on (seed, epoch); it is
    padded by wrapping around to a multiple of ``world_size`` and process
    ``rank`` takes every ``world_size``-th index from ``rank`` on, so shards
    are disjoint except for the padding. ``skip`` drops this process's first
    indices (resuming inside an epoch).
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        per_rank = math.ceil(self.n / self.world_size)
        order += order[: per_rank * self.world_size - self.n]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.skip :])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world_size) - self.skip


class StreamBatches(Sampler[np.ndarray]):
    """A ``batch_sampler`` for :func:`fit` drawn from a family's own numpy
    random stream: each epoch (each iteration) a permutation of ``items``
    from ``rng``, cut into ``batch_size`` chunks; a last chunk of one item
    is left out (batch norm needs two examples). The family's ``collate``
    may draw from the same ``rng`` (random crops, walks): everything then
    follows one reproducible order, the order of a hand-written loop over
    ``rng.permutation(items)``."""

    def __init__(self, items: np.ndarray, *, batch_size: int, rng: np.random.Generator):
        self.items, self.batch_size, self.rng = np.asarray(items), batch_size, rng

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.rng.permutation(self.items)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) >= 2:
                yield batch

    def __len__(self) -> int:
        full, rest = divmod(len(self.items), self.batch_size)
        return full + (rest >= 2)


class Identity(Dataset):
    """``n`` items where item ``i`` is ``i`` itself: for a ``batch_sampler``
    whose batches already hold what ``collate`` needs (ids, positions)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        return index


# --- configuration and state -----------------------------------------------


@dataclass
class LoopConfig:
    """How to train; every field is a command-line option of the trainer."""

    epochs: int = 100
    batch_size: int = 16  # per process
    accumulate: int = 1  # micro-batches per optimiser step
    patience: int = 15  # epochs without improvement before stopping
    monitor: str = "val_loss"
    mode: str = "min"  # or "max"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0  # DataLoader worker processes
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0  # optimiser steps; 0: at epoch ends only
    resume: bool = False
    log_path: str | None = None  # JSON lines
    log_every: int = 50  # optimiser steps between "step" log lines
    label: str = "training"
    progress: bool = True  # the progress line on stderr

    def __post_init__(self):
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {self.mode!r}")
        if self.accumulate < 1 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and accumulate >= 1 are required")


@dataclass
class FitResult:
    """What :func:`fit` returns; ``history`` has one dict per epoch."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = math.nan
    stopped_early: bool = False
    global_step: int = 0
    seconds: float = 0.0
    resumed_from: str | None = None


class JsonLog:
    """Appends one JSON object per line (main process only)."""

    def __init__(self, path: str | None, enabled: bool):
        self.path = Path(path) if path and enabled else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")


def _improved(value: float, best: float, mode: str) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value < best - 1e-9 if mode == "min" else value > best + 1e-9


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a killed process never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint without unpickling arbitrary objects."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of this trainer (format {state.get('format')!r})")
    return state


def add_loop_arguments(parser) -> None:
    """The loop's command-line options (shared by every family)."""
    group = parser.add_argument_group("training loop")
    group.add_argument("--epochs", type=int, default=100)
    group.add_argument("--batch-size", type=int, default=16, help="examples per process and step")
    group.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimiser step")
    group.add_argument("--patience", type=int, default=15, help="epochs without improvement before stopping")
    group.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:1, mps")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="auto: bf16 (or fp16 + grad scaler) on CUDA, fp32 elsewhere")
    group.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    group.add_argument("--checkpoint-every", type=int, default=0,
                       help="optimiser steps between checkpoints (always at epoch ends)")
    group.add_argument("--resume", action="store_true", help="continue from the run's checkpoints")


def loop_config(args, *, seed: int, name: str, monitor_available: bool = True) -> LoopConfig:
    """LoopConfig from parsed options; checkpoints and logs of part ``name``
    of a run go under ``args.run_dir``."""
    run_dir = Path(args.run_dir)
    return LoopConfig(
        epochs=args.epochs, batch_size=args.batch_size, accumulate=args.accumulate,
        # Without a validation set there is nothing to stop on: train all epochs.
        patience=args.patience if monitor_available else args.epochs + 1,
        seed=seed, device=args.device, precision=args.precision, num_workers=args.num_workers,
        checkpoint_dir=str(run_dir / "checkpoints" / name), checkpoint_every=args.checkpoint_every,
        resume=args.resume, log_path=str(run_dir / "log.jsonl"), label=name,
    )


# --- the loop -----------------------------------------------------------------


def fit(
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer,
    train_set: Dataset,
    collate: Callable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], dict[str, float]],
    config: LoopConfig,
    on_step: Callable[[torch.nn.Module, int], None] | None = None,
    batch_sampler: Sampler[list[int]] | None = None,
    on_epoch: Callable[[torch.optim.Optimizer, list[dict]], None] | None = None,
) -> FitResult:
    """Train ``model`` in place; return the history. The model ends with the
    weights of its best epoch by ``config.monitor``.

    ``train_set[i]`` gives ``(input, target)``; if it has ``set_epoch`` it is
    called before each epoch (for random crops seeded by epoch and index).
    ``collate`` makes ``(inputs, targets)`` of a batch: ``inputs`` a tensor,
    ``targets`` a tensor or a tuple of tensors (``loss_fn`` gets them as
    they are). ``evaluate(model)`` runs on every process with the plain
    (unwrapped) model in eval mode and must return ``config.monitor``.
    ``on_step(model, global_step)`` is called after every optimiser step.

    ``batch_sampler`` (single process only) replaces the seeded shuffling:
    it yields each epoch's batches of indices into ``train_set`` (and gets
    ``set_epoch(epoch)`` if it has one). Its randomness is its own, so a run
    resumed from a checkpoint ends where an uninterrupted one does only if
    the sampler depends on the epoch alone; resuming inside an epoch is
    refused. ``on_epoch(optimizer, history)`` is called after each epoch's
    evaluation, before the epoch is logged and early stopping is decided:
    it may change the learning rate (a schedule) and add fields to
    ``history[-1]``.
    """
    place, device = setup_distributed(config.device)
    if batch_sampler is not None and (place.enabled or config.checkpoint_every):
        raise ValueError("a batch_sampler runs on one process, with checkpoints at epoch ends only")
    torch.manual_seed(config.seed)
    run = _Training(model, optimizer, config, place, device)
    sampler = EpochSampler(len(train_set), seed=config.seed, rank=place.rank, world_size=place.world_size)
    if batch_sampler is None:
        batches_per_epoch = math.ceil(math.ceil(len(train_set) / place.world_size) / config.batch_size)
    else:
        batches_per_epoch = len(batch_sampler)
    start_epoch, skip_batches = run.resume() if config.resume else (1, 0)
    run.log("start", config=asdict(config), world_size=place.world_size, device=str(device),
            precision=str(run.amp or "fp32"), examples=len(train_set))

    started = time.monotonic()
    progress = (Progress(config.epochs * batches_per_epoch, label=config.label)
                if place.is_main and config.progress else None)
    if progress:
        progress.done = (start_epoch - 1) * batches_per_epoch + skip_batches
    stop = run.bad_epochs >= config.patience and bool(run.result.history)
    for epoch in range(start_epoch, config.epochs + 1):
        if stop:
            break
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        sampler.set_epoch(epoch, skip=skip_batches * config.batch_size)
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(epoch)
        batching = ({"batch_size": config.batch_size, "sampler": sampler} if batch_sampler is None
                    else {"batch_sampler": batch_sampler})
        loader = DataLoader(
            train_set, **batching, collate_fn=collate,
            num_workers=config.num_workers, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed * 7919 + epoch),
        )
        epoch_started = time.monotonic()
        examples = run.train_epoch(loader, epoch=epoch, skip_batches=skip_batches, batches=batches_per_epoch,
                                   loss_fn=loss_fn, on_step=on_step, progress=progress)
        skip_batches = 0
        stop = run.end_epoch(epoch, evaluate=evaluate, on_epoch=on_epoch, started=epoch_started, examples=examples)
    if progress:
        progress.close()
    return run.finish(started)


class _Training:
    """The state of one :func:`fit` run: what is fixed (model, optimiser,
    device, precision, checkpoint path) and what the checkpoint saves
    (history, early-stopping state, the running epoch loss), with the steps
    of the loop as methods."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: LoopConfig,
                 place: Distributed, device: torch.device):
        self.model, self.optimizer, self.config, self.place, self.device = model, optimizer, config, place, device
        model.to(device)
        self.amp = autocast_dtype(config.precision, device)
        # fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.wrapped = (
            torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
            if place.enabled
            else model
        )
        self.log = JsonLog(config.log_path, place.is_main)
        self.checkpoint_path = Path(config.checkpoint_dir) / CHECKPOINT_FILE if config.checkpoint_dir else None
        self.result = FitResult()
        self.best_state: dict | None = None
        self.bad_epochs = 0
        self.epoch_sum, self.epoch_count = 0.0, 0

    def resume(self) -> tuple[int, int]:
        """Load the checkpoint if there is one; return (epoch, batches done
        in it) to start from."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return 1, 0
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        result = self.result
        result.history = list(state["history"])
        result.best_epoch, result.best_value = state["best_epoch"], state["best_value"]
        result.global_step, self.bad_epochs = state["global_step"], state["bad_epochs"]
        self.best_state = state["best_model"]
        self.epoch_sum, self.epoch_count = state["epoch_loss_sum"], state["epoch_count"]
        result.resumed_from = str(path)
        self.log("resume", epoch=state["epoch"], batches_done=state["batches_done"], global_step=result.global_step)
        return state["epoch"], state["batches_done"]

    def checkpoint(self, epoch: int, batches_done: int) -> None:
        """Save everything needed to go on from batch ``batches_done`` of
        ``epoch`` (main process only; nothing without a checkpoint dir)."""
        if self.checkpoint_path is None or not self.place.is_main:
            return
        result, device = self.result, self.device
        save_checkpoint(self.checkpoint_path, {
            "format": CHECKPOINT_FORMAT, "epoch": epoch, "batches_done": batches_done,
            "global_step": result.global_step, "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "history": result.history, "best_epoch": result.best_epoch, "best_value": result.best_value,
            "bad_epochs": self.bad_epochs, "best_model": self.best_state,
            "epoch_loss_sum": self.epoch_sum, "epoch_count": self.epoch_count,
        })
        self.log("checkpoint", epoch=epoch, batches_done=batches_done, global_step=result.global_step)

    def train_epoch(self, loader: DataLoader, *, epoch: int, skip_batches: int, batches: int, loss_fn: Callable,
                    on_step: Callable | None, progress: Progress | None) -> int:
        """One pass over ``loader`` (the epoch's batches after the first
        ``skip_batches``, of ``batches``); returns the examples seen here."""
        config, device, place, result = self.config, self.device, self.place, self.result
        self.model.train()
        examples, batch_index = 0, skip_batches
        for inputs, targets in loader:
            inputs, targets = inputs.to(device, non_blocking=True), _to_device(targets, device)
            batch_index += 1
            boundary = batch_index % config.accumulate == 0 or batch_index == batches
            sync = nullcontext() if boundary or not place.enabled else self.wrapped.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=self.amp, enabled=self.amp is not None):
                    loss = loss_fn(self.wrapped(inputs), targets)
                self.scaler.scale(loss / config.accumulate).backward()
            self.epoch_sum += loss.item() * len(inputs)
            self.epoch_count += len(inputs)
            examples += len(inputs)
            if boundary:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                result.global_step += 1
                if on_step is not None:
                    on_step(self.model, result.global_step)
                if config.log_every and result.global_step % config.log_every == 0:
                    self.log("step", epoch=epoch, step=result.global_step, loss=loss.item())
                if (config.checkpoint_every and result.global_step % config.checkpoint_every == 0
                        and batch_index < batches):
                    self.checkpoint(epoch, batch_index)
            if progress:
                progress.update(1, epoch=epoch, loss=self.epoch_sum / max(self.epoch_count, 1))
        return examples

    def end_epoch(self, epoch: int, *, evaluate: Callable, on_epoch: Callable | None, started: float,
                  examples: int) -> bool:
        """Evaluate, record and log the epoch, keep the best weights, save a
        checkpoint; return whether early stopping ends the run."""
        config, result = self.config, self.result
        train_loss = _global_mean(self.epoch_sum, self.epoch_count, self.place, self.device)
        self.epoch_sum, self.epoch_count = 0.0, 0
        self.model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(self.model).items()}
        if config.monitor not in metrics:
            raise KeyError(f"evaluate() returned {sorted(metrics)}, not the monitored {config.monitor!r}")
        seconds = time.monotonic() - started
        record = {"epoch": epoch, "train_loss": train_loss, **metrics, "seconds": round(seconds, 3),
                  "examples_per_s": round(examples * self.place.world_size / max(seconds, 1e-9), 2)}
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(self.optimizer, result.history)
        self.log("epoch", **record)
        if _improved(metrics[config.monitor], result.best_value, config.mode):
            result.best_value, result.best_epoch, self.bad_epochs = metrics[config.monitor], epoch, 0
            self.best_state = _cpu_state(self.model)
        else:
            self.bad_epochs += 1
        stop = self.bad_epochs >= config.patience
        self.checkpoint(epoch + 1, 0)
        if stop:
            result.stopped_early = True
            self.log("early_stop", epoch=epoch, best_epoch=result.best_epoch, best=result.best_value)
        return stop

    def finish(self, started: float) -> FitResult:
        """Restore the best weights, log the end, wait for the other
        processes; return the result."""
        result = self.result
        if result.history and not result.stopped_early:
            result.stopped_early = self.bad_epochs >= self.config.patience
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        result.seconds = time.monotonic() - started
        self.log("end", best_epoch=result.best_epoch, best=result.best_value, global_step=result.global_step,
                 seconds=round(result.seconds, 3))
        if self.place.enabled:
            dist.barrier()
        return result


def _to_device(value: torch.Tensor | tuple, device: torch.device) -> torch.Tensor | tuple:
    """A tensor, or a tuple of tensors, moved to ``device``."""
    if isinstance(value, (tuple, list)):
        return tuple(v.to(device, non_blocking=True) for v in value)
    return value.to(device, non_blocking=True)


def _global_mean(total: float, count: int, place: Distributed, device: torch.device) -> float:
    """Mean over every process of a locally summed loss."""
    if place.enabled:
        pair = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(pair)
        total, count = pair.tolist()
    return total / max(count, 1)
