"""The quadrant decision of the mood and energy maps, calibrated and
measured on mood_4q (``python -m trainer tagmap --evaluate``).

A quadrant head (logistic regression on the MSD embedding, a stand-in for
the shipped mood4q, which is trained on all of mood_4q) is cross-validated
with artist-disjoint folds. In each round the gate's margin and veto
factor are chosen on the training clips only, from out-of-fold
probabilities of inner artist-disjoint folds (so no test clip's label
reaches the choice), and the maps are scored on the test clips beside the
ungated map shipped before issue 22. The shipped margin and factor are
chosen the same way on every clip's out-of-fold probabilities."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from trainer.tagmap.build import MapSpec, mood_spec, mtt_spec
from trainer.tagmap.data import Clips
from trainer.tagmap.heads import logistic_regression
from trainer.tagmap.tables import (
    ALLMUSIC_MOODS,
    DECISIONS,
    ENERGY_SIDES,
    HIGH_AROUSAL,
    MOOD_HEAD,
    MOOD_QUADRANTS,
    MSD,
    MTT,
    QUADRANTS,
    SIDE_MOODS,
)

#: The candidates of the calibration: margins (1: the best quadrant alone)
#: and veto factors (0: no veto).
MARGINS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FACTORS = (0.0, 1.0, 1.5, 2.0)


# --- Quadrant probabilities -------------------------------------------------------


def _fit_predict(mood: Clips, train: np.ndarray, test: np.ndarray, *, seed: int, grid=None):
    """(test clips, 4) probabilities of a head fitted on ``train``, columns
    in QUADRANTS order, and the head's C."""
    from trainer import linear

    y = np.array(mood.quadrants)
    model = logistic_regression(mood.embedding[train], y[train], seed=seed, grid=grid)
    got = model.predict_proba(mood.embedding[test])
    order = [list(model.classes_).index(q) for q in QUADRANTS]
    return got[:, order], linear.chosen_c(model)


def quadrant_rounds(mood: Clips, *, seeds: Sequence[int], k: int = 5) -> list[dict]:
    """Per seed and artist-disjoint fold: the test clips, the head's
    probabilities on them, the training clips and their inner out-of-fold
    probabilities (k - 1 artist-disjoint folds of the training clips, the
    outer head's C)."""
    from trainer.tagmap.evaluate import artist_folds

    rounds = []
    for seed in seeds:
        for test in artist_folds(mood.artists, k=k, seed=seed):
            train = np.setdiff1d(np.arange(len(mood.paths)), test)
            p_test, c = _fit_predict(mood, train, test, seed=seed)
            p_train = np.zeros((len(train), len(QUADRANTS)))
            for inner in artist_folds([mood.artists[i] for i in train], k=k - 1, seed=seed):
                rest = np.setdiff1d(np.arange(len(train)), inner)
                p_train[inner] = _fit_predict(mood, train[rest], train[inner], seed=seed, grid=[c])[0]
            rounds.append({"seed": seed, "test": test, "p_test": p_test, "train": train, "p_train": p_train})
    return rounds


# --- The maps on given probabilities ------------------------------------------------


def ungated_mood_spec() -> MapSpec:
    """The mood map as shipped before issue 22: quadrant words and MSD
    words, no gate, no side words (the "before" of the figures)."""
    spec = mood_spec()
    labels = [w for w in spec.labels if w not in SIDE_MOODS]
    return replace(spec, labels=labels, rules=[r for r in spec.rules if r[1] in labels], gate=None,
                   sources=[MOOD_HEAD, MSD])


