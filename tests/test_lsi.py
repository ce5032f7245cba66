"""LSI tag relatedness (the triplet paper, section III-B) on tiny hand-made matrices."""

import numpy as np
import pytest

from tagcore import lsi

TRACKS = [
    {"genre": ["rock"], "mood": ["angry"]},
    {"genre": ["rock"], "mood": ["angry", "tense"]},
    {"genre": ["jazz"], "mood": ["calm"]},
    {"genre": ["jazz"]},  # no mood: left out when both sets are used
]


def test_only_tracks_with_every_tag_set_take_part():
    assert lsi.tracks_with_every_set(TRACKS, sets=["genre", "mood"]) == [0, 1, 2]
    assert lsi.tracks_with_every_set(TRACKS, sets=["genre"]) == [0, 1, 2, 3]


def test_matrix_is_binary_tag_by_track_without_tfidf():
    matrix, vocabulary = lsi.tag_track_matrix(TRACKS[:3], sets=["genre", "mood"])
    assert vocabulary == ["genre:jazz", "genre:rock", "mood:angry", "mood:calm", "mood:tense"]
    expected = np.array(
        [[0, 0, 1], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32
    )
    np.testing.assert_array_equal(matrix, expected)


def test_full_rank_lsi_reconstructs_and_cosines_match_raw_cosines():
    matrix, _ = lsi.tag_track_matrix(TRACKS[:3], sets=["genre", "mood"])
    model = lsi.fit_lsi(matrix, k=10)  # clipped to 3
    assert model.k == 3
    # V S S V^T = A^T A: with every topic kept, LSI cosines are raw cosines.
    raw = lsi.relatedness(matrix.T)
    np.testing.assert_allclose(lsi.relatedness(model.track_vectors), raw, atol=1e-5)
    # hand computation: tracks 0 and 1 share 2 of (2, 3) tags: 2 / sqrt(6)
    assert raw[0, 1] == pytest.approx(2 / np.sqrt(6), abs=1e-6)
    assert raw[0, 2] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(model.project(matrix), model.track_vectors, atol=1e-5)


def test_truncation_keeps_the_strongest_topic():
    matrix, _ = lsi.tag_track_matrix(TRACKS[:3], sets=["genre", "mood"])
    model = lsi.fit_lsi(matrix, k=1)
    sims = lsi.relatedness(model.track_vectors)
    assert sims[0, 1] == pytest.approx(1.0, abs=1e-6)  # one topic: the rock/angry one
    assert model.singular_values[0] == pytest.approx(np.linalg.svd(matrix, compute_uv=False)[0], rel=1e-5)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        lsi.fit_lsi(np.zeros((0, 3)), k=2)
    with pytest.raises(ValueError, match="k must be"):
        lsi.fit_lsi(np.ones((2, 2)), k=0)
