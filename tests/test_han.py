"""Review styles (the han paper): the HAN family, the label graph and soft loss
on hand-computed examples, the NetEase and JSONL
loaders, ML-KNN, and a tiny train-then-predict run of ``python -m trainer
rmsc`` on CPU. Nothing here needs ../shared except the realdata test."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from realdata_fixtures import SHARED, needs_shared
from tagcore import text as T
from tagcore.bundle import load_bundle
from tagcore.families import han
from trainer.datasets import DatasetError, LoadReport

NETEASE = SHARED / "netease_playlists" / "music_message.csv"


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- tokenizers -------------------------------------------------------------


def test_chinese_reviews_are_segmented_by_jieba_and_english_by_words():
    assert {"民谣", "好听"} <= set(T.tokenize("这张民谣专辑真的很好听"))
    assert T.tokenize("Great shoegaze record, can't stop!") == ["great", "shoegaze", "record", "can't", "stop"]


def test_reviews_split_into_paragraphs_or_sentences():
    album = "第一句。第二句！\n\nSecond review. Still it\n\n  \n"
    assert han.split_reviews(album) == ["第一句。第二句！", "Second review. Still it"]
    assert han.split_reviews(album, unit="sentence") == ["第一句。", "第二句！", "Second review.", "Still it"]


# --- label graph and soft training, by hand -----------------------------------

Z = torch.tensor([[1.0, -1.0]])
G = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
Y = torch.tensor([[1.0, 0.0]])


def test_label_graph_layer_by_hand():
    # z G = [1*1 + -1*0, 1*0.5 + -1*1] = [1, -0.5]
    e = han.label_graph_layer(Z, G)
    assert e.tolist()[0] == pytest.approx([sig(1.0), sig(-0.5)], abs=1e-6)
    # G = I leaves the HAN's scores as they are.
    assert torch.allclose(han.label_graph_layer(Z, torch.eye(2)), torch.sigmoid(Z))


def test_soft_targets_by_hand():
    assert han.soft_targets(Y, G).tolist() == [[1.0, 0.5]]  # y G
    assert han.soft_targets(torch.tensor([[1.0, 1.0]]), G).tolist() == [[1.0, 1.0]]  # 1.5 clipped to 1
    # Temperature 2: sigmoid(logit(0.9) / 2) = sigmoid(ln 9 / 2) = 3 / (3 + 1) = 0.75
    soft = han.soft_targets(torch.tensor([[0.9, 0.5]]), torch.eye(2), temperature=2.0)
    assert soft.tolist()[0] == pytest.approx([0.75, 0.5], abs=1e-5)


def test_soft_loss_by_hand():
    e1, e2 = sig(1.0), sig(-0.5)
    hard = -(math.log(e1) + math.log(1 - e2)) / 2  # H(y, e), y = [1, 0]
    soft = -(math.log(e1) + 0.5 * math.log(e2) + 0.5 * math.log(1 - e2)) / 2  # H(y', e), y' = [1, 0.5]
    logits = han.graph_logits(Z, G)
    assert han.loss(logits, Y).item() == pytest.approx(hard, abs=1e-5)
    assert han.loss(logits, Y, graph=G, soft_weight=1.0).item() == pytest.approx(hard + soft, abs=1e-5)
    # ||G - I||^2 = 0.25: weight 0.1 adds 0.025; the literal reading (-0.1) subtracts it.
    assert han.loss(logits, Y, graph=G, identity_weight=0.1).item() == pytest.approx(hard + 0.025, abs=1e-5)
    assert han.loss(logits, Y, graph=G, identity_weight=-0.1).item() == pytest.approx(hard - 0.025, abs=1e-5)


def test_gradient_reaches_g_through_the_soft_targets_only_when_asked():
    y = torch.tensor([[1.0, 0.0]])
    for grad, expect_change in ((False, False), (True, True)):
        graph = torch.eye(2, requires_grad=True)
        logits = torch.tensor([[0.3, -0.2]], requires_grad=True)  # not a function of G: only y' links them
        han.loss(logits, y, graph=graph, soft_weight=1.0, soft_target_grad=grad).backward()
        assert (graph.grad is not None and graph.grad.abs().sum().item() > 0) is expect_change


def tiny_config(**changes) -> han.Config:
    vocabulary = [T.PAD, T.UNK, "rock", "guitar", "synth", "beat", "民谣", "好听"]
    return han.Config(vocabulary=vocabulary, n_labels=3, embed_dim=8, hidden=8, attention_dim=8, **changes)


def test_model_shapes_masks_and_empty_albums():
    torch.manual_seed(0)
    model = han.Model(tiny_config()).eval()
    ids = torch.tensor([[[2, 3, 0], [0, 0, 0], [4, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    album, words, reviews = model.album_vectors(ids, weights=True)
    assert album.shape == (2, 8) and words.shape == (2, 3, 3) and reviews.shape == (2, 3)
    # Attention sums to 1 over present words and reviews, 0 on padding.
    assert words[0, 0, :2].sum().item() == pytest.approx(1.0, abs=1e-6) and words[0, 0, 2].item() == 0
    assert reviews[0].sum().item() == pytest.approx(1.0, abs=1e-6) and reviews[0, 1].item() == 0
    assert torch.all(reviews[1] == 0) and torch.isfinite(model(ids)).all()
    # A plain HAN ignores G; with the graph, e = sigmoid(z G).
    assert model.graph.requires_grad
    plain = han.Model(tiny_config(label_graph=False))
    assert not plain.graph.requires_grad


def test_predict_texts_tokenizes_with_the_vocabulary_it_carries():
    torch.manual_seed(0)
    model = han.Model(tiny_config()).eval()
    probs = han.predict_albums(model, ["rock guitar\n\nsynth beat", "民谣很好听", "", "zzz qqq"])
    assert probs.shape == (4, 3) and probs.dtype == np.float32 and np.all((probs > 0) & (probs < 1))
    again = han.predict_albums(model, ["zzz qqq", "rock guitar\n\nsynth beat", "zzz qqq"])  # duplicates run once
    assert np.allclose(again, probs[[3, 0, 3]], atol=1e-6)
    ids = han.encode_album(["rock guitar", "synth zzz"], han.vocabulary_of(model), max_reviews=40, max_words=100)
    assert ids.tolist() == [[2, 3], [4, T.UNK_ID]]
    assert han.encode_album(["a"] * 50, han.vocabulary_of(model), max_reviews=40, max_words=1).shape == (40, 1)


# --- data ----------------------------------------------------------------------


def test_netease_loader(tmp_path):
    from trainer.datasets import netease

    path = tmp_path / "music_message.csv"
    path.write_text(
        "[歌单] 标题,华语-流行,介绍：第一句。第二句,5739,373万,50,59\n"
        "坏行,只有三列\n"
        "[空] 没有标签,,介绍：xx,1,2,3,4\n", encoding="utf-8")
    report = LoadReport()
    playlists = netease.load(path, report=report)
    assert len(playlists) == 1 and len(report.skipped) == 2
    p = playlists[0]
    assert p.labels == ("华语", "流行") and p.description == "第一句。第二句" and p.plays == 3_730_000
    assert "music_message.csv:2: expected 7 columns" in report.skipped[0]
    with pytest.raises(DatasetError, match="no such file"):
        netease.load(tmp_path / "missing.csv")


def test_ml_knn_by_hand():
    from trainer.han.baselines import ml_knn

    x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]])
    probs = ml_knn(x, y, np.array([[0.05], [5.05]]), k=2)
    assert probs[0, 0] > 0.5 > probs[0, 1] and probs[1, 1] > 0.5 > probs[1, 0]


def synthetic_jsonl(path: Path, n: int = 36, seed: int = 0) -> Path:
    """Albums whose reviews name their style's words among filler words."""
    rng = np.random.default_rng(seed)
    words = {"rock": ["guitar", "riff", "distortion", "drums"], "electronic": ["synth", "beat", "club", "bass"],
             "folk": ["acoustic", "banjo", "story", "fiddle"]}
    filler = ["the", "album", "is", "really", "good", "song", "listen", "again"]
    lines = []
    for i in range(n):
        labels = [list(words)[i % 3]] + ([list(words)[(i + 1) % 3]] if i % 4 == 0 else [])
        texts = [" ".join(rng.choice(filler, 3).tolist() + rng.choice(sum((words[l] for l in labels), []), 2).tolist())
                 for _ in range(4)]
        lines.append(json.dumps({"texts": texts, "labels": labels}))
    lines.insert(3, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_tiny_train_then_predict_on_cpu(tmp_path, capsys):
    from trainer.__main__ import main

    data = synthetic_jsonl(tmp_path / "albums.jsonl")
    code = main(["rmsc", "--data", str(data), "--name", "style-tiny", "--out", str(tmp_path / "bundle"),
                 "--run-dir", str(tmp_path / "run"), "--seeds", "0", "--epochs", "10", "--patience", "10",
                 "--batch-size", "8", "--embed-dim", "16", "--hidden", "16", "--w2v-epochs", "3",
                 "--min-label-count", "2", "--min-word-count", "1", "--variants", "+soft training",
                 "--baselines", "ML-KNN", "--device", "cpu", "--lr", "0.02", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "albums.jsonl:4: invalid JSON" in out  # the bad line is named, the rest trains
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.task == "style" and bundle.config["input"] == {"kind": "text", "source": "reviews"}
    assert sorted(bundle.labels) == ["electronic", "folk", "rock"]
    assert bundle.config["decision"]["count"] == 3 and 0 < bundle.config["decision"]["threshold"] < 1
    test = bundle.config["metrics"]["test"]
    assert set(test) == {"micro_f1", "macro_f1", "one_error", "hamming_loss"}
    probs = han.predict_texts(bundle.model, ["guitar riff distortion drums\n\nreally good guitar riff",
                                             "synth beat club bass\n\nthe club beat"])
    rock, electronic = bundle.labels.index("rock"), bundle.labels.index("electronic")
    assert probs[0, rock] > probs[0, electronic] and probs[1, electronic] > probs[1, rock]
    metrics_file = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics_file["table"]) == {"+soft training", "ML-KNN"}
    assert (tmp_path / "run" / "label_graph.png").stat().st_size > 0


@needs_shared("netease_playlists", "music_message.csv")
def test_real_netease_rows_load():
    from trainer.datasets import netease

    report = LoadReport()
    playlists = netease.load(NETEASE, report=report)
    assert len(playlists) == 1318 and not report.skipped
    assert all("华语" in p.labels for p in playlists)  # on every row: dropped as a label by --max-label-share
    assert len({label for p in playlists for label in p.labels}) == 63


def test_checked_prediction_names_texts_the_model_cannot_read():
    torch.manual_seed(0)
    model = han.Model(tiny_config()).eval()
    probs, problems = han.predict_texts_checked(model, ["rock guitar synth", "!!! ...", "ganz andere wörter hier"])
    assert problems[0] is None and probs[0].sum() > 0
    assert problems[1] == "no words in the reviews" and "0% of the review words" in problems[2]
    # Unread texts get no prediction (NaN rows), never a confident zero.
    assert np.all(np.isnan(probs[1:]))
    assert np.array_equal(han.predict_texts(model, ["!!! ...", "rock guitar synth"]), probs[[1, 0]], equal_nan=True)


def test_rmsc_layout_keeps_the_top_voted_informative_reviews(tmp_path):
    from trainer.han.data import load_albums

    def album(name, tags, comments):
        data = {"name": name, "url": "https://music.douban.com/subject/1/", "rates": "8.1", "tags": tags,
                "all_short_comments": [{"name": "u", "rate": "4", "vote": str(v), "comment": c} for v, c in comments]}
        (tmp_path / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    album("专辑一", ["民谣", "流行"], [(3, "很好听的民谣专辑"), (50, "好听"), (9, "吉他和声音都很温暖"), (1, "民谣 吉他 温暖")])
    album("专辑二", ["摇滚"], [(2, "摇滚乐队的现场很燃")])
    (tmp_path / "broken").write_text("{not json", encoding="utf-8")
    report = LoadReport()
    albums, layout = load_albums(tmp_path, min_tokens=2, max_reviews=2, report=report)
    assert layout == "rmsc" and [a.key for a in albums] == ["专辑一", "专辑二"]
    # "好听" (one word) is dropped despite its 50 votes; then the two most voted.
    assert albums[0].reviews == ["吉他和声音都很温暖", "很好听的民谣专辑"] and albums[0].labels == ("民谣", "流行")
    assert albums[0].tokens[0][:2] == ["吉他", "和"]
    assert len(report.skipped) == 1 and "broken" in report.skipped[0]


def test_checked_prediction_skips_text_in_another_script():
    """A model whose vocabulary is Chinese does not read English text, even
    text whose words it knows."""
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(), vocabulary=[T.PAD, T.UNK, "民谣", "好听", "专辑", "摇滚", "吉他", "rock"])
    model = han.Model(config).eval()
    probs, problems = han.predict_texts_checked(model, ["民谣专辑好听", "rock rock rock"])
    assert problems[0] is None and probs[0].sum() > 0
    assert "space-separated" in problems[1] and "another language" in problems[1]
    assert np.all(np.isnan(probs[1]))


# --- the label graph's own step and the doubled-BCE control ---------------------


def test_doubled_bce_control_is_the_plain_han_with_its_bce_counted_twice():
    from trainer.han.train import VARIANTS

    model = han.Model(tiny_config(**VARIANTS["doubled BCE"]))
    assert not model.config.label_graph and not model.graph.requires_grad  # G stays I, untrained
    torch.manual_seed(0)
    logits, y = torch.randn(5, 3), (torch.rand(5, 3) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item()
    assert han.model_loss(model)(logits, y).item() == pytest.approx(2 * bce, rel=1e-6)
    plain = han.Model(tiny_config(**VARIANTS["HAN"]))
    assert han.model_loss(plain)(logits, y).item() == pytest.approx(bce, rel=1e-6)


def test_optimizer_groups_give_the_label_graph_its_own_step():
    from trainer.han.train import optimizer_groups

    model = han.Model(tiny_config())
    one = optimizer_groups(model, lr=1e-3)
    assert len(one) == 1 and any(q is model.graph for q in one[0]["params"])
    rest, graph = optimizer_groups(model, lr=1e-3, graph_lr=0.05)
    assert graph == {"params": [model.graph], "lr": 0.05} and all(q is not model.graph for q in rest["params"])
    assert sum(q.numel() for q in rest["params"]) + model.graph.numel() == sum(q.numel() for q in model.parameters())
    # The plain HAN's G is frozen: never handed to the optimiser, with or without a graph step.
    plain = han.Model(tiny_config(label_graph=False))
    assert all(q is not plain.graph for g in optimizer_groups(plain, lr=1e-3, graph_lr=0.05) for q in g["params"])


def test_a_larger_graph_lr_moves_g_further_in_a_tiny_run(tmp_path):
    """Two one-epoch runs of + soft training on synthetic albums, the same
    seed and data, G's step 1e-3 and 0.1: G moves about 100 times further
    with the larger one (Adam's steps are about the learning rate)."""
    import argparse

    from trainer.han import add_arguments
    from trainer.han.data import prepare
    from trainer.han.train import fit_variant

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    data = synthetic_jsonl(tmp_path / "albums.jsonl")
    args = parser.parse_args(["--data", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
                              "--batch-size", "8", "--embed-dim", "8", "--hidden", "8", "--w2v-epochs", "1",
                              "--min-label-count", "2", "--min-word-count", "1", "--device", "cpu"])
    p = prepare(args, log=lambda *a: None)
    moved = {}
    for graph_lr in (1e-3, 0.1):
        args.graph_lr = graph_lr
        run = fit_variant(p, args, "+soft training", seed=0, log=lambda *a: None)
        moved[graph_lr] = run.figures["graph_max_delta"]
        assert run.figures["graph_fro_delta"] >= run.figures["graph_max_delta"] > 0
    # 3 steps of Adam: at most about 3 x the step per entry.
    assert moved[1e-3] < 0.01 and moved[0.1] > 10 * moved[1e-3]
