"""``python -m trainer head``: heads trained by the command on a tiny
synthetic set over a tiny musicnn-shaped backbone, run by the analysis pass
with that backbone; multi-label heads; CSV, folder and beets-library data;
bad input; C chosen on training tracks only, the head's scores (folds and
metrics: tests/test_splits.py, tests/test_metrics.py). Nothing
here needs ../shared."""

from __future__ import annotations

import contextvars
import json
import os

import numpy as np
import pytest
import torch

from plugin_fixtures import write_audio
from tagcore.analysis import Analysis
from tagcore.bundle import load_bundle, save_bundle
from tagcore.families import musicnn
from tagcore.features import MelParams, feature_spec
from trainer import head as trainer_head
from trainer import metrics
from trainer.__main__ import main
from trainer.datasets import DatasetError, LoadReport, Record

PATCH = 62  # frames of one patch (about 1 s at 16 kHz, hop 256)
TINY_FEATURE = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=48, log="log10", center=True,
                         mel_float16=True, excerpt_frames=2 * PATCH, patch_frames=PATCH)


def tiny_backbone(directory, name="tinybb"):
    """A musicnn-shaped bundle with random weights giving 3 tag scores and
    an 8-d embedding on 2 patches of a 48-band log-mel."""
    torch.manual_seed(0)
    config = musicnn.Config(n_mels=48, n_labels=3, patch_frames=PATCH, timbral_filters=4, temporal_frames=(16, 8),
                            temporal_filters=2, midend_filters=4, midend_layers=2, dense_units=8)
    return save_bundle(
        directory / name, model=musicnn.Model(config).eval(), family="musicnn", name=name, version="1",
        labels=["t1", "t2", "t3"], model_config=config.to_dict(),
        input={"kind": "audio", "feature": feature_spec(TINY_FEATURE)}, outputs=("scores", "embedding"),
        embedding_dim=8, task="tags",
    )


def tone_files(root, *, per_class=6):
    """Low tones (200-300 Hz) and high tones (2-3 kHz), 4 s each."""
    paths = {}
    for label, base in (("low", 200.0), ("high", 2000.0)):
        for i in range(per_class):
            path = write_audio(root / label / f"{label}{i}.flac", "flac", seconds=4.0, frequency=base * (1 + i / 10))
            paths[str(path)] = label
    return paths


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("head")
    bundles = base / "bundles"
    backbone = tiny_backbone(bundles)
    files = tone_files(base / "data")
    return base, bundles, backbone, files


def run_head(base, backbone, *options):
    """``python -m trainer head`` with small settings; the report goes to
    ``base/runs/report`` unless ``options`` name another --report-dir (the
    last one given wins), never to ./runs in the repository."""
    return main(["head", "--backbone", str(backbone), "--folds", "2", "--inner-folds", "2", "--seeds", "0,1",
                 "--c-grid", "0.1,10", "--workers", "0", "--cache-dir", str(base / "cache"),
                 "--report-dir", str(base / "runs" / "report"), *options])


