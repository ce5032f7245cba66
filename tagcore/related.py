"""Related tags and clean tag vocabularies: pure functions, with file
I/O only in :func:`save_index` and :func:`load_index` (the bundle).

Two kinds of evidence relate tags (seed 001, section III-B; seed 002,
section 2.4):

- *expert co-occurrence*: latent semantic indexing (:mod:`tagcore.lsi`) of a
  binary tag x document matrix, documents being AllMusic tracks (tags of
  four kinds: genre, style, mood, theme) or Last.fm artists (free tags);
  each tag becomes a row of U_k S_k and two tags are related by the cosine
  of their rows;
- *audio*: a square tag similarity matrix computed from a classifier's tag
  embeddings (f_w, f_c, f_m of seed 002), read from a CSV by the caller.

A :class:`RelatedIndex` holds one vector table per source (tag name ->
vector) and the vocabulary of the kinds; :func:`combined_scores` averages
the cosines of the sources that know both tags, weighted. Proposals for an
item (:func:`propose`) score every candidate of a kind against the centroid
of the item's tags in each source.

Names are matched through :func:`spelling_key` (case, accents, spaces and
punctuation folded: "Hip-Hop", "hip hop" and "HipHop" share ``hiphop``);
:func:`find_duplicates` groups the names of a library by that key and,
where an index knows both names, by near-identical spelling backed by a
high similarity.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from tagcore import lsi

KINDS = ("genre", "style", "mood", "theme")


# --- Spelling ----------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def fold(name: str) -> str:
    """``name`` lower-cased, accents removed (NFKD, combining marks
    dropped), ``& + /`` kept, other punctuation and ``_ -`` made spaces,
    runs of spaces collapsed: "Hip-Hop" -> "hip hop", "Musique Concrète" ->
    "musique concrete", "R&B" -> "r&b"."""
    text = unicodedata.normalize("NFKD", str(name)).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w&+/]+|_", " ", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=65536)
def spelling_key(name: str) -> str:
    """:func:`fold` without spaces: the key two spellings of one tag share
    ("Bossa Nova", "Bossanova" -> ``bossanova``; "Hip-Hop", "hip hop",
    "hiphop" -> ``hiphop``). Empty for a name of punctuation only."""
    return fold(name).replace(" ", "")


def closest_spellings(name: str, candidates: Iterable[str], *, n: int = 5, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``candidates`` whose folded spelling is closest to
    ``name``'s (difflib ratio >= ``cutoff``), best first; ties keep the
    candidates' order."""
    by_fold: dict[str, str] = {}
    for candidate in candidates:
        by_fold.setdefault(fold(candidate), candidate)
    matches = difflib.get_close_matches(fold(name), list(by_fold), n=n, cutoff=cutoff)
    return [by_fold[m] for m in matches]


# --- Vocabulary --------------------------------------------------------------


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


# --- Tag vectors ---------------------------------------------------------------


def lsi_tag_vectors(
    documents: Sequence[Mapping[str, Sequence[str]]], *, sets: Sequence[str], k: int, min_count: int = 1
) -> tuple[list[Tag], np.ndarray]:
    """LSI tag vectors (seed 001, III-B) over ``documents`` (each a mapping
    kind -> tag names; a kind of ``sets``): the rows of U_k S_k of the binary
    tag x document matrix, shape (n_tags, k) float32, tags seen in fewer than
    ``min_count`` documents left out. Returns the tags (kind from the set
    name, count of documents) and their vectors, in the same order."""
    counts: Counter = Counter()
    for doc in documents:
        for name in sets:
            counts.update({lsi.tag_key(name, t) for t in set(doc.get(name, ()))})
    vocabulary = sorted(key for key, c in counts.items() if c >= min_count)
    if not vocabulary:
        raise ValueError("no tag reaches min_count; nothing to index")
    matrix, vocabulary = lsi.tag_track_matrix(documents, sets=sets, vocabulary=vocabulary)
    model = lsi.fit_lsi(matrix, k=k)
    tags = [Tag(name=key.split(":", 1)[1], kind=key.split(":", 1)[0], count=int(counts[key])) for key in vocabulary]
    return tags, model.tag_vectors


