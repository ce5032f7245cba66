"""Genres and styles split on lastgenre's tree (tagcore.genre_levels)."""

from __future__ import annotations

import pytest

from tagcore import genre_levels as G
from tagcore import lastgenre

needs_tree = pytest.mark.skipif(not lastgenre.tree_paths(), reason="beets' lastgenre tree is not installed")


@needs_tree
@pytest.mark.parametrize("name, broad, style", [
    ("Indie Rock", "rock", True),
    ("rock", "rock", False),
    ("House", "electronic", True),
    ("Soul", "r&b", True),
    ("hiphop", "hip hop", False),  # lastgenre's alias first
    ("Bebop", "jazz", True),
    ("Metal", "rock", True),  # PLACES: outside the tree
    ("Dance Music", "electronic", True),
    ("New Age Music", "new age music", False),
    ("Indie Pop", "pop", True),  # PLACES: a genre of its own
    ("Nonexistent Genre", "nonexistent genre", False),
])
def test_broad_genre_and_style(name, broad, style):
    assert G.broad_genre(name) == broad
    assert G.is_style(name) is style


@needs_tree
def test_a_broad_genre_scores_the_best_of_its_styles():
    genres, styles = G.split_levels({"Indie Rock": 0.8, "Rock": 0.3, "Jazz": 0.2, "Bebop": 0.1})
    assert genres == {"rock": 0.8, "jazz": 0.2}
    assert list(genres) == ["rock", "jazz"]  # best first
    assert styles == {"indie rock": 0.8, "bebop": 0.1}


@needs_tree
def test_styles_only_under_a_written_genre():
    styles = {"indie rock": 0.9, "house": 0.8, "soul": 0.6, "punk rock": 0.55, "bebop": 0.2}
    assert G.choose_styles(styles, ["Rock", "R&B"], threshold=0.5, count=2) == ["indie rock", "soul"]
    assert G.choose_styles(styles, ["Rock"], threshold=0.5, count=3) == ["indie rock", "punk rock"]
    assert G.choose_styles(styles, ["Jazz"], threshold=0.5, count=2) == []  # bebop under the threshold
    assert G.choose_styles(styles, ["Rock", "Electronic"], threshold=0.5, count=0) == []


@needs_tree
def test_every_label_of_the_shipped_genre_map_has_a_place():
    """Each label of the default genre model is a broad genre or a style of
    one of the others' broad genres, so no label is lost by the split."""
    from tagcore.bundle import load_bundle

    labels = load_bundle("genre-musicnn").labels
    roots = {G.broad_genre(label) for label in labels}
    assert {"rock", "electronic", "jazz", "r&b", "hip hop", "classical"} <= roots
    for label in labels:
        assert G.broad_genre(label) in roots
