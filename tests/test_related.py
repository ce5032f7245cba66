"""tagcore.related and tagcore.spelling (spelling, vocabulary, LSI tag vectors, combined sources,
proposals, duplicates, bundle I/O), trainer.related's evaluation pieces,
the Last.fm loader and the shipped related-tags bundle."""

from __future__ import annotations

import re

import numpy as np
import pytest

from realdata_fixtures import SHARED, needs_shared
from tagcore import lsi
from tagcore import related as R


# --- Spelling ----------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [("Hip-Hop", "hip hop"), ("HipHop", "hiphop"), ("Bossa Nova", "Bossanova"),
                                  ("Musique Concrète", "musique concrete"), ("R&B", "r & b"), ("Drum_and_Bass", "drum and bass"),
                                  ("  Post   Rock ", "post-rock")])
def test_spelling_key_joins_spellings(a, b):
    assert R.spelling_key(a) == R.spelling_key(b)


@pytest.mark.parametrize("a, b", [("R&B", "RnB"), ("Pop/Rock", "Pop Rock"), ("Jazz", "Jazz Funk")])
def test_spelling_key_keeps_different_names_apart(a, b):
    assert R.spelling_key(a) != R.spelling_key(b)


def test_closest_spellings():
    assert R.closest_spellings("Jaz", ["Jazzy", "Jazz", "Blues"], n=2) == ["Jazz", "Jazzy"]
    assert R.closest_spellings("zzzz", ["Jazz", "Blues"]) == []


def test_vocabulary_lookup_and_unknown_tag():
    v = R.Vocabulary([R.Tag("Holiday", "genre"), R.Tag("Holiday", "theme"), R.Tag("Hard Rock", "style")])
    assert v.find("holiday") == [0, 1]
    assert v.find("HOLIDAY", kind="theme") == [1]
    assert v.find("hard-rock") == [2]
    with pytest.raises(R.UnknownTag, match=r"'Hard Rok' is not in the vocabulary; closest: Hard Rock") as info:
        v.require("Hard Rok")
    assert info.value.suggestions == ["Hard Rock"]


# --- LSI tag vectors -------------------------------------------------------------------


def docs():
    rap = {"genre": ["Rap"], "style": ["Gangsta Rap"], "mood": ["Aggressive"]}
    rap2 = {"genre": ["Rap"], "style": ["Hardcore Rap", "Gangsta Rap"], "mood": ["Aggressive", "Confident"]}
    jazz = {"genre": ["Jazz"], "style": ["Bebop"], "mood": ["Reflective"]}
    jazz2 = {"genre": ["Jazz"], "style": ["Cool Jazz", "Bebop"], "mood": ["Reflective", "Sophisticated"]}
    return [rap, rap2, jazz, jazz2] * 3 + [{"genre": ["Jazz"], "style": ["Soul Jazz"], "mood": []}]


def test_lsi_tag_vectors_relate_co_occurring_tags():
    tags, vectors = R.lsi_tag_vectors(docs(), sets=["genre", "style", "mood"], k=2)
    names = [t.name for t in tags]
    assert vectors.shape == (len(tags), 2)
    assert {t.kind for t in tags} == {"genre", "style", "mood"}
    assert tags[names.index("Rap")].count == 6
    sim = lsi.relatedness(vectors)
    rap, jazz, gangsta, bebop = (names.index(n) for n in ("Rap", "Jazz", "Gangsta Rap", "Bebop"))
    assert sim[rap, gangsta] > 0.9 and sim[jazz, bebop] > 0.9
    assert abs(sim[rap, bebop]) < 0.1
    tags2, _ = R.lsi_tag_vectors(docs(), sets=["genre", "style", "mood"], k=2, min_count=2)
    assert "Soul Jazz" not in [t.name for t in tags2]


def test_cooccurrence_vectors_merge_spellings():
    names, counts, vectors = R.cooccurrence_vectors([["hip-hop", "rap"], ["Hip Hop", "rap"], ["jazz"]], k=2)
    assert names == ["hip-hop", "jazz", "rap"] or names[0] in ("hip-hop", "Hip Hop")
    assert counts[[R.spelling_key(n) for n in names].index("hiphop")] == 2
    assert vectors.shape == (3, 2)


