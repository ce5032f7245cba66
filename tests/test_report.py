"""The training report folder: JSON files always, PNG figures with the
optional ``train`` extra, and no crash when plotting cannot happen."""

import json
import sys
from types import SimpleNamespace

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


# --- every figure function writes a PNG ----------------------------------------

TINY_LABELS = ["rock", "jazz", "pop"]
TINY_PANEL = {"title": "t", "starts": [1, 3], "labels": ["1-2", "3-4"], "gain": [5.0, -2.0], "std": [1.0, 0.5]}
TINY_LINE = {"label": "eq4", "style": "o-", "r": [0.0, 0.5], "mean": [0.3, 0.35], "std": [0.01, 0.02]}
FIGURES = {
    "curves": lambda: report.curves_figure(report.history_rows([1.0, 0.5], [1.2, 0.9], val_accuracy=[0.5, 0.6])),
    "confusion": lambda: report.confusion_figure(np.array([[3, 1, 0], [0, 2, 1], [1, 0, 4]]), TINY_LABELS),
    "label_graph": lambda: report.label_graph_figure(np.eye(3) - 0.2, TINY_LABELS, {"rock": "a", "pop": "a"}),
    "tsne": lambda: report.tsne_figure(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), TINY_LABELS),
    "label_graph_delta": lambda: report.label_graph_delta_figure(np.eye(3) + 0.1, TINY_LABELS, title="G - I"),
    "popularity_gain": lambda: report.popularity_gain_figure([[TINY_PANEL, {"title": "empty"}]], xlabel="rank"),
    "r_sweep": lambda: report.r_sweep_figure([[{"title": "map", "lines": [TINY_LINE],
                                                "control": {"label": "control", "value": 0.31}}]], title="sweep"),
    "lsi_topics": lambda: report.lsi_topics_figure([
        SimpleNamespace(sets=("styles", "moods"), number=1,
                        loadings=(("moods", "Energetic", 0.3), ("styles", "Hard Rock", 0.1), ("moods", "Gentle", -0.2)))]),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_figure_function_writes_a_png(tmp_path, name):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"{name}.png"
    assert report.write_figure(path, FIGURES[name], name=name) == str(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000


def test_the_figure_functions_are_all_tested():
    """A figure function added to report.py needs an entry in FIGURES."""
    drawn = {name[: -len("_figure")] for name in dir(report)
             if name.endswith("_figure") and not name.startswith(("_", "write_"))}
    assert drawn == set(FIGURES)


def test_a_failing_figure_is_one_line_and_leaves_no_stale_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "r_sweep.png"
    path.write_bytes(PNG_MAGIC)  # an earlier run's figure
    reason = report.write_figure(path, lambda: report.r_sweep_figure([], title="x"), name="r_sweep")
    assert reason == "failed: ValueError: no panel to draw" and not path.exists()
    assert capsys.readouterr().err.splitlines() == ["r_sweep plot failed: ValueError: no panel to draw"]


def test_write_figure_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not report.plots_available() and report.cjk_font() is None
    reason = report.write_figure(tmp_path / "x.png", lambda: 1 / 0, name="x")
    assert reason == report.PLOTS_SKIPPED_NOTE and not (tmp_path / "x.png").exists()
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_label_graph_delta_scales_and_uses_the_cjk_font(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    figure = report.label_graph_delta_figure(np.array([[1.0, 0.5], [0.25, 1.0]]), ["a", "b"], title="G - I")
    assert figure.axes[0].get_title() == "G - I, scaled by 1/0.5"
    assert figure.axes[0].images[0].get_array().tolist() == [[0.0, 1.0], [0.5, 0.0]]
    seen = []
    monkeypatch.setattr(report, "cjk_font", lambda: "DejaVu Sans")
    monkeypatch.setattr(report, "save_png", lambda fig, path: seen.append(matplotlib.rcParams["font.sans-serif"][0]))
    before = list(matplotlib.rcParams["font.sans-serif"])
    assert report.write_label_graph_delta(tmp_path / "g.png", np.eye(2), ["民谣 Folk", "摇滚 Rock"], title="G") \
        == str(tmp_path / "g.png")
    assert seen == ["DejaVu Sans"] and matplotlib.rcParams["font.sans-serif"] == before  # no global change


def test_samplecnn_spotify_figures_from_a_tiny_results_file(tmp_path):
    pytest.importorskip("matplotlib")
    from trainer import samplecnn_spotify as spotify

    def run(r, weighting, value):
        return {"seed": 0, "keep": 1.0, "r": r, "weighting": weighting, "annotation_map": value,
                "retrieval_map": value, "retrieval_auc": value, "per_tag_map": [0.2, 0.4, 0.5, 0.6],
                "per_tag_auc": [0.6, 0.7, 0.8, 0.9], "popularity": [9, 7, 5, 3]}

    results = {"seeds": [0], "keep_tags": [1.0], "r_grid": [0.0, 0.5],
               "runs": [run(0.0, "baseline", 0.3), run(0.5, "eq4", 0.35), run(0.5, "none", 0.33),
                        run(0.5, spotify.SHUFFLED, 0.3), run(0.0, spotify.DOUBLED, 0.31)]}
    summary = {"table": {"keep=1 r=0.5 eq4": {"mean_std": {"retrieval_map": (0.35, 0.0)}}}}
    sweep = spotify.r_sweep_panels(results)
    assert [len(row) for row in sweep] == [len(spotify.METRICS)]
    assert sweep[0][1]["lines"][0] == {"label": spotify.LEGEND["eq4"], "style": "o-", "r": [0.0, 0.5],
                                       "mean": [0.3, 0.35], "std": [0.0, 0.0]}
    assert sweep[0][1]["control"]["value"] == pytest.approx(0.31)
    written = spotify.draw_figures(results, summary, tmp_path, bucket=2)
    assert written == {"r_sweep": str(tmp_path / "r_sweep.png"), "popularity": str(tmp_path / "popularity.png")}
    assert_png(tmp_path / "r_sweep.png")


def test_samplecnn_popularity_and_lyrics_confusion_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from trainer import lyrics, samplecnn

    buckets = {m: {"first_rank": [1, 3], "relative_improvement": [0.1, -0.05]} for m in ("map", "auc")}
    assert samplecnn.popularity_figure(buckets, tmp_path / "popularity.png", bucket=2, r=0.5) \
        == str(tmp_path / "popularity.png")
    assert_png(tmp_path / "popularity.png")
    confusion = np.array([[2, 1], [0, 3]])
    rows = [{"folds": "artist", "model": model, "accuracy": 0.8, "macro_f1": 0.7, "confusion": confusion}
            for model in ("primary", "tfidf")]
    lyrics.write_summary(tmp_path, rows, ["pop", "rock"], {}, None, 0.5)
    assert_png(tmp_path / "confusion_artist.png")
    assert_png(tmp_path / "confusion_artist_tfidf.png")
