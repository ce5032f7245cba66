"""The family contract (tagcore.families), one set of tests run over every
family, as mirdata tests all its loaders: each module declares what the
contract asks; each builds a small model from its default config, goes
through a bundle and back with the same outputs, predicts the shape it
declares on a synthesized input of its input kind, and refuses bad input
with a clear error.

A new family adds its :class:`Example` to :data:`EXAMPLES`
(``test_every_family_has_an_example`` fails until it does).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from lyrics_fixtures import ENGLISH, INSTRUMENTAL, PORTUGUESE

from tagcore.bundle import BundleError, default_bundle_dir, load_bundle, read_config, save_bundle
from tagcore.families import FAMILIES, PROTOCOLS, Family, FamilyConfig, check_family, family_module, texts_checked
from tagcore.families.ngram import terms as ngram_terms
from tagcore.features import DPNN_SEGMENT, MelParams, WaveParams, compute_feature, feature_spec
from tagcore.lyrics import lyric_tokens


@dataclass(frozen=True)
class Example:
    """How to exercise one family: ``config``, overrides of its default
    Config that keep the model small (and give text models a vocabulary);
    ``input``, the bundle's input spec; ``feature`` (audio) the feature its
    patches come from; ``texts`` (text) texts it reads and ``unreadable``
    ones it must refuse with a reason; ``embedding_dim``, the Config field
    that gives the embedding's length (families with embeddings)."""

    config: dict = field(default_factory=dict)
    input: dict = field(default_factory=dict)
    feature: Any = None
    texts: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    embedding_dim: str = ""


SMALL_MELS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, excerpt_frames=64)
MUSICNN_MELS = dataclasses.replace(SMALL_MELS, log="log10", patch_frames=32)
SAMPLES = WaveParams(sample_rate=8000, patch_samples=243, patches=3)

EXAMPLES = {
    "disambig": Example(
        config={"n_mels": 16, "channels": (4, 8), "pools": ((2, 2), (2, 2)), "gru_hidden": 6, "n_labels": 3},
        feature=SMALL_MELS, embedding_dim="gru_hidden"),
    "musicnn": Example(
        config={"n_mels": 16, "n_labels": 3, "patch_frames": 32, "timbral_filters": 4, "temporal_frames": (8, 4, 2),
                "temporal_filters": 3, "midend_filters": 4, "dense_units": 5},
        feature=MUSICNN_MELS, embedding_dim="dense_units"),
    "samplecnn": Example(
        config={"input_samples": 243, "channels": (4, 4, 4, 4, 8), "embedding": 8, "n_labels": 3},
        feature=SAMPLES, embedding_dim="embedding"),
    # The paper's DPNN is small enough as it is.
    "triplet": Example(feature=DPNN_SEGMENT, embedding_dim="embedding_dim"),
    "head": Example(config={"n_inputs": 6, "n_labels": 3, "hidden": 4}, input={"kind": "backbone", "bundle": "b"}),
    "tagmap": Example(
        config={"inputs": ("a:x", "a:y", "b:z"), "n_labels": 3,
                "entries": ((0, 0, 0.5, 0.0), (1, 1, 0.3, 1.0), (2, 1, 0.2, 0.0, 0.8)),
                "gate_inputs": (0, 1), "gate_margin": 0.8, "gate_vetoes": ((2, 0.9, 0),),
                "gate_labels": ((0, 0, 0), (1, 0, 1))},
        input={"kind": "scores", "bundles": ["a", "b"]}),
    "han": Example(
        config={"vocabulary": ("<pad>", "<unk>", "rock", "guitar", "synth", "beat"), "n_labels": 3,
                "embed_dim": 8, "hidden": 8, "attention_dim": 8},
        input={"kind": "text", "source": "reviews"},
        texts=("rock guitar\n\nsynth beat", "guitar guitar rock"), unreadable=("", "!!! ...", "ganz andere wörter")),
    "lyrics": Example(
        config={"vocabulary": ("<pad>", "<unk>", *dict.fromkeys(lyric_tokens(ENGLISH))), "n_labels": 3,
                "embedding_dim": 4, "hidden": 6, "max_tokens": 8, "windows": 2},
        input={"kind": "text", "source": "lyrics"},
        texts=(ENGLISH, ENGLISH[:200]), unreadable=(INSTRUMENTAL, PORTUGUESE)),
    "ngram": Example(
        config={"vocabulary": tuple(dict.fromkeys(ngram_terms(lyric_tokens(ENGLISH), ngram=2))), "n_labels": 3},
        input={"kind": "text", "source": "lyrics"},
        texts=(ENGLISH, ENGLISH[:200]), unreadable=(INSTRUMENTAL, PORTUGUESE)),
}

