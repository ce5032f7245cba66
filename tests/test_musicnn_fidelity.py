"""Fidelity of the musicnn port: the shipped musicnn-mtt bundle gives, on
musicnn's two example tracks, the top tags musicnn's README documents, in
the documented order.

The tracks and the documented tags are in ../shared/datasets/musicnn_examples
(see its README). As ``musicnn.tagger.top_tags``: the log-mel spectrogram of
the whole track, non-overlapping 187-frame patches from its start, sigmoid
outputs averaged over the patches, tags ranked by that mean.

Run: ``.venv/bin/python -m pytest -q tests/test_musicnn_fidelity.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from realdata_fixtures import SHARED, shared_marks
from tagcore.audio import read_excerpt
from tagcore.bundle import default_bundle_dir, load_bundle
from tagcore.families import musicnn
from tagcore.features import log_mel_spectrogram

EXAMPLES = SHARED / "musicnn_examples"

# musicnn's README (github.com/jordipons/musicnn), as copied into the
# examples' README: file, model, documented top tags in order.
DOCUMENTED = [
    (
        "joram-moments_of_clarity-08-solipsism-59-88.mp3",
        "musicnn-mtt",
        ["techno", "electronic", "synth", "fast", "beat", "drums", "no vocals", "no vocal", "dance", "ambient"],
    ),
    ("TRWJAZW128F42760DD_test.mp3", "musicnn-mtt", ["guitar", "piano", "fast"]),
]

pytestmark = shared_marks("musicnn_examples")


def track_scores(path: Path, bundle, runtime: str = "torch") -> np.ndarray:
    """Mean sigmoid output over the track's non-overlapping 3 s patches,
    (n_labels,), by torch or by the bundle's ONNX export."""
    params = bundle.features
    y = read_excerpt(path, sample_rate=params.sample_rate)  # the whole track
    mel = log_mel_spectrogram(y, params=params)  # (frames, 96), the whole track
    count = mel.shape[0] // params.patch_frames
    patches = mel[: count * params.patch_frames].reshape(count, params.patch_frames, -1)
    patches = np.ascontiguousarray(patches, dtype=np.float32)
    if runtime == "onnx":
        from tagcore import onnx_runtime

        model, why = onnx_runtime.onnx_model(bundle)
        if model is None:
            pytest.skip(why)
        return model.predict_with_embedding(patches)[0].mean(axis=0)
    probs = musicnn.predict(bundle.model, torch.from_numpy(patches))
    return probs.mean(dim=0).numpy()


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
@pytest.mark.parametrize("filename,bundle_name,documented", DOCUMENTED, ids=["joram", "TRWJAZW"])
def test_documented_top_tags(filename, bundle_name, documented, runtime):
    if not (default_bundle_dir() / bundle_name).is_dir():
        pytest.skip(f"{bundle_name} not converted (python -m trainer musicnn musicnn-0.1.0-py3-none-any.whl)")
    bundle = load_bundle(bundle_name)
    scores = track_scores(EXAMPLES / filename, bundle, runtime)
    order = np.argsort(-scores)[: len(documented)]
    got = [bundle.labels[i] for i in order]
    detail = ", ".join(f"{bundle.labels[i]} {scores[i]:.3f}" for i in np.argsort(-scores)[: len(documented) + 2])
    assert got == documented, f"{filename}: got {detail}"