def test_a_head_trained_by_the_command_runs_in_the_pass_with_its_backbone(setup):
    base, bundles, backbone, files = setup
    code = run_head(base, backbone, "--data", str(base / "data"), "--name", "tinyhead",
                    "--out", str(bundles / "tinyhead"), "--report-dir", str(base / "runs" / "tinyhead"))
    assert code == 0
    bundle = load_bundle(bundles / "tinyhead")
    assert (bundle.family, bundle.task, bundle.input_kind, bundle.backbone) == ("head", "genre", "backbone", "tinybb")
    assert bundle.labels == ["high", "low"]
    assert not bundle.config["model"]["multilabel"] and bundle.config["model"]["hidden"] == 0
    figures = bundle.config["metrics"]
    assert set(figures["models"]) == {"head", "trivial", "mfcc_logreg"}
    assert len(figures["models"]["head"]["accuracy"]["folds"]) == 4  # 2 folds x 2 seeds
    assert figures["models"]["trivial"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert "not artist-disjoint" in figures["protocol"] and "caveat" in figures
    provenance = bundle.config["provenance"]
    assert provenance["patches"] == 2 and provenance["backbone"] == {"name": "tinybb", "version": "1"}
    assert provenance["data"] == "data" and provenance["c"] in (0.1, 10.0)
    report = json.loads((base / "runs" / "tinyhead" / "metrics.json").read_text())
    assert report["bundle"].endswith("tinyhead") and report["provenance"]["tracks"] == 12

    # The pass finds the backbone beside the head, runs it once per file and
    # feeds its embedding to the head, which gives back the training labels.
    results = list(Analysis([str(bundles / "tinyhead")], workers=0).analyse(list(files)))
    assert len(results) == len(files)
    for result in results:
        output = result.outputs["tinyhead"]
        assert output.ok and sum(output.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(output.scores, key=output.scores.get) == files[result.path]


def test_a_multilabel_head_from_a_csv(setup):
    base, bundles, backbone, files = setup
    rows = ["path,labels,artist"]
    for i, (path, label) in enumerate(sorted(files.items())):
        labels = "low;warm" if label == "low" else "high"
        rows.append(f"{os.path.relpath(path, base)},{labels},artist{i // 2}")
    (base / "tags.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code = run_head(base, backbone, "--data", str(base / "tags.csv"), "--multilabel", "--hidden", "4",
                    "--c-grid", "10,100", "--task", "style", "--name", "multi", "--out", str(bundles / "multi"),
                    "--report-dir", str(base / "runs" / "multi"))
    assert code == 0
    bundle = load_bundle(bundles / "multi")
    assert bundle.task == "style" and bundle.labels == ["high", "low", "warm"]
    assert bundle.config["model"]["multilabel"] and bundle.config["model"]["hidden"] == 4
    figures = bundle.config["metrics"]
    assert set(figures["models"]["head"]) == {"micro_f1", "macro_f1", "map"}
    assert set(figures["models"]) == {"head", "trivial", "mfcc_logreg"}
    assert "artist-disjoint" in figures["protocol"] and "caveat" not in figures
    results = {r.path: r.outputs["multi"] for r in Analysis([str(bundles / "multi")], workers=0).analyse(list(files))}
    for path, output in results.items():
        assert output.ok
        expected = {"low", "warm"} if files[path] == "low" else {"high"}
        assert {label for label, p in output.scores.items() if p >= 0.5} == expected


def test_a_missing_folder_is_a_clear_error(setup, capsys):
    base, bundles, backbone, _ = setup
    assert run_head(base, backbone, "--data", str(base / "nowhere"), "--name", "x", "--out", str(base / "x")) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_a_csv_row_naming_a_missing_file_is_reported_with_its_line(setup, capsys):
    base, bundles, backbone, files = setup
    csv_path = base / "bad.csv"
    good = sorted(files)
    csv_path.write_text("path,labels\n" + f"{good[0]},low\n" + "missing.wav,high\n" + f"{good[1]},\n",
                        encoding="utf-8")
    report = LoadReport()
    records = trainer_head.load_csv(csv_path, report=report)
    assert [r.path for r in records] == [good[0]]
    assert report.skipped == [f"{csv_path}:3: no audio file missing.wav", f"{csv_path}:4: {good[1]}: no label"]
    # Through the command: skipped rows are printed with their line...
    csv_path.write_text("path,labels\nmissing.wav,high\n" + "".join(f"{p},{l}\n" for p, l in sorted(files.items())),
                        encoding="utf-8")
    assert run_head(base, backbone, "--data", str(csv_path), "--name", "x", "--out", str(base / "x"),
                    "--folds", "0", "--no-mfcc") == 0
    assert f"skipped: {csv_path}:2: no audio file missing.wav" in capsys.readouterr().err
    # ... and a CSV without a usable row is an error that names one.
    csv_path.write_text("path,labels\nmissing.wav,high\n", encoding="utf-8")
    assert run_head(base, backbone, "--data", str(csv_path), "--name", "x", "--out", str(base / "x")) == 2
    err = capsys.readouterr().err
    assert f"{csv_path}: no row names an existing audio file with labels (first skipped row: {csv_path}:2: " \
           "no audio file missing.wav)" in err


def test_too_few_artists_for_the_folds_is_a_clear_error(setup, capsys):
    base, _, backbone, files = setup
    rows = "".join(f"{path},{label},{'one' if label == 'low' else 'two'}\n" for path, label in sorted(files.items()))
    (base / "two-artists.csv").write_text(rows, encoding="utf-8")
    assert run_head(base, backbone, "--data", str(base / "two-artists.csv"), "--folds", "3", "--name", "x",
                    "--out", str(base / "x"), "--no-mfcc") == 2
    assert "2 artists cannot fill 3 folds" in capsys.readouterr().err


def test_several_labels_need_multilabel(setup, capsys):
    base, _, backbone, files = setup
    path = sorted(files)[0]
    (base / "two.csv").write_text(f"{path},a;b\n{sorted(files)[1]},a\n", encoding="utf-8")
    assert run_head(base, backbone, "--data", str(base / "two.csv"), "--name", "x", "--out", str(base / "x")) == 2
    assert "pass --multilabel" in capsys.readouterr().err


def test_beets_library_fields(setup, tmp_path):
    library = pytest.importorskip("beets.library")
    files = setup[3]
    paths = sorted(files)
    db = tmp_path / "library.db"

    def build():
        lib = library.Library(str(db), directory=str(tmp_path / "music"))
        for i, path in enumerate(paths[:4]):
            item = library.Item(path=os.fsencode(path), artist=f"artist{i % 2}", title=f"t{i}",
                                genres=["Rock", "Pop"] if i % 2 else ["Jazz"], year=2000 + i)
            if i < 3:
                item["mood"] = "happy\\␀calm" if i == 0 else "sad"
            lib.add(item)

    contextvars.copy_context().run(build)
    report = LoadReport()
    genres = trainer_head.load_beets(db, field_name="genre", music_dir=None, report=report)
    assert [r.labels for r in genres] == [("Jazz",), ("Rock", "Pop"), ("Jazz",), ("Rock", "Pop")]
    assert [r.artist for r in genres] == ["artist0", "artist1", "artist0", "artist1"]
    moods = trainer_head.load_beets(db, field_name="mood", music_dir=None, report=report)
    assert [r.labels for r in moods] == [("happy", "calm"), ("sad",), ("sad",)]
    assert report.skipped[-1] == f"{db}: 1 item(s) have no mood"  # one line, not one per item
    years = trainer_head.load_beets(db, field_name="year", music_dir=None, report=LoadReport())
    assert [r.labels for r in years] == [("2000",), ("2001",), ("2002",), ("2003",)]
    with pytest.raises(DatasetError, match="no field 'colour'"):
        trainer_head.load_beets(db, field_name="colour", music_dir=None, report=LoadReport())

    def plugin_wrote():  # the autotagml plugin's record of what it wrote itself
        lib = library.Library(str(db), directory=str(tmp_path / "music"))
        for item in lib.items():
            item["ml_written_genres"] = "Rock\\␀Pop" if "Rock" in item.genres else "Nothing"  # as beets stores lists
            item.store()

    contextvars.copy_context().run(plugin_wrote)
    report = LoadReport()
    genres = trainer_head.load_beets(db, field_name="genre", music_dir=None, report=report)
    assert [r.labels for r in genres] == [("Jazz",), ("Jazz",)]
    assert report.skipped == [f"{db}: 2 item(s) have only values of genre that autotag-ml wrote "
                              "(ml_written_genres; --plugin-labels uses them)"]
    assert len(trainer_head.load_beets(db, field_name="genre", music_dir=None, report=LoadReport(),
                                       plugin_labels=True)) == 4
    # Through the command (no CV: four items).
    base, bundles, backbone, _ = setup
    assert run_head(base, backbone, "--beets-library", str(db), "--field", "genre", "--plugin-labels", "--multilabel",
                    "--folds", "0",
                    "--no-mfcc", "--name", "libgenre", "--out", str(tmp_path / "libgenre"),
                    "--report-dir", str(tmp_path / "runs")) == 0
    bundle = load_bundle(tmp_path / "libgenre")
    assert bundle.task == "genre" and bundle.labels == ["Jazz", "Pop", "Rock"]
    assert bundle.config["provenance"]["data"] == "library.db (beets field genre)"


# --- pieces -------------------------------------------------------------------


def test_c_is_chosen_on_training_tracks_only(monkeypatch):
    """Whatever choose_c sees in a fold, the head is then scored on the
    other tracks: C never looks at a test fold."""
    rng = np.random.default_rng(0)
    n = 40
    classes = np.arange(n) % 2
    x = rng.standard_normal((n, 5)).astype(np.float32) + classes[:, None]
    x[:, 0] = np.arange(n)  # row ids, to see which rows each call gets
    data = trainer_head.Dataset(records=[Record(key=str(i), path=str(i), labels=("ab"[c],)) for i, c in enumerate(classes)],
                                labels=["a", "b"], y=np.eye(2, dtype=bool)[classes], groups=[str(i) for i in range(n)],
                                patches=None, rows=np.arange(n), has_artists=False)
    events, depth = [], [0]
    original_choose, original_predict = trainer_head.choose_c, trainer_head.predict

    def choose(x_train, *args, **kwargs):
        events.append(("choose", set(x_train[:, 0].astype(int).tolist())))
        depth[0] += 1
        try:
            return original_choose(x_train, *args, **kwargs)
        finally:
            depth[0] -= 1

    def predict(model, x_in):
        if depth[0] == 0:
            events.append(("score", set(x_in[:, 0].astype(int).tolist())))
        return original_predict(model, x_in)

    monkeypatch.setattr(trainer_head, "choose_c", choose)
    monkeypatch.setattr(trainer_head, "predict", predict)
    out = trainer_head.cross_validate(data, x, multilabel=False, hidden=0, folds=4, seeds=[0, 1], grid=[0.1, 1.0],
                                      inner_folds=3, log=lambda message: None)
    assert len(events) == 16
    for (kind_a, seen), (kind_b, scored) in zip(events[::2], events[1::2]):
        assert (kind_a, kind_b) == ("choose", "score")
        assert not seen & scored and seen | scored == set(range(n))
    assert len(out["chosen_c"]) == 8 and len(out["models"]["head"]["accuracy"]["folds"]) == 8


def test_fit_head_learns_and_regularises():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4))
    y = (x[:, 0] + 0.1 * rng.standard_normal(60) > 0).astype(int)
    strong = trainer_head.fit_head(x, y, multilabel=False, c=1e-4)
    weak = trainer_head.fit_head(x, y, multilabel=False, c=100.0)
    assert (trainer_head.predict(weak, x).argmax(1) == y).mean() >= 0.9
    assert weak.layers[-1].weight.abs().sum() > 10 * strong.layers[-1].weight.abs().sum()
    # The stored standardisation makes the head work on raw embeddings.
    assert torch.allclose(weak.mean, torch.tensor(x.mean(0), dtype=torch.float32), atol=1e-6)