NAMES = sorted(FAMILIES)


def small_config(family: Family):
    return family.Config(**EXAMPLES[family.FAMILY].config)


def labels_of(config) -> list[str]:
    return [f"label{i}" for i in range(getattr(config, "n_labels", 0))]


def synthesized_input(family: Family, config) -> Any:
    """A batch of the family's input kind: patches of a feature computed on
    a synthesized tone (audio), random vectors (backbone), probabilities
    (scores), or texts."""
    example = EXAMPLES[family.FAMILY]
    if family.INPUT == "audio":
        params = example.feature
        t = np.arange(int(params.excerpt_seconds * params.sample_rate) + 1024) / params.sample_rate
        tone = (0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.3 * np.sin(2 * np.pi * 97.0 * t)).astype(np.float32)
        return torch.from_numpy(compute_feature(tone, params=params))
    if family.INPUT == "text":
        return [*example.texts, *example.unreadable]
    width = family.input_shape(config)[0]
    generator = torch.Generator().manual_seed(0)
    if family.INPUT == "backbone":
        return torch.randn(4, width, generator=generator)
    return torch.rand(4, width, generator=generator).clamp(0.01, 0.99)  # scores


def outputs_of(family: Family, model, x) -> dict[str, np.ndarray]:
    """What the family gives for ``x``, by output name."""
    if family.INPUT == "text":
        probs, _ = family.predict_texts_checked(model, x)
        return {"scores": probs}
    if family.INPUT != "audio":
        return {"scores": family.predict(model, x).numpy()}
    probs, embedding = family.predict_with_embedding(model, x)
    out = {"embedding": family.embed(model, x).numpy()}
    if "scores" in family.OUTPUTS:
        out["scores"] = family.predict(model, x).numpy()
        assert np.allclose(probs.numpy(), out["scores"], atol=1e-6)
    assert np.allclose(embedding.numpy(), out["embedding"], atol=1e-6)
    return out


def save(family: Family, model, config, directory):
    """A bundle of ``model`` giving every output the family declares."""
    example = EXAMPLES[family.FAMILY]
    spec = example.input or {"kind": "audio", "feature": feature_spec(example.feature)}
    labels = labels_of(config) if "scores" in family.OUTPUTS else None
    dim = getattr(config, example.embedding_dim) if "embedding" in family.OUTPUTS else None
    return save_bundle(directory, model=model, family=family.FAMILY, name=f"{family.FAMILY}-test", version="1",
                       labels=labels, model_config=config, input=spec, outputs=family.OUTPUTS, embedding_dim=dim)


