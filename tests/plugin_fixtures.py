"""Fixtures for the autotagml plugin tests: a tiny deterministic bundle and
short synthesized audio files. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tagcore.bundle import save_bundle
from tagcore.families import disambig
from tagcore.features import MelParams

LABELS = ["hiphop", "rock", "jazz"]
#: Dense-layer bias of the test bundle. With zero dense weights the output
#: ignores the audio: softmax(5, 1, 0) = hiphop 0.975, rock 0.018, jazz 0.007.
BIAS = (5.0, 1.0, 0.0)
EXPECTED = dict(zip(LABELS, torch.softmax(torch.tensor(BIAS), dim=0).tolist()))

SAMPLE_RATE = 44100
SOUNDFILE_FORMATS = {"mp3": "MP3", "flac": "FLAC"}


def make_bundle(directory: Path, *, name: str = "genre-test", version: str = "1", labels=LABELS, bias=BIAS,
                task: str = "genre") -> Path:
    """Save a small disambig bundle whose prediction is fixed by ``bias``."""
    torch.manual_seed(0)
    config = disambig.Config(channels=(4, 8, 8, 8), gru_hidden=8, n_labels=len(labels))
    model = disambig.Model(config)
    with torch.no_grad():
        model.dense.weight.zero_()
        model.dense.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return save_bundle(
        directory,
        model=model,
        family="disambig",
        name=name,
        version=version,
        labels=list(labels),
        model_config=config.to_dict(),
        features=MelParams().to_dict(),
        task=task,
        provenance={"made_by": "tests/plugin_fixtures.py"},
    )


def tone(seconds: float = 6.0, frequency: float = 440.0, seed: int = 0) -> np.ndarray:
    """A mono sine with a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def write_audio(path: Path, fmt: str, seconds: float = 6.0, frequency: float = 440.0) -> Path:
    """Write a short tone as ``fmt`` ("mp3" or "flac") with soundfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, frequency), SAMPLE_RATE, format=SOUNDFILE_FORMATS[fmt])
    return path


def write_text_as_mp3(path: Path) -> Path:
    """A text file with an .mp3 name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not audio, only text with an mp3 name\n" * 20, encoding="utf-8")
    return path


def write_truncated(source: Path, path: Path, keep: int) -> Path:
    """The first ``keep`` bytes of ``source``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.read_bytes()[:keep])
    return path
