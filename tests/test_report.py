"""The training report folder: JSON files always, PNG figures with the
optional ``train`` extra, and no crash when plotting cannot happen."""

import json
import sys

import numpy as np
import pytest

from trainer import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("curves", "confusion", "label_graph", "tsne")
LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
GROUPS = {"blues": "roots", "country": "roots", "jazz": "roots", "classical": "art", "disco": "dance",
          "hiphop": "dance", "pop": "dance", "reggae": "dance", "metal": "rock", "rock": "rock"}


def synthetic_run(n_labels=10, dim=32, epochs=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = LABELS[:n_labels] if n_labels <= len(LABELS) else [f"tag{i}" for i in range(n_labels)]
    history = [
        {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.0 / e + 0.1, "val_accuracy": 1 - 1 / (e + 1), "seconds": 1.5}
        for e in range(1, epochs + 1)
    ]
    return dict(
        run_config={"name": "genre-test", "lr": 1.0, "channels": [16, 32, 64, 128], "note": "café"},
        metrics={"model": {"accuracy": {"mean": 0.8, "std": 0.05}}, "labels": labels},
        history=history,
        labels=labels,
        confusion=rng.integers(0, 6, (n_labels, n_labels)) + np.diag(rng.integers(5, 20, n_labels)),
        tag_embeddings=rng.normal(size=(n_labels, dim)),
        label_groups={k: v for k, v in GROUPS.items() if k in labels},
    )


def assert_json_files(directory, run):
    assert json.loads((directory / "config.json").read_text(encoding="utf-8")) == run["run_config"]
    assert json.loads((directory / "metrics.json").read_text(encoding="utf-8")) == run["metrics"]
    lines = (directory / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(run["history"])
    assert [json.loads(line) for line in lines] == run["history"]


def assert_png(path):
    data = open(path, "rb").read()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5000


def test_full_report_writes_json_and_every_plot(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    run = synthetic_run()
    written = report.write_report(tmp_path / "run", **run)
    directory = tmp_path / "run"
    assert_json_files(directory, run)
    for name in PLOTS:
        assert written[name] == str(directory / f"{name}.png")
        assert_png(written[name])
    assert not list(directory.glob(".*.tmp"))  # no temporary files left behind


def test_without_matplotlib_json_is_written_and_plots_are_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run = synthetic_run()
    (tmp_path / "curves.png").write_bytes(PNG_MAGIC)  # an earlier run's figure must not survive
    written = report.write_report(tmp_path, **run)
    assert_json_files(tmp_path, run)
    assert not list(tmp_path.glob("*.png"))
    assert {written[name] for name in PLOTS} == {report.PLOTS_SKIPPED_NOTE}
    assert "plots skipped" in report.PLOTS_SKIPPED_NOTE
    assert capsys.readouterr().err.count("plots skipped: install the train extra") == 1


def test_without_sklearn_only_tsne_is_skipped(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    written = report.write_report(tmp_path, **synthetic_run())
    assert written["tsne"] == report.TSNE_SKIPPED_NOTE
    assert not (tmp_path / "tsne.png").exists()
    assert_png(tmp_path / "label_graph.png")


def test_two_labels_do_not_crash(tmp_path):
    pytest.importorskip("matplotlib")
    run = synthetic_run(n_labels=2)
    written = report.write_report(tmp_path, **run)
    assert written["tsne"].startswith("skipped")
    for name in ("curves", "confusion", "label_graph"):
        assert_png(written[name])


def test_one_failing_plot_does_not_stop_the_others(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = synthetic_run()
    run["confusion"] = np.ones((3, 3))  # does not match the 10 labels
    run["tag_embeddings"] = None
    written = report.write_report(tmp_path, **run)
    assert written["confusion"].startswith("failed: ValueError")
    assert "confusion plot failed" in capsys.readouterr().err
    assert written["tsne"] == "skipped: no tag embeddings given"
    assert written["label_graph"].startswith("skipped")
    assert_png(written["curves"])


def test_tsne_perplexity_is_clamped_for_few_points():
    pytest.importorskip("sklearn")
    points = report.tsne_embedding(np.random.default_rng(0).normal(size=(4, 8)))
    assert points.shape == (4, 2)
    with pytest.raises(ValueError):
        report.tsne_embedding(np.ones((2, 8)))


def test_figure_functions_are_pure_and_shape_checked():
    pytest.importorskip("matplotlib")
    losses_only = report.curves_figure(report.history_rows([1.0, 0.5], [1.2, 0.9]))
    assert len(losses_only.axes) == 1
    with pytest.raises(ValueError):
        report.label_graph_figure(np.ones((3, 4)), ["a", "b", "c"])
    with pytest.raises(ValueError):
        report.tsne_figure(np.ones((3, 3)))


def test_label_order_by_group_then_name():
    labels = ["rock", "Jazz", "pop", "blues", "zydeco"]
    groups = {"rock": "b", "pop": "a", "blues": "b", "Jazz": "a"}
    assert [labels[i] for i in report.label_order(labels, groups)] == ["Jazz", "pop", "blues", "rock", "zydeco"]
    assert [labels[i] for i in report.label_order(labels)] == ["blues", "Jazz", "pop", "rock", "zydeco"]


def test_history_rows_and_strict_json(tmp_path):
    rows = report.history_rows([1.0, 0.5, 0.25], [1.1, 0.6])
    assert rows == [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1},
                    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6},
                    {"epoch": 3, "train_loss": 0.25}]
    report.write_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": np.arange(3), "c": float("nan")})
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "c": None}
    assert text.index('"a"') < text.index('"b"')  # stable (sorted) key order
