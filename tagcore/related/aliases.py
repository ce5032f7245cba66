"""Alias tables: common names (lastgenre's genres, the audio models' labels)
mapped to the names a vocabulary spells otherwise ("hip hop" -> "Rap").

An alias table maps a :func:`~tagcore.spelling.spelling_key` to one name or
a list of names (:func:`alias_targets` reads either as a list).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from tagcore.related.vocabulary import Vocabulary
from tagcore.spelling import spelling_key


def alias_targets(targets: str | Sequence[str] | None) -> list[str]:
    """An alias table's value (one name, names, or None) as a list."""
    if not targets:
        return []
    return [targets] if isinstance(targets, str) else list(targets)



#: Spelling key -> AllMusic name(s), for names a beets library commonly
#: holds (lastgenre's canonical genres, the labels of the plugin's audio
#: models) that AllMusic files under another name. "Metal" is AllMusic's
#: genre Pop/Rock *and* its style Heavy Metal: with the genre alone a metal
#: track would be read as any Pop/Rock track. Used only when the vocabulary
#: does not hold the name itself; :func:`tree_aliases` adds the children of
#: lastgenre's genre tree.
ALLMUSIC_ALIASES = {
    spelling_key(k): v
    for k, v in {
        "rock": "Pop/Rock", "pop": "Pop/Rock", "pop rock": "Pop/Rock", "metal": ["Pop/Rock", "Heavy Metal"],
        "punk": "Pop/Rock", "indie": ["Pop/Rock", "Indie Rock"], "alternative": ["Pop/Rock", "Alternative/Indie Rock"],
        "alternative rock": ["Pop/Rock", "Alternative/Indie Rock"], "progressive rock": ["Pop/Rock", "Prog-Rock"],
        "dance music": ["Electronic", "Club/Dance"], "new age music": "New Age",
        "hip hop": "Rap", "hip-hop": "Rap", "rap music": "Rap",
        "rnb": "R&B", "rhythm and blues": "R&B", "soul": "R&B", "funk": "R&B",
        "electronica": "Electronic", "dance": ["Electronic", "Club/Dance"], "edm": "Electronic",
        "world": "International", "world music": "International",
        "spoken word": "Comedy/Spoken", "comedy": "Comedy/Spoken",
        "children's": "Childrens", "children's music": "Childrens", "kids": "Childrens",
        "soundtrack": "Stage & Screen", "film score": "Stage & Screen", "musical": "Stage & Screen",
        "gospel": "Religious", "christian": "Religious", "christmas": "Holiday",
        "avantgarde": "Avant-Garde", "experimental": "Avant-Garde", "easy": "Easy Listening",
    }.items()
}


def tree_aliases(paths: Mapping[str, Sequence[str]], vocabulary: Vocabulary) -> dict[str, list[str]]:
    """Aliases from a genre tree: for each node of the tree (``paths``:
    any key -> the path from the root to a genre, e.g. lastgenre's
    ``("rock", "hard rock")``) that ``vocabulary`` does not hold, the
    vocabulary's spelling of its direct children that it does hold
    ("rock" -> Art Rock, Hard Rock, Heavy Metal, ...), in tree order. Nodes
    with no such child are left out. Keys are :func:`spelling_key`."""
    children: dict[str, list[str]] = defaultdict(list)
    for path in paths.values():
        if len(path) >= 2 and path[-1] not in children[spelling_key(path[-2])]:
            children[spelling_key(path[-2])].append(path[-1])
    out: dict[str, list[str]] = {}
    for node, kids in children.items():
        if vocabulary.find(node):
            continue
        held = []
        for kid in kids:
            found = vocabulary.find(kid)
            if found and vocabulary.tags[found[0]].name not in held:
                held.append(vocabulary.tags[found[0]].name)
        if held:
            out[node] = held
    return out


def merge_aliases(*tables: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """One alias table from several (key -> name or names): each key's
    targets in table order, without repeats."""
    out: dict[str, list[str]] = {}
    for table in tables:
        for key, targets in table.items():
            listed = out.setdefault(key, [])
            for t in alias_targets(targets):
                if t not in listed:
                    listed.append(t)
    return out
