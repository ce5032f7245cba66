"""The analysis pass: several bundles, one decode per file, shared features,
backbones run once for their heads, text bundles, bad files and bundles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from plugin_fixtures import make_bundle, write_audio

import tagcore.analysis as analysis_module
from tagcore.analysis import FAILED, NO_INPUT, OK, SKIPPED, TOO_SHORT, UNAVAILABLE, Analysis, Input
from tagcore.bundle import BundleError, load_bundle, save_bundle
from tagcore.families import FAMILIES, disambig, head
from tagcore.features import MelParams, feature_spec

MUSICNN_LIKE = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=48, log="log10", center=True,
                         excerpt_frames=2 * 62, patch_frames=62)


def tiny_disambig(directory, *, name, features: MelParams, outputs=("scores",), labels=("a", "b", "c")):
    torch.manual_seed(len(name))
    config = disambig.Config(n_mels=features.n_mels, channels=(4, 8), pools=((2, 2), (2, 2)), gru_hidden=6,
                             n_labels=len(labels))
    return save_bundle(
        directory / name, model=disambig.Model(config).eval(), family="disambig", name=name, version="1",
        labels=list(labels), model_config=config.to_dict(), input={"kind": "audio", "feature": feature_spec(features)},
        outputs=outputs, embedding_dim=6 if "embedding" in outputs else None, task="genre",
    )


def tiny_head(directory, *, name, backbone, labels=("x", "y")):
    torch.manual_seed(len(name))
    config = head.Config(n_inputs=6, n_labels=len(labels), hidden=4)
    return save_bundle(
        directory / name, model=head.Model(config).eval(), family="head", name=name, version="1",
        labels=list(labels), model_config=config.to_dict(), input={"kind": "backbone", "bundle": str(backbone)},
        task="mood",
    )


@pytest.fixture
def files(tmp_path):
    return [str(write_audio(tmp_path / f"song{i}.flac", "flac", seconds=5.0, frequency=220.0 * (i + 1))) for i in range(3)]


@pytest.fixture
def count_calls(monkeypatch):
    """Counts calls of functions of tagcore.analysis (workers=0: in this process)."""
    counts: dict[str, int] = {}

    def wrap(name):
        original = getattr(analysis_module, name)

        def counted(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(analysis_module, name, counted)

    for name in ("read_span", "compute_feature"):
        wrap(name)
    return counts


def scores_of(bundles, paths, **options):
    return {r.path: {n: o.scores for n, o in r.outputs.items()} for r in Analysis(bundles, workers=0, **options).analyse(paths)}


def test_two_bundles_of_different_features_cost_one_decode_per_file(tmp_path, files, count_calls):
    one = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100))
    two = tiny_disambig(tmp_path, name="two", features=MUSICNN_LIKE)

    results = list(Analysis([one, two], workers=0).analyse(files))

    assert count_calls["read_span"] == len(files)
    assert count_calls["compute_feature"] == 2 * len(files)
    assert sorted(r.path for r in results) == sorted(files)
    assert all(r.decodes == 1 for r in results)
    assert all(r.outputs[n].status == OK for r in results for n in ("one", "two"))
    # The same scores as each bundle alone, up to the resampler: alone, the
    # 16 kHz feature's 2 s are resampled by themselves; together, they are
    # cut from the resampled 4.6 s the other feature needs (no edge effects).
    one_alone, two_alone = scores_of([one], files), scores_of([two], files)
    alone = {p: {**one_alone[p], **two_alone[p]} for p in files}
    together = scores_of([one, two], files)
    for path in files:
        assert together[path]["one"] == pytest.approx(alone[path]["one"], abs=1e-6)
        assert together[path]["two"] == pytest.approx(alone[path]["two"], abs=2e-3)


def test_equal_features_are_computed_once(tmp_path, files, count_calls):
    one = tiny_disambig(tmp_path, name="one", features=MUSICNN_LIKE)
    same = tiny_disambig(tmp_path, name="same", features=dataclasses.replace(MUSICNN_LIKE))

    list(Analysis([one, same], workers=0).analyse(files))

    assert count_calls["compute_feature"] == len(files)


def test_patches_are_averaged(tmp_path, files):
    path = tiny_disambig(tmp_path, name="one", features=MUSICNN_LIKE)
    bundle = load_bundle(path)
    result = next(Analysis([bundle], workers=0).analyse(files[:1]))
    from tagcore.audio import read_excerpt
    from tagcore.features import compute_feature

    # The feature's centred excerpt (its start on the 2 s grid), read on its own.
    excerpt = read_excerpt(files[0], sample_rate=16000, duration=MUSICNN_LIKE.excerpt_seconds)
    x = compute_feature(excerpt, params=MUSICNN_LIKE)
    assert x.shape == (2, 62, 48)
    expected = disambig.predict(bundle.model, torch.from_numpy(x)).mean(dim=0).numpy()
    # Up to the resampler's edges (the excerpt alone was resampled here).
    assert list(result.outputs["one"].scores.values()) == pytest.approx(expected.tolist(), abs=2e-3)


def test_a_backbone_runs_once_for_all_its_heads(tmp_path, files):
    backbone = load_bundle(tiny_disambig(tmp_path, name="backbone", features=MelParams(excerpt_frames=100),
                                         outputs=("scores", "embedding")))
    heads = [tiny_head(tmp_path, name=f"head{i}", backbone="backbone") for i in range(3)]
    rows = []
    # Every forward of the backbone goes through embed: count its inputs.
    original_embed = backbone.model.embed
    backbone.model.embed = lambda x: (rows.append(x.shape[0]), original_embed(x))[1]

    results = list(Analysis([backbone, *[str(h) for h in heads]], workers=0, batch_size=8).analyse(files))

    assert sum(rows) == len(files)  # one forward row per file, for the backbone and three heads
    for result in results:
        assert set(result.outputs) == {"backbone", "head0", "head1", "head2"}
        assert result.outputs["backbone"].embedding.shape == (6,)
        assert sum(result.outputs["head1"].scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_a_head_alone_brings_its_backbone_but_returns_only_itself(tmp_path, files):
    tiny_disambig(tmp_path, name="backbone", features=MelParams(excerpt_frames=100), outputs=("scores", "embedding"))
    head_path = tiny_head(tmp_path, name="head", backbone=tmp_path / "backbone")
    results = list(Analysis([str(head_path)], workers=0).analyse(files))
    assert all(set(r.outputs) == {"head"} and r.outputs["head"].ok for r in results)


def test_a_head_on_a_backbone_without_embedding_is_refused(tmp_path):
    tiny_disambig(tmp_path, name="backbone", features=MelParams(excerpt_frames=100))
    with pytest.raises(BundleError, match="gives no embedding"):
        Analysis([str(tiny_head(tmp_path, name="head", backbone=tmp_path / "backbone"))])


def test_too_short_for_one_feature_is_too_short_for_that_bundle_only(tmp_path):
    short = str(write_audio(tmp_path / "short.flac", "flac", seconds=1.5))
    whole = tiny_disambig(tmp_path, name="whole", features=MelParams(excerpt_frames=100))
    patches = tiny_disambig(tmp_path, name="patches", features=MelParams(excerpt_frames=200, patch_frames=100))

    (result,) = Analysis([whole, patches], workers=0, min_duration=1.0).analyse([short])

    assert result.outputs["whole"].status == OK
    assert result.outputs["patches"].status == TOO_SHORT
    assert "short.flac: too short" in result.outputs["patches"].message


def test_bad_files_fail_alone_with_their_cause(tmp_path, files):
    text = tmp_path / "text.mp3"
    text.write_text("not audio " * 100)
    bundle = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100))
    results = {r.path: r.outputs["one"] for r in Analysis([bundle], workers=2).analyse([*files, str(text)])}
    assert results[str(text)].status == "failed"
    assert results[str(text)].message.startswith(f"{text}: ")
    assert all(results[p].ok for p in files)


def test_a_broken_bundle_is_reported_once_and_the_others_run(tmp_path, files):
    good = tiny_disambig(tmp_path, name="good", features=MelParams(excerpt_frames=100))
    bad = tiny_disambig(tmp_path, name="bad", features=MUSICNN_LIKE)
    (bad / "weights.safetensors").write_bytes(b"garbage")
    analysis = Analysis([str(good), str(bad)], workers=0)
    results = list(analysis.analyse(files))
    assert set(analysis.broken) == {"bad"} and "weights.safetensors" in analysis.broken["bad"]
    assert all(r.outputs["good"].ok and r.outputs["bad"].status == UNAVAILABLE for r in results)


# --- A text family, registered for these tests only ----------------------
# (this module follows tagcore.families.TextFamily)

FAMILY = "wordlength"
INPUT = "text"
OUTPUTS = ("scores",)


@dataclasses.dataclass(frozen=True)
class Config:
    n_labels: int = 2

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


class Model(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))


def prepare_for_inference(model):
    return model


def predict_texts_checked(model, texts):
    """Label 0 "long" scores the share of texts' words beyond 3 letters;
    a text with a digit is not read; "nan" gives a NaN row without a reason
    (a family breaking the rule)."""
    problems = ["a digit" if any(c.isdigit() for c in t) else None for t in texts]
    share = np.array([np.nan if t == "nan" else np.mean([len(w) > 3 for w in t.split()]) for t in texts])
    return np.stack([share, 1 - share], axis=1), problems


def predict_texts(model, texts):
    return predict_texts_checked(model, texts)[0]


def test_text_bundles_take_the_text_the_caller_supplies(tmp_path, files, monkeypatch):
    monkeypatch.setitem(FAMILIES, "wordlength", __name__)
    text_bundle = save_bundle(
        tmp_path / "words", model=Model(Config()), family="wordlength", name="words", version="1",
        labels=["long", "short"], model_config=Config().to_dict(), input={"kind": "text", "source": "lyrics"},
        task="genre",
    )
    audio = tiny_disambig(tmp_path, name="audio", features=MelParams(excerpt_frames=100))
    inputs = [Input(files[0], {"lyrics": "many wonderful words"}), Input(files[1], {}), files[2]]

    results = {r.path: r for r in Analysis([str(text_bundle), audio], workers=0).analyse(inputs)}

    assert results[files[0]].outputs["words"].scores == {"long": 1.0, "short": 0.0}
    assert results[files[1]].outputs["words"].status == NO_INPUT
    assert all(results[p].outputs["audio"].ok for p in files)

    # Text alone: nothing is decoded.
    (only,) = Analysis([str(text_bundle)], workers=0).analyse([Input("no-such-file.mp3", {"lyrics": "a b c d"})])
    assert only.decodes == 0 and only.outputs["words"].scores["short"] == 1.0

    # A text the family cannot read is a skip with its reason; a row
    # without scores (NaN) is a failure, never scores.
    texts = [Input("a.mp3", {"lyrics": "track 2"}), Input("b.mp3", {"lyrics": "nan"})]
    skipped, failed = sorted(Analysis([str(text_bundle)], workers=0).analyse(texts), key=lambda r: r.path)
    assert skipped.outputs["words"].status == SKIPPED and skipped.outputs["words"].message == "a.mp3: a digit"
    assert failed.outputs["words"].status == FAILED and failed.outputs["words"].scores is None


def test_the_shipped_v1_style_test_bundle_still_runs(tmp_path, files):
    """make_bundle writes the plugin tests' bundle; the pass runs it."""
    path = make_bundle(tmp_path / "b")
    (result,) = Analysis([str(path)], workers=0).analyse(files[:1])
    assert result.outputs["genre-test"].scores["hiphop"] == pytest.approx(0.975, abs=1e-3)


