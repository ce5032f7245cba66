"""Playlist-based tag propagation (the samplecnn paper: Lin, Chung and Chen, section III).

Pure functions, numpy only:

- :func:`build_index`: playlists of song keys -> a :class:`PlaylistIndex`
  (songs as integer ids, each playlist once per song, counts of what was
  dropped and why);
- :func:`walk_one`: the random walk of section III-B for one song, written
  as the prose means it (the printed pseudocode cannot run; see below);
- :func:`walk`: the same walk for many songs at once (vectorised, same
  distribution);
- :func:`selection_probability`: P(s'|s, p) of equation 2;
- :func:`pair_probability`: P(s'|s) of equation 4;
- :func:`propagated_targets`: what the supportive loss of equation 3 needs
  for a batch: the targets y_{s'} and the weight of each song's term.

How the printed pseudocode is fixed (docs/models/samplecnn.md says the same):

1. its ``else`` branch never leaves the loop: stopping (q >= r) ends the
   walk, and the song where it stands is s';
2. it copies the tags of ``s_i`` (the input song) instead of s': the
   targets are the tags of s';
3. its 1-based guard ``0 < i < |p|`` never lets the walk step from the last
   position, and a walk that runs off either end picks nothing: the walk
   stops at a playlist's first or last song when it cannot step further
   in its direction, and that song is s' (the mass of the tail beyond the
   end lands on the end song);
4. the playlist is drawn uniformly among those holding s; a song repeated
   in a playlist counts at its first position only (the pseudocode's
   ``break``), the repeats are dropped by :func:`build_index`.

Conventions: a song in no playlist (or only in playlists of one song) has
s' = s. ``r = 0`` never steps (s' = s); ``r = 1`` always steps to the end.
The supportive term of a song counts only when s' is another song
(``moved``): with r = 0, or a song in no playlist, the loss is plain binary
cross-entropy, exactly (see :func:`tagcore.families.samplecnn.loss`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

WEIGHTINGS = ("eq4", "none")


@dataclass(frozen=True)
class PlaylistIndex:
    """Playlists over songs ``0..n_songs-1`` in compressed form.

    Attributes
    ----------
    n_songs : int
    offsets : np.ndarray, shape (n_playlists + 1,), int64
        Playlist ``p`` is ``songs[offsets[p]:offsets[p + 1]]``, in order.
    songs : np.ndarray, int64
        The song ids of all playlists, concatenated.
    occurrence_offsets : np.ndarray, shape (n_songs + 1,), int64
        Song ``s`` sits in the playlists
        ``occurrence_playlist[occurrence_offsets[s]:occurrence_offsets[s + 1]]``
        at the matching ``occurrence_position``.
    occurrence_playlist, occurrence_position : np.ndarray, int64
    names : tuple of str
        A name for each playlist (for messages).
    dropped : dict
        What :func:`build_index` left out: ``unknown`` entries (songs not
        among the keys), ``duplicates`` (repeats of a song in one
        playlist), ``short`` playlists (fewer than two known songs).
    """

    n_songs: int
    offsets: np.ndarray
    songs: np.ndarray
    occurrence_offsets: np.ndarray
    occurrence_playlist: np.ndarray
    occurrence_position: np.ndarray
    names: tuple[str, ...] = ()
    dropped: dict = field(default_factory=dict)
    #: sorted ``playlist * n_songs + song`` of every entry, and its position
    lookup_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lookup_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_playlists(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(n_playlists,) songs per playlist."""
        return np.diff(self.offsets)

    def playlist(self, p: int) -> np.ndarray:
        """Song ids of playlist ``p`` in order."""
        return self.songs[self.offsets[p] : self.offsets[p + 1]]

    def occurrences(self, s: int) -> list[tuple[int, int]]:
        """(playlist, position) of every playlist holding song ``s``."""
        a, b = self.occurrence_offsets[s], self.occurrence_offsets[s + 1]
        return list(zip(self.occurrence_playlist[a:b].tolist(), self.occurrence_position[a:b].tolist()))

    @property
    def in_playlists(self) -> np.ndarray:
        """(n_songs,) bool: the song sits in at least one playlist."""
        return np.diff(self.occurrence_offsets) > 0


