"""ONNX exports of audio bundles: ``python -m trainer onnx`` writes a
checked export, the analysis pass runs it where allowed and gives torch's
outputs, a stale export or a missing onnxruntime falls back to torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from plugin_fixtures import write_audio
from test_musicnn import randomise

from tagcore import onnx_runtime
from tagcore.analysis import Analysis
from tagcore.bundle import WEIGHTS_FILE, load_bundle, save_bundle
from tagcore.families import musicnn
from tagcore.features import MelParams, feature_spec

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SMALL = musicnn.Config(n_mels=24, n_labels=5, patch_frames=40, timbral_filters=6, temporal_frames=(8, 5, 2),
                       temporal_filters=3, midend_filters=5, dense_units=7)
FEATURE = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=24, log="log10", center=True,
                    excerpt_frames=2 * 40, patch_frames=40)


@pytest.fixture
def exported(tmp_path):
    """A small musicnn bundle with its ONNX export."""
    from trainer.onnx import export_bundle

    path = save_bundle(tmp_path / "small", model=randomise(musicnn.Model(SMALL), seed=5), family="musicnn",
                       name="small", version="1", labels=[f"t{i}" for i in range(5)], model_config=SMALL.to_dict(),
                       input={"kind": "audio", "feature": feature_spec(FEATURE)}, outputs=("scores", "embedding"),
                       embedding_dim=7, task="tags")
    entry = export_bundle(path)
    return path, entry


@pytest.fixture
def files(tmp_path):
    return [str(write_audio(tmp_path / f"s{i}.flac", "flac", seconds=4.0, frequency=150.0 * (i + 1)))
            for i in range(4)]


def test_the_export_gives_torchs_outputs(exported):
    path, entry = exported
    assert (path / "model.onnx").is_file()
    assert json.loads((path / "config.json").read_text())["onnx"] == entry
    assert entry["max_abs_diff"] <= 1e-4 and entry["frames"] == 40
    bundle = load_bundle(path)
    model, why = onnx_runtime.onnx_model(bundle)
    assert model is not None, why
    x = np.random.default_rng(1).normal(size=(5, 40, 24)).astype(np.float32)
    probs, embedding = model.predict_with_embedding(x)
    want_probs, want_embedding = musicnn.predict_with_embedding(bundle.model, torch.from_numpy(x))
    np.testing.assert_allclose(probs, want_probs.numpy(), atol=1e-4)
    np.testing.assert_allclose(embedding, want_embedding.numpy(), atol=1e-4)


def _outputs(path, files, runtime):
    analysis = Analysis([str(path)], workers=0, runtime=runtime)
    results = {r.path: r.outputs["small"] for r in analysis.analyse(files)}
    return analysis, results


def test_the_pass_runs_the_export_and_agrees_with_torch(exported, files):
    path, _ = exported
    with_onnx, onnx_out = _outputs(path, files, "auto")
    with_torch, torch_out = _outputs(path, files, "torch")
    assert with_onnx.runtimes == {"small": "onnx"} and with_torch.runtimes == {"small": "torch"}
    for name in files:
        a, b = onnx_out[name], torch_out[name]
        assert a.ok and b.ok
        assert a.scores == pytest.approx(b.scores, abs=1e-4)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)


def test_an_export_of_other_weights_is_not_used(exported, files, tmp_path):
    path, entry = exported
    other = save_bundle(tmp_path / "other", model=randomise(musicnn.Model(SMALL), seed=6), family="musicnn",
                        name="small", version="1", labels=[f"t{i}" for i in range(5)], model_config=SMALL.to_dict(),
                        input={"kind": "audio", "feature": feature_spec(FEATURE)}, outputs=("scores", "embedding"),
                        embedding_dim=7, task="tags")
    (path / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())  # retrained, the old export left behind
    assert onnx_runtime.file_sha256(path / WEIGHTS_FILE) != entry["weights_sha256"]
    auto, results = _outputs(path, files, "auto")
    assert auto.runtimes == {"small": "torch"} and all(r.ok for r in results.values())
    strict, results = _outputs(path, files, "onnx")
    assert "exported from other weights" in strict.broken["small"]
    assert not any(r.ok for r in results.values())


def test_without_onnxruntime_torch_runs(exported, files, monkeypatch):
    path, _ = exported
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    auto, results = _outputs(path, files, "auto")
    assert auto.runtimes == {"small": "torch"} and all(r.ok for r in results.values())
    strict, _ = _outputs(path, files, "onnx")
    assert "onnxruntime is not installed" in strict.broken["small"]


def test_an_unknown_runtime_is_refused(exported):
    with pytest.raises(ValueError, match="runtime must be one of"):
        Analysis([str(exported[0])], workers=0, runtime="tensorrt")


@pytest.mark.parametrize("name", ["musicnn-msd", "musicnn-mtt"])
def test_shipped_exports_match_their_weights_and_torch(name):
    bundle = load_bundle(name)
    model, why = onnx_runtime.onnx_model(bundle)
    assert model is not None, why
    from trainer.onnx import export_inputs

    for x in export_inputs(bundle.features.patch_frames, bundle.features.n_mels, seed=7):
        probs, embedding = model.predict_with_embedding(x)
        want = musicnn.predict_with_embedding(bundle.model, torch.from_numpy(x))
        np.testing.assert_allclose(probs, want[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(embedding, want[1].numpy(), atol=1e-4)
