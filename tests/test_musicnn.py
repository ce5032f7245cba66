"""The musicnn family: shapes, TF weight mapping against a numpy reference of
the TensorFlow graph, batch-norm folding, bundle round trip, importer and
feature agreement with librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tagcore.bundle import default_bundle_dir, load_bundle, save_bundle
from tagcore.families import FAMILIES, family_module, musicnn
from tagcore.features import compute_feature, feature_spec, log_mel_spectrogram
from trainer.musicnn import BUNDLE_VERSION, DEFAULT_PATCHES, MSD_LABELS, MTT_LABELS, import_musicnn, musicnn_feature, torch_state_dict

SMALL = musicnn.Config(
    n_mels=20, n_labels=4, patch_frames=30, timbral_filters=6, temporal_frames=(8, 5, 2),
    temporal_filters=3, midend_filters=5, dense_units=7,
)  # fmt: skip


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and batch-norm statistics, some scales negative."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) * 3 - 1)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g))
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.2)
    return model.eval()


def test_registered():
    assert FAMILIES["musicnn"] == "tagcore.families.musicnn"
    assert family_module("musicnn") is musicnn


def test_config_defaults_and_round_trip():
    c = musicnn.Config()
    assert c.timbral_widths == (38, 67)
    assert (c.frontend_channels, c.midend_channels) == (561, 753)
    assert musicnn.Config.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        musicnn.Config.from_dict({"bogus": 1})


def test_same_padding_is_tensorflows():
    assert musicnn.same_padding(128) == (63, 64)
    assert musicnn.same_padding(64) == (31, 32)
    assert musicnn.same_padding(32) == (15, 16)
    assert musicnn.same_padding(7) == (3, 3)


def test_shapes():
    model = musicnn.Model(musicnn.Config()).eval()
    x = torch.randn(2, 187, 96)
    with torch.no_grad():
        front = model.frontend(x)
        mid = model.midend(front)
        assert front.shape == (2, 561, 187)
        assert mid.shape == (2, 753, 187)
        assert model.pool(mid).shape == (2, 1506)
        logits, embedding = model.forward_with_embedding(x)
    assert logits.shape == (2, 50)
    assert embedding.shape == (2, 200)
    probs, emb = musicnn.predict_with_embedding(model, x)
    assert probs.shape == (2, 50) and ((probs >= 0) & (probs <= 1)).all()
    torch.testing.assert_close(musicnn.predict(model, x), probs)
    torch.testing.assert_close(musicnn.embed(model, x), emb)
    # musicnn accepts other input lengths too.
    assert musicnn.predict(model, torch.randn(1, 100, 96)).shape == (1, 50)


def test_pool_interleaves_max_and_mean():
    """TF: concat([max, mean], axis=2) of (batch, C, 1) maps, then flatten."""
    mid = torch.tensor([[[1.0, 3.0], [-2.0, 0.0]]])  # (1, C=2, T=2)
    assert musicnn.Model(SMALL).pool(mid).tolist() == [[3.0, 2.0, 0.0, -1.0]]


def test_loss_is_binary_cross_entropy():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    want = -(np.log(0.5) + np.log(1 - 1 / (1 + np.exp(-2.0)))) / 2
    assert musicnn.loss(logits, targets).item() == pytest.approx(want, rel=1e-6)


# --- numpy reference of musicnn's TensorFlow graph (NHWC, TF kernels) -----


def tf_variables(config: musicnn.Config, seed: int = 0) -> dict[str, np.ndarray]:
    """Random variables with musicnn's TF names and shapes (+ an Adam slot)."""
    rng = np.random.default_rng(seed)
    shapes = {}
    convs = [(config.timbral_frames, w, 1, config.timbral_filters) for w in config.timbral_widths]
    convs += [(k, 1, 1, config.temporal_filters) for k in config.temporal_frames]
    convs += [(config.midend_frames, config.frontend_channels, 1, config.midend_filters)]
    convs += [(config.midend_frames, config.midend_filters, 1, config.midend_filters)] * 2
    for i, shape in enumerate(convs):
        name = "conv2d" if i == 0 else f"conv2d_{i}"
        shapes[f"{name}/kernel"] = shape
        shapes[f"{name}/bias"] = (shape[-1],)
    widths = [1] + [s[-1] for s in convs] + [2 * config.midend_channels, config.dense_units]
    for i, width in enumerate(widths):
        name = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
        for field in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{name}/{field}"] = (width,)
    shapes["dense/kernel"] = (2 * config.midend_channels, config.dense_units)
    shapes["dense/bias"] = (config.dense_units,)
    shapes["dense_1/kernel"] = (config.dense_units, config.n_labels)
    shapes["dense_1/bias"] = (config.n_labels,)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("moving_variance"):
            out[name] = rng.uniform(0.2, 2.0, shape)
        elif name.endswith("gamma"):
            out[name] = rng.uniform(-0.5, 2.0, shape)
        else:
            out[name] = rng.standard_normal(shape) * (0.3 if "kernel" in name else 1.0)
        out[name] = out[name].astype(np.float32)
    out["conv2d/kernel/Adam"] = np.zeros(shapes["conv2d/kernel"], np.float32)
    return out


