"""The vocabulary of a related-tags index: tags of several kinds, looked up
by spelling (:func:`tagcore.spelling.spelling_key`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tagcore.spelling import closest_spellings, spelling_key

#: The kinds of AllMusic tags the shipped index holds.
KINDS = ("genre", "style", "mood", "theme")


@dataclass(frozen=True)
class Tag:
    """A vocabulary tag: its display ``name`` and ``kind`` (genre, style,
    mood or theme); ``count`` the documents it was seen in."""

    name: str
    kind: str
    count: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


class UnknownTag(LookupError):
    """A name the vocabulary does not hold; ``suggestions`` are the closest
    spellings it does hold."""

    def __init__(self, name: str, suggestions: Sequence[str]):
        self.name = name
        self.suggestions = list(suggestions)
        hint = f"; closest: {', '.join(self.suggestions)}" if self.suggestions else ""
        super().__init__(f"{name!r} is not in the vocabulary{hint}")


@dataclass
class Vocabulary:
    """Tags of several kinds; a name may exist in two kinds ("Holiday" is a
    genre and a theme). Looked up by :func:`spelling_key`."""

    tags: list[Tag]
    _by_key: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_key = defaultdict(list)
        for i, tag in enumerate(self.tags):
            self._by_key[spelling_key(tag.name)].append(i)

    def __len__(self) -> int:
        return len(self.tags)

    def find(self, name: str, *, kind: str | None = None) -> list[int]:
        """Indices of the tags spelled like ``name`` (any case, accents,
        spaces, punctuation), of ``kind`` when given."""
        return [i for i in self._by_key.get(spelling_key(name), []) if kind is None or self.tags[i].kind == kind]

    def require(self, name: str, *, kind: str | None = None) -> list[int]:
        """:meth:`find`, raising :class:`UnknownTag` (with the closest
        spellings) when nothing matches."""
        found = self.find(name, kind=kind)
        if not found:
            pool = [t.name for t in self.tags if kind is None or t.kind == kind]
            raise UnknownTag(name, closest_spellings(name, pool))
        return found

    def of_kind(self, kind: str) -> list[int]:
        """Indices of the tags of ``kind``, in vocabulary order (computed
        once per kind)."""
        cache = self.__dict__.setdefault("_of_kind", {})
        if kind not in cache:
            cache[kind] = [i for i, t in enumerate(self.tags) if t.kind == kind]
        return list(cache[kind])
