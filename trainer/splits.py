"""Cross-validation folds and hold-out splits of the trainers, on scikit-learn.

Every trainer takes its folds and splits from here, so "artist-disjoint"
and "stratified" mean one thing everywhere:

- **groups** (an artist, an album...): all items of a group fall on one
  side of every fold and split. ``groups=None``: each item is its own group.
- **stratification** (``y``): each fold or held-out part gets about its
  share of every class. ``y`` is 1-d class labels (any hashable values), or
  a 2-d (n_items, n_labels) 0/1 multi-label matrix, stratified on one key
  per item: its *rarest* true label (fewest items in the whole ``y``; ties:
  the lower label index), so that rare labels are spread over the folds
  first; an item without a true label has the key -1. ``y=None``: no
  stratification (folds of about equal size).
- **seeds**: an int, or a sequence of ints (e.g. ``(seed, fold)``) that
  numpy's ``SeedSequence`` mixes into one; the same seed gives the same
  folds.

The folds come from ``StratifiedGroupKFold`` (groups given), else
``StratifiedKFold`` / ``KFold``, all shuffled; hold-outs (:func:`group_split`)
from one stratified group fold (``y`` given), ``ShuffleSplit`` (items alone)
or a draw of whole groups up to a share of the items.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedGroupKFold, StratifiedKFold


def random_state(seed: int | Sequence[int]) -> int:
    """A 32-bit ``random_state`` for scikit-learn from an int (returned as
    it is, when it fits) or a sequence of ints (mixed by ``SeedSequence``)."""
    if np.ndim(seed) == 0 and 0 <= int(seed) < 2**32:
        return int(seed)
    return int(np.random.SeedSequence(np.atleast_1d(seed).tolist()).generate_state(1)[0])


def stratification_key(y) -> np.ndarray:
    """One class per item, (n_items,) int: for 1-d ``y`` the index of the
    item's class among the sorted distinct values; for a 2-d 0/1 matrix the
    item's rarest true label (see the module docstring), -1 when it has none."""
    y = np.asarray(y)
    if y.ndim == 1:
        return np.unique(y, return_inverse=True)[1].astype(int)
    if y.ndim != 2:
        raise ValueError(f"y must be (n_items,) classes or (n_items, n_labels) 0/1, got shape {y.shape}")
    y = y.astype(bool)
    counts = y.sum(axis=0)
    # Rarest true label: the smallest count among the item's labels (argmin takes the lower index on ties).
    masked = np.where(y, counts[None, :], np.iinfo(np.int64).max)
    return np.where(y.any(axis=1), masked.argmin(axis=1), -1)


def _group_codes(groups, n: int) -> np.ndarray:
    """Group of each item as ints 0..g-1; ``None``: each item alone."""
    if groups is None:
        return np.arange(n)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} items")
    return np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1].ravel()


def group_folds(*, y=None, groups: Sequence | None = None, k: int, seed: int | Sequence[int] = 0,
                n: int | None = None) -> list[np.ndarray]:
    """Test indices of ``k`` shuffled folds (sorted int arrays that together
    hold every item once), keeping groups whole and stratifying on ``y``
    (see the module docstring); when no class has ``k`` items (tiny data)
    the folds are not stratified. ``n``: the number of items when neither
    ``y`` nor ``groups`` gives it. Raises ValueError when there are fewer
    groups (or items) than folds, or fewer than two folds."""
    n = len(y) if y is not None else len(groups) if groups is not None else n
    if n is None:
        raise ValueError("group_folds needs y, groups or n")
    codes = _group_codes(groups, n)
    n_groups = len(np.unique(codes))
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if n_groups < k:
        raise ValueError(f"{n_groups} {'groups' if groups is not None else 'items'} cannot fill {k} folds")
    state = random_state(seed)
    alone = n_groups == n  # every item its own group: plain (stratified) k-fold
    key = np.zeros(n, dtype=int) if y is None else stratification_key(y)
    if (np.unique(key, return_counts=True)[1] < k).all():
        key = np.zeros(n, dtype=int)  # no class fills the folds (tiny data): not stratified
    with warnings.catch_warnings():
        # "The least populated class has only m members": expected for rare labels.
        warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
        if alone and y is None:
            splits = KFold(k, shuffle=True, random_state=state).split(np.zeros(n))
        elif alone:
            splits = StratifiedKFold(k, shuffle=True, random_state=state).split(np.zeros(n), key)
        else:
            splits = StratifiedGroupKFold(k, shuffle=True, random_state=state).split(np.zeros(n), key, codes)
        folds = [np.sort(test) for _, test in splits]
    if any(len(fold) == 0 for fold in folds):
        raise ValueError(f"{n_groups} groups left a fold of {k} empty: pass fewer folds")
    return folds


