"""Related tags and clean tag vocabularies: pure functions, with file
I/O only in :mod:`tagcore.related.bundle`.

Two kinds of evidence relate tags (the triplet paper, section III-B; the disambig paper,
section 2.4):

- *expert co-occurrence*: latent semantic indexing (:mod:`tagcore.lsi`) of a
  binary tag x document matrix, documents being AllMusic tracks (tags of
  four kinds: genre, style, mood, theme) or Last.fm artists (free tags);
  each tag becomes a row of U_k S_k and two tags are related by the cosine
  of their rows;
- *audio*: a square tag similarity matrix computed from a classifier's tag
  embeddings (f_w, f_c, f_m of the disambig paper), read from a CSV by the caller.

One module per job; every public name is also importable from here
(``from tagcore import related``; ``related.propose(...)``):

- :mod:`tagcore.spelling`: names matched by :func:`spelling_key` (case,
  accents, spaces and punctuation folded: "Hip-Hop", "hip hop" and "HipHop"
  share ``hiphop``);
- :mod:`~tagcore.related.vocabulary`: :class:`Tag`, :class:`Vocabulary`
  (tags of the :data:`KINDS`), :class:`UnknownTag`;
- :mod:`~tagcore.related.vectors`: LSI tag vectors from co-occurrence
  (building an index);
- :mod:`~tagcore.related.index`: a :class:`Source` of relatedness,
  :func:`combined_scores` (the weighted mean of the cosines of the sources
  that know both tags) and the :class:`RelatedIndex` (vocabulary, sources,
  aliases);
- :mod:`~tagcore.related.aliases`: common names the vocabulary spells
  otherwise (:data:`ALLMUSIC_ALIASES`, :func:`tree_aliases`);
- :mod:`~tagcore.related.proposals`: :func:`propose` scores every
  candidate of a kind against the centroid of an item's tags in each
  source; :func:`precision_recall_at_k` judges a ranking;
- :mod:`~tagcore.related.duplicates`: :func:`find_duplicates` groups the
  names of a library by spelling key and, where an index knows both names,
  by near-identical spelling backed by a high similarity;
- :mod:`~tagcore.related.bundle`: :func:`save_index`, :func:`load_index`.
"""

from __future__ import annotations

from tagcore.related.aliases import ALLMUSIC_ALIASES, alias_targets, merge_aliases, tree_aliases
from tagcore.related.bundle import (
    RELATED_FORMAT,
    VECTORS_FILE,
    RelatedBundleError,
    default_related_bundle,
    load_index,
    save_index,
)
from tagcore.related.duplicates import DuplicateGroup, find_duplicates
from tagcore.related.index import RelatedIndex, Source, combined_scores
from tagcore.related.proposals import PRIOR_SCALES, popularity_prior, precision_recall_at_k, propose
from tagcore.related.vectors import cooccurrence_vectors, lsi_tag_vectors
from tagcore.related.vocabulary import KINDS, Tag, UnknownTag, Vocabulary
from tagcore.spelling import closest_spellings, fold, spelling_key

__all__ = [
    "ALLMUSIC_ALIASES",
    "KINDS",
    "PRIOR_SCALES",
    "RELATED_FORMAT",
    "VECTORS_FILE",
    "DuplicateGroup",
    "RelatedBundleError",
    "RelatedIndex",
    "Source",
    "Tag",
    "UnknownTag",
    "Vocabulary",
    "alias_targets",
    "closest_spellings",
    "combined_scores",
    "cooccurrence_vectors",
    "default_related_bundle",
    "find_duplicates",
    "fold",
    "load_index",
    "lsi_tag_vectors",
    "merge_aliases",
    "popularity_prior",
    "precision_recall_at_k",
    "propose",
    "save_index",
    "spelling_key",
    "tree_aliases",
]
