"""The sample-level CNN family (the samplecnn paper, Lee et al. 2017's 3^9 model):
shapes and parameter count, a tiny train-then-predict run on the CPU, its
bundle through the analysis pass, and the plugin writing MOOD from a
samplecnn mood bundle into mp3, flac and m4a through beets' test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import mutagen
import numpy as np
import pytest
import torch
from mediafile import MediaFile

from tagcore.bundle import load_bundle, save_bundle
from tagcore.families import samplecnn
from tagcore.features import WaveParams, compute_feature, feature_spec

TINY = dict(input_samples=243, channels=(4, 4, 4, 4, 8), embedding=8)


def test_default_model_is_lee_et_al_3_9_model():
    config = samplecnn.Config(n_labels=50)
    model = samplecnn.Model(config)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 11  # strided conv, 9 blocks, 1x1 conv
    assert convs[0].stride == (3,) and convs[0].kernel_size == (3,)
    assert [c.out_channels for c in convs] == [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    assert 1.8e6 < samplecnn.parameter_count(model) < 1.95e6  # "about 1.9 million" (1,869,874)
    x = torch.randn(2, 59049)
    assert model(x).shape == (2, 50) and model.embed(x).shape == (2, 512)
    # after the strided conv and 9 pools of 3, one step is left
    steps = model.blocks(model.stem(x.unsqueeze(1))).shape[2]
    assert steps == 1


def test_config_checks_and_round_trip():
    with pytest.raises(ValueError, match="at least 3\\^10"):
        samplecnn.Config(input_samples=50000)
    config = samplecnn.Config(**TINY, n_labels=3)
    assert samplecnn.Config.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown samplecnn config key"):
        samplecnn.Config.from_dict({**config.to_dict(), "widths": 3})
    # a longer input ends in a global max: same output shape
    model = samplecnn.Model(config).eval()
    assert model(torch.randn(3, 243 * 4)).shape == (3, 3)


def test_predict_is_sigmoid_and_embedding_matches():
    torch.manual_seed(0)
    model = samplecnn.Model(samplecnn.Config(**TINY, n_labels=3))
    x = torch.randn(4, 243)
    probs, embedding = samplecnn.predict_with_embedding(model, x)
    assert torch.allclose(probs, samplecnn.predict(model, x))
    assert probs.shape == (4, 3) and embedding.shape == (4, 8)
    assert ((probs > 0) & (probs < 1)).all() and not torch.allclose(probs.sum(1), torch.ones(4))


def _tones(n: int, samples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Low (class 0) and high (class 1) noisy tones at random phases."""
    t = np.arange(samples)
    labels = np.arange(n) % 2
    freq = np.where(labels == 0, 0.02, 0.3)
    x = np.sin(2 * np.pi * freq[:, None] * t + rng.random((n, 1)) * 6) + 0.2 * rng.standard_normal((n, samples))
    return x.astype(np.float32), np.eye(2, dtype=bool)[labels]


def test_tiny_train_then_predict_on_cpu():
    from trainer.propagation_fit import fit

    rng = np.random.default_rng(0)
    x, y = _tones(64, 243, rng)
    xt = torch.from_numpy(x)
    model = samplecnn.Model(samplecnn.Config(**TINY, n_labels=2, dropout=0.0))
    train, val = np.arange(48), np.arange(48, 64)

    def val_loss(m):
        with torch.inference_mode():
            m.eval()
            return float(samplecnn.loss(m(xt[val]), torch.from_numpy(y[val])))

    before = val_loss(model)
    result = fit(model, train=train, tags=y, inputs=lambda ids, _: xt[ids], val_loss=val_loss, index=None, r=0.0,
                 weighting="eq4", epochs=15, patience=12, batch_size=8, lr=0.01, momentum=0.9, decay=5.0, seed=0,
                 log=lambda *_: None)
    assert result.best_value < before
    assert len(result.history) <= 15 and result.history[0]["lr"] == 0.01
    probs = samplecnn.predict(model, xt[val]).numpy()
    assert (probs.argmax(1) == y[val].argmax(1)).mean() >= 0.9


def test_learning_rate_divided_when_validation_loss_rises_and_early_stop():
    from trainer.propagation_fit import fit

    values = iter([1.0, 0.9, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8])
    model = samplecnn.Model(samplecnn.Config(**TINY, n_labels=2))
    x = torch.randn(8, 243)
    result = fit(model, train=np.arange(8), tags=np.eye(2, dtype=bool)[np.arange(8) % 2],
                 inputs=lambda ids, _: x[ids], val_loss=lambda m: next(values), index=None, r=0.0, weighting="eq4",
                 epochs=10, patience=3, batch_size=4, lr=0.01, momentum=0.9, decay=5.0, seed=0, log=lambda *_: None)
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.01, 0.01, 0.002, 0.0004])
    assert result.best_epoch == 2 and len(result.history) == 5