def build_index(playlists: Iterable[Sequence[Hashable]], *, keys: Sequence[Hashable],
                names: Sequence[str] | None = None) -> PlaylistIndex:
    """Index ``playlists`` (sequences of song keys, in playlist order) over
    the songs ``keys`` (song id = position in ``keys``).

    Entries whose key is not in ``keys`` are dropped (counted as
    ``unknown``), a song repeated in one playlist keeps its first position
    (``duplicates``), and playlists left with fewer than two songs are
    dropped (``short``): a walk in them could only return the song itself.
    ``names`` (default ``playlist 0``, ``playlist 1``...) are kept for the
    playlists that remain.
    """
    position_of = {key: i for i, key in enumerate(keys)}
    if len(position_of) != len(keys):
        raise ValueError("keys must be unique")
    all_names = list(names) if names is not None else None
    kept_songs: list[np.ndarray] = []
    kept_names: list[str] = []
    unknown = duplicates = short = 0
    for number, playlist in enumerate(playlists):
        seen: dict[int, None] = {}
        for key in playlist:
            song = position_of.get(key)
            if song is None:
                unknown += 1
            elif song in seen:
                duplicates += 1
            else:
                seen[song] = None
        if len(seen) < 2:
            short += 1
            continue
        kept_songs.append(np.fromiter(seen, dtype=np.int64, count=len(seen)))
        kept_names.append(all_names[number] if all_names is not None else f"playlist {number}")
    lengths = np.array([len(p) for p in kept_songs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    songs = np.concatenate(kept_songs) if kept_songs else np.zeros(0, np.int64)
    playlist_of = np.repeat(np.arange(len(kept_songs), dtype=np.int64), lengths)
    position = np.arange(len(songs), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    order = np.lexsort((playlist_of, songs))  # by song, then playlist
    lookup = np.argsort(playlist_of * len(keys) + songs, kind="stable")
    counts = np.bincount(songs, minlength=len(keys)) if len(songs) else np.zeros(len(keys), np.int64)
    occurrence_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return PlaylistIndex(
        n_songs=len(keys),
        offsets=offsets,
        songs=songs,
        occurrence_offsets=occurrence_offsets,
        occurrence_playlist=playlist_of[order],
        occurrence_position=position[order],
        names=tuple(kept_names),
        dropped={"unknown": unknown, "duplicates": duplicates, "short": short},
        lookup_keys=(playlist_of * len(keys) + songs)[lookup],
        lookup_positions=position[lookup],
    )


def _check_r(r: float) -> float:
    r = float(r)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"the search range r must be in [0, 1], not {r}")
    return r


def walk_one(index: PlaylistIndex, song: int, *, r: float, rng: np.random.Generator) -> int:
    """s' for ``song``: the walk of section III-B, fixed as the module says.

    Draw a playlist holding the song (uniformly), a direction (forward or
    backward, uniformly); then, while a neighbour exists in that direction,
    draw q ~ U[0, 1): step when q < r, else stop. Returns the song id where
    the walk stops (``song`` itself when it is in no playlist).
    """
    r = _check_r(r)
    occurrences = index.occurrences(song)
    if not occurrences:
        return song
    playlist, position = occurrences[rng.integers(len(occurrences))]
    songs = index.playlist(playlist)
    step = 1 if rng.random() < 0.5 else -1
    while 0 <= position + step < len(songs):
        if rng.random() < r:
            position += step
        else:
            break
    return int(songs[position])


def walk(index: PlaylistIndex, songs: np.ndarray, *, r: float, rng: np.random.Generator) -> np.ndarray:
    """s' for each of ``songs`` (int array), drawn as :func:`walk_one` draws
    it, vectorised: the number of steps before the first stop is geometric,
    P(k steps) = r^k (1 - r), cut at the playlist's end. Returns an int64
    array of the same shape."""
    r = _check_r(r)
    songs = np.asarray(songs, dtype=np.int64)
    out = songs.copy()
    starts = index.occurrence_offsets[songs]
    counts = index.occurrence_offsets[songs + 1] - starts
    has = counts > 0
    if not has.any():
        return out
    n = int(has.sum())
    pick = starts[has] + np.minimum((rng.random(n) * counts[has]).astype(np.int64), counts[has] - 1)
    playlist = index.occurrence_playlist[pick]
    position = index.occurrence_position[pick]
    length = index.offsets[playlist + 1] - index.offsets[playlist]
    forward = rng.random(n) < 0.5
    room = np.where(forward, length - 1 - position, position)
    u = rng.random(n)
    if r == 0.0:
        steps = np.zeros(n, np.int64)
    elif r == 1.0:
        steps = room
    else:
        # P(steps >= k) = r^k: steps = floor(log(1 - u) / log(r)), u in [0, 1).
        steps = np.floor(np.log1p(-u) / np.log(r)).astype(np.int64)
    steps = np.minimum(steps, room)
    position = position + np.where(forward, steps, -steps)
    out[has] = index.songs[index.offsets[playlist] + position]
    return out


def selection_probability(length: int, position: int, *, r: float) -> np.ndarray:
    """P(s'|s, p) of equation 2 for every song of a playlist of ``length``
    songs where s sits at ``position``: r^d / sum_p r^d, d = |i - position|
    (r^0 = 1, also for r = 0). Shape (length,), sums to 1."""
    r = _check_r(r)
    d = np.abs(np.arange(length) - position)
    weights = np.where(d == 0, 1.0, r ** d.astype(float))
    return weights / weights.sum()


def _normaliser(length: np.ndarray, position: np.ndarray, r: float) -> np.ndarray:
    """sum_{j in p} r^|j - position| for playlists of ``length`` songs."""
    ahead = length - 1 - position
    if r == 1.0:
        return length.astype(float)
    if r == 0.0:
        return np.ones(len(length))
    # 1 + sum_{d=1}^{a} r^d + sum_{d=1}^{b} r^d
    return 1.0 + r * (1 - r ** ahead) / (1 - r) + r * (1 - r ** position) / (1 - r)


def pair_probability(index: PlaylistIndex, songs: np.ndarray, neighbours: np.ndarray, *, r: float) -> np.ndarray:
    """P(s'|s) of equation 4 for each pair (songs[i], neighbours[i]): the
    mean over the playlists holding s of P(s'|s, p) (eq. 2; 0 for a
    playlist without s'). A song in no playlist has P(s|s) = 1. Shape as
    ``songs``, float64. Vectorised over pairs and their playlists."""
    r = _check_r(r)
    songs = np.asarray(songs, dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    out = np.zeros(len(songs))
    starts = index.occurrence_offsets[songs]
    counts = index.occurrence_offsets[songs + 1] - starts
    alone = counts == 0
    out[alone] = (neighbours[alone] == songs[alone]).astype(float)
    if alone.all():
        return out
    pair = np.repeat(np.arange(len(songs)), counts)  # one row per (pair, playlist holding s)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    occ = first + np.arange(len(pair))
    playlist = index.occurrence_playlist[occ]
    position = index.occurrence_position[occ]
    wanted = playlist * index.n_songs + neighbours[pair]
    at = np.minimum(np.searchsorted(index.lookup_keys, wanted), max(len(index.lookup_keys) - 1, 0))
    found = index.lookup_keys[at] == wanted
    d = np.abs(index.lookup_positions[at] - position)
    top = np.where(d == 0, 1.0, float(r) ** d.astype(float))
    length = index.offsets[playlist + 1] - index.offsets[playlist]
    value = np.where(found, top / _normaliser(length, position, r), 0.0)
    totals = np.zeros(len(songs))
    np.add.at(totals, pair, value)
    out[~alone] = totals[~alone] / counts[~alone]
    return out


def propagated_targets(index: PlaylistIndex, songs: np.ndarray, tags: np.ndarray, *, r: float,
                       rng: np.random.Generator, weighting: str = "eq4") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a batch of ``songs``: one walk each, the propagated targets and
    the weight of each song's supportive term.

    Parameters
    ----------
    tags : np.ndarray, shape (n_songs, n_tags)
        0/1 tags of every song (y_{s,t}).
    weighting : ``"eq4"`` or ``"none"``
        ``eq4``: the term is weighted by P(s'|s) (eq. 4, as the paper
        writes it; with the walk drawing s' with about that probability, a
        neighbour's expected weight then falls with the distance twice);
        ``none``: weight 1 (the walk's own sampling is the only decay).

    Returns
    -------
    neighbours : (batch,) int64, s'
    targets : (batch, n_tags) float32, y_{s'}
    weights : (batch,) float32; 0 where s' = s (the supportive term then
        adds nothing, so r = 0 and songs in no playlist train on plain BCE).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
    songs = np.asarray(songs, dtype=np.int64)
    neighbours = walk(index, songs, r=r, rng=rng)
    moved = neighbours != songs
    weights = moved.astype(np.float64)
    if weighting == "eq4" and moved.any():
        weights[moved] = pair_probability(index, songs[moved], neighbours[moved], r=r)
    return neighbours, np.asarray(tags[neighbours], dtype=np.float32), weights.astype(np.float32)


def walk_distribution(index: PlaylistIndex, song: int, *, r: float) -> dict[int, float]:
    """The exact distribution of :func:`walk_one`'s s' for ``song``:
    song id -> probability (for tests and for the documentation)."""
    r = _check_r(r)
    occurrences = index.occurrences(song)
    if not occurrences:
        return {song: 1.0}
    out: dict[int, float] = {}
    for playlist, position in occurrences:
        members = index.playlist(playlist)
        for step, room in ((1, len(members) - 1 - position), (-1, position)):
            share = 0.5 / len(occurrences)
            for k in range(room + 1):
                p = r ** k * (1 - r) if k < room else r ** room  # the end song takes the tail
                target = int(members[position + step * k])
                out[target] = out.get(target, 0.0) + share * p
    return out


# --- Evaluation (section IV-C) ------------------------------------------------


def average_precisions(y: np.ndarray, scores: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Average precision of ranking along ``axis`` by descending score, for
    every column (axis 0: one AP per tag, ranking songs: retrieval) or row
    (axis 1: one AP per song, ranking tags: annotation). Ties keep index
    order. NaN where a column/row has no positive."""
    y = np.asarray(y, bool)
    scores = np.asarray(scores, dtype=np.float64)
    if axis == 1:
        return average_precisions(y.T, scores.T, axis=0)
    order = np.argsort(-scores, axis=0, kind="stable")
    hits = np.take_along_axis(y, order, axis=0)
    ranks = np.arange(1, len(y) + 1)[:, None]
    precision = np.cumsum(hits, axis=0) / ranks
    positives = hits.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, (precision * hits).sum(axis=0) / positives, np.nan)


def roc_aucs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of each tag (column), ranking songs; ties count one half
    (Mann-Whitney U with average ranks). NaN for a tag whose songs are all
    positive or all negative."""
    y = np.asarray(y, bool)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        pos = int(y[:, j].sum())
        neg = len(y) - pos
        if pos == 0 or neg == 0:
            continue
        _, inverse, counts = np.unique(scores[:, j], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        average_rank = ends - (counts - 1) / 2.0
        ranks = average_rank[inverse]
        out[j] = (ranks[y[:, j]].sum() - pos * (pos + 1) / 2.0) / (pos * neg)
    return out


def evaluate(y: np.ndarray, scores: np.ndarray) -> dict:
    """Section IV-C: annotation MAP (mean over songs with a tag of the AP of
    their tags ranked by score), retrieval MAP and retrieval ROC-AUC (mean
    over tags of the AP / AUC of the songs ranked by that tag's score), and
    the per-tag retrieval figures (NaN where undefined)."""
    annotation = average_precisions(y, scores, axis=1)
    retrieval = average_precisions(y, scores, axis=0)
    auc = roc_aucs(y, scores)
    return {
        "annotation_map": float(np.nanmean(annotation)),
        "retrieval_map": float(np.nanmean(retrieval)),
        "retrieval_auc": float(np.nanmean(auc)),
        "per_tag_map": retrieval,
        "per_tag_auc": auc,
    }


def bucket_improvement(baseline: np.ndarray, proposed: np.ndarray, popularity: np.ndarray, *,
                       bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Figure 5: tags sorted by descending ``popularity`` (training songs
    per tag), cut into buckets of ``bucket`` tags; for each bucket the
    relative improvement of the mean per-tag figure,
    ``mean(proposed) / mean(baseline) - 1`` (NaN tags left out). Returns
    (first rank of each bucket, 1-based; improvement)."""
    order = np.argsort(-np.asarray(popularity), kind="stable")
    starts, gains = [], []
    for start in range(0, len(order), bucket):
        members = order[start : start + bucket]
        b, p = np.asarray(baseline)[members], np.asarray(proposed)[members]
        ok = ~(np.isnan(b) | np.isnan(p))
        starts.append(start + 1)
        gains.append(float(p[ok].mean() / b[ok].mean() - 1.0) if ok.any() and b[ok].mean() > 0 else np.nan)
    return np.array(starts), np.array(gains)
