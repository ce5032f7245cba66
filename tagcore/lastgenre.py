"""beets' lastgenre data: its genre list, alias table and genre tree.

The files ship inside the beets package (``beetsplug/lastgenre/``:
``genres.txt``, ``aliases.yaml``, ``genres-tree.yaml``); they are found
with :func:`importlib.util.find_spec`, without importing beets or the
lastgenre plugin (whose ``__init__`` needs pylast). Without beets every
table is empty. One reader for the plugin and the trainer: genre names as
lastgenre writes them are the vocabulary the whole project maps onto.

Example
-------
>>> normalize_label("Hip_Hop")                 # doctest: +SKIP
'hip hop'
>>> tree_paths()["bebop"]                      # doctest: +SKIP
('jazz', 'bebop')
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path


@functools.cache
def data_dir() -> Path | None:
    """The folder of lastgenre's data files, or None without beets."""
    try:
        spec = importlib.util.find_spec("beetsplug.lastgenre")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "aliases.yaml").is_file():
            return Path(location)
    return None


def _read(name: str) -> str | None:
    base = data_dir()
    if base is None or not (base / name).is_file():
        return None
    return (base / name).read_text(encoding="utf-8")


@functools.cache
def aliases() -> tuple[tuple[re.Pattern[str], str], ...]:
    """The alias table (``aliases.yaml``) as (pattern, template) pairs in
    file order; patterns match case-insensitively and whole strings,
    templates may use back-references (``\\1``)."""
    import yaml

    text = _read("aliases.yaml")
    table = (yaml.safe_load(text) or {}) if text else {}
    return tuple(
        (re.compile(pattern, re.IGNORECASE), str(canonical).lower())
        for canonical, patterns in table.items()
        for pattern in patterns or ()
    )


@functools.cache
def known_genres() -> frozenset[str]:
    """Lower-case genre names of ``genres.txt``."""
    text = _read("genres.txt") or ""
    return frozenset(
        line for line in (raw.strip().lower() for raw in text.splitlines()) if line and not line.startswith("#")
    )


@functools.lru_cache(maxsize=4096)
def normalize_label(label: str) -> str:
    """A label as a lower-case genre name: underscores and runs of spaces
    become one space, then the first alias that matches the whole name
    rewrites it ("hiphop" -> "hip hop", "rnb" -> "r&b")."""
    name = " ".join(label.replace("_", " ").lower().split())
    for pattern, template in aliases():
        if match := pattern.fullmatch(name):
            try:
                return match.expand(template)
            except (re.error, IndexError):
                continue
    return name


@functools.cache
def tree_paths() -> dict[str, tuple[str, ...]]:
    """Each genre of ``genres-tree.yaml`` -> its path from the root, names
    as the file writes them (``"indie rock" -> ("rock", "alternative rock",
    "indie rock")``); a genre found twice keeps its first path."""
    import yaml

    text = _read("genres-tree.yaml")
    tree = (yaml.safe_load(text) or []) if text else []
    paths: dict[str, tuple[str, ...]] = {}

    def walk(node, above: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, children in node.items():
                paths.setdefault(str(key), (*above, str(key)))
                walk(children, (*above, str(key)))
        elif isinstance(node, list):
            for child in node:
                walk(child, above)
        elif node is not None:
            paths.setdefault(str(node), (*above, str(node)))

    walk(tree, ())
    return paths


@functools.cache
def tree_paths_by_key() -> dict[str, tuple[str, ...]]:
    """:func:`tree_paths` keyed by spelling key (:func:`tagcore.related.spelling_key`:
    "Hip-Hop", "hip hop" and "hiphop" are one key); first path wins."""
    from tagcore.related import spelling_key

    by_key: dict[str, tuple[str, ...]] = {}
    for name, path in tree_paths().items():
        by_key.setdefault(spelling_key(name), path)
    return by_key


def tree_path(name: str) -> tuple[str, ...] | None:
    """``name``'s path in the tree (after its alias rewrite), or None."""
    from tagcore.related import spelling_key

    paths = tree_paths_by_key()
    return paths.get(spelling_key(normalize_label(name))) or paths.get(spelling_key(name))


@functools.cache
def lastgenre_names() -> frozenset[str]:
    """Every genre lastgenre can write: ``genres.txt`` and the tree's nodes."""
    return known_genres() | frozenset(tree_paths())