def cooccurrence_vectors(
    documents: Sequence[Iterable[str]], *, k: int, min_count: int = 1
) -> tuple[list[str], list[int], np.ndarray]:
    """LSI vectors of free tags (one kind) over ``documents`` (each an
    iterable of tag names, e.g. the tags users gave one artist): names,
    their document counts and U_k S_k rows (n_tags, k). Spellings are merged
    by :func:`spelling_key` first (the most frequent spelling names the
    tag), so "hip-hop" and "Hip Hop" count as one tag."""
    spelled: dict[str, Counter] = defaultdict(Counter)
    docs = []
    for doc in documents:
        keys = set()
        for name in doc:
            key = spelling_key(name)
            if key:
                spelled[key][name] += 1
                keys.add(key)
        docs.append({"tag": sorted(keys)})
    tags, vectors = lsi_tag_vectors(docs, sets=["tag"], k=k, min_count=min_count)
    names = [spelled[t.name].most_common(1)[0][0] for t in tags]
    return names, [t.count for t in tags], vectors


# --- Combining sources -----------------------------------------------------------


@dataclass
class Source:
    """One source of relatedness: ``vectors`` (n, d) for ``names`` (any
    spelling: matched by :func:`spelling_key`), or a precomputed square
    ``similarity`` (n, n) between ``names`` (an audio tag similarity).
    ``weight`` scales its vote in :func:`combined_scores`; a ``fallback``
    source votes only where no other source can score. ``kinds`` (one per
    name, optional) lets a name that exists in two kinds ("Playful" mood
    and theme) keep one vector per kind: candidates given with their kind
    are looked up by (kind, name) first."""

    name: str
    names: list[str]
    weight: float = 1.0
    vectors: np.ndarray | None = None
    similarity: np.ndarray | None = None
    fallback: bool = False
    kinds: list[str] | None = None

    def __post_init__(self):
        if (self.vectors is None) == (self.similarity is None):
            raise ValueError(f"source {self.name}: give vectors or a similarity matrix, not both or neither")
        rows = (self.vectors if self.vectors is not None else self.similarity).shape[0]
        if rows != len(self.names):
            raise ValueError(f"source {self.name}: {rows} rows for {len(self.names)} names")
        if self.similarity is not None and self.similarity.shape != (rows, rows):
            raise ValueError(f"source {self.name}: similarity must be square, got {self.similarity.shape}")
        self.index: dict[str, int] = {}
        for i, n in enumerate(self.names):
            self.index.setdefault(spelling_key(n), i)
        if self.kinds is not None and len(self.kinds) != len(self.names):
            raise ValueError(f"source {self.name}: {len(self.kinds)} kinds for {len(self.names)} names")
        self.kind_index = {(k, spelling_key(n)): i for i, (n, k) in enumerate(zip(self.names, self.kinds or ()))}
        if self.vectors is not None:
            self.unit = lsi.l2_normalise(self.vectors).astype(np.float32)

    def rows(self, names: Sequence[str], kinds: Sequence[str] | None = None) -> list[int | None]:
        """Row of each name (None when unknown); with ``kinds``, the row of
        that kind where this source has kinds."""
        if kinds is None or not self.kind_index:
            return [self.index.get(spelling_key(n)) for n in names]
        return [self.kind_index.get((k, spelling_key(n)), self.index.get(spelling_key(n))) for n, k in zip(names, kinds)]

    def scores(self, query: Sequence[str | Sequence[str]], candidates: Sequence[str],
               kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of each candidate with the query, shape (n_candidates,),
        and a mask of the candidates this source can score (known candidate,
        at least one known query tag).

        ``query`` holds tag names or groups of names (one query tag with its
        aliases, :meth:`RelatedIndex.expand_groups`): each group's centroid
        of unit vectors is normalised, and the query is the normalised mean
        of the group centroids, so every group weighs the same however many
        names it has. For a similarity matrix, the mean of each group's rows,
        then the mean over groups."""
        groups = [[r for r in self.rows([g] if isinstance(g, str) else list(g)) if r is not None] for g in query]
        groups = [g for g in groups if g]
        c = self.rows(candidates, kinds)
        known = np.array([r is not None for r in c], dtype=bool)
        out = np.zeros(len(candidates), dtype=np.float64)
        if not groups or not known.any():
            return out, np.zeros(len(candidates), dtype=bool)
        cols = np.array([r for r in c if r is not None])
        if self.vectors is not None:
            centroid = np.mean([_unit(self.unit[g].mean(axis=0)) for g in groups], axis=0)
            out[known] = self.unit[cols] @ _unit(centroid)
        else:
            out[known] = np.nanmean([np.nanmean(self.similarity[np.ix_(g, cols)], axis=0) for g in groups], axis=0)
        return out, known


def _names(targets: str | Sequence[str] | None) -> list[str]:
    """An alias table's value (one name, names, or None) as a list."""
    if not targets:
        return []
    return [targets] if isinstance(targets, str) else list(targets)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def combined_scores(sources: Sequence[Source], query: Sequence[str | Sequence[str]], candidates: Sequence[str],
                    kinds: Sequence[str] | None = None) -> np.ndarray:
    """Weighted mean, over the sources that can score it, of each
    candidate's cosine with ``query``; fallback sources (weight 1) only
    where no other source can; NaN where none can. Shape (n_candidates,)."""
    total = np.zeros(len(candidates))
    weight = np.zeros(len(candidates))
    for source in sorted(sources, key=lambda s: s.fallback):
        s, known = source.scores(query, candidates, kinds)
        if source.fallback:
            known = known & (weight == 0)
        w = 1.0 if source.fallback else source.weight
        total[known] += w * s[known]
        weight[known] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


@dataclass
class RelatedIndex:
    """The vocabulary (kinds), the sources, and ``aliases`` (spelling key
    -> vocabulary name or names) for common names the vocabulary spells
    otherwise ("hip hop" -> "Rap", "metal" -> ["Pop/Rock", "Heavy Metal"]);
    what a related-tags bundle holds."""

    vocabulary: Vocabulary
    sources: list[Source]
    aliases: dict[str, str | list[str]] = field(default_factory=dict)

    def expand(self, query: Sequence[str]) -> list[str]:
        """``query`` plus the alias targets of each name the vocabulary
        does not hold (an alias maps to one name or a list of names; order
        kept, no repeats by spelling): :meth:`expand_groups`, flattened."""
        out, seen = [], set()
        for n in (n for group in self.expand_groups(query) for n in group):
            if n and spelling_key(n) not in seen:
                seen.add(spelling_key(n))
                out.append(n)
        return out

    def expand_groups(self, query: Sequence[str]) -> list[list[str]]:
        """One group per query name: the name, then its alias targets when
        the vocabulary does not hold it (see :meth:`Source.scores`)."""
        return [[name, *([] if self.vocabulary.find(name) else _names(self.aliases.get(spelling_key(name))))]
                for name in query]

    def nearest(self, name: str, *, kinds: Sequence[str] = KINDS, n: int = 10,
                exclude_same: bool = True) -> list[tuple[Tag, float]]:
        """The ``n`` vocabulary tags of ``kinds`` most related to ``name``
        (any source may know it), best first, with their scores. The tag
        itself (same spelling) is left out when ``exclude_same``. Raises
        :class:`UnknownTag` when no source and no vocabulary entry knows the
        name."""
        key = spelling_key(name)
        if not self.known(name):
            pool = [t.name for t in self.vocabulary.tags] + [n for s in self.sources for n in s.names]
            raise UnknownTag(name, closest_spellings(name, pool))
        indices = [i for i, t in enumerate(self.vocabulary.tags) if t.kind in kinds]
        if exclude_same:
            indices = [i for i in indices if spelling_key(self.vocabulary.tags[i].name) != key]
        names = [self.vocabulary.tags[i].name for i in indices]
        scores = combined_scores(self.sources, self.expand_groups([name]), names, [self.vocabulary.tags[i].kind for i in indices])
        order = [j for j in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable") if not np.isnan(scores[j])]
        return [(self.vocabulary.tags[indices[j]], float(scores[j])) for j in order[:n]]

    def known(self, name: str) -> bool:
        """Whether the vocabulary, an alias or a source knows ``name``."""
        key = spelling_key(name)
        return bool(self.vocabulary.find(name)) or key in self.aliases or any(key in s.index for s in self.sources)


PRIOR_SCALES = ("linear", "log")


def popularity_prior(vocabulary: Vocabulary, kind: str, *, scale: str = "linear") -> dict[str, float]:
    """name -> popularity of each ``kind`` tag in [0, 1], the most popular
    being 1: its document count over the largest count (``scale="linear"``)
    or ``log(1 + count) / log(1 + largest)`` (``"log"``, which keeps a
    tag on 30 tracks well above one on 2 without letting the head of the
    list drown everything else)."""
    if scale not in PRIOR_SCALES:
        raise ValueError(f"prior scale must be one of {PRIOR_SCALES}, got {scale!r}")
    tags = [vocabulary.tags[i] for i in vocabulary.of_kind(kind)]
    top = max((t.count for t in tags), default=0) or 1
    if scale == "log":
        return {t.name: float(np.log1p(t.count) / np.log1p(top)) for t in tags}
    return {t.name: t.count / top for t in tags}


def propose(
    index: RelatedIndex,
    query: Sequence[str],
    *,
    kind: str,
    count: int = 5,
    min_score: float = 0.0,
    exclude: Iterable[str] = (),
    prior: Mapping[str, float] | None = None,
    prior_weight: float = 0.0,
) -> list[tuple[str, float]]:
    """Up to ``count`` tags of ``kind`` related to the ``query`` tags (an
    item's genres, plus its styles when proposing moods), best first, as
    (name, score) with score >= ``min_score``. Unknown query tags are
    ignored; no known query tag gives an empty list. Names in ``exclude``
    (and the query itself) are never proposed. ``prior`` (name -> value in
    [0, 1], e.g. relative popularity) is mixed in as
    ``(1 - w) * score + w * prior`` with ``w = prior_weight``."""
    skip = {spelling_key(n) for n in (*query, *exclude)}
    indices = [i for i in index.vocabulary.of_kind(kind) if spelling_key(index.vocabulary.tags[i].name) not in skip]
    known_query = index.expand_groups([q for q in query if index.known(q)])
    if not indices or not known_query:
        return []
    names = [index.vocabulary.tags[i].name for i in indices]
    scores = combined_scores(index.sources, known_query, names, [kind] * len(names))
    if prior and prior_weight:
        p = np.array([prior.get(n, 0.0) for n in names])
        scores = (1 - prior_weight) * scores + prior_weight * p
    order = [j for j in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable") if not np.isnan(scores[j])]
    out = [(names[j], round(float(scores[j]), 4)) for j in order if scores[j] >= min_score]
    return out[:count]


# --- Duplicates ------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateGroup:
    """Spellings judged to name one tag, the ``canonical`` one to keep,
    and why (``"spelling"``: same :func:`spelling_key` or alias;
    ``"similar"``: near spelling with a high similarity)."""

    names: tuple[str, ...]
    canonical: str
    reason: str
    score: float | None = None


def find_duplicates(
    names: Mapping[str, int] | Sequence[str],
    *,
    normalise: Callable[[str], str] | None = None,
    canonical: Callable[[str], str | None] | None = None,
    similarity: Callable[[str, str], float | None] | None = None,
    min_similarity: float = 0.8,
    min_ratio: float = 0.8,
) -> list[DuplicateGroup]:
    """Groups of ``names`` (optionally with their item counts) that are
    likely one tag.

    Two names join when their :func:`spelling_key` of ``normalise(name)``
    agree (``normalise`` defaults to the identity; pass an alias rewrite such
    as lastgenre's "hiphop" -> "hip hop"), or when their keys are nearly the
    same (difflib ratio >= ``min_ratio``) *and* ``similarity`` (a
    relatedness in [-1, 1], None when unknown) is at least
    ``min_similarity``. Names differing only in case or punctuation always
    join.

    The canonical name of a group is ``canonical(name)`` of the first
    member (most frequent first, ties broken by the shorter, then the
    alphabetically first) for which it returns a name (e.g. the genre
    tree's spelling), else that first member. ``names`` lists the canonical
    name first if it is a member, then by decreasing count and case-folded
    name. Groups of one name are not returned. Order: groups by decreasing
    total count, then canonical name.
    """
    counts = dict(names) if isinstance(names, Mapping) else {n: 1 for n in names}
    norm = normalise or (lambda s: s)
    listed = sorted(counts)
    parent = {n: n for n in listed}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    reasons: dict[str, str] = {}
    scores: dict[str, float] = {}
    by_key: dict[str, list[str]] = defaultdict(list)
    for n in listed:
        by_key[spelling_key(norm(n)) or spelling_key(n)].append(n)
    for members in by_key.values():
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    if similarity is not None:
        keys = sorted(by_key)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                if root(by_key[a][0]) == root(by_key[b][0]):
                    continue
                if difflib.SequenceMatcher(None, a, b).ratio() < min_ratio:
                    continue
                s = similarity(by_key[a][0], by_key[b][0])
                if s is not None and s >= min_similarity:
                    parent[root(by_key[b][0])] = root(by_key[a][0])
                    reasons[root(by_key[a][0])] = "similar"
                    scores[root(by_key[a][0])] = max(scores.get(root(by_key[a][0]), -1.0), float(s))
    groups: dict[str, list[str]] = defaultdict(list)
    for n in listed:
        groups[root(n)].append(n)
    out = []
    for r, members in groups.items():
        if len(members) < 2:
            continue
        ranked = sorted(members, key=lambda m: (-counts[m], len(m), m))
        chosen = None
        if canonical is not None:
            for m in ranked:
                chosen = canonical(m)
                if chosen:
                    break
        chosen = chosen or ranked[0]
        shown = sorted(members, key=lambda m: (m != chosen, -counts[m], m.casefold(), m))
        out.append(DuplicateGroup(tuple(shown), chosen, reasons.get(r, "spelling"), scores.get(r)))
    out.sort(key=lambda g: (-sum(counts[m] for m in g.names), g.canonical))
    return out


# --- Quality check -------------------------------------------------------------


def precision_recall_at_k(proposed: Sequence[str], truth: Iterable[str], *, k: int) -> tuple[float, float]:
    """P@k and R@k of a ranked list against a set of true names (matched by
    :func:`spelling_key`): hits in the first k over k, and over the true
    count. An empty truth raises ValueError."""
    truth_keys = {spelling_key(t) for t in truth}
    if not truth_keys:
        raise ValueError("precision/recall need at least one true tag")
    hits = sum(1 for p in list(proposed)[:k] if spelling_key(p) in truth_keys)
    return hits / k, hits / len(truth_keys)


# --- Common names the AllMusic vocabulary spells otherwise ----------------------

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
            for t in _names(targets):
                if t not in listed:
                    listed.append(t)
    return out


# --- Bundle I/O (the only file access of this module) ----------------------------

RELATED_FORMAT = "tagcore-related-tags"
VECTORS_FILE = "weights.safetensors"


def save_index(directory, index: RelatedIndex, *, name: str, version: str, provenance: dict,
               metrics: dict | None = None, defaults: dict | None = None) -> None:
    """Write ``index`` as a related-tags bundle: ``config.json`` (format,
    vocabulary as [name, kind, count], sources' names and weights, aliases,
    provenance, metrics) and ``weights.safetensors`` (one float32 tensor per
    source: vectors (n, d) or a square similarity). Written to a temporary
    sibling folder that replaces ``directory`` once complete."""
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tensors, sources = {}, []
    for s in index.sources:
        kind = "vectors" if s.vectors is not None else "similarity"
        tensors[s.name] = np.ascontiguousarray((s.vectors if s.vectors is not None else s.similarity), dtype=np.float32)
        sources.append({"name": s.name, "weight": s.weight, "kind": kind, "fallback": s.fallback, "names": list(s.names),
                        "kinds": s.kinds})
    config = {
        "format": RELATED_FORMAT, "format_version": 1, "name": name, "version": str(version),
        "vocabulary": [[t.name, t.kind, t.count] for t in index.vocabulary.tags],
        "sources": sources, "aliases": index.aliases, "defaults": defaults or {},
        "provenance": provenance, "metrics": metrics or {},
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(tensors, str(staging / VECTORS_FILE))
        (staging / "config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        for f in staging.iterdir():
            f.chmod(0o644)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            os.replace(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class RelatedBundleError(ValueError):
    """A related-tags bundle cannot be read; the message names the file."""


def default_related_bundle():
    """The shipped related-tags bundle's folder."""
    from pathlib import Path

    return Path(__file__).resolve().parent / "bundles" / "related-tags"


def load_index(directory=None) -> tuple[RelatedIndex, dict]:
    """Read a related-tags bundle (default: the shipped one); returns the
    index and its config. Raises RelatedBundleError naming the file."""
    import json
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory) if directory is not None else default_related_bundle()
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RelatedBundleError(f"{config_path}: cannot read ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != RELATED_FORMAT:
        raise RelatedBundleError(f"{config_path}: not a {RELATED_FORMAT} bundle")
    try:
        tensors = load_file(str(directory / VECTORS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RelatedBundleError(f"{directory / VECTORS_FILE}: cannot read ({exc})") from None
    try:
        vocabulary = Vocabulary([Tag(str(n), str(k), int(c)) for n, k, c in config["vocabulary"]])
        sources = []
        for s in config["sources"]:
            array = tensors[s["name"]]
            if s["kind"] == "vectors":
                sources.append(Source(s["name"], list(s["names"]), float(s["weight"]), vectors=array,
                                      fallback=bool(s.get("fallback")), kinds=s.get("kinds")))
            else:
                sources.append(Source(s["name"], list(s["names"]), float(s["weight"]), similarity=array,
                                      fallback=bool(s.get("fallback")), kinds=s.get("kinds")))
        aliases = {str(k): (str(v) if isinstance(v, str) else [str(x) for x in v])
                   for k, v in (config.get("aliases") or {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise RelatedBundleError(f"{config_path}: malformed ({exc})") from None
    return RelatedIndex(vocabulary, sources, aliases), config