def reference_forward(v: dict[str, np.ndarray], x: np.ndarray, config: musicnn.Config):
    """musicnn's models.build_musicnn in numpy, float64, NHWC as TensorFlow."""

    def bn(t, name):
        return (t - v[f"{name}/moving_mean"]) / np.sqrt(v[f"{name}/moving_variance"] + 1e-3) * v[f"{name}/gamma"] + v[f"{name}/beta"]

    def conv_valid(t, name):  # t (B, H, W, C), kernel (kh, kw, C, O)
        k = v[f"{name}/kernel"].astype(np.float64)
        win = np.lib.stride_tricks.sliding_window_view(t, k.shape[:2], axis=(1, 2))  # B,H',W',C,kh,kw
        return np.einsum("bhwcij,ijco->bhwo", win, k, optimize=True) + v[f"{name}/bias"]

    def pad_time(t, before, after):
        return np.pad(t, [(0, 0), (before, after), (0, 0), (0, 0)])

    def tf_same(t, name):  # TF 'same', stride 1: pad_total = k - 1, pad_top = total // 2
        kh = v[f"{name}/kernel"].shape[0]
        return conv_valid(pad_time(t, (kh - 1) // 2, kh - 1 - (kh - 1) // 2), name)

    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    inp = bn(x[..., None].astype(np.float64), "batch_normalization")
    pad7 = pad_time(inp, 3, 3)
    f74 = bn(relu(conv_valid(pad7, "conv2d")), "batch_normalization_1").max(axis=2)
    f77 = bn(relu(conv_valid(pad7, "conv2d_1")), "batch_normalization_2").max(axis=2)
    s = [bn(relu(tf_same(inp, f"conv2d_{i}")), f"batch_normalization_{i + 1}").max(axis=2) for i in (2, 3, 4)]
    front = np.concatenate([f74, f77, *s], axis=2)[..., None]  # B, T, 561, 1
    c1 = bn(relu(conv_valid(pad_time(front, 3, 3), "conv2d_5")), "batch_normalization_6").transpose(0, 1, 3, 2)
    c2 = bn(relu(conv_valid(pad_time(c1, 3, 3), "conv2d_6")), "batch_normalization_7").transpose(0, 1, 3, 2) + c1
    c3 = bn(relu(conv_valid(pad_time(c2, 3, 3), "conv2d_7")), "batch_normalization_8").transpose(0, 1, 3, 2) + c2
    mid = np.concatenate([front, c1, c2, c3], axis=2)  # B, T, 753, 1
    pool = np.concatenate([mid.max(axis=1), mid.mean(axis=1)], axis=2).reshape(len(x), -1)
    hidden = relu(bn(pool, "batch_normalization_9") @ v["dense/kernel"] + v["dense/bias"])
    penultimate = bn(hidden, "batch_normalization_10")
    logits = penultimate @ v["dense_1/kernel"] + v["dense_1/bias"]
    return 0.5 * (1 + np.tanh(logits / 2)), penultimate  # sigmoid without overflow


@pytest.mark.parametrize("folded", [False, True])
def test_tf_mapping_matches_numpy_reference(folded):
    variables = tf_variables(SMALL)
    model = musicnn.Model(SMALL)
    model.load_state_dict(torch_state_dict(variables, config=SMALL), strict=True)
    model.eval()
    if folded:
        model = musicnn.prepare_for_inference(model)
    x = np.random.default_rng(1).standard_normal((3, SMALL.patch_frames, SMALL.n_mels)).astype(np.float32)
    want_probs, want_emb = reference_forward(variables, x, SMALL)
    probs, emb = musicnn.predict_with_embedding(model, torch.from_numpy(x))
    np.testing.assert_allclose(probs.numpy(), want_probs, atol=1e-5)
    np.testing.assert_allclose(emb.numpy(), want_emb, atol=1e-4, rtol=1e-5)


def test_mapping_rejects_missing_or_misshapen():
    variables = tf_variables(SMALL)
    with pytest.raises(ValueError, match="dense_1/bias"):
        torch_state_dict({k: v for k, v in variables.items() if k != "dense_1/bias"}, config=SMALL)
    variables["conv2d/kernel"] = variables["conv2d/kernel"][:, :-1]
    with pytest.raises(ValueError, match="timbral_convs.0.weight"):
        torch_state_dict(variables, config=SMALL)


@pytest.mark.parametrize("config", [musicnn.Config(), SMALL], ids=["musicnn", "small"])
def test_folding_is_exact(config):
    model = randomise(musicnn.Model(config))
    x = torch.randn(5, config.patch_frames, config.n_mels) * 1.5 + 1.0
    probs, emb = musicnn.predict_with_embedding(model, x)
    folded = musicnn.prepare_for_inference(model)
    assert isinstance(folded, musicnn.InferenceModel)
    assert musicnn.prepare_for_inference(folded) is folded
    fprobs, femb = musicnn.predict_with_embedding(folded, x)
    assert (fprobs - probs).abs().max() < 1e-4
    assert (femb - emb).abs().max() < 1e-4 * max(1.0, emb.abs().max().item())
    # The original model is left trainable.
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(RuntimeError, match="eval-only"):
        folded.train()


def test_state_dict_and_bundle_round_trip(tmp_path):
    model = randomise(musicnn.Model(musicnn.Config()), seed=3)
    copy = musicnn.Model(musicnn.Config())
    copy.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 187, 96)
    torch.testing.assert_close(musicnn.predict(copy, x), musicnn.predict(model, x))

    labels = [f"tag{i}" for i in range(50)]
    save_bundle(
        tmp_path / "m", model=model, family="musicnn", name="m", version="1", labels=labels,
        model_config=musicnn.Config().to_dict(), task="tags",
        input={"kind": "audio", "feature": feature_spec(musicnn_feature(patches=5))},
        outputs=("scores", "embedding"), embedding_dim=200,
    )  # fmt: skip
    bundle = load_bundle(tmp_path / "m")
    assert bundle.labels == labels
    assert bundle.features == musicnn_feature(patches=5)
    probs, emb = musicnn.predict_with_embedding(bundle.model, x)
    want_probs, want_emb = musicnn.predict_with_embedding(model, x)
    assert (probs - want_probs).abs().max() < 1e-4
    assert (emb - want_emb).abs().max() < 1e-4


def test_importer_on_a_fake_package(tmp_path):
    """A folder shaped like the unpacked wheel, with checkpoints written by
    the test's TF writer, becomes two loadable bundles with the right weights."""
    from test_tfcheckpoint import write_checkpoint

    config = musicnn.Config()
    package = tmp_path / "pkg" / "musicnn"
    variables = {}
    for i, folder in enumerate(("MSD_musicnn", "MTT_musicnn")):
        (package / folder).mkdir(parents=True)
        variables[folder] = tf_variables(config, seed=i)
        write_checkpoint(f"{package / folder}/", variables[folder])
    written = import_musicnn(tmp_path / "pkg", out=tmp_path / "out", patches=2)
    assert [p.name for p in written] == ["musicnn-msd", "musicnn-mtt"]
    assert (tmp_path / "out" / "MUSICNN-LICENSE").read_text().startswith("Copyright (c) Music Technology Group")
    x = np.random.default_rng(0).standard_normal((1, 187, 96)).astype(np.float32)
    for path, folder, labels in zip(written, ("MSD_musicnn", "MTT_musicnn"), (MSD_LABELS, MTT_LABELS)):
        bundle = load_bundle(path)
        assert bundle.labels == labels and bundle.task == "tags"
        assert bundle.outputs == ("scores", "embedding") and bundle.config["embedding_dim"] == 200
        assert bundle.features.excerpt_frames == 2 * 187
        assert bundle.config["provenance"]["licence"] == "ISC"
        want, want_emb = reference_forward(variables[folder], x, config)
        got, emb = (t.numpy() for t in musicnn.predict_with_embedding(bundle.model, torch.from_numpy(x)))
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(emb, want_emb, rtol=1e-4, atol=1e-4 * np.abs(want_emb).max())


@pytest.mark.parametrize("name,labels", [("musicnn-msd", MSD_LABELS), ("musicnn-mtt", MTT_LABELS)])
def test_shipped_bundles(name, labels):
    path = default_bundle_dir() / name
    if not path.is_dir():
        pytest.skip(f"{name} not converted (python -m trainer musicnn)")
    bundle = load_bundle(path)
    assert bundle.family == "musicnn" and bundle.labels == labels
    assert bundle.features == musicnn_feature(patches=DEFAULT_PATCHES)
    assert bundle.version == BUNDLE_VERSION
    assert isinstance(bundle.model, musicnn.InferenceModel)
    assert (default_bundle_dir() / "MUSICNN-LICENSE").is_file()
    probs, emb = musicnn.predict_with_embedding(bundle.model, torch.zeros(2, 187, 96))
    assert probs.shape == (2, 50) and emb.shape == (2, 200) and torch.isfinite(probs).all()


# --- the input feature -----------------------------------------------------


def test_feature_shape():
    params = musicnn_feature(patches=5)
    assert params.excerpt_frames == 935 and params.patch_frames == 187
    y = np.zeros(16000 * 40, np.float32)
    assert compute_feature(y, params=params).shape == (5, 187, 96)


@pytest.mark.slow
def test_feature_matches_librosa():
    """musicnn's extractor: librosa.feature.melspectrogram (reflection padding,
    as librosa < 0.10), float16, then log10(10000 x + 1). With numpy < 1.17
    (musicnn pins it) ``10000 * float16_array`` is float32 (legacy value-based
    casting), so only the mel energies are rounded to float16."""
    librosa = pytest.importorskip("librosa")
    params = musicnn_feature(patches=2)
    rng = np.random.default_rng(0)
    t = np.arange(params.excerpt_samples) / 16000
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) + 0.2 * np.sin(2 * np.pi * 3000 * t ** 1.2)
    y = (y + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
    want = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    assert want.shape == (374, 96)
    got = compute_feature(y, params=params)
    assert got.shape == (2, 187, 96)
    np.testing.assert_allclose(got.reshape(374, 96), want, atol=1e-3)
    np.testing.assert_allclose(log_mel_spectrogram(y, params=params), want, atol=1e-3)
