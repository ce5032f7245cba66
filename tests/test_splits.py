"""trainer.splits: folds and hold-outs keep groups whole, stratify, are
seeded, and refuse what they cannot do."""

import numpy as np
import pytest

from trainer import splits


def artists_and_labels(n_artists=30, per_artist=4, n_labels=3, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"artist{i}" for i in range(n_artists)], per_artist)
    classes = np.repeat(rng.integers(0, n_labels, size=n_artists), per_artist)  # one label per artist
    return groups, classes


def test_stratification_key_is_the_rarest_true_label():
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=bool)
    # counts: label 0: 4, label 1: 2, label 2: 2 (ties: the lower index)
    assert splits.stratification_key(y).tolist() == [1, 0, 2, -1, 1]
    assert splits.stratification_key(np.array(["rock", "jazz", "rock"])).tolist() == [1, 0, 1]


@pytest.mark.parametrize("multilabel", [False, True])
def test_group_folds_keep_groups_whole_and_stratify(multilabel):
    groups, classes = artists_and_labels()
    y = np.eye(3, dtype=bool)[classes] if multilabel else classes
    folds = splits.group_folds(y=y, groups=groups, k=5, seed=1)
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    for test in folds:
        train = np.setdiff1d(np.arange(len(groups)), test)
        assert not set(groups[test]) & set(groups[train])
        # every label sits in every fold: each class has several artists
        assert set(classes[test]) == set(classes)
    assert [f.tolist() for f in splits.group_folds(y=y, groups=groups, k=5, seed=1)] == [f.tolist() for f in folds]
    other = splits.group_folds(y=y, groups=groups, k=5, seed=2)
    assert [f.tolist() for f in other] != [f.tolist() for f in folds]


def test_group_folds_without_groups_or_labels():
    folds = splits.group_folds(n=10, k=3, seed=0)
    assert sorted(len(f) for f in folds) == [3, 3, 4]
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    y = np.array([0] * 6 + [1] * 3)
    stratified = splits.group_folds(y=y, k=3, seed=0)
    assert all(y[f].tolist().count(1) == 1 for f in stratified)
    groups, _ = artists_and_labels(n_artists=6, per_artist=2)
    by_group = splits.group_folds(groups=groups, k=3, seed=0)
    assert [len(f) for f in by_group] == [4, 4, 4]


def test_group_folds_of_tiny_data_are_not_stratified():
    # Every class has fewer items than folds: scikit-learn cannot stratify; plain folds instead.
    folds = splits.group_folds(y=[0, 0, 1, 1, 2, 2], groups=["a", "b", "c", "d", "e", "f"], k=4, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(6)) and all(len(f) for f in folds)


def test_group_folds_refuse_too_few_groups():
    with pytest.raises(ValueError, match="2 groups cannot fill 3 folds"):
        splits.group_folds(y=[0, 1, 0, 1], groups=["a", "a", "b", "b"], k=3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        splits.group_folds(n=5, k=1)


def test_fold_numbers():
    folds = [np.array([0, 3]), np.array([1]), np.array([2])]
    assert splits.fold_numbers(folds=folds, n=5).tolist() == [0, 1, 2, 0, -1]


def test_random_state_mixes_sequences():
    assert splits.random_state(7) == 7
    assert splits.random_state((7, 1)) == splits.random_state([7, 1]) != splits.random_state((7, 2))


def test_group_split_three_parts_by_group():
    groups, _ = artists_and_labels(n_artists=50, per_artist=2)
    train, val, test = splits.group_split(groups=groups, shares=(0.7, 0.1, 0.2), seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert not set(groups[train]) & set(groups[val]) and not set(groups[train]) & set(groups[test])
    assert not set(groups[val]) & set(groups[test])
    assert len(test) == 20 and len(val) == 10  # shares of the items (groups of 2 fit exactly)
    again = splits.group_split(groups=groups, shares=(0.7, 0.1, 0.2), seed=3)
    assert all(a.tolist() == b.tolist() for a, b in zip(again, (train, val, test)))


def test_group_split_of_items_and_zero_shares():
    train, test = splits.group_split(n=10, shares=(0.8, 0.2), seed=0)
    assert len(test) == 2 and len(train) == 8
    train, val, test = splits.group_split(n=10, shares=(0.8, 0.0, 0.2), seed=0)
    assert len(val) == 0 and len(train) == 8
    with pytest.raises(ValueError, match="summing to 1"):
        splits.group_split(n=10, shares=(0.5, 0.2))


def test_group_split_stratified_hold_out():
    groups, classes = artists_and_labels(n_artists=40)
    train, val = splits.group_split(y=classes, groups=groups, shares=(0.9, 0.1), seed=0)
    assert not set(groups[train]) & set(groups[val])
    assert set(classes[val]) == set(classes)  # one fold of 10: every class present
    with pytest.raises(ValueError, match="one group only"):
        splits.group_split(y=[0, 1], groups=["a", "a"], shares=(0.5, 0.5))


def test_folds_balance_labels_with_groups_of_several_sizes():
    rng = np.random.default_rng(0)
    groups, labels = [], []
    for g in range(60):
        size = 1 + g % 3
        groups += [f"artist{g}"] * size
        labels += [int(rng.integers(4))] * size
    y = np.eye(4, dtype=bool)[labels]
    folds = splits.group_folds(y=y, groups=groups, k=5, seed=1)
    per_fold = np.array([y[fold].sum(axis=0) for fold in folds])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 3).all()  # at most one group apart


def test_group_hold_out_skips_a_huge_group():
    groups = ["big"] * 60 + [f"g{i // 2}" for i in range(40)]  # one 60-item group, twenty pairs
    for seed in range(10):
        train, val = splits.group_split(groups=groups, shares=(0.9, 0.1), seed=seed)
        assert sorted([*train, *val]) == list(range(100))
        assert 10 <= len(val) <= 20 and "big" not in {groups[i] for i in val}
        assert not {groups[i] for i in val} & {groups[i] for i in train}
    # Stratified: the fold closest in size to the share, not the one holding the huge group.
    y = np.array([0, 1] * 50)
    for seed in range(5):
        _, val = splits.group_split(y=y, groups=groups, shares=(0.9, 0.1), seed=seed)
        assert "big" not in {groups[i] for i in val}