def test_training_with_propagation_uses_the_supportive_term():
    """With playlists and r > 0 the loop trains on eq. 3; with r = 0 the
    weights are exactly those of plain BCE training."""
    from trainer import propagation as prop
    from trainer.propagation_fit import fit

    rng = np.random.default_rng(1)
    x, y = _tones(16, 243, rng)
    xt = torch.from_numpy(x)
    index = prop.build_index([list(range(0, 16, 2)), list(range(1, 16, 2)), [0, 1, 2, 3]], keys=list(range(16)))

    def train(r, index):
        model = samplecnn.Model(samplecnn.Config(**TINY, n_labels=2, dropout=0.0))
        torch.manual_seed(0)
        model.load_state_dict(samplecnn.Model(samplecnn.Config(**TINY, n_labels=2, dropout=0.0)).state_dict())
        fit(model, train=np.arange(16), tags=y, inputs=lambda ids, _: xt[ids], val_loss=lambda m: 0.0, index=index,
            r=r, weighting="eq4", epochs=2, patience=5, batch_size=8, lr=0.01, momentum=0.9, decay=5.0, seed=0,
            log=lambda *_: None)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    plain = train(0.0, None)
    assert torch.equal(plain, train(0.0, index))
    assert not torch.equal(plain, train(0.8, index))


# --- the bundle in the analysis pass ---------------------------------------------------


def make_samplecnn_bundle(directory: Path, *, labels=("happy", "sad", "calm"), bias=(4.0, 3.5, -4.0),
                          name="mood-samplecnn-test", task="mood", patches=2) -> Path:
    """A small samplecnn bundle whose output is fixed by the dense bias
    (zero dense weights): sigmoid(4, 3.5, -4) = 0.982, 0.971, 0.018."""
    torch.manual_seed(0)
    config = samplecnn.Config(channels=(4,) * 10, embedding=8, n_labels=len(labels))
    model = samplecnn.Model(config)
    with torch.no_grad():
        model.dense.weight.zero_()
        model.dense.bias.copy_(torch.tensor(bias))
    return save_bundle(directory, model=model, family="samplecnn", name=name, version="1", labels=list(labels),
                       model_config=config.to_dict(), task=task,
                       input={"kind": "audio", "feature": feature_spec(WaveParams(patches=patches))},
                       outputs=("scores", "embedding"), embedding_dim=8,
                       provenance={"made_by": "tests/test_samplecnn.py"})


def test_bundle_through_the_analysis_pass(tmp_path):
    from plugin_fixtures import write_audio

    from tagcore.analysis import Analysis

    bundle_dir = make_samplecnn_bundle(tmp_path / "bundle")
    loaded = load_bundle(bundle_dir)
    assert loaded.features == WaveParams(patches=2) and loaded.outputs == ("scores", "embedding")
    audio = write_audio(tmp_path / "tone.flac", "flac", seconds=7.0)
    short = write_audio(tmp_path / "short.flac", "flac", seconds=2.0)
    results = {Path(r.path).name: r for r in Analysis([bundle_dir], workers=0, min_duration=1.0).analyse([audio, short])}
    out = results["tone.flac"].outputs["mood-samplecnn-test"]
    assert out.ok and out.scores == pytest.approx({"happy": 0.982, "sad": 0.971, "calm": 0.018}, abs=1e-3)
    assert out.embedding.shape == (8,)
    assert results["short.flac"].outputs["mood-samplecnn-test"].status == "too_short"
    # the feature the pass computes: two centred 59,049-sample patches
    assert compute_feature(np.zeros(22050 * 7, np.float32), params=WaveParams(patches=2)).shape == (2, 59049)


# --- the plugin: MOOD into mp3, flac and m4a ------------------------------------------

from beets_fixtures import AutotagMLHelper  # noqa: E402


@pytest.fixture(scope="module")
def mood_assets(tmp_path_factory):
    from audio_fixtures import write_audio as write_any

    base = tmp_path_factory.mktemp("samplecnn-mood")
    return {"bundle": make_samplecnn_bundle(base / "mood-bundle"),
            "m4a": write_any(base, "m4a-aac", seconds=6.0, name="tone")}


class TestMoodIntoFiles(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _mood(self, _attach, mood_assets):
        self.assets = {**self.assets, "m4a": mood_assets["m4a"]}
        self.use_model(models={"mood": str(mood_assets["bundle"])})

    @pytest.mark.parametrize("kind", ["mp3", "flac", "m4a"])
    def test_mood_written_as_multi_valued_MOOD(self, kind):
        item = self.add_audio(f"song.{kind}", kind)

        out, _ = self.run_ml("-w")

        stored = self.fresh(item)
        assert stored["mood"] == ["Happy", "Sad"]
        assert stored["ml_mood_model"] == "mood-samplecnn-test" and stored["ml_mood_version"] == "1"
        assert stored["ml_mood_happy"] == pytest.approx(0.982, abs=1e-3)
        assert stored["ml_mood_calm"] == pytest.approx(0.018, abs=1e-3)
        assert "mood (mood-samplecnn-test 1): 1 tagged" in out
        tags = mutagen.File(os.fsdecode(item.path))
        if kind == "mp3":
            assert tags.tags.getall("TXXX:MOOD")[0].text == ["Happy", "Sad"]
        elif kind == "m4a":
            assert [bytes(v).decode() for v in tags.tags["----:com.apple.iTunes:MOOD"]] == ["Happy", "Sad"]
        else:
            assert tags["MOOD"] == ["Happy", "Sad"]
        assert MediaFile(os.fsdecode(item.path)).mood == ["Happy", "Sad"]