def _scores(spec: MapSpec, mood: Clips, rows: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The map's label scores on clips ``rows`` given the head's ``probs``."""
    import torch

    from tagcore.families import tagmap

    parts = {MOOD_HEAD: probs, **{b: mood.scores[b][rows] for b in (MSD, MTT)}}
    x = np.concatenate([parts[s] for s in spec.sources], axis=1).astype(np.float32)
    _, model = spec.build()
    return tagmap.predict(model, torch.from_numpy(x)).numpy()


def written_words(spec: MapSpec, scores: np.ndarray) -> list[list[str]]:
    """Per clip, the labels the plugin writes at the bundle's decision
    (>= threshold, at most count, best first)."""
    decision = DECISIONS[spec.task]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :decision["count"]]
    return [[spec.labels[j] for j in row if scores[i, j] >= decision["threshold"]] for i, row in enumerate(order)]


# --- Figures ---------------------------------------------------------------------------


def _contradicts(words: Sequence[str], sides: dict[str, Sequence[str]]) -> bool:
    """Whether two of ``words`` belong to disjoint sets of quadrants."""
    sets = [set(sides[w]) for w in words]
    return any(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])


def _share(flags) -> float:
    flags = list(flags)
    return float(np.mean(flags)) if flags else float("nan")


def mood_figures(moods: list[list[str]], energy: list[list[str]], *, quadrants: Sequence[str],
                 allmusic: Sequence[Sequence[str]]) -> dict[str, float]:
    """The figures of written mood and energy words against the clips'
    quadrants and AllMusic mood words (shares over clips or words)."""
    right = [bool(m) and q in MOOD_QUADRANTS[m[0]] for m, q in zip(moods, quadrants)]
    wrong = [bool(m) and q not in MOOD_QUADRANTS[m[0]] for m, q in zip(moods, quadrants)]
    groups = [{w for w, g in ALLMUSIC_MOODS.items() if set(a) & set(g)} for a in allmusic]
    high = [q in HIGH_AROUSAL for q in quadrants]
    return {
        "first_mood_right": _share(right),
        "first_mood_wrong": _share(wrong),
        "no_mood": _share(not m for m in moods),
        "net_right": _share(right) - _share(wrong),
        "weighted_net": weighted_net(moods, quadrants),
        "first_is_quadrant_word": _share(bool(m) and len(MOOD_QUADRANTS[m[0]]) == 1 for m in moods),
        "contradictory_pair": _share(_contradicts(m, MOOD_QUADRANTS) for m in moods),
        "allmusic_words": _share(w in g for m, g in zip(moods, groups) for w in m),
        "allmusic_first": _share(bool(m) and m[0] in g for m, g in zip(moods, groups)),
        "energy_arousal": _share((ENERGY_SIDES[w] == HIGH_AROUSAL) == h for e, h in zip(energy, high) for w in e),
        "energy_written": _share(bool(e) for e in energy),
        "mood_energy_conflict": _share(any(not set(MOOD_QUADRANTS[a]) & set(ENERGY_SIDES[b]) for a in m for b in e)
                                       for m, e in zip(moods, energy)),
    }


def figures_of(mood: Clips, rows: np.ndarray, probs: np.ndarray, *, mood_map: MapSpec,
               energy_map: MapSpec) -> dict[str, float]:
    """:func:`mood_figures` of two maps on clips ``rows`` given the head's
    ``probs``, with the head's own quadrant accuracy."""
    moods = written_words(mood_map, _scores(mood_map, mood, rows, probs))
    energy = written_words(energy_map, _scores(energy_map, mood, rows, probs))
    quadrants = [mood.quadrants[i] for i in rows]
    out = mood_figures(moods, energy, quadrants=quadrants, allmusic=[mood.moods[i] for i in rows])
    out["quadrant_accuracy"] = float(np.mean(np.array(QUADRANTS)[probs.argmax(1)] == np.array(quadrants)))
    return out


def gated_maps(margin: float, factor: float) -> tuple[MapSpec, MapSpec]:
    """The gated mood and energy maps at ``margin`` and veto ``factor``."""
    return mood_spec(margin=margin, factor=factor), mtt_spec("energy", margin=margin, factor=factor)


def weighted_net(moods: list[list[str]], quadrants: Sequence[str]) -> float:
    """The calibration's objective: per clip, +w when its first mood is
    compatible with its quadrant, -w when not, 0 without a mood; w = 1 for
    a word of one quadrant, 1/2 for a word of two (it says half as much),
    averaged over clips."""
    values = [(1.0 if q in MOOD_QUADRANTS[m[0]] else -1.0) / len(MOOD_QUADRANTS[m[0]]) if m else 0.0
              for m, q in zip(moods, quadrants)]
    return float(np.mean(values))


def choose_gate(mood: Clips, rows: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The (margin, factor) of MARGINS x FACTORS with the best
    :func:`weighted_net` on clips ``rows`` (ties: the larger margin, then
    the smaller factor: the simpler decision)."""
    best, choice = -np.inf, (1.0, 0.0)
    for margin in sorted(MARGINS, reverse=True):
        for factor in FACTORS:
            mood_map, _ = gated_maps(margin, factor)
            moods = written_words(mood_map, _scores(mood_map, mood, rows, probs))
            value = weighted_net(moods, [mood.quadrants[i] for i in rows])
            if value > best + 1e-9:
                best, choice = value, (margin, factor)
    return choice


def _mean_sd(values) -> list[float]:
    values = np.asarray(values, float)
    return [round(float(np.nanmean(values)), 4), round(float(np.nanstd(values)), 4)]


def evaluate_moods(mood: Clips, *, seeds: Sequence[int] = (0, 1, 2), k: int = 5, log=print) -> dict:
    """Before (the ungated map) and after (the gate chosen on each round's
    training clips) on each round's test clips; mean and sd over the
    rounds, the choices per round, and the shipped choice (on every clip's
    out-of-fold probabilities, seeds pooled)."""
    before_maps = (ungated_mood_spec(), replace(mtt_spec("energy"), gate=None, sources=[MTT]))
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    choices = []
    oof = {}
    for r in quadrant_rounds(mood, seeds=seeds, k=k):
        margin, factor = choose_gate(mood, r["train"], r["p_train"])
        choices.append({"seed": r["seed"], "margin": margin, "factor": factor})
        rows["before"].append(figures_of(mood, r["test"], r["p_test"], mood_map=before_maps[0],
                                         energy_map=before_maps[1]))
        after_maps = gated_maps(margin, factor)
        rows["after"].append(figures_of(mood, r["test"], r["p_test"], mood_map=after_maps[0],
                                        energy_map=after_maps[1]))
        oof.setdefault(r["seed"], np.zeros((len(mood.paths), len(QUADRANTS))))[r["test"]] = r["p_test"]
        log(f"  seed {r['seed']}: margin {margin}, factor {factor}; net right {rows['after'][-1]['net_right']:.3f} "
            f"(before {rows['before'][-1]['net_right']:.3f})")
    every = np.concatenate([np.arange(len(mood.paths))] * len(oof))
    shipped = choose_gate(mood, every, np.concatenate([oof[s] for s in sorted(oof)]))
    summary = {name: {key: _mean_sd([f[key] for f in folds]) for key in folds[0]} for name, folds in rows.items()}
    return {"summary": summary, "choices": choices, "shipped": {"margin": shipped[0], "factor": shipped[1]},
            "protocol": f"{k} artist-disjoint folds per seed (seeds {list(seeds)}) of mood_4q "
                        f"({len(mood.paths)} clips); gate chosen per round on inner out-of-fold probabilities of "
                        f"the training clips; mean and sd over {k * len(seeds)} rounds"}
