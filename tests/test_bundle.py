"""Bundle round trip and refusal of anything but a valid safetensors bundle."""

import json
import pickle

import pytest
import torch

from tagcore.bundle import BundleError, load_bundle, resolve_bundle, save_bundle
from tagcore.families import disambig
from tagcore.features import MelParams

LABELS = ["blues", "hiphop", "rock"]
GTZAN_GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def tiny_config():
    return disambig.Config(channels=(4, 8), pools=((2, 2), (3, 4)), gru_hidden=8, n_labels=len(LABELS))


@pytest.fixture
def bundle_dir(tmp_path):
    torch.manual_seed(0)
    config = tiny_config()
    model = disambig.Model(config).eval()
    path = save_bundle(
        tmp_path / "tiny", model=model, family="disambig", name="tiny", version="3", labels=LABELS,
        model_config=config.to_dict(), features=MelParams().to_dict(),
        provenance={"data": "synthetic"}, metrics={"accuracy": 0.5},
    )
    return path, model


def test_round_trip_gives_identical_predictions(bundle_dir):
    path, model = bundle_dir
    bundle = load_bundle(path)
    assert (bundle.name, bundle.version, bundle.labels, bundle.family) == ("tiny", "3", LABELS, "disambig")
    assert bundle.features == MelParams()
    x = torch.randn(2, 100, 96)
    assert torch.allclose(disambig.predict(model, x), disambig.predict(bundle.model, x))
    assert not bundle.model.training


def test_saving_over_a_bundle_replaces_it(bundle_dir, tmp_path):
    path, model = bundle_dir
    config = tiny_config()
    save_bundle(path, model=model, family="disambig", name="tiny", version="4", labels=LABELS,
                model_config=config.to_dict(), features=MelParams().to_dict())
    assert load_bundle(path).version == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def break_pickle(path):
    torch.save(load_bundle(path).model.state_dict(), path / "weights.safetensors", _use_new_zipfile_serialization=False)


def break_plain_pickle(path):
    (path / "weights.safetensors").write_bytes(pickle.dumps({"dense.weight": [1, 2, 3]}))


def edit_config(**changes):
    def apply(path):
        config = json.loads((path / "config.json").read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key)
            else:
                config[key] = value
        (path / "config.json").write_text(json.dumps(config))
    return apply


@pytest.mark.parametrize(
    "damage, message",
    [
        (break_pickle, "not a safetensors"),
        (break_plain_pickle, "not a safetensors"),
        (lambda p: (p / "weights.safetensors").unlink(), "missing weights.safetensors"),
        (lambda p: (p / "config.json").unlink(), "missing config.json"),
        (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
        (edit_config(format_version=99), "format_version 99"),
        (edit_config(family="nope"), "unknown model family"),
        (edit_config(labels=["a", "a", "b"]), "duplicates"),
        (edit_config(labels=["a", "b"]), "n_labels"),
        (edit_config(labels=None), "labels must be"),
        (edit_config(task=None), "missing keys"),
        (edit_config(input={"kind": "radio"}), "input must be"),
        (edit_config(input={"kind": "backbone"}), "name the backbone"),
        (edit_config(input={"kind": "audio", "feature": {"kind": "logmel", "n_mel": 3}}), "unknown mel parameters"),
        (edit_config(outputs=["scores", "embedding"]), "embedding_dim"),
        (edit_config(model={"channels": [4, 16], "pools": [[2, 2], [3, 4]], "gru_hidden": 8, "n_labels": 3}), "do not fit"),
        (edit_config(model={"widths": [4]}), "unknown disambig config"),
    ],
)
def test_bad_bundles_are_refused(bundle_dir, damage, message):
    path, _ = bundle_dir
    damage(path)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_unknown_name_lists_what_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr("tagcore.bundle.user_bundle_dir", lambda: tmp_path)
    with pytest.raises(BundleError, match="no model bundle 'nope'"):
        resolve_bundle("nope")


def test_a_format_1_bundle_still_loads_as_a_genre_tagger(bundle_dir):
    """Bundles written before format 2 (top-level ``features``, no task or
    input) load unchanged and read as genre taggers on their log-mel."""
    path, model = bundle_dir
    config = json.loads((path / "config.json").read_text())
    v1 = {k: v for k, v in config.items() if k not in ("task", "input", "outputs")}
    v1.update(format_version=1, features=MelParams(n_mels=96).to_dict())
    (path / "config.json").write_text(json.dumps(v1))
    bundle = load_bundle(path)
    assert (bundle.task, bundle.input_kind, bundle.outputs) == ("genre", "audio", ("scores",))
    assert bundle.features == MelParams()
    x = torch.randn(1, 50, 96)
    assert torch.allclose(disambig.predict(model, x), disambig.predict(bundle.model, x))


def test_the_shipped_genre10_bundle_loads():
    bundle = load_bundle("genre10")
    assert bundle.task == "genre" and bundle.input_kind == "backbone" and bundle.backbone == "musicnn-msd"
    assert bundle.labels == GTZAN_GENRES


def test_the_shipped_genre10_cnn_bundle_loads():
    """The CNN + GRU once shipped as genre10, rebuilt as genre10-cnn version 2."""
    bundle = load_bundle("genre10-cnn")
    assert (bundle.name, bundle.version, bundle.family) == ("genre10-cnn", "2", "disambig")
    assert bundle.task == "genre" and bundle.input_kind == "audio" and bundle.labels == GTZAN_GENRES