def fold_numbers(*, folds: Sequence[np.ndarray], n: int) -> np.ndarray:
    """The fold (0..k-1) of each of ``n`` items, (n,) int64, from the test
    indices of :func:`group_folds`; -1 for an item in no fold."""
    out = np.full(n, -1, dtype=np.int64)
    for number, test in enumerate(folds):
        out[np.asarray(test, dtype=int)] = number
    return out


def _hold_out(rest: np.ndarray, share: float, *, y, codes: np.ndarray, state: int) -> np.ndarray:
    """About ``share`` of the items of ``rest``, by whole groups, sorted
    (the rules are in :func:`group_split`)."""
    if share <= 0:
        return rest[:0]
    n_groups = len(np.unique(codes[rest]))
    if n_groups < 2:
        raise ValueError("one group only: nothing to hold out")
    target = share * len(rest)
    if y is not None:
        k = max(2, min(round(1 / share), n_groups))  # few groups: one of as many folds as there are
        folds = group_folds(y=np.asarray(y)[rest], groups=codes[rest], k=k, seed=state)
        best = min(range(k), key=lambda f: (abs(len(folds[f]) - target), f))
        return rest[folds[best]]
    if n_groups == len(rest):  # items alone
        count = min(max(1, round(target)), len(rest) - 1)
        return np.sort(rest[next(ShuffleSplit(n_splits=1, test_size=count, random_state=state).split(rest))[1]])
    names, inverse = np.unique(codes[rest], return_inverse=True)
    sizes = np.bincount(inverse)
    chosen, size = [], 0
    for g in np.random.default_rng(state).permutation(len(names)):
        if size >= target - 1e-9:
            break
        if size + sizes[g] <= 2 * target:
            chosen.append(g)
            size += sizes[g]
    return np.sort(rest[np.isin(inverse, chosen)])


def group_split(*, groups: Sequence | None = None, shares: Sequence[float], seed: int | Sequence[int] = 0,
                y=None, n: int | None = None) -> tuple[np.ndarray, ...]:
    """A hold-out split of the items into (train, test) or (train,
    validation, test), sorted int index arrays, keeping groups whole.

    ``shares``: two or three non-negative fractions summing to 1, in that
    order, shares of the items. The test part is drawn first, then the
    validation part from the rest, each so:

    - with ``y`` (stratified): of the folds of :func:`group_folds` with
      ``round(1 / share)`` folds (at most one per group), the one whose size
      is closest to the share (ties: the first);
    - with groups and no ``y``: groups in a random order, each taken unless
      it would bring the part past twice its share, until the share is
      reached (one huge group, e.g. artists linked by features, cannot
      become the whole part); not scikit-learn's ``GroupShuffleSplit``,
      whose share counts groups, not items;
    - items alone: ``ShuffleSplit`` of the share, rounded (at least one).

    ``n``: the number of items when neither ``y`` nor ``groups`` gives it.
    ValueError when there is only one group to hold out from."""
    shares = [float(s) for s in shares]
    if len(shares) not in (2, 3) or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"shares must be two or three fractions >= 0 summing to 1, got {shares}")
    n = len(y) if y is not None else len(groups) if groups is not None else n
    if n is None:
        raise ValueError("group_split needs y, groups or n")
    codes = _group_codes(groups, n)
    state = random_state(seed)
    everything = np.arange(n)
    test = _hold_out(everything, shares[-1], y=y, codes=codes, state=state)
    rest = np.setdiff1d(everything, test)
    if len(shares) == 2:
        return rest, test
    val_share = shares[1] / (shares[0] + shares[1]) if shares[0] + shares[1] > 0 else 0.0
    val = _hold_out(rest, val_share, y=y, codes=codes, state=random_state([state, 1]))
    return np.setdiff1d(rest, val), val, test
