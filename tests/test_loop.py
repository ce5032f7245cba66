"""The shared training loop: resume after SIGKILL, distributed data
parallel on the CPU (gloo), sampler shards, accumulation."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer.loop import EpochSampler, LoopConfig, autocast_dtype, load_checkpoint

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