# --- Sources, combination, proposals ------------------------------------------------------


def index():
    tags, vectors = R.lsi_tag_vectors(docs(), sets=["genre", "style", "mood"], k=2)
    source = R.Source("allmusic", [t.name for t in tags], 1.0, vectors=vectors)
    return R.RelatedIndex(R.Vocabulary(tags), [source], R.ALLMUSIC_ALIASES)


def test_source_validation():
    with pytest.raises(ValueError, match="not both or neither"):
        R.Source("x", ["a"])
    with pytest.raises(ValueError, match="2 rows for 1 names"):
        R.Source("x", ["a"], vectors=np.ones((2, 3)))


def test_combined_scores_weights_and_fallback():
    a = R.Source("a", ["x", "y", "z"], 1.0, vectors=np.array([[1.0, 0], [1, 0], [0, 1]]))
    b = R.Source("b", ["x", "y", "w"], 3.0, similarity=np.array([[1, 0.2, 0.5], [0.2, 1, 0], [0.5, 0, 1]]))
    s = R.combined_scores([a, b], ["x"], ["y", "z", "w", "q"])
    assert s[0] == pytest.approx((1.0 * 1.0 + 3.0 * 0.2) / 4)  # both sources
    assert s[1] == pytest.approx(0.0)  # only a
    assert s[2] == pytest.approx(0.5)  # only b
    assert np.isnan(s[3])
    fb = R.Source("b", b.names, 3.0, similarity=b.similarity, fallback=True)
    s = R.combined_scores([fb, a], ["x"], ["y", "w"])
    assert s[0] == pytest.approx(1.0)  # a can: the fallback stays out
    assert s[1] == pytest.approx(0.5)  # only the fallback can


def test_propose_from_genres():
    idx = index()
    styles = R.propose(idx, ["Rap"], kind="style", count=2)
    assert [n for n, _ in styles] == ["Gangsta Rap", "Hardcore Rap"]
    assert styles[0][1] >= styles[1][1]
    moods = R.propose(idx, ["Jazz", "Bebop"], kind="mood", count=5, min_score=0.5)
    assert {n for n, _ in moods} == {"Reflective", "Sophisticated"}
    assert R.propose(idx, ["Rap"], kind="style", exclude=["gangsta-rap"], count=1)[0][0] == "Hardcore Rap"
    assert R.propose(idx, ["Unknown"], kind="style") == []
    assert R.propose(idx, [], kind="mood") == []


def test_propose_through_alias_and_prior():
    idx = index()
    idx.aliases = {R.spelling_key("hip hop"): "Rap"}
    assert R.propose(idx, ["Hip Hop"], kind="style", count=1)[0][0] == "Gangsta Rap"
    # A prior of weight 1 ranks by popularity alone.
    prior = {"Bebop": 0.1, "Cool Jazz": 1.0}
    top = R.propose(idx, ["Jazz"], kind="style", count=1, prior=prior, prior_weight=1.0)
    assert top[0][0] == "Cool Jazz"


def test_nearest_and_unknown():
    idx = index()
    near = idx.nearest("jazz", kinds=("style",), n=2)
    assert [t.name for t, _ in near][0] == "Bebop"
    assert all(t.kind == "style" for t, _ in near)
    assert "Jazz" not in [t.name for t, _ in idx.nearest("Jazz", n=20)]
    with pytest.raises(R.UnknownTag) as info:
        idx.nearest("Bebopp")
    assert "Bebop" in info.value.suggestions


def test_popularity_prior():
    v = R.Vocabulary([R.Tag("A", "style", 10), R.Tag("B", "style", 5), R.Tag("C", "mood", 3)])
    assert R.popularity_prior(v, "style") == {"A": 1.0, "B": 0.5}
    log = R.popularity_prior(v, "style", scale="log")
    assert log["A"] == pytest.approx(1.0) and log["B"] == pytest.approx(np.log(6) / np.log(11))
    with pytest.raises(ValueError):
        R.popularity_prior(v, "style", scale="sqrt")


