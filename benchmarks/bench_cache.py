#!/usr/bin/env python
"""Training speed with and without the on-disk feature cache (trainer.cache).

Measures, on a GTZAN-style folder (default ``../shared/datasets/gtzan_mini``
next to the checkout), training the seed-002 model as the shipped bundle is
trained (``disambig.Model(Config(channels=(16, 32, 64, 128), gru_hidden=128,
n_labels=10))``, Adadelta lr 1.0, batch 16, random 10 s crops):

1. with the cache, starting from an empty cache folder: epoch 1 is cold
   (decode + log-mel by ``--workers`` processes into the cache, then one
   training epoch); epochs 2..N read crops from the memmaps (warm); at the
   end, a later run's ``FeatureCache.build`` over the warm cache (no
   decoding);
2. without the cache: every epoch decodes the audio again (into memory, by
   the same worker processes and the same log-mel code) and then trains.

The two modes take turns, epoch by epoch (each with its own model), so
that changes in the machine's load fall on both.

It prints a table of seconds and examples per second, the warm-cache /
no-cache throughput ratio, the exact command line and the machine.
A temporary cache folder is used and removed unless ``--cache-dir`` is
given. "Cold" means the feature cache is empty; the audio files themselves
may already be in the OS page cache.

    python benchmarks/bench_cache.py                  # 3 epochs each way
    python benchmarks/bench_cache.py --epochs 5 --device cuda

Keep module-level imports to the standard library plus the project: the
decoding workers are started with 'spawn'.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the checkout first on sys.path)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "gtzan_mini"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="GTZAN-style genre folders")
    parser.add_argument("--epochs", type=int, default=3, help="epochs in each mode (>= 2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-seconds", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="decode at most this much per track")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--loader-workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda...")
    parser.add_argument("--cache-dir", help="feature cache root (default: a temporary folder, removed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (one cold, one warm)")
    return args


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Training:
    """Training the shipped genre model's architecture on ``samples`` (path,
    label) as the benchmark does it: a fresh seeded model and optimiser per
    mode, one timed epoch over given feature arrays."""

    def __init__(self, args: argparse.Namespace, samples: list[tuple[str, str]], *, frames: int, device):
        self.args, self.samples, self.frames, self.device = args, samples, frames, device
        self.labels = sorted({label for _, label in samples})
        self.label_index = {tag: i for i, tag in enumerate(self.labels)}

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def new_model(self):
        """A seeded disambig model (16-32-64-128 channels, GRU 128) and its Adadelta."""
        import torch

        from tagcore.families import disambig

        torch.manual_seed(self.args.seed)
        config = disambig.Config(channels=(16, 32, 64, 128), gru_hidden=128, n_labels=len(self.labels))
        model = disambig.Model(config).to(self.device)
        optimiser = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
        return model, optimiser

    def warm_up(self, n_mels: int) -> None:
        """Two untimed steps, so that torch's one-time costs (CUDA context,
        kernels, allocator) are not counted as the cold cache's."""
        import torch

        from tagcore.families import disambig

        model, optimiser = self.new_model()
        x = torch.randn(self.args.batch_size, self.frames, n_mels, device=self.device)
        y = torch.zeros(self.args.batch_size, dtype=torch.long, device=self.device)
        for _ in range(2):
            optimiser.zero_grad()
            disambig.loss(model(x), y).backward()
            optimiser.step()
        self.sync()

    def epoch(self, model, optimiser, arrays, epoch: int) -> float:
        """One epoch over ``arrays``; returns seconds (data loading included)."""
        import torch
        from torch.utils.data import DataLoader

        from tagcore.families import disambig
        from trainer.cache import CroppedFeatures, collate

        args, device = self.args, self.device
        dataset = CroppedFeatures(self.samples, arrays, self.label_index, frames=self.frames, seed=args.seed)
        dataset.set_epoch(epoch)
        order = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, generator=order,
                            num_workers=args.loader_workers, collate_fn=collate,
                            pin_memory=device.type == "cuda")
        self.sync()
        start = time.perf_counter()
        model.train()
        for inputs, targets in loader:
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimiser.zero_grad(set_to_none=True)
            loss = disambig.loss(model(inputs), targets)
            loss.backward()
            optimiser.step()
        loss.item()
        self.sync()
        return time.perf_counter() - start


def decode_in_memory(paths: list[str], params, args: argparse.Namespace) -> dict | None:
    """path -> log-mel of every file, decoded by the worker processes (the
    no-cache mode's epoch start); None after printing a failure."""
    from tagcore.features import log_mel_spectrogram
    from tagcore.workers import read_excerpts

    transform = functools.partial(log_mel_spectrogram, params=params)
    in_memory = {}
    for _, path, result in read_excerpts(paths, sample_rate=params.sample_rate, duration=args.max_seconds,
                                         transform=transform, workers=args.workers, timeout=60.0):
        if isinstance(result, BaseException):
            print(f"failed: {result}", file=sys.stderr)
            return None
        in_memory[path] = result
    return in_memory


