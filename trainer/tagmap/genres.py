"""Genre names as lastgenre knows them, and what a genre name counts for
in evaluation: its AllMusic genre, its GTZAN genre, whether it is a
subgenre. lastgenre's files are read by :mod:`tagcore.lastgenre` (no
beets import)."""

from __future__ import annotations

from trainer.tagmap.tables import GTZAN_CLASS, OUTSIDE_TREE_TO_ALLMUSIC, TOP_TO_ALLMUSIC


def genre_tree_paths() -> dict[str, tuple[str, ...]]:
    """Each genre of lastgenre's genres-tree.yaml -> its path from the root
    (``"indie rock" -> ("rock", "alternative rock", "indie rock")``)."""
    from tagcore.lastgenre import tree_paths

    return tree_paths()


def lastgenre_names() -> frozenset[str]:
    """Every genre lastgenre can write: genres.txt and the tree's nodes."""
    from tagcore.lastgenre import lastgenre_names as names

    return names()


def normalize(label: str) -> str:
    """A label as a lower-case lastgenre name ("hiphop" -> "hip hop")."""
    from tagcore.lastgenre import normalize_label

    return normalize_label(label)


def allmusic_genre(label: str) -> str | None:
    """The AllMusic genre a beets genre name counts for: its top ancestor in
    lastgenre's tree, mapped by TOP_TO_ALLMUSIC; None when unknown."""
    name = normalize(label)
    if name in OUTSIDE_TREE_TO_ALLMUSIC:
        return OUTSIDE_TREE_TO_ALLMUSIC[name]
    path = genre_tree_paths().get(name)
    return TOP_TO_ALLMUSIC.get(path[0]) if path else None


def gtzan_class(label: str) -> str | None:
    """The GTZAN genre a genre name counts for in the GTZAN accuracy
    (:data:`~trainer.tagmap.tables.GTZAN_CLASS`), None when it names none."""
    return GTZAN_CLASS.get(normalize(label))


def is_subgenre(label: str) -> bool:
    """Whether a genre name sits below an AllMusic genre that another name
    names (lastgenre's tree: below its top level; metal and dance music by
    OUTSIDE_TREE_TO_ALLMUSIC)."""
    name = normalize(label)
    if name in OUTSIDE_TREE_TO_ALLMUSIC:
        return name != "new age music"
    path = genre_tree_paths().get(name)
    return bool(path) and len(path) > 1
