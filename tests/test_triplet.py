"""The triplet family of the triplet paper: LSI relatedness on a tiny matrix, triplet
selection on a hand-made batch, the DPNN's shapes, a tiny train-then-embed
run, the bundle through the analysis pass, and the trainer's pure parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from realdata_fixtures import SHARED, needs_shared
from tagcore import lsi
from tagcore.analysis import Analysis
from tagcore.bundle import load_bundle, save_bundle
from tagcore.families import family_module, triplet
from tagcore.features import compute_feature, feature_spec
from trainer import triplet as trainer_triplet
from trainer import triplet_mining
from trainer.datasets import DatasetError, LoadReport

DATASETS = SHARED


# --- LSI (section III-B) -----------------------------------------------------


def test_lsi_on_a_tiny_matrix():
    tracks = [
        {"genre": ["rock"], "mood": ["angry"]},
        {"genre": ["rock"], "mood": ["angry", "tense"]},
        {"genre": ["jazz"], "mood": ["calm"]},
        {"genre": ["jazz"]},  # no mood: left out (IV-B-1)
    ]
    kept = lsi.tracks_with_every_set(tracks, sets=["genre", "mood"])
    assert kept == [0, 1, 2]
    matrix, vocabulary = lsi.tag_track_matrix([tracks[i] for i in kept], sets=["genre", "mood"])
    assert vocabulary == ["genre:jazz", "genre:rock", "mood:angry", "mood:calm", "mood:tense"]
    # Binary, no TF-IDF: a cell is 1 where the tag is attributed.
    assert matrix.tolist() == [[0, 0, 1], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]]
    model = lsi.fit_lsi(matrix, k=2)
    # The rank-2 SVD reconstructs the matrix's main structure.
    u, s, vt = np.linalg.svd(matrix)
    assert np.allclose(model.singular_values, s[:2], atol=1e-5)
    related = lsi.relatedness(model.track_vectors)
    assert related[0, 1] > 0.8 and abs(related[0, 2]) < 0.2
    assert np.allclose(np.diag(related), 1.0, atol=1e-5)


# --- triplet selection (section III-A) ------------------------------------------


def _batch():
    """Four tracks: 0 and 1 related (0.9), 2 borderline to 0 (0.5), 3
    unrelated to everyone (0.1)."""
    sim = torch.tensor([
        [1.0, 0.9, 0.5, 0.1],
        [0.9, 1.0, 0.85, 0.1],
        [0.5, 0.85, 1.0, 0.1],
        [0.1, 0.1, 0.1, 1.0],
    ])
    return sim


def test_pair_masks_thresholds_and_the_diagonal():
    positive, negative = triplet_mining.pair_masks(_batch())
    assert positive.tolist() == [
        [False, True, False, False],
        [True, False, True, False],
        [False, True, False, False],
        [False, False, False, False],
    ]
    # 0.5 is neither; the zeroed diagonal never makes a track its own negative.
    assert negative.tolist() == [
        [False, False, False, True],
        [False, False, False, True],
        [False, False, False, True],
        [True, True, True, False],
    ]


def test_album_filter_removes_pairs_within_an_album():
    albums = torch.tensor([7, 7, -1, -1])  # 0 and 1 from one album; -1 unknown
    positive, negative = triplet_mining.pair_masks(_batch(), groups=albums)
    assert not positive[0, 1] and not positive[1, 0]
    assert positive[1, 2]
    # Unknown albums filter nothing.
    assert negative[2, 3] and negative[3, 2]


def test_mining_options_pick_opposite_ends():
    sim = torch.tensor([
        [1.0, 0.9, 0.95, 0.0, 0.1],
        [0.9, 1.0, 0.9, 0.0, 0.0],
        [0.95, 0.9, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0],
        [0.1, 0.0, 0.0, 0.0, 1.0],
    ])
    d = torch.tensor([
        [0.0, 1.0, 3.0, 0.5, 2.0],
        [1.0, 0.0, 1.0, 1.0, 1.0],
        [3.0, 1.0, 0.0, 1.0, 1.0],
        [0.5, 1.0, 1.0, 0.0, 1.0],
        [2.0, 1.0, 1.0, 1.0, 0.0],
    ])
    hard = triplet_mining.select_triplets(d, sim, mining="hard")
    paper = triplet_mining.select_triplets(d, sim, mining="paper")
    # Anchor 0: positives 1 (d=1) and 2 (d=3); negatives 3 (d=0.5) and 4 (d=2).
    assert (int(hard.positives[0]), int(hard.negatives[0])) == (2, 3)  # farthest positive, nearest negative
    assert (int(paper.positives[0]), int(paper.negatives[0])) == (1, 4)  # argmin positive, argmax negative
    # Anchors 3 and 4 have no positive: skipped and counted.
    assert hard.anchors.tolist() == [0, 1, 2] and hard.skipped == 2


def test_loss_is_the_hinge_of_equation_2():
    sim = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]], requires_grad=True)
    value, chosen = triplet_mining.loss(z, sim, margin=0.5)
    # Anchor 0: d(a,p) = 1, d(a,n) = 9 -> 0; anchor 1: d = 1 vs 10 -> 0.
    assert float(value) == 0.0 and len(chosen) == 2
    z2 = torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 0.0]], requires_grad=True)
    value, _ = triplet_mining.loss(z2, sim, margin=0.5)
    # Anchor 0: 4 - 1 + 0.5 = 3.5; anchor 1: 4 - 5 + 0.5 = 0 -> mean 1.75.
    assert float(value) == pytest.approx(1.75)
    value.backward()
    assert z2.grad is not None and z2.grad.abs().sum() > 0
    # No valid anchor: zero with a gradient of zero.
    lonely, chosen = triplet_mining.loss(z2, torch.eye(3), margin=0.5)
    assert float(lonely) == 0.0 and len(chosen) == 0 and chosen.skipped == 3


# --- the DPNN ----------------------------------------------------------------------


def test_dpnn_shapes():
    model = triplet.Model(triplet.Config()).eval()
    out = model(torch.randn(3, 130, 80))
    assert out.shape == (3, 256)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    # A short track's fewer frames are padded.
    assert model(torch.randn(2, 40, 80)).shape == (2, 256)
    with pytest.raises(ValueError, match="frames, n_mels"):
        model(torch.randn(2, 1, 130, 80))
    projection = triplet.Model(triplet.Config(input_dim=200)).eval()
    assert projection(torch.randn(4, 200)).shape == (4, 256)


def test_feature_is_the_papers_input():
    params = triplet.FEATURE
    assert (params.n_mels, params.excerpt_frames, params.sample_rate, params.n_fft, params.hop_length) == (80, 130, 22050, 2048, 1024)
    assert params.offset == 3.0 and params.center and (params.fmin, params.fmax) == (16.0, 11000.0)
    assert params.excerpt_seconds == pytest.approx(6.0, abs=0.01)
    y = np.random.default_rng(0).standard_normal(params.excerpt_samples).astype(np.float32) * 0.1
    assert compute_feature(y, params=params).shape == (1, 130, 80)


def _cluster_data(n_per: int = 12, seed: int = 0):
    """Mel patches of two kinds (low bands vs high bands lit) and their tags."""
    rng = np.random.default_rng(seed)
    mel = np.zeros((2 * n_per, 2, 130, 80), np.float16)
    for i in range(2 * n_per):
        band = slice(5, 20) if i < n_per else slice(55, 70)
        for s in range(2):
            patch = rng.random((130, 80)) * 0.5
            patch[:, band] += 3.0
            mel[i, s] = patch
    tags = [{"genre": ["low"]} if i < n_per else {"genre": ["high"]} for i in range(2 * n_per)]
    return mel, tags


def test_tiny_train_then_embed_run():
    torch.manual_seed(0)
    mel, tags = _cluster_data()
    tracks = [trainer_triplet.Track(str(i), f"{i}.flac", t) for i, t in enumerate(tags)]
    train = np.arange(0, 24, 2)
    test = np.arange(1, 24, 2)
    kept, similarity = trainer_triplet.lsi_similarity([tracks[i] for i in train], sets=["genre"], k=2)
    config = triplet.Config(channels=(4, 8), embedding_dim=16, margin=0.5)
    options = trainer_triplet.TrainOptions(epochs=6, patience=6, lr=3e-3, batch_size=12)
    model, history, best = trainer_triplet.train_embedder(
        config, mel, np.ones((24, 2), bool), train[kept], similarity, np.full(len(train), -1),
        val=np.array([], np.int64), val_relevant={}, options=options, log=None,
    )
    assert history[0]["triplets"] == 12 and history[0]["skipped_anchors"] == 0
    z = trainer_triplet.embed_all(model, mel, test)
    assert z.shape == (12, 16)
    rel = trainer_triplet.relevance([tracks[i] for i in test], kinds=["genre"])["genre"]
    p5, queries = trainer_triplet.precision_at_k(z, rel, k=5)
    assert queries == 12 and p5 >= 0.9


def test_batch_size_chosen_on_validation_only():
    """train_selected trains once per batch size and keeps the model with
    the best validation P@10; validation queries retrieve among validation
    and training tracks, never test tracks."""
    torch.manual_seed(0)
    mel, tags = _cluster_data()
    tracks = [trainer_triplet.Track(str(i), f"{i}.flac", t) for i, t in enumerate(tags)]
    train, val = np.array([0, 2, 4, 6, 8, 12, 14, 16, 18, 20]), np.array([1, 13])
    kept, similarity = trainer_triplet.lsi_similarity([tracks[i] for i in train], sets=["genre"], k=2)
    pool = np.concatenate([val, train[kept]])
    val_rel = trainer_triplet.relevance([tracks[i] for i in pool], kinds=["genre"])
    for matrix in val_rel.values():
        matrix[len(val):] = False
    config = triplet.Config(channels=(4, 8), embedding_dim=16, margin=0.5)
    options = trainer_triplet.TrainOptions(epochs=3, patience=3, lr=3e-3, batch_size=4)
    model, history, best, size, scores = trainer_triplet.train_selected(
        config, mel, np.ones((24, 2), bool), train[kept], similarity, np.full(len(train), -1),
        val=pool, val_relevant=val_rel, options=options, batch_sizes=[10, 4],
    )
    assert set(scores) == {10, 4} and all(np.isfinite(v) for v in scores.values())
    assert size == max(scores, key=lambda b: (scores[b], b == 10))  # best validation, the first on a tie
    assert trainer_triplet._batch_sizes("16, 600") == [16, 600]
    with pytest.raises(trainer_triplet.DatasetError):
        trainer_triplet._batch_sizes("1")


def test_bundle_runs_in_the_analysis_pass(tmp_path):
    torch.manual_seed(0)
    config = triplet.Config(channels=(4, 8), embedding_dim=16)
    model = triplet.Model(config).eval()
    bundle = save_bundle(tmp_path / "sim", model=model, family="triplet", name="sim", version="1", labels=None,
                         model_config=config.to_dict(), task="embedding",
                         input={"kind": "audio", "feature": feature_spec(triplet.FEATURE)}, outputs=["embedding"],
                         embedding_dim=16)
    assert family_module("triplet") is triplet
    loaded = load_bundle(bundle)
    t = np.arange(22050 * 10) / 22050
    sf.write(str(tmp_path / "a.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    sf.write(str(tmp_path / "short.wav"), np.zeros(22050 * 2, np.float32), 22050)
    results = {Path(r.path).name: r for r in Analysis([loaded], workers=0).analyse([tmp_path / "a.wav", tmp_path / "short.wav"])}
    out = results["a.wav"].outputs["sim"]
    assert out.ok and out.embedding.shape == (16,)
    # The same through the model directly, on the paper's segment.
    import soxr  # noqa: F401 (the pass resamples with it; here the rate already matches)

    y, _ = sf.read(str(tmp_path / "a.wav"), dtype="float32")
    start = int(3.0 * 22050)
    x = compute_feature(y[start:start + triplet.FEATURE.excerpt_samples], params=triplet.FEATURE)
    direct = triplet.embed(loaded.model, torch.from_numpy(x))[0].numpy()
    assert np.allclose(out.embedding, direct, atol=1e-3)
    # Shorter than the 3 s offset: not analysed, not a crash.
    assert not results["short.wav"].outputs["sim"].ok


# --- the trainer's pure parts ---------------------------------------------------


def test_precision_at_k_by_hand():
    z = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    rel = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], bool)
    assert trainer_triplet.precision_at_k(z, rel, k=1) == (1.0, 4)
    assert trainer_triplet.precision_at_k(z, rel, k=2) == (0.5, 4)
    rel[2:] = False  # rows without a relevant track are not queries
    assert trainer_triplet.precision_at_k(z, rel, k=1) == (1.0, 2)


def test_artist_folds_keep_artists_together():
    tracks = [trainer_triplet.Track(str(i), "", {"genre": [f"g{i % 3}"]}, artist=f"a{i // 2}") for i in range(30)]
    folds = trainer_triplet.artist_folds(tracks, folds=3, seed=0, stratify="genre")
    for i in range(0, 30, 2):
        assert folds[i] == folds[i + 1]
    assert sorted(np.bincount(folds)) == [10, 10, 10]
    rel = trainer_triplet.relevance(tracks, kinds=["artist", "genre"])
    assert rel["artist"][0, 1] and not rel["artist"][0, 2] and not rel["artist"][0, 0]


def test_csv_tracks(tmp_path):
    (tmp_path / "a.flac").write_bytes(b"x")
    (tmp_path / "b.flac").write_bytes(b"x")
    (tmp_path / "tags.csv").write_text(
        "path,genre,mood,artist\na.flac,rock;punk,angry,A\nb.flac,jazz,,B\nmissing.flac,pop,happy,C\n",
        encoding="utf-8")
    report = LoadReport()
    tracks = trainer_triplet.load_csv_tracks(tmp_path / "tags.csv", report=report)
    assert [t.tags for t in tracks] == [{"genre": ("rock", "punk"), "mood": ("angry",)}, {"genre": ("jazz",), "mood": ()}]
    assert tracks[0].artist == "A"
    assert report.skipped == [f"{tmp_path / 'tags.csv'}:4: no audio file missing.flac"]
    (tmp_path / "bad.csv").write_text("file,genre\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="must start with 'path'"):
        trainer_triplet.load_csv_tracks(tmp_path / "bad.csv", report=report)


@needs_shared("mood_4q")
def test_4q_tracks_carry_genres_and_moods():
    tracks = trainer_triplet.load_4q(DATASETS / "mood_4q", report=LoadReport())
    assert len(tracks) == 900
    with_both = lsi.tracks_with_every_set([t.tags for t in tracks], sets=["genre", "mood"])
    assert len(with_both) > 800
    assert sum(bool(t.artist) for t in tracks) > 850


def test_beets_library_tag_sets(tmp_path):
    from beets.library import Item, Library

    lib = Library(str(tmp_path / "library.db"), directory=str(tmp_path))
    # The plugin stores moods as a list: beets' "\\␀"-joined text in the database.
    for i, (genres, style, mood) in enumerate([(["Rock", "Punk"], "Pop Punk; Skate Punk", "angry"),
                                               (["Jazz"], "", "calm\\␀warm")]):
        audio = tmp_path / f"{i}.flac"
        audio.write_bytes(b"x")
        item = Item(path=str(audio), title=f"t{i}", artist=f"a{i}", genres=genres, style=style)
        item["mood"] = mood
        lib.add(item)
    lib._close()
    report = LoadReport()
    tracks = trainer_triplet.load_beets_tracks(tmp_path / "library.db", music_dir=str(tmp_path), report=report)
    assert report.skipped == []
    assert [t.tags["genre"] for t in tracks] == [("Rock", "Punk"), ("Jazz",)]
    assert tracks[0].tags["style"] == ("Pop Punk", "Skate Punk") and tracks[1].tags["style"] == ()
    assert [t.tags["mood"] for t in tracks] == [("angry",), ("calm", "warm")]
    assert tracks[0].artist == "a0"


def test_mtg_jamendo_layout_joins_categories(tmp_path):
    (tmp_path / "audio" / "41").mkdir(parents=True)
    (tmp_path / "audio" / "41" / "241.mp3").write_bytes(b"x")
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
    (tmp_path / "autotagging_genre.tsv").write_text(
        header + "track_241\tartist_1\talbum_9\t41/241.mp3\t200.0\tgenre---rock\tgenre---punk\n"
        "track_242\tartist_2\talbum_8\t42/242.mp3\t100.0\tgenre---pop\n", encoding="utf-8")
    (tmp_path / "autotagging_moodtheme.tsv").write_text(
        header + "track_241\tartist_1\talbum_9\t41/241.mp3\t200.0\tmood/theme---energetic\n", encoding="utf-8")
    report = LoadReport()
    tracks = trainer_triplet.load_jamendo(tmp_path, report=report)
    assert len(tracks) == 1
    assert tracks[0].tags == {"genre": ("rock", "punk"), "mood": ("energetic",)}
    assert (tracks[0].artist, tracks[0].album) == ("artist_1", "album_9")
    assert any("no audio file" in line for line in report.skipped)


def test_tally_summarises_each_method_over_its_folds():
    tally = trainer_triplet._Tally()
    tally.record("mfcc", {"method": "MFCC"}, {"genre@5": 0.2, "genre@100": float("nan")})
    tally.record("mfcc", {"method": "ignored: the first fold's description stays"}, {"genre@5": 0.4,
                                                                                     "genre@100": float("nan")})
    tally.record("dpnn|genre|10|hard|segments", {"method": "DPNN, mean"}, {"genre@5": 0.5, "genre@100": 0.1})
    tally.chosen_batches["dpnn|genre|10|hard"] = [{"chosen": 16}]
    tally.best_epochs["dpnn|genre|10|hard|segments"] = [3]
    results = tally.results()
    assert results["mfcc"]["method"] == "MFCC" and results["mfcc"]["folds"] == 2
    assert results["mfcc"]["scores"]["genre@5"] == pytest.approx(0.3)
    assert results["mfcc"]["scores"]["genre@5_std"] == pytest.approx(0.1)
    assert np.isnan(results["mfcc"]["scores"]["genre@100"]) and "batch_sizes" not in results["mfcc"]
    segments = results["dpnn|genre|10|hard|segments"]
    assert segments["batch_sizes"] == [{"chosen": 16}] and segments["best_epochs"] == [3]


def test_bundle_metrics_say_artist_disjoint_only_when_every_track_names_its_artist():
    def tracks(*artists):
        return [trainer_triplet.Track(str(i), f"{i}.flac", {"genre": ["rock"]}, artist) for i, artist in enumerate(artists)]

    assert trainer_triplet.folds_description(tracks("a", "b")) == "artist-disjoint folds"
    gtzan_like = trainer_triplet.folds_description(tracks("", ""))
    assert "not artist-disjoint" in gtzan_like
    assert "artist-disjoint folds" not in trainer_triplet.folds_description(tracks("a", ""))


def test_both_backbones_cosine_is_the_mean_of_the_two_cosines():
    rng = np.random.default_rng(0)
    msd, mtt = rng.random((5, 4)) * 100, rng.random((5, 3))  # very different scales
    both = trainer_triplet.both_backbones(msd, mtt)
    assert both.shape == (5, 7)
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, rtol=1e-5)

    def cosines(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    np.testing.assert_allclose(both @ both.T, (cosines(msd) + cosines(mtt)) / 2, rtol=1e-5)