def measure(training: Training, params, cache_root: Path, args: argparse.Namespace) -> dict | None:
    """Both modes, taking turns epoch by epoch (so that a change in the
    machine's load hits both alike), then a later run's opening of the warm
    cache; the timings, or None after printing a failure."""
    from trainer.cache import FeatureCache

    paths = [p for p, _ in training.samples]
    excerpt = {"max_seconds": args.max_seconds, "offset": "centre"}
    cache = FeatureCache(cache_root, kind="logmel", params=params.to_dict(), excerpt=excerpt)
    cached_model, cached_optimiser = training.new_model()
    plain_model, plain_optimiser = training.new_model()
    t = {"cached_epochs": [], "decode_times": [], "train_times": []}
    arrays = None
    for epoch in range(args.epochs):
        # With the cache: epoch 0 builds it (cold), later epochs reuse the memmaps.
        if arrays is None:
            start = time.perf_counter()
            arrays, failures = cache.build(paths, workers=args.workers, progress=False)
            t["build_cold"] = time.perf_counter() - start
            t["computed"] = cache.stats["computed"]
            if failures:
                print("\n".join(f"failed: {m}" for m in failures), file=sys.stderr)
                return None
        t["cached_epochs"].append(training.epoch(cached_model, cached_optimiser, arrays, epoch))

        # Without the cache: decode into memory, then train.
        start = time.perf_counter()
        in_memory = decode_in_memory(paths, params, args)
        if in_memory is None:
            return None
        t["decode_times"].append(time.perf_counter() - start)
        t["train_times"].append(training.epoch(plain_model, plain_optimiser, in_memory, epoch))
        del in_memory
    del arrays

    # A later run: the warm cache is opened, nothing is decoded.
    later = FeatureCache(cache_root, kind="logmel", params=params.to_dict(), excerpt=excerpt)
    start = time.perf_counter()
    later.build(paths, workers=args.workers, progress=False)
    t["build_warm"] = time.perf_counter() - start
    t["warm_computed"] = later.stats["computed"]
    return t


def print_report(t: dict, training: Training, args: argparse.Namespace, load_before) -> None:
    """The table of seconds and examples per second, the ratios, the
    command line and the machine."""
    import numpy as np
    import torch

    n, device = len(training.samples), training.device
    cached_epochs, decode_times, train_times = t["cached_epochs"], t["decode_times"], t["train_times"]
    build_cold = t["build_cold"]
    cold_total = build_cold + cached_epochs[0]
    warm_mean = statistics.mean(cached_epochs[1:])
    nocache = [d + e for d, e in zip(decode_times, train_times)]
    nocache_mean = statistics.mean(nocache)

    rows = [
        ("cache, cold: decode + log-mel into cache", build_cold, None),
        ("cache, cold: training epoch 1", cached_epochs[0], n / cached_epochs[0]),
        ("cache, cold: epoch 1 total", cold_total, n / cold_total),
        (f"cache, warm: epochs 2-{args.epochs} (mean)", warm_mean, n / warm_mean),
        ("cache, later run: open warm cache", t["build_warm"], None),
        (f"no cache: decode per epoch (mean of {args.epochs})", statistics.mean(decode_times), None),
        (f"no cache: training per epoch (mean of {args.epochs})", statistics.mean(train_times),
         n / statistics.mean(train_times)),
        (f"no cache: epoch total (mean of {args.epochs})", nocache_mean, n / nocache_mean),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'phase':<{width}}  {'seconds':>8}  {'examples/s':>10}")
    for name, seconds, rate in rows:
        rate_text = f"{rate:10.1f}" if rate is not None else f"{'':>10}"
        print(f"{name:<{width}}  {seconds:8.2f}  {rate_text}")
    print()
    print("per epoch, cache:    " + " ".join(f"{e:.2f}" for e in cached_epochs)
          + f"  (+ {build_cold:.2f} s build before epoch 1)")
    print("per epoch, no cache: " + " ".join(f"{d:.2f}+{e:.2f}" for d, e in zip(decode_times, train_times))
          + "  (decode+train)")
    print(f"throughput ratio, warm cache / no cache: {nocache_mean / warm_mean:.2f}x")
    print(f"first epoch, cold cache / no cache:       {cold_total / nocache[0]:.2f}x the time")
    print(f"tracks decoded: cold build {t['computed']}, later run {t['warm_computed']} (of {n})")
    print()
    print(f"examples per epoch: {n} ({len(training.labels)} labels), batch {args.batch_size}, "
          f"crops {training.frames} frames ({args.crop_seconds:g} s), decode <= {args.max_seconds:g} s/track, "
          f"{args.workers} decoding workers, {args.loader_workers} loader workers")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"machine: nproc {affinity} (cpu_count {os.cpu_count()}), CPU {cpu_model()}, "
          f"python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), numpy {np.__version__}, "
          f"device {device} ({device_name})")
    if load_before is not None:
        print(f"load average (1 min): {load_before[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end "
              "(timings are only meaningful on an idle machine)")


def main(argv=None) -> int:
    args = parse_args(argv)
    from tagcore.features import MelParams
    from trainer.datasets import gtzan
    from trainer.loop import choose_device

    device = choose_device(args.device)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    params = MelParams()
    frames = round(args.crop_seconds * params.sample_rate / params.hop_length)
    samples = [(r.path, r.labels[0]) for r in gtzan.load(args.data)]
    training = Training(args, samples, frames=frames, device=device)
    training.warm_up(params.n_mels)

    temporary = None
    if args.cache_dir:
        cache_root = Path(args.cache_dir)
    else:
        temporary = tempfile.mkdtemp(prefix="bench-cache-")
        cache_root = Path(temporary)
    try:
        timings = measure(training, params, cache_root, args)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    if timings is None:
        return 2
    print_report(timings, training, args, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