def test_multilabel_metrics_and_the_frequency_baseline():
    y = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=bool)
    decisions = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    # tp 4, fp 1, fn 2 -> 8 / 11; per label: 1.0, 2/3, 0.0
    scores = trainer_head.multilabel_scores(y, decisions.astype(float))
    assert scores["micro_f1"] == pytest.approx(8 / 11)
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert trainer_head.multilabel_scores(y, y.astype(float))["map"] == pytest.approx(1.0)
    trivial = trainer_head.trivial_multilabel_scores(y_train=y, y_test=y)
    # one label per track on average... 1.5 rounds to 2: the two most frequent (0, then 1)
    assert trivial["micro_f1"] == pytest.approx(metrics.micro_f1(y_true=y, y_pred=np.array([[1, 1, 0]] * 4, dtype=bool)))
    assert trivial["map"] == pytest.approx(np.mean([metrics.random_ranking_ap(n=4, relevant=r) for r in (3, 2, 1)]))


def test_quadrants_give_valence_and_arousal():
    valence, arousal = trainer_head.quadrant_axes(["Q1", "Q2", "Q3", "Q4"], np.array([0, 1, 2, 3]))
    assert valence.tolist() == [True, False, False, True]
    assert arousal.tolist() == [True, True, False, False]


def test_quadrant_accuracies_per_model_and_the_trivial_majority_side():
    labels = ["Q1", "Q2", "Q3", "Q4"]
    y = np.array([0, 1, 2, 3, 0, 0])
    train, test = np.array([2, 3, 4, 5]), np.array([0, 1])  # test truth: valence T, F; arousal T, T
    axes = {name: {"valence": [], "arousal": []} for name in ("head", "trivial")}
    predictions = {"head": np.array([0, 2]), "trivial": np.array([0, 0])}
    trainer_head._quadrant_accuracies(labels, y, train, test, predictions, axes)
    assert axes["head"] == {"valence": [1.0], "arousal": [0.5]}
    # The training side: valence 3 of 4 positive, arousal 2 of 4 (a tie counts as positive).
    assert axes["trivial"] == {"valence": [0.5], "arousal": [1.0]}


def test_the_cnn_of_trainer_disambig_is_scored_on_the_same_folds(setup):
    base, bundles, backbone, _ = setup
    code = run_head(base, backbone, "--data", str(base / "data"), "--name", "withcnn", "--out", str(base / "withcnn"),
                    "--report-dir", str(base / "runs" / "withcnn"), "--seeds", "0", "--compare-cnn",
                    "--cnn-options", "--channels 4,8 --gru-hidden 8 --epochs 2 --patience 1 --batch-size 4")
    assert code == 0
    figures = load_bundle(base / "withcnn").config["metrics"]
    assert set(figures["models"]) == {"head", "trivial", "mfcc_logreg", "cnn_gru"}
    assert len(figures["models"]["cnn_gru"]["accuracy"]["folds"]) == 2
    assert figures["cnn_gru_options"].startswith("--channels 4,8")