def test_a_tag_map_reads_the_scores_of_other_bundles(tmp_path, files):
    from tagcore.families import tagmap

    one = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100), labels=("a", "b", "c"))
    two = tiny_disambig(tmp_path, name="two", features=MUSICNN_LIKE, labels=("a", "d"))
    inputs = ["one:a", "one:b", "one:c", "two:a", "two:d"]
    config, model = tagmap.build(inputs=inputs, labels=["A", "BC", "none"],
                                 rules=[("one:a", "A", 0.3, 0.0), ("two:a", "A", 0.5, 0.0),
                                        ("one:b", "BC", 0.2, 0.0), ("one:c", "BC", 0.2, 1.0)])
    mapped = save_bundle(tmp_path / "map", model=model, family="tagmap", name="map", version="1",
                         labels=["A", "BC", "none"], model_config=config.to_dict(),
                         input={"kind": "scores", "bundles": ["one", "two"]}, task="genre")
    results = list(Analysis([str(mapped), str(two)], workers=0).analyse(files))
    alone = scores_of([one, two], files)

    def logit(p):
        return np.log(p / (1 - p))

    for result in results:
        assert set(result.outputs) == {"map", "two"}
        got, src = result.outputs["map"].scores, alone[result.path]
        assert got["none"] == 0.0
        best_a = max(logit(src["one"]["a"]) - logit(0.3), logit(src["two"]["a"]) - logit(0.5))
        assert got["A"] == pytest.approx(1 / (1 + np.exp(-best_a)), abs=3e-3)
        best_bc = max(logit(src["one"]["b"]) - logit(0.2), logit(src["one"]["c"]) - logit(0.2) + 1.0)
        assert got["BC"] == pytest.approx(1 / (1 + np.exp(-best_bc)), abs=3e-3)


