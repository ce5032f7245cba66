"""Genres and styles: the two levels of beets' lastgenre tree.

Discogs and lastgenre's tree name music at two levels: a few broad genres
(Rock, Electronic, Jazz, R&B...) and many specific styles below them
(Indie Rock, House, Bebop, Soul...). A genre model with an open vocabulary
scores names of both levels side by side; this module splits such scores
so that ``genres`` gets broad genres and ``style`` the specific ones, each
style only under a genre that is written.

- A name's **broad genre** is the root of its path in lastgenre's
  ``genres-tree.yaml`` ("indie rock" -> "rock", "house" -> "electronic",
  "soul" -> "r&b"); a name outside the tree is its own broad genre
  ("metal", "dance music", "latin").
  Three names the tree lacks or files elsewhere are placed by
  :data:`PLACES`: metal under rock (the tree's "heavy metal" is there),
  dance music under electronic, indie pop under pop (the tree files it
  under alternative rock, so pop clips scored "Indie Pop" would become
  Rock), and new age music as a genre of its own (AllMusic's and Discogs'
  view; the tree puts it under easy listening).
- A name is a **style** when its path has two levels or more.
- A broad genre's score is the best score among its own name and its
  styles: a clip scored "Indie Rock" 0.8 and "Rock" 0.3 is Rock at 0.8,
  since a style implies its genre.

Names are compared after lastgenre's alias rewrite
(:func:`tagcore.lastgenre.normalize_label`) and returned lower-case; the
plugin title-cases them as it does every genre.

Example::

    >>> genres, styles = split_levels({"Indie Rock": 0.8, "Rock": 0.3, "Jazz": 0.2})
    >>> genres
    {'rock': 0.8, 'jazz': 0.2}
    >>> styles
    {'indie rock': 0.8}
"""

from __future__ import annotations

from typing import Mapping, Sequence

from tagcore import lastgenre as L


#: Paths for names the tree lacks ("metal", "dance music") or where the
#: product departs from it ("indie pop" under pop, "new age music" a genre
#: of its own).
PLACES: dict[str, tuple[str, ...]] = {
    "metal": ("rock", "metal"),
    "dance music": ("electronic", "dance music"),
    "new age music": ("new age music",),
    "indie pop": ("pop", "indie pop"),
}


def genre_path(name: str) -> tuple[str, ...]:
    """``name``'s path from its broad genre (lower-case names):
    :data:`PLACES`, else lastgenre's tree, else ``(name,)``."""
    key = L.normalize_label(name)
    if key in PLACES:
        return PLACES[key]
    return L.tree_path(name) or (key,)


def broad_genre(name: str) -> str:
    """The broad genre of genre ``name`` (lower-case): the root of its
    :func:`genre_path`."""
    return genre_path(name)[0]


def is_style(name: str) -> bool:
    """Whether ``name`` sits below another genre (:func:`genre_path`)."""
    return len(genre_path(name)) >= 2


def split_levels(scores: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Genre scores split into broad genres and styles (see the module
    docstring): ``(genres, styles)``, both keyed by lower-case names, in
    descending order of score. A broad genre scores the best of its own
    name and its styles."""
    genres: dict[str, float] = {}
    styles: dict[str, float] = {}
    for name, score in scores.items():
        score = float(score)
        root = broad_genre(name)
        genres[root] = max(genres.get(root, float("-inf")), score)
        if is_style(name):
            key = L.normalize_label(name)
            styles[key] = max(styles.get(key, float("-inf")), score)
    return _by_score(genres), _by_score(styles)


def choose_styles(styles: Mapping[str, float], genres: Sequence[str], *, threshold: float,
                  count: int) -> list[str]:
    """At most ``count`` styles scoring at least ``threshold``, best first,
    whose broad genre is among ``genres`` (names in any case)."""
    written = {L.normalize_label(g) for g in genres}
    chosen = [s for s, score in _by_score(styles).items()
              if score >= threshold and broad_genre(s) in written]
    return chosen[: max(count, 0)]


def _by_score(scores: Mapping[str, float]) -> dict[str, float]:
    return dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
