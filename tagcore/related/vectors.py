"""Tag vectors from co-occurrence: latent semantic indexing
(:mod:`tagcore.lsi`, the triplet paper, section III-B) of a binary tag x document
matrix, each tag a row of U_k S_k. Used when an index is built (the
trainer), not when it is queried."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tagcore import lsi
from tagcore.related.vocabulary import Tag
from tagcore.spelling import spelling_key


def lsi_tag_vectors(
    documents: Sequence[Mapping[str, Sequence[str]]], *, sets: Sequence[str], k: int, min_count: int = 1
) -> tuple[list[Tag], np.ndarray]:
    """LSI tag vectors (the triplet paper, III-B) over ``documents`` (each a mapping
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