def test_a_tag_map_rule_must_name_known_inputs_and_labels():
    from tagcore.families import tagmap

    with pytest.raises(ValueError, match="unknown input"):
        tagmap.build(inputs=["m:rock"], labels=["Rock"], rules=[("m:pop", "Rock", 0.5, 0)])
    with pytest.raises(ValueError, match="threshold"):
        tagmap.Config(inputs=["m:rock"], n_labels=1, entries=[[0, 0, 1.5, 0]])


def test_batches_run_side_by_side_give_the_same_outputs(tmp_path):
    """model_threads > 1 runs several batches at once (each model thread
    its own batch): every file still gets one result, equal to the one
    thread's, and the batches did overlap."""
    import threading
    import time

    more = [str(write_audio(tmp_path / f"s{i}.flac", "flac", seconds=4.0, frequency=110.0 * (i + 1)))
            for i in range(8)]
    bundle = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100))
    alone = scores_of([bundle], more, batch_size=2, model_threads=1)

    running, most = set(), [0]
    lock = threading.Lock()
    original = Analysis._run_batch

    def slow_batch(self, files):
        with lock:
            running.add(threading.get_ident())
            most[0] = max(most[0], len(running))
        time.sleep(0.2)  # long enough for the next batch to start beside it
        try:
            return original(self, files)
        finally:
            with lock:
                running.discard(threading.get_ident())

    analysis = Analysis([bundle], workers=0, batch_size=2, model_threads=3)
    analysis._run_batch = slow_batch.__get__(analysis)
    side_by_side = {r.path: {n: o.scores for n, o in r.outputs.items()} for r in analysis.analyse(more)}
    assert side_by_side.keys() == alone.keys()
    for path in more:
        assert side_by_side[path]["one"] == pytest.approx(alone[path]["one"], abs=1e-6)
    assert most[0] >= 2