def test_every_family_has_an_example():
    assert sorted(EXAMPLES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_module_follows_the_contract(name):
    family = family_module(name)
    assert isinstance(family, PROTOCOLS[family.INPUT]) and isinstance(family, Family)
    check_family(family, name=name)
    assert family.FAMILY == name and set(family.OUTPUTS) <= {"scores", "embedding"}
    # Config: a frozen dataclass whose defaults build, written as plain JSON and read back equal.
    config = family.Config()
    assert isinstance(config, FamilyConfig) and dataclasses.is_dataclass(config)
    assert family.Config.__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_labels = 7
    assert family.Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert family.Config.from_dict(json.loads(json.dumps(small_config(family).to_dict()))) == small_config(family)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_keys_are_named_with_the_closest(name):
    family = family_module(name)
    data = family.Config().to_dict()
    key = next(iter(data))
    with pytest.raises(ValueError, match=f"unknown {name} config key '{key}x'; did you mean '{key}'"):
        family.Config.from_dict({**data, f"{key}x": 1})


@pytest.mark.parametrize("name", NAMES)
def test_a_small_model_predicts_what_it_declares_and_survives_a_bundle(name, tmp_path):
    family = family_module(name)
    config = small_config(family)
    torch.manual_seed(0)
    trained = family.Model(config).eval()
    model = family.prepare_for_inference(trained)
    x = synthesized_input(family, config)
    before = outputs_of(family, model, x)

    batch = len(x)
    assert set(before) == set(family.OUTPUTS)
    if "scores" in before:
        assert before["scores"].shape == (batch, config.n_labels)
    if "embedding" in before:
        assert before["embedding"].shape == (batch, getattr(config, EXAMPLES[name].embedding_dim))
    readable = before["scores"][: len(EXAMPLES[name].texts)] if family.INPUT == "text" else next(iter(before.values()))
    assert np.all(np.isfinite(readable))

    bundle = load_bundle(save(family, trained, config, tmp_path / name))
    assert bundle.family_module is family and bundle.model_config == config
    after = outputs_of(family, bundle.model, x)
    for output, value in before.items():
        assert np.allclose(after[output], value, atol=1e-5, equal_nan=True), output


@pytest.mark.parametrize("name", [n for n in NAMES if EXAMPLES[n].texts])
def test_text_families_follow_one_rule_for_texts_they_cannot_read(name):
    """A text the model cannot read gets a NaN row, "no prediction", and
    its reason; never a row of zeros (a confident "none of the labels")."""
    family = family_module(name)
    torch.manual_seed(0)
    model = family.Model(small_config(family)).eval()
    example = EXAMPLES[name]
    texts = [example.unreadable[0], *example.texts, *example.unreadable[1:]]
    probs, problems = family.predict_texts_checked(model, texts)
    unread = [0, *range(1 + len(example.texts), len(texts))]
    assert all(isinstance(problems[i], str) and problems[i] for i in unread)
    assert np.all(np.isnan(probs[unread]))
    read = list(range(1, 1 + len(example.texts)))
    assert all(problems[i] is None for i in read) and np.all(np.isfinite(probs[read]))
    assert np.array_equal(family.predict_texts(model, texts), probs, equal_nan=True)
    assert family.predict_texts_checked(model, [])[0].shape == (0, model.config.n_labels)


def test_the_rule_itself():
    probs, problems = texts_checked([1], np.array([[0.25, 0.75]]), ["no words", None], n_labels=2)
    assert np.isnan(probs[0]).all() and probs[1].tolist() == [0.25, 0.75] and problems == ["no words", None]
    with pytest.raises(ValueError, match="rows must be"):
        texts_checked([0], np.array([[0.25, 0.75]]), ["no words", None], n_labels=2)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_gets_a_clear_error(name):
    family = family_module(name)
    config = small_config(family)
    model = family.Model(config).eval()
    if family.INPUT == "text":
        with pytest.raises(TypeError, match=f"{name} expects a sequence of texts, not str"):
            family.predict_texts_checked(model, "one text, not a list")
        with pytest.raises(TypeError, match=f"{name} expects texts as str, not int"):
            family.predict_texts(model, ["fine", 3])
        return
    good = synthesized_input(family, config)
    wrong_width = good[..., :-1]
    for predict in [family.predict] + ([family.embed, family.predict_with_embedding] if family.INPUT == "audio" else []):
        with pytest.raises(ValueError, match=rf"{name} expects input of shape \(batch, .*\), got \({len(good)}, "):
            predict(model, wrong_width)
        with pytest.raises(ValueError, match=f"{name} expects input of shape"):
            predict(model, good[0])
        with pytest.raises(TypeError, match=f"{name} expects a tensor"):
            predict(model, good.tolist())


def test_a_bundle_whose_feature_does_not_fit_its_model_is_refused(tmp_path):
    family = family_module("disambig")
    config = small_config(family)
    path = save(family, family.Model(config), config, tmp_path / "d")
    data = json.loads((path / "config.json").read_text())
    data["input"]["feature"]["n_mels"] = 20
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"logmel feature gives patches of shape \(any, 20\); the model reads \(any, 16\)"):
        load_bundle(path)


def test_a_bundle_of_another_input_kind_than_its_family_is_refused(tmp_path):
    family = family_module("head")
    config = small_config(family)
    with pytest.raises(BundleError, match="a head model reads backbone input, not scores"):
        save_bundle(tmp_path / "h", model=family.Model(config), family="head", name="h", version="1",
                    labels=labels_of(config), model_config=config, input={"kind": "scores", "bundles": ["a"]})
    with pytest.raises(BundleError, match=r"unknown head config key 'hiden'; did you mean 'hidden'"):
        save_bundle(tmp_path / "h", model=family.Model(config), family="head", name="h", version="1",
                    labels=labels_of(config), model_config={**config.to_dict(), "hiden": 3},
                    input={"kind": "backbone", "bundle": "b"})
    assert not (tmp_path / "h").exists()


#: The model bundles shipped in tagcore/bundles (related-tags is a table of another format).
SHIPPED = sorted(p.parent.name for p in default_bundle_dir().glob("*/config.json")
                 if json.loads(p.read_text(encoding="utf-8")).get("format") == "tagcore-bundle")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_bundle_loads_unchanged(name):
    """The JSON on disk is the format the typed configs read and write:
    every shipped bundle loads, and its model config written back is the
    same JSON."""
    path, config = read_config(name)
    bundle = load_bundle(path)
    assert bundle.model_config == bundle.family_module.Config.from_dict(config["model"])
    assert bundle.model_config.to_dict() == config["model"]
    assert bundle.family_module.INPUT == bundle.input_kind
