"""The shared training loop: resume after SIGKILL, distributed data
parallel on the CPU (gloo), sampler shards, accumulation, and the two
hooks (a family's batch sampler, an end-of-epoch schedule)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.loop import (
    EpochSampler,
    Identity,
    LoopConfig,
    StreamBatches,
    autocast_dtype,
    fit,
    load_checkpoint,
)

JOB = Path(__file__).with_name("loop_job.py")


def run_job(out, *args, timeout=120):
    done = subprocess.run([sys.executable, str(JOB), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((Path(out) / "result-0.json").read_text())


def test_sampler_shards_are_disjoint_and_cover_the_epoch():
    shards = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=1, rank=rank, world_size=3)
        sampler.set_epoch(4)
        shards.append(list(sampler))
    flat = [i for shard in shards for i in shard]
    assert len(flat) == 12 and set(flat) == set(range(10))  # 2 padding repeats
    assert set(shards[0]).isdisjoint(shards[1]) or len(set(shards[0]) & set(shards[1])) <= 2
    again = EpochSampler(10, seed=1, rank=1, world_size=3)
    again.set_epoch(4, skip=2)
    assert list(again) == shards[1][2:]
    other_epoch = EpochSampler(10, seed=1)
    other_epoch.set_epoch(5)
    one = EpochSampler(10, seed=1)
    one.set_epoch(4)
    assert list(other_epoch) != list(one)


def test_precision_choice():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError):
        autocast_dtype("fp8", torch.device("cpu"))
    with pytest.raises(ValueError):
        LoopConfig(mode="up")


@pytest.mark.slow
def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    reference = run_job(tmp_path / "straight", "--checkpoint-every", "3")
    out = tmp_path / "killed"
    args = [sys.executable, str(JOB), "--out", str(out), "--checkpoint-every", "3", "--delay", "0.01"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 60
    killed_at = None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.is_file():
                try:
                    state = load_checkpoint(checkpoint)
                except Exception:
                    state = None  # being replaced right now
                if state and state["epoch"] >= 3 and state["batches_done"] > 0:
                    process.send_signal(signal.SIGKILL)
                    killed_at = (state["epoch"], state["batches_done"])
                    break
            time.sleep(0.01)
    finally:
        process.wait(timeout=30)
    assert killed_at is not None, "the job finished before it could be killed mid-epoch"
    assert not (out / "result-0.json").exists()
    resumed = run_job(out, "--checkpoint-every", "3", "--resume")
    assert resumed["resumed_from"]
    assert resumed["history"] == reference["history"]
    assert resumed["final"] == reference["final"]
    assert resumed["weights"] == reference["weights"]


@pytest.mark.slow
def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    big = run_job(tmp_path / "big", "--batch-size", "16", "--dropout", "0", "--epochs", "2")
    small = run_job(tmp_path / "acc", "--batch-size", "8", "--accumulate", "2", "--dropout", "0", "--epochs", "2")
    for name, values in big["state"].items():
        assert torch.allclose(torch.tensor(values), torch.tensor(small["state"][name]), atol=1e-5), name


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """torchrun, 2 CPU processes, batch 4 each == 1 process, batch 8."""
    single = run_job(tmp_path / "single", "--batch-size", "8", "--dropout", "0", "--epochs", "3")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(JOB), "--out", str(out), "--batch-size", "4", "--dropout", "0", "--epochs", "3"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"result-{r}.json").read_text()) for r in (0, 1)]
    # Disjoint shards in every epoch (64 items, 2 ranks: no padding).
    per_epoch = 32
    for epoch in range(3):
        a = set(ranks[0]["seen"][epoch * per_epoch:(epoch + 1) * per_epoch])
        b = set(ranks[1]["seen"][epoch * per_epoch:(epoch + 1) * per_epoch])
        assert a.isdisjoint(b) and len(a | b) == 64
    # Identical weights on both processes after every step.
    assert ranks[0]["step_hashes"] == ranks[1]["step_hashes"]
    assert len(ranks[0]["step_hashes"]) == 3 * 8
    # The same result as one process, within float tolerance.
    for name, values in single["state"].items():
        assert torch.allclose(torch.tensor(values), torch.tensor(ranks[0]["state"][name]), atol=1e-5), name
    assert ranks[0]["final"]["val_loss"] == pytest.approx(single["final"]["val_loss"], abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes(tmp_path, precision):
    """Autocast (and, for fp16, the grad scaler) on the CPU: the loss falls,
    and an epoch-end checkpoint resumes to the same result."""
    straight = run_job(tmp_path / "straight", "--precision", precision, "--epochs", "4")
    losses = [h["train_loss"] for h in straight["history"]]
    assert losses[-1] < losses[0]
    run_job(tmp_path / "split", "--precision", precision, "--epochs", "2")
    resumed = run_job(tmp_path / "split", "--precision", precision, "--epochs", "4", "--resume")
    assert resumed["history"] == straight["history"]
    assert resumed["weights"] == straight["weights"]


def test_stream_batches_follow_the_permutation_of_their_stream():
    batches = StreamBatches(np.arange(10, 21), batch_size=5, rng=np.random.default_rng(4))
    drawn = list(batches)
    order = np.random.default_rng(4).permutation(np.arange(10, 21))
    # 11 items in batches of 5: the last batch of one item is left out.
    assert [b.tolist() for b in drawn] == [order[:5].tolist(), order[5:10].tolist()]
    assert len(batches) == 2 and len(StreamBatches(np.arange(12), batch_size=5, rng=None)) == 3
    assert next(iter(batches)).tolist() != drawn[0].tolist()  # the next epoch draws again


def _hooked_run(*, values, batch_sampler=None, **config):
    """A linear model on 12 points with a scripted validation value per epoch
    and a schedule halving the learning rate when the value rises."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    x = torch.randn(12, 2)
    y = x @ torch.tensor([[1.0], [-2.0]])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, scripted = [], iter(values)

    def collate(items):
        ids = torch.as_tensor(np.asarray(items))
        seen.append(ids.tolist())
        return x[ids], (y[ids], ids)  # a tuple of targets reaches the loss as it is

    def loss_fn(out, targets):
        target, ids = targets
        assert len(ids) == len(out)
        return torch.nn.functional.mse_loss(out, target)

    def on_epoch(optimizer, history):
        history[-1]["lr"] = optimizer.param_groups[0]["lr"]
        if len(history) > 1 and history[-1]["val_loss"] > history[-2]["val_loss"]:
            optimizer.param_groups[0]["lr"] /= 2

    result = fit(model, optimizer=optimizer, train_set=Identity(12), collate=collate, loss_fn=loss_fn,
                 evaluate=lambda m: {"val_loss": next(scripted)}, on_epoch=on_epoch, batch_sampler=batch_sampler,
                 config=LoopConfig(batch_size=4, progress=False, device="cpu", **config))
    return result, seen


def test_batch_sampler_and_on_epoch_hooks():
    sampler = StreamBatches(np.arange(12), batch_size=5, rng=np.random.default_rng(1))
    result, seen = _hooked_run(values=[1.0, 0.5, 0.7, 0.8, 0.9], batch_sampler=sampler, epochs=5, patience=2)
    rng = np.random.default_rng(1)
    expected = []
    for _ in range(4):  # stopped after two epochs without a better value
        order = rng.permutation(12)
        expected += [order[:5].tolist(), order[5:10].tolist(), order[10:].tolist()]
    assert seen == expected
    assert [row["lr"] for row in result.history] == pytest.approx([0.1, 0.1, 0.1, 0.05])
    assert result.best_epoch == 2 and result.stopped_early
    with pytest.raises(ValueError, match="batch_sampler"):
        _hooked_run(values=[1.0], batch_sampler=sampler, epochs=1, checkpoint_every=2)
