"""Tag relatedness by latent semantic indexing (the triplet paper, section III-B).

Tracks are documents and tags are terms. The tag x track matrix is binary
(w = 1 where a tag is attributed to a track, else 0; no TF-IDF weighting),
a truncated SVD keeps ``k`` topics, and two tracks are related by the cosine
of their l2-normalised LSI vectors. Several tag sets (genres, styles, moods,
themes) are stacked into one vocabulary; as section IV-B-1, only tracks with
at least one tag in every tag set used take part.

Pure numpy functions; nothing here reads files.

Example::

    >>> tracks = [{"genre": ["rock"], "mood": ["angry"]},
    ...           {"genre": ["rock"], "mood": ["angry", "tense"]},
    ...           {"genre": ["jazz"], "mood": ["calm"]}]
    >>> kept = tracks_with_every_set(tracks, sets=["genre", "mood"])
    >>> matrix, vocabulary = tag_track_matrix([tracks[i] for i in kept], sets=["genre", "mood"])
    >>> model = fit_lsi(matrix, k=2)
    >>> bool(relatedness(model.track_vectors)[0, 1] > 0.8)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

TagSets = Mapping[str, Sequence[str]]


def tag_key(tag_set: str, tag: str) -> str:
    """Vocabulary key of ``tag`` in ``tag_set``: ``"mood:angry"``. Tag sets
    keep their own namespaces, so a genre and a mood of one name differ."""
    return f"{tag_set}:{tag}"


def tracks_with_every_set(tracks: Sequence[TagSets], *, sets: Sequence[str]) -> list[int]:
    """Indices of the tracks holding at least one tag in every set of
    ``sets`` (section IV-B-1)."""
    return [i for i, track in enumerate(tracks) if all(track.get(name) for name in sets)]


def tag_track_matrix(
    tracks: Sequence[TagSets], *, sets: Sequence[str], vocabulary: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Binary tag x track matrix, shape (n_tags, n_tracks), float32.

    ``vocabulary`` (keys as :func:`tag_key`) fixes the rows; by default it is
    every tag of ``sets`` seen in ``tracks``, sorted. Tags outside a given
    vocabulary are ignored. Returns the matrix and the vocabulary.
    """
    if vocabulary is None:
        vocabulary = sorted({tag_key(name, tag) for track in tracks for name in sets for tag in track.get(name, ())})
    row = {key: i for i, key in enumerate(vocabulary)}
    matrix = np.zeros((len(vocabulary), len(tracks)), dtype=np.float32)
    for column, track in enumerate(tracks):
        for name in sets:
            for tag in track.get(name, ()):
                index = row.get(tag_key(name, tag))
                if index is not None:
                    matrix[index, column] = 1.0
    return matrix, list(vocabulary)


def l2_normalise(vectors: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """``vectors`` scaled to unit l2 norm along ``axis``; zero vectors stay
    zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@dataclass(frozen=True)
class LSIModel:
    """A truncated SVD of a tag x track matrix A ~ U_k S_k V_k^T.

    ``tag_vectors``: U_k S_k, shape (n_tags, k), the tags in topic space;
    ``track_vectors``: V_k S_k, shape (n_tracks, k), the tracks (documents);
    ``singular_values``: S_k, shape (k,). ``project`` folds a new track in.
    """

    tag_vectors: np.ndarray
    track_vectors: np.ndarray
    singular_values: np.ndarray
    term_basis: np.ndarray  # U_k, shape (n_tags, k)

    @property
    def k(self) -> int:
        return int(self.singular_values.shape[0])

    def project(self, columns: np.ndarray) -> np.ndarray:
        """LSI vectors of new tracks given as binary tag columns, shape
        (n_tags, n) -> (n, k): A^T U_k, the coordinates that ``track_vectors``
        use for the training tracks (V_k S_k = A^T U_k)."""
        return (np.asarray(columns, dtype=np.float32).T @ self.term_basis).astype(np.float32)


def fit_lsi(matrix: np.ndarray, *, k: int) -> LSIModel:
    """Truncated SVD of a binary tag x track ``matrix`` keeping ``k`` topics
    (clipped to the matrix rank bound ``min(shape)``). Deterministic: each
    singular vector's sign is fixed so that its largest entry is positive."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"LSI needs a non-empty 2-d tag x track matrix, got shape {matrix.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, *matrix.shape)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    u, s, vt = u[:, :k], s[:k], vt[:k]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    u, vt = u * signs, vt * signs[:, None]
    return LSIModel(
        tag_vectors=(u * s).astype(np.float32),
        track_vectors=(vt.T * s).astype(np.float32),
        singular_values=s.astype(np.float32),
        term_basis=u.astype(np.float32),
    )


def relatedness(vectors: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of l2-normalised LSI vectors: (n, k) x (m, k) ->
    (n, m); ``others`` defaults to ``vectors`` (a square matrix whose
    diagonal is 1 for non-zero vectors)."""
    a = l2_normalise(vectors)
    b = a if others is None else l2_normalise(others)
    return a @ b.T
