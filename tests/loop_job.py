"""A tiny, deterministic training job for the tests of trainer.loop.

Run as a script (also under torchrun): trains a small MLP with dropout on a
fixed synthetic classification set and writes ``result.json`` into --out:
the history, the final validation metrics, a hash of the final weights, and
per process the training indices it saw and a weight hash after each step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.loop import LoopConfig, fit


class ToySet(torch.utils.data.Dataset):
    """64 points in 8 dimensions, 3 classes, from a fixed seed."""

    def __init__(self, n: int = 64, *, seed: int = 123, delay: float = 0.0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=generator)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long() + (self.x[:, 2] > 1).long()
        self.delay = delay
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        self.seen.append(int(index))
        if self.delay:
            time.sleep(self.delay)
        return self.x[index], self.y[index]


def collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys)


def weights_hash(model: nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per item (to be killable mid-run)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(args.dropout), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    train_set = ToySet(delay=args.delay)
    val_set = ToySet(32, seed=7)
    loss_fn = nn.functional.cross_entropy

    def evaluate(m):
        logits = m(val_set.x)
        return {"val_loss": loss_fn(logits, val_set.y).item(),
                "val_accuracy": (logits.argmax(1) == val_set.y).float().mean().item()}

    step_hashes: list[str] = []
    config = LoopConfig(
        epochs=args.epochs, batch_size=args.batch_size, accumulate=args.accumulate, patience=100,
        seed=3, device="cpu", precision=args.precision, checkpoint_dir=str(out / "checkpoints"),
        checkpoint_every=args.checkpoint_every, resume=args.resume, log_path=str(out / "log.jsonl"), log_every=1,
    )
    result = fit(model, optimizer=optimizer, train_set=train_set, collate=collate, loss_fn=loss_fn,
                 evaluate=evaluate, config=config, on_step=lambda m, step: step_hashes.append(weights_hash(m)))
    final = evaluate(model.eval())
    (out / f"result-{rank}.json").write_text(json.dumps({
        "history": [{k: v for k, v in h.items() if k not in ("seconds", "examples_per_s")} for h in result.history],
        "final": final, "weights": weights_hash(model), "best_epoch": result.best_epoch,
        "seen": train_set.seen, "step_hashes": step_hashes, "resumed_from": result.resumed_from,
        "state": {k: v.tolist() for k, v in model.state_dict().items()},
    }))


if __name__ == "__main__":
    main()