def test_no_model_thread_waits_while_batches_are_left(tmp_path):
    """With decoding far ahead, every model thread stays busy until the
    inputs run out: the pass waits for its oldest batch only, never for
    every batch queued (which left one thread idle for a whole batch)."""
    import threading
    import time

    paths = [str(write_audio(tmp_path / f"s{i}.flac", "flac", seconds=4.0, frequency=110.0 * (i + 1)))
             for i in range(4)] * 4
    bundle = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100))
    analysis = Analysis([bundle], workers=0, batch_size=2, model_threads=2)
    decoded = list(analysis._decode(iter(paths)))  # decoding costs nothing below
    analysis._decode = lambda inputs: iter(decoded)
    spans, lock, original = [], threading.Lock(), Analysis._run_batch

    def slow_batch(self, files):
        start = time.monotonic()
        time.sleep(0.3)
        result = original(self, files)
        with lock:
            spans.append((start, time.monotonic()))
        return result

    analysis._run_batch = slow_batch.__get__(analysis)
    assert len(list(analysis.analyse(paths))) == 16
    assert len(spans) == 8
    # Time from the first start to the last end during which one batch ran alone.
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    alone, running, since = 0.0, 0, None
    for moment, step in edges:
        if running == 1:
            alone += moment - since
        running, since = running + step, moment
    assert alone < 0.15, f"a model thread sat idle for {alone:.2f} s"


@pytest.mark.parametrize("device, cpus, expected", [("cpu", 2, 2), ("cpu", 16, 4), ("cpu", 1, 1), ("cuda", 8, 1),
                                                    ("cuda:1", 8, 1), ("auto", 2, 2)])
def test_default_model_threads(device, cpus, expected):
    assert analysis_module.model_threads_for(device, cpu_count=cpus) == expected


def test_model_threads_below_one_is_refused(tmp_path):
    bundle = tiny_disambig(tmp_path, name="one", features=MelParams(excerpt_frames=100))
    with pytest.raises(ValueError, match="model_threads"):
        Analysis([bundle], workers=0, model_threads=0)