def test_alias_groups_weigh_each_query_name_once():
    # "wide" aliases to three names along axis 0, "narrow" to one along
    # axis 1: flat, "wide" would pull the centroid three times as hard.
    vocab = R.Vocabulary([R.Tag(n, "genre", 1) for n in ("A1", "A2", "A3", "B")] + [R.Tag("S", "style", 1)])
    vectors = np.array([[1.0, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
    src = R.Source("s", ["A1", "A2", "A3", "B", "S"], vectors=vectors)
    idx = R.RelatedIndex(vocab, [src], {"wide": ["A1", "A2", "A3"], "narrow": "B"})
    assert idx.expand_groups(["wide", "narrow", "A1"]) == [["wide", "A1", "A2", "A3"], ["narrow", "B"], ["A1"]]
    assert idx.expand(["wide", "narrow"]) == ["wide", "A1", "A2", "A3", "narrow", "B"]
    (name, score), = R.propose(idx, ["wide", "narrow"], kind="style", count=1)
    assert name == "S" and score == pytest.approx(1.0)  # midway between the two axes
    flat = src.scores(["A1", "A2", "A3", "B"], ["S"])[0][0]
    assert flat < 0.95


def test_tree_aliases_take_the_children_the_vocabulary_holds():
    vocab = R.Vocabulary([R.Tag("Hard Rock", "style", 3), R.Tag("Heavy Metal", "style", 2), R.Tag("Bebop", "style", 1),
                          R.Tag("Jazz", "genre", 5)])
    paths = {"rock": ("rock",), "hardrock": ("rock", "hard rock"), "heavymetal": ("rock", "heavy metal"),
             "blackmetal": ("rock", "heavy metal", "black metal"), "mathrock": ("rock", "math rock"),
             "jazz": ("jazz",), "bebop": ("jazz", "bebop"), "polka": ("polka",)}
    aliases = R.tree_aliases(paths, vocab)
    # jazz is held, heavy metal is held (its child is not), polka has no child
    assert aliases == {"rock": ["Hard Rock", "Heavy Metal"]}
    merged = R.merge_aliases({"rock": "Pop/Rock", "metal": ["Pop/Rock", "Heavy Metal"]}, aliases)
    assert merged == {"rock": ["Pop/Rock", "Hard Rock", "Heavy Metal"], "metal": ["Pop/Rock", "Heavy Metal"]}


# --- Duplicates ---------------------------------------------------------------------------


def test_find_duplicates_by_spelling_with_canonical_names():
    counts = {"Hip-Hop": 3, "Hip Hop": 5, "hiphop": 1, "Bossa Nova": 2, "Bossanova": 4, "Rock": 9, "ROCK": 1, "Jazz": 2}
    canonical = {"hiphop": "Hip Hop", "bossanova": "Bossa Nova"}
    groups = R.find_duplicates(counts, canonical=lambda n: canonical.get(R.spelling_key(n)))
    by = {g.canonical: g for g in groups}
    assert set(by) == {"Hip Hop", "Bossa Nova", "Rock"}
    assert by["Hip Hop"].names == ("Hip Hop", "Hip-Hop", "hiphop")
    assert by["Bossa Nova"].names == ("Bossa Nova", "Bossanova")  # the genre list's spelling wins over the commoner
    assert by["Rock"].names == ("Rock", "ROCK") and by["Rock"].reason == "spelling"
    assert [g.canonical for g in groups] == ["Rock", "Hip Hop", "Bossa Nova"]  # by total count


def test_find_duplicates_by_alias_and_similarity():
    aliases = {"rnb": "r&b"}
    groups = R.find_duplicates(["R&B", "RnB"], normalise=lambda n: aliases.get(n.lower(), n))
    assert groups[0].names == ("R&B", "RnB") or set(groups[0].names) == {"R&B", "RnB"}
    sim = {frozenset(("Synthpop", "Synth Pops")): 0.9, frozenset(("Synthpop", "Synthwave")): 0.95}

    def lookup(a, b):
        return sim.get(frozenset((a, b)))

    groups = R.find_duplicates(["Synthpop", "Synth Pops", "Synthwave", "Ambient"], similarity=lookup, min_ratio=0.9)
    assert len(groups) == 1 and set(groups[0].names) == {"Synthpop", "Synth Pops"}
    assert groups[0].reason == "similar" and groups[0].score == pytest.approx(0.9)
    # Similar spelling but no (or low) similarity: kept apart.
    assert R.find_duplicates(["Synthpop", "Synth Pops"], similarity=lambda a, b: None) == []
    assert R.find_duplicates([]) == []


def test_precision_recall_at_k():
    assert R.precision_recall_at_k(["a", "B", "c", "d", "e"], ["b", "x"], k=5) == (0.2, 0.5)
    assert R.precision_recall_at_k(["a"], ["a"], k=5) == (0.2, 1.0)
    with pytest.raises(ValueError):
        R.precision_recall_at_k(["a"], [], k=5)


# --- Bundle I/O ------------------------------------------------------------------------------


def test_save_and_load_index(tmp_path):
    idx = index()
    extra = R.Source("audio", ["Rap", "Jazz"], 0.5, similarity=np.array([[1, 0.1], [0.1, 1]], dtype=np.float32), fallback=True)
    idx.sources.append(extra)
    R.save_index(tmp_path / "b", idx, name="t", version="2", provenance={"x": 1})
    again, config = R.load_index(tmp_path / "b")
    assert config["version"] == "2" and config["provenance"] == {"x": 1}
    assert [t.name for t in again.vocabulary.tags] == [t.name for t in idx.vocabulary.tags]
    assert again.sources[1].fallback and again.sources[1].similarity.shape == (2, 2)
    assert R.propose(again, ["Rap"], kind="style") == R.propose(idx, ["Rap"], kind="style")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["config.json", "weights.safetensors"]


def test_load_index_errors(tmp_path):
    with pytest.raises(R.RelatedBundleError, match="cannot read"):
        R.load_index(tmp_path / "missing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"format": "tagcore-bundle"}')
    with pytest.raises(R.RelatedBundleError, match="not a tagcore-related-tags bundle"):
        R.load_index(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text('{"format": "tagcore-related-tags"}')
    (tmp_path / "x" / "weights.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(R.RelatedBundleError, match="weights.safetensors: cannot read"):
        R.load_index(tmp_path / "x")


def test_shipped_bundle_holds_tag_vectors_only():
    folder = R.default_related_bundle()
    if not (folder / "config.json").is_file():
        pytest.skip("related-tags bundle not built")
    idx, config = R.load_index()
    kinds = {t.kind for t in idx.vocabulary.tags}
    assert kinds == set(R.KINDS)
    assert config["provenance"]["contents"].startswith("tag names")
    text = (folder / "config.json").read_text(encoding="utf-8")
    assert not re.search(r"TR[0-9A-Z]{16}", text)  # no MSD track id
    assert (folder / "weights.safetensors").stat().st_size < 2_000_000
    styles = [n for n, _ in R.propose(idx, ["Jazz"], kind="style", count=10)]
    assert any("Bop" in s or "Jazz" in s for s in styles)


@pytest.mark.parametrize("genres, expected", [
    (["Metal"], "Heavy Metal"),  # not every Pop/Rock style: the metal ones
    (["Rock", "Metal"], "Heavy Metal"),
    (["Hip Hop"], "Rap"),
    (["Jazz"], "Jazz"),
    (["Country"], "Country"),
])
def test_shipped_bundle_proposals_for_beets_genre_names(genres, expected):
    """What the plugin proposes for the genres its audio models write: the
    top five styles name the genre's family, not a niche style that only
    shares AllMusic's broad genre."""
    if not (R.default_related_bundle() / "config.json").is_file():
        pytest.skip("related-tags bundle not built")
    idx, config = R.load_index()
    defaults = config.get("defaults") or {}
    prior = R.popularity_prior(idx.vocabulary, "style", scale=defaults.get("prior_scale", "linear"))
    styles = [n for n, _ in R.propose(idx, genres, kind="style", count=5, prior=prior,
                                      prior_weight=defaults.get("prior_weight", 0.0))]
    assert any(expected in s for s in styles[:3]), styles
    assert not {"Japanese Traditions", "Dutch Pop", "C-Pop", "Hong Kong Pop"} & set(styles)


# --- trainer.related pieces on tiny data -------------------------------------------------------


def test_allmusic_documents_and_evaluate_split():
    from trainer import related as T
    from trainer.datasets.allmusic_msd import AllMusicTrack

    tracks = [AllMusicTrack("TR" + "A" * 16, ("Rap",), ("Gangsta Rap",), ("Aggressive",), ()),
              AllMusicTrack("TR" + "B" * 16, ("Rap",), (), (), ()),  # genre only: left out
              AllMusicTrack("TR" + "C" * 16, (), ("Bebop",), (), ())]  # no genre: left out
    assert [d["genre"] for d in T.allmusic_documents(tracks)] == [("Rap",)]
    data = docs() * 4
    train, fit, val, test = T.split(data, seed=0)
    assert len(fit) + len(val) + len(test) == len(data) and len(test) == round(0.2 * len(data))
    assert len(train) == len(fit) + len(val) and len(val) == max(1, round(0.1 * len(train)))
    result = T.evaluate_split(train, test, k=2, min_count=1, sources_extra=[], prior_weight=0.0)
    styles = result["styles from genres"]
    assert styles["related"]["p@5"] >= styles["most_popular"]["p@5"]
    assert styles["related"]["r@5"] > 0.9  # the two styles of each genre are its top two
    assert set(result) == {"styles from genres", "moods from genres+styles", "moods from genres",
                           "styles from beets genres", "moods from beets genres"}


def test_lastfm_loader(tmp_path):
    from trainer.datasets import LoadReport, lastfm_hetrec

    (tmp_path / "tags.dat").write_bytes("tagID\ttagValue\n1\trock\n2\ttropicália\nbad\n".encode("latin-1"))
    (tmp_path / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t52\t1\t1\t4\t2009\n3\t52\t1\t1\t4\t2009\n"
        "2\t53\t2\t1\t4\t2009\n2\t53\t9\t1\t4\t2009\nx\ty\n", encoding="utf-8")
    report = LoadReport()
    tags = lastfm_hetrec.artist_tags(tmp_path, report=report)
    assert tags == {52: {"rock": 2}, 53: {"tropicália": 1}}
    assert len(report.skipped) == 3
    assert any("unknown tagID 9" in s for s in report.skipped)


@needs_shared("lastfm_hetrec2k", "tags.dat")
def test_lastfm_real_files():
    from trainer.datasets import lastfm_hetrec

    tags = lastfm_hetrec.load_tags(SHARED / "lastfm_hetrec2k")
    assert len(tags) == 11946
    assert "tropicália" in tags.values()


def test_a_name_in_two_kinds_keeps_a_vector_per_kind():
    tags = [R.Tag("Rap", "genre"), R.Tag("Playful", "mood"), R.Tag("Playful", "theme")]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], dtype=np.float32)
    source = R.Source("allmusic", [t.name for t in tags], vectors=vectors, kinds=[t.kind for t in tags])
    idx = R.RelatedIndex(R.Vocabulary(tags), [source])
    assert R.propose(idx, ["Rap"], kind="theme")[0][1] > 0.99
    assert R.propose(idx, ["Rap"], kind="mood")[0][1] == pytest.approx(0.0, abs=1e-6)
    near = dict(((t.kind, t.name), s) for t, s in idx.nearest("Rap"))
    assert near[("theme", "Playful")] > 0.99 > near[("mood", "Playful")]
