"""A tiny train-then-predict run on the CPU, on synthesized 'genres'."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tagcore.bundle import load_bundle
from tagcore.families import disambig
from tagcore.analysis import Analysis
from trainer import monolabel
from trainer.__main__ import main

RATE = 22050


def tone_clip(rng, low: bool, seconds: float = 4.0) -> np.ndarray:
    """'low' genre: a 100-300 Hz tone; 'high': a 3-6 kHz tone; both with noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    freq = rng.uniform(100, 300) if low else rng.uniform(3000, 6000)
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    for genre in ("low", "high"):
        (root / genre).mkdir()
        for i in range(10):
            sf.write(root / genre / f"{genre}.{i:05d}.wav", tone_clip(rng, genre == "low"), RATE)
    (root / "low" / "README.txt").write_text("not audio: skipped by the loader")
    return root


TINY = ["--channels", "4,8,8,8", "--gru-hidden", "8", "--batch-size", "4", "--workers", "0", "--seed", "1"]


@pytest.mark.slow
def test_train_then_predict(toy_dataset, tmp_path):
    bundle_dir, report_dir = tmp_path / "bundle", tmp_path / "report"
    code = main(["disambig", "--data", str(toy_dataset), *TINY, "--epochs", "25", "--patience", "25",
                 "--folds", "2", "--name", "toy", "--bundle-dir", str(bundle_dir), "--report-dir", str(report_dir),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    bundle = load_bundle(bundle_dir)
    assert bundle.labels == ["high", "low"]
    assert bundle.config["metrics"]["model"]["accuracy"]["mean"] >= 0.0
    assert "baseline_mfcc_logreg" in bundle.config["metrics"]
    report = json.loads((report_dir / "metrics.json").read_text())
    assert report["provenance"]["tracks"] == 20
    history = (report_dir / "history.jsonl").read_text().splitlines()
    assert 1 <= len(history) <= 25

    rng = np.random.default_rng(99)  # clips never seen in training
    paths = []
    for genre in ("low", "high"):
        for i in range(3):
            path = tmp_path / f"new-{genre}-{i}.wav"
            sf.write(path, tone_clip(rng, genre == "low"), RATE)
            paths.append((path, genre))
    results = {r.path: r.outputs[bundle.name] for r in Analysis([bundle], workers=0).analyse([str(p) for p, _ in paths])}
    assert len(results) == 6 and all(r.ok for r in results.values())
    predicted = {path: max(r.scores, key=r.scores.get) for path, r in results.items()}
    correct = sum(predicted[str(p)] == genre for p, genre in paths)
    assert correct >= 5, predicted


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["disambig", "--data", str(tmp_path / "nowhere"), *TINY, "--cache-dir", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_monolabel_sampling_follows_inverse_popularity():
    # Rock on 10 tracks, Punk on 1: a {Rock, Punk} track gets Punk with p = 10/11.
    tracks = [monolabel.Track(key=f"r{i}", labels=("rock",), group=f"a{i}") for i in range(9)]
    tracks.append(monolabel.Track(key="both", labels=("rock", "punk"), group="x"))
    probs = monolabel.monolabel_probabilities(("rock", "punk"), monolabel.tag_popularity(tracks))
    assert probs["punk"] == pytest.approx(10 / 11)
    rng = np.random.default_rng(0)
    draws = [dict((t.key, tag) for t, tag, _ in monolabel.monolabel_sample(tracks, cap=100, upsample_to=0, rng=rng))["both"]
             for _ in range(400)]
    assert 0.85 < draws.count("punk") / len(draws) < 0.97


def test_monolabel_sampling_is_per_album_capped_and_upsampled():
    tracks = [monolabel.Track(key=f"t{i}", labels=("jazz", "blues"), group="album1") for i in range(4)]
    tracks += [monolabel.Track(key=f"s{i}", labels=("soul",), group=f"b{i}") for i in range(30)]
    rng = np.random.default_rng(3)
    samples = monolabel.monolabel_sample(tracks, cap=10, upsample_to=10, rng=rng)
    album_tags = {tag for t, tag, _ in samples if t.group == "album1"}
    assert len(album_tags) == 1  # every track of the album shares its label
    counts = {}
    for _, tag, _ in samples:
        counts[tag] = counts.get(tag, 0) + 1
    assert counts["soul"] == 10  # capped from 30
    assert counts[album_tags.pop()] == 10  # upsampled from 4
    repeats = [r for t, tag, r in samples if t.group == "album1"]
    assert max(repeats) >= 2  # repeats carry new excerpt indices


def test_table1_output_shapes_with_paper_widths():
    model = disambig.Model(disambig.Config()).eval()
    x = np.zeros((1, 646, 96), dtype=np.float32)
    import torch

    h = torch.from_numpy(x).unsqueeze(1)
    shapes = []
    for block in model.blocks:
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(64, 323, 48), (128, 107, 12), (256, 53, 4), (512, 17, 1)]
    assert model.gru.hidden_size == 512
    assert sum(p.numel() for p in model.gru.parameters()) == 3 * (512 * 512 * 2 + 2 * 512)


@pytest.mark.slow
def test_train_from_mtg_jamendo_layout(tmp_path):
    """Multi-label rows, album grouping and the official splits."""
    rng = np.random.default_rng(5)
    root = tmp_path / "jamendo"
    (root / "split-0").mkdir(parents=True)
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
    rows = {"train": [], "validation": [], "test": []}
    for n in range(24):
        low = n % 2 == 0
        rel = f"{n % 3:02d}/{n}.wav"
        (root / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / rel, tone_clip(rng, low), RATE)
        tags = "genre---ambient\tgenre---drone" if low else "genre---electronic"
        split = "test" if n >= 20 else "validation" if n >= 16 else "train"
        rows[split].append(f"track_{n:07d}\tartist_{n % 4:06d}\talbum_{n % 6:06d}\t{rel}\t4.0\t{tags}")
    for split, lines in rows.items():
        (root / "split-0" / f"autotagging_genre-{split}.tsv").write_text(header + "\n".join(lines) + "\n")
    bundle_dir = tmp_path / "bundle"
    code = main(["disambig", "--data", str(root), *TINY, "--epochs", "3", "--name", "jam",
                 "--bundle-dir", str(bundle_dir), "--report-dir", str(tmp_path / "report"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    bundle = load_bundle(bundle_dir)
    assert bundle.labels == ["ambient", "drone", "electronic"]
    assert bundle.config["provenance"]["layout"] == "jamendo"
    assert bundle.config["metrics"]["model"]["n"] == 4


@pytest.mark.slow
def test_disambig_under_torchrun_with_two_cpu_processes(toy_dataset, tmp_path):
    """The same command under torchrun (gloo on the CPU): one bundle, written once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "trainer", "disambig", "--data", str(toy_dataset), *TINY, "--epochs", "4", "--folds", "2",
         "--name", "toy-ddp", "--bundle-dir", str(tmp_path / "bundle"), "--report-dir", str(tmp_path / "report"),
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.config["provenance"]["processes"] == 2
    assert bundle.labels == ["high", "low"]
    epochs = [json.loads(line) for line in (tmp_path / "report" / "log.jsonl").read_text().splitlines()]
    assert any(e["event"] == "start" and e["world_size"] == 2 for e in epochs)


# --- The command registry ---------------------------------------------------


def test_help_lists_every_command_without_importing_torch_or_a_trainer():
    code = ("import sys; from trainer.__main__ import main; status = main(['--help']); "
            "print(status, 'torch' in sys.modules, any(m.startswith('trainer.') and m not in "
            "('trainer.__main__',) for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False False"
    for name in ("disambig", "head", "samplecnn", "triplet", "han", "lyrics", "tagmap", "musicnn"):
        assert f"  {name} " in done.stdout


@pytest.mark.parametrize("name", sorted(__import__("trainer.__main__", fromlist=["COMMANDS"]).COMMANDS))
def test_every_command_has_a_module_with_add_arguments_and_run(name):
    import argparse
    import importlib

    from trainer.__main__ import COMMANDS

    module = importlib.import_module(f"trainer.{COMMANDS[name].module}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert callable(module.run)


def test_old_command_names_still_work_and_unknown_ones_name_the_closest(capsys):
    from trainer.__main__ import lookup

    assert lookup("rmsc")[0] == "han" and lookup("propagation")[0] == "samplecnn"
    assert lookup("tagmaps")[0] == "tagmap" and lookup("import-musicnn")[0] == "musicnn"
    assert main(["hann"]) == 2
    assert "did you mean 'han'?" in capsys.readouterr().err
