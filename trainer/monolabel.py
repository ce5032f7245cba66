"""The monolabel scheme of the disambig paper (Hennequin et al., ISMIR 2018, section
2.2): a multi-label dataset turned into a balanced single-label one, one tag
per album drawn inversely to the tag's popularity. Training-only (the
disambig trainer and ``tag_dedup`` use it); pure functions over
:class:`Track` records, randomness from the ``rng`` passed in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """One multi-label training track. ``group`` is the album (or artist)
    that sampling is done over: every track of a group gets the same label."""

    key: str
    labels: tuple[str, ...]
    group: str = ""


def tag_popularity(tracks: Iterable[Track]) -> Counter:
    """Occurrences of each tag over the tracks."""
    counts: Counter = Counter()
    for track in tracks:
        counts.update(set(track.labels))
    return counts


def monolabel_probabilities(labels: Sequence[str], popularity: Counter) -> dict[str, float]:
    """P(tag) for one multi-label annotation, inversely proportional to the
    tag's popularity: {Rock: 1000, Punk: 100} gives Rock 1/11, Punk 10/11."""
    inverse = {tag: 1.0 / popularity[tag] for tag in labels}
    total = sum(inverse.values())
    return {tag: weight / total for tag, weight in inverse.items()}


def monolabel_sample(
    tracks: Sequence[Track],
    *,
    cap: int = 2000,
    upsample_to: int | None = None,
    rng: np.random.Generator,
) -> list[tuple[Track, str, int]]:
    """Turn a multi-label dataset into a balanced monolabel one (section 2.2).

    1. One tag is drawn per *group* (album), with probability inversely
       proportional to the tag's popularity, among the tags every track of
       the group could take (the union of their labels restricted to each
       track: a track gets the group's tag if it carries it, else its own
       draw). All tracks of a group share the label.
    2. Tags drawn more than ``cap`` times are downsampled to ``cap``.
    3. Tags drawn fewer than ``upsample_to`` times (default: ``cap``) are
       upsampled by repeating tracks; each repeat gets a new excerpt index,
       so the caller can cut a different excerpt of the same track.

    Returns a list of (track, tag, excerpt_index).
    """
    popularity = tag_popularity(tracks)
    by_group: dict[str, list[Track]] = defaultdict(list)
    for track in tracks:
        by_group[track.group or track.key].append(track)

    drawn: dict[str, list[Track]] = defaultdict(list)
    for group in sorted(by_group):
        members = by_group[group]
        group_labels = sorted({tag for t in members for tag in t.labels})
        if not group_labels:
            continue
        probs = monolabel_probabilities(group_labels, popularity)
        group_tag = group_labels[rng.choice(len(group_labels), p=[probs[t] for t in group_labels])]
        for track in members:
            if group_tag in track.labels:
                drawn[group_tag].append(track)
            else:  # a track of the album without the album's tag draws its own
                own = sorted(track.labels)
                p = monolabel_probabilities(own, popularity)
                tag = own[rng.choice(len(own), p=[p[t] for t in own])]
                drawn[tag].append(track)

    target = cap if upsample_to is None else upsample_to
    samples: list[tuple[Track, str, int]] = []
    for tag in sorted(drawn):
        chosen = drawn[tag]
        if len(chosen) > cap:
            idx = rng.choice(len(chosen), size=cap, replace=False)
            chosen = [chosen[i] for i in sorted(idx)]
        repeats = max(1, math.ceil(target / len(chosen))) if target else 1
        picked = [(t, tag, r) for r in range(repeats) for t in chosen]
        samples.extend(picked[: max(target, len(chosen))] if target else picked)
    return samples
