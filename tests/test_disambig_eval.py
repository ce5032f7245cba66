"""The disambig paper's tag tasks (trainer/disambig_eval.py) and tag embeddings
(trainer/tag_embeddings.py): hand-computed rankings, a tiny hand-made
classifier, the artificial duplicate split, and the published Deezer
matrices (realdata)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from realdata_fixtures import SHARED, needs_shared
from tagcore.families import disambig
from trainer import disambig_eval as E
from trainer import tag_embeddings as T
from trainer.datasets import DatasetError

DEEZER = SHARED / "deezer_disambiguation"
TAXONOMY = SHARED / "discogs_taxonomy" / "discogs400_classes.txt"


# --- Ranking metrics on a hand-computed example ----------------------------------


def test_ranking_scores_hand_computed():
    # Query 0: relevant {1} ranked 1st -> hit@1, AP 1.
    # Query 1: relevant {0} ranked 2nd -> hit@2 only, AP 1/2.
    # Query 2: relevant {0, 2} ranked 2nd and 3rd -> hit@2, AP (1/2 + 2/3) / 2 = 7/12.
    # Query 3: relevant {2} ranked 3rd -> no hit, AP 1/3.
    sim = np.array([[0.1, 0.9, 0.5], [0.5, 0.9, 0.1], [0.4, 0.9, 0.3], [0.9, 0.5, 0.1]])
    rel = [{1}, {0}, {0, 2}, {2}]
    s = E.ranking_scores(sim, rel)
    assert s["hr@1"] == pytest.approx(25.0)
    assert s["hr@2"] == pytest.approx(75.0)
    assert s["map"] == pytest.approx(100 * (1 + 0.5 + 7 / 12 + 1 / 3) / 4)
    hits = [1, 0, 0, 0]
    assert s["hr@1_ci"] == pytest.approx(100 * 1.96 * np.std(hits) / 2)


def test_nan_similarity_ranks_last():
    sim = np.array([[np.nan, 0.1]])
    assert E.ranking_scores(sim, [{0}])["hr@1"] == 0.0


# --- Taxonomy learning -------------------------------------------------------------


def test_taxonomy_matching_two_parents_and_unmatched_styles():
    parents = E.read_taxonomy(["Rock---Punk", "Electronic---Hardcore", "Rock---Hardcore", "Electronic---Musique Concrète",
                               "# comment", ""])
    labels = ["genre:rock", "genre:electronic", "punk", "hardcore", "musique concrte", "klezmer"]
    sim = np.array([
        [1, 0, .9, .2, 0, 0],
        [0, 1, .1, .8, .7, 0],
        [.9, .1, 1, 0, 0, 0],  # punk -> rock: hit@1
        [.3, .8, 0, 1, 0, 0],  # hardcore -> electronic first: a hit (either parent)
        [.6, .4, 0, 0, 1, 0],  # musique concrète (mangled) -> rock first, electronic second
        [0, 0, 0, 0, 0, 1],
    ])
    r = E.taxonomy_scores(labels, sim, parents)
    assert r.styles == ["punk", "hardcore", "musique concrte"]
    assert r.unmatched == ["klezmer"]
    assert r.scores["hr@1"] == pytest.approx(100 * 2 / 3)
    assert r.scores["hr@2"] == pytest.approx(100.0)
    # AP: punk 1, hardcore (both relevant at ranks 1, 2) 1, musique concrète 1/2
    assert r.scores["map"] == pytest.approx(100 * 2.5 / 3)
    assert r.errors == [("musique concrte", "genre:rock", {"genre:electronic"})]


def test_taxonomy_errors_are_clear():
    with pytest.raises(DatasetError, match="taxonomy:2: expected 'Genre---Style'"):
        E.read_taxonomy(["Rock---Punk", "Rock/Punk"])
    with pytest.raises(DatasetError, match="no genre in the matrix"):
        E.taxonomy_scores(["punk"], np.ones((1, 1)), {"Punk": {"Rock"}})


# --- Deduplication -------------------------------------------------------------------


def test_deduplication_twins():
    labels = ["rock_1", "rock_2", "jazz_1", "jazz_2", "solo"]
    sim = np.array([
        [1, .9, .1, .2, 0],
        [.9, 1, .3, .1, 0],
        [.1, .15, 1, .2, .5],  # jazz_1: solo .5, jazz_2 .2 -> twin 2nd
        [.2, .1, .2, 1, 0],  # jazz_2: rock_1 .2 ties jazz_1 .2 (stable order: rock_1 first) -> twin 2nd
        [0, 0, .5, 0, 1],
    ])
    s = E.deduplication_scores(labels, sim)
    assert s["n"] == 4 and s["no_twin"] == ["solo"]
    assert s["hr@1"] == pytest.approx(50.0)
    assert s["hr@2"] == pytest.approx(100.0)
    assert s["map"] == pytest.approx(100 * (1 + 1 + 1 / 2 + 1 / 2) / 4)
    other = E.deduplication_scores(labels, sim, candidates="other")
    assert other["hr@1"] == pytest.approx(75.0)  # jazz_1 now sees only rock_2 .15 and jazz_2 .2


def test_duplicate_split_is_by_artist_and_never_mixes_systems():
    rng = np.random.default_rng(0)
    tracks = [(f"artist{i % 7}", ("rock", "punk") if i % 2 else ("jazz",)) for i in range(60)]
    new = E.duplicate_split(tracks, rng=rng)
    system_of_artist: dict[str, str] = {}
    for (artist, tags), relabelled in zip(tracks, new):
        suffixes = {t[-2:] for t in relabelled}
        assert len(suffixes) == 1  # one system per track
        assert [t[:-2] for t in relabelled] == list(tags)
        assert system_of_artist.setdefault(artist, suffixes.pop()) == relabelled[0][-2:]
    assert sorted(set(system_of_artist.values())) == ["_1", "_2"]
    assert sum(v == "_1" for v in system_of_artist.values()) == 4  # ceil(7 / 2)


# --- Translation -----------------------------------------------------------------------


def test_translation_pairs_exclude_string_matches():
    labels = ["mumu:jazz", "mumu:bebop", "jazz", "bop", "genre:rock", "mumu:rock"]
    sim = np.eye(6)
    sim[0, 2] = sim[2, 0] = 0.95  # same name: excluded
    sim[0, 3] = 0.5
    sim[1, 3] = 0.9
    sim[5, 4] = 0.8  # mumu:rock vs genre:rock: a string match once genre: is removed
    sim[5, 3] = 0.1
    pairs = E.translation_pairs(labels, sim, top=5)
    assert pairs == [("mumu:bebop", "bop", 0.9), ("mumu:jazz", "bop", 0.5), ("mumu:rock", "bop", 0.1)]
    kept = E.translation_pairs(labels, sim, top=1, exclude_string_matches=False)
    assert kept == [("mumu:jazz", "jazz", 0.95)]
    # One to one: bop goes to bebop; jazz and rock find nothing else above 0.
    assert E.translation_pairs(labels, sim, top=5, one_to_one=True)[0] == ("mumu:bebop", "bop", 0.9)
    assert [b for _, b, _ in E.translation_pairs(labels, sim, top=5, one_to_one=True)].count("bop") == 1


def test_translation_spelling_match_ignores_spaces():
    labels = ["mumu:dance hall", "dancehall", "reggae"]
    sim = np.array([[1, 0.9, 0.5], [0.9, 1, 0], [0.5, 0, 1]])
    assert E.translation_pairs(labels, sim) == [("mumu:dance hall", "reggae", 0.5)]


def test_prefixed_union_keeps_same_names_apart():
    union = E.prefixed_union([("jazz",), ("bebop", "jazz")], [("jazz",)], prefix_a="M:", prefix_b="D:")
    assert union == [("M:jazz",), ("M:bebop", "M:jazz"), ("D:jazz",)]
    with pytest.raises(ValueError):
        E.prefixed_union([], [], prefix_a="x", prefix_b="x")


# --- The four embeddings on a tiny hand-made classifier ------------------------------


def test_four_embeddings_of_a_hand_made_classifier():
    config = disambig.Config(channels=(2,), pools=((2, 2),), gru_hidden=3, n_labels=3)
    model = disambig.Model(config)
    weights = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    with torch.no_grad():
        model.dense.weight.copy_(weights)
    fw = disambig.embedding_from_weights(model)
    probs = np.array([[0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9], [0.5, 0.5, 0.0]])
    ann = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])
    sims = T.similarities(annotations=ann, probabilities=probs, weights=fw)
    assert set(sims) == {"fw", "fc", "fm", "fdist"}
    assert sims["fw"][0, 1] == pytest.approx(1 / math.sqrt(2))
    assert sims["fw"][0, 2] == pytest.approx(0.0)
    c0, c1 = probs[:, 0], probs[:, 1]
    assert sims["fc"][0, 1] == pytest.approx(c0 @ c1 / np.linalg.norm(c0) / np.linalg.norm(c1))
    m0, m1 = probs[[0, 1]].mean(0), probs[[1, 3]].mean(0)
    assert sims["fm"][0, 1] == pytest.approx(m0 @ m1 / np.linalg.norm(m0) / np.linalg.norm(m1))
    # f_dist: columns of the annotation matrix: tags 0 and 1 share track 1 of 2 each
    assert sims["fdist"][0, 1] == pytest.approx(0.5)
    assert sims["fdist"][0, 2] == pytest.approx(0.0)


def test_tag_without_held_out_tracks_is_nan_in_fm_and_fdist():
    sims = T.similarities(annotations=np.array([[1, 0], [1, 0]]), probabilities=np.array([[0.9, 0.1], [0.7, 0.3]]))
    assert np.isnan(sims["fm"][1]).all() and np.isnan(sims["fdist"][:, 1]).all()
    assert not np.isnan(sims["fc"]).any()


def test_written_csv_reads_back_and_evaluates(tmp_path, capsys):
    labels = ["genre:rock", "genre:jazz", "punk", "bebop"]
    sim = np.array([[1, 0, .9, .1], [0, 1, .2, .8], [.9, .2, 1, 0], [.1, .8, 0, 1]])
    T.write_similarity_csv(tmp_path / "fx_tag_similarity.csv", labels, sim)
    (tmp_path / "tax.txt").write_text("Rock---Punk\nJazz---Bebop\n", encoding="utf-8")
    assert E.main(["--similarity", str(tmp_path / "fx_tag_similarity.csv"), "--taxonomy", str(tmp_path / "tax.txt"),
                   "--json", str(tmp_path / "out.json")]) == 0
    assert "fx" in capsys.readouterr().out
    import json

    assert json.loads((tmp_path / "out.json").read_text())["fx"]["hr@1"] == 100.0
    assert E.main(["--similarity", str(tmp_path / "missing.csv"), "--deduplication"]) == 2


# --- The published Deezer matrices ------------------------------------------------------

TABLE2 = {  # the disambig paper, Table 2 (HR@1, HR@2, MAP in %)
    "fw": (85.1, 91.9, 90.6), "fc": (89.4, 98.3, 94.2), "fm": (87.7, 96.2, 93.1), "fdist": (96.2, 100.0, 98.1),
}
TABLE3_HR = {"fw": (92.0, 95.8), "fc": (92.8, 97.0), "fm": (74.8, 83.0)}  # the disambig paper, Table 3


@needs_shared("deezer_disambiguation", "taxonomy_learning")
@needs_shared("discogs_taxonomy", "discogs400_classes.txt")
@pytest.mark.parametrize("name", sorted(TABLE2))
def test_table2_reproduced(name):
    from trainer.datasets.deezer_disambiguation import load_similarity

    matrix = load_similarity(DEEZER / "taxonomy_learning" / f"{name}_tag_similarity.csv")
    parents = E.read_taxonomy(TAXONOMY.read_text(encoding="utf-8").splitlines())
    r = E.taxonomy_scores(matrix.labels, matrix.values, parents)
    assert len(r.genres) == 15 and r.missing_genres == []
    assert r.unmatched == ["early", "klezmer"]
    assert len(r.styles) == 233
    for metric, paper in zip(("hr@1", "hr@2", "map"), TABLE2[name]):
        assert abs(r.scores[metric] - paper) <= 1.5, (metric, r.scores[metric], paper)


@needs_shared("deezer_disambiguation", "deduplication")
@pytest.mark.parametrize("name", sorted(TABLE3_HR))
def test_table3_hit_rates_reproduced(name):
    from trainer.datasets.deezer_disambiguation import load_similarity

    matrix = load_similarity(DEEZER / "deduplication" / f"{name}_tag_similarity.csv")
    s = E.deduplication_scores(matrix.labels, matrix.values)
    assert s["n"] == 500 and s["no_twin"] == []
    for metric, paper in zip(("hr@1", "hr@2"), TABLE3_HR[name]):
        assert abs(s[metric] - paper) <= 1.5, (metric, s[metric], paper)
    # One relevant twin: AP <= 1 at rank 1, 1/2 at rank 2, 1/3 below, so
    # MAP <= HR@1 + (HR@2 - HR@1) / 2 + (100 - HR@2) / 3, below Table 3's MAP.
    bound = s["hr@1"] + (s["hr@2"] - s["hr@1"]) / 2 + (100 - s["hr@2"]) / 3
    assert s["map"] <= bound + 1e-9


def test_dedup_experiment_on_synthetic_audio_vectors():
    """tag-dedup's per-seed pipeline (duplicate split, artist split,
    monolabel and multi-label heads, the four embeddings) finds twins when
    the vectors carry the genre, and f_dist cannot (no cross-system
    co-occurrence)."""
    from trainer import tag_dedup

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 8)) * 3
    genres, artists, rows = [], [], []
    for i in range(240):
        g = [int(i % 4)] + ([int((i // 4) % 4)] if i % 3 == 0 and (i // 4) % 4 != i % 4 else [])
        genres.append(tuple(f"g{j}" for j in g))
        artists.append(f"a{i // 3}")
        rows.append(centres[g].mean(0) + rng.normal(size=8))
    out = tag_dedup.one_seed(np.array(rows), artists, genres, seed=0, c=1.0, fraction=0.25)
    assert out["tags"] == 8 and out["ranked"] == 8
    for scheme in ("monolabel", "multilabel"):
        assert out[scheme]["fc"]["hr@1"] >= 75.0, out[scheme]["fc"]
        assert out[scheme]["fw"]["hr@1"] >= 75.0, out[scheme]["fw"]
    assert out["fdist"]["hr@1"] <= 25.0
