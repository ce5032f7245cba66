"""The evaluation of the tag maps (``python -m trainer tagmap --evaluate``):
the default-genre options cross-validated on mood_4q and gtzan_mini
(:func:`evaluate_genre`), the rule maps on the reference clips
(:func:`evaluate_rule_maps`) and the mood map with a cross-validated
quadrant head (:func:`evaluate_mood`). Folds come from
:mod:`trainer.splits`, heads from :mod:`trainer.tagmap.heads`, scores from
:mod:`trainer.tagmap.scoring`; docs/models/tagmap.md describes the
protocol."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from trainer.tagmap.build import genre_labels, genre_rules, mood_rules, mtt_spec
from trainer.tagmap.data import Clips
from trainer.tagmap.fitting import FastMap, fit_thresholds, rule_thresholds, written
from trainer.tagmap.genres import normalize
from trainer.tagmap.heads import head_only_logits, logistic_regression, shipped_gtzan_head
from trainer.tagmap.scoring import allmusic_score, broad_logits, gtzan_accuracy
from trainer.tagmap.tables import (
    ALLMUSIC_MOODS,
    CANDIDATE_MAPS,
    DECISIONS,
    GENRE_MAP,
    GTZAN_ALLMUSIC,
    GTZAN_GENRES,
    GTZAN_HEAD,
    MOOD_HEAD,
    MOOD_LABELS,
    MSD,
    MSD_MOODS,
    MTT,
    MTT_MAPS,
    QUADRANT_MOODS,
    QUADRANTS,
    RULE_THRESHOLDS,
    SIDE_MOODS,
)


def artist_folds(artists: Sequence[str], *, k: int, seed: int) -> list[np.ndarray]:
    """k test folds keeping each artist on one side, of about equal size
    (:func:`trainer.splits.group_folds`); a clip without an artist is a
    group of its own."""
    from trainer import splits

    return splits.group_folds(groups=[artist or f"#{i}" for i, artist in enumerate(artists)], k=k, seed=seed)


def _mean_sd(values: Sequence[float]) -> list[float]:
    values = np.asarray(values, float)
    return [round(float(values.mean()), 4), round(float(values.std()), 4)]


# --- Genre ----------------------------------------------------------------------------


class _GenreRounds:
    """The genre options' scores, one round (a test fold of each set) at a
    time: ``rows[option]`` is the list of per-round scores."""

    def __init__(self, mood: Clips, gtz: Clips, *, mfcc: np.ndarray | None = None):
        self.mood, self.gtz = mood, gtz
        # AllMusic-genre heads (h), (m): their labels, the truth matrix, and the MFCC statistics (m) reads.
        self.allmusic = sorted({g for labels in mood.labels for g in labels})
        self.y_allmusic = np.array([[g in labels for g in self.allmusic] for labels in mood.labels])
        self.mfcc = mfcc
        tags = {MSD: mood.tags[MSD], MTT: mood.tags[MTT]}
        self.inputs = [f"{b}:{t}" for b in (MSD, MTT) for t in tags[b]]
        self.inputs_c = self.inputs + [f"{GTZAN_HEAD}:{g}" for g in GTZAN_GENRES]
        self.labels, self.labels_c = genre_labels(), genre_labels(head=True)
        self.sources = [(b, t) for b, table in GENRE_MAP.items() for t in table]
        self.start = rule_thresholds([mood, gtz], self.sources)
        self.gtz_truth = np.array([l[0] for l in gtz.labels])
        self.gtz_allmusic = [GTZAN_ALLMUSIC[g] for g in self.gtz_truth]
        self.y_gtz_allmusic = np.array([[g in labels for g in self.allmusic] for labels in self.gtz_allmusic])
        self.x_mood, self.x_gtz = mood.matrix([MSD, MTT]), gtz.matrix([MSD, MTT])
        self.shipped_head = shipped_gtzan_head(mood.embedding)
        self.head_rules = [[f"{GTZAN_HEAD}:{g}", normalize(g), 0.5, 0.0] for g in GTZAN_GENRES]
        self.rows: dict[str, list[dict]] = {}

    def add(self, name: str, mood_logits, lab, test, gtz_logits=None, gtz_test=None, **options) -> None:
        """Score one option on the mood_4q test clips (and on the gtzan_mini
        ones when ``gtz_logits`` is given); ``options``: the decision."""
        score = allmusic_score(mood_logits, lab, [self.mood.labels[i] for i in test], **options).as_dict()
        score["gtzan"] = (gtzan_accuracy(gtz_logits, lab, self.gtz_truth[gtz_test]) if gtz_logits is not None
                          else float("nan"))
        self.rows.setdefault(name, []).append(score)

    def logits(self, x, rules, lab=None, inp=None) -> np.ndarray:
        return FastMap(x, self.inputs if inp is None else inp, self.labels if lab is None else lab,
                       rules).logit_matrix()

    def fit(self, train, gtrain) -> list[list]:
        """The genre map's thresholds fitted on the given clips of both sets,
        from the rule thresholds (GTZAN genres counted as GTZAN_ALLMUSIC)."""
        start = genre_rules(self.start)
        return fit_thresholds(
            [(FastMap(self.x_mood[train], self.inputs, self.labels, start), [self.mood.labels[i] for i in train]),
             (FastMap(self.x_gtz[gtrain], self.inputs, self.labels, start), [self.gtz_allmusic[i] for i in gtrain])],
            range(len(self.sources)))

    def score_maps(self, test, gtest, train, gtrain) -> list[list]:
        """(t), (a0), (a) and (a1) on one round; returns (a)'s fitted rules."""
        # (t) a trivial reference: "Rock" for every clip (AllMusic's most frequent genre, Pop/Rock)
        self.add("trivial", np.full((len(test), 1), 10.0), ["rock"], test, np.full((len(gtest), 1), 10.0), gtest)
        # (a0) the unsupervised rule
        rule = genre_rules(self.start)
        self.add("rule", self.logits(self.x_mood[test], rule), self.labels, test,
                 self.logits(self.x_gtz[gtest], rule), gtest)
        # (a) thresholds fitted on the training clips of both sets; (a1) the same writing one genre
        fitted = self.fit(train, gtrain)
        mood_logits, gtz_logits = self.logits(self.x_mood[test], fitted), self.logits(self.x_gtz[gtest], fitted)
        self.add("map", mood_logits, self.labels, test, gtz_logits, gtest)
        self.add("map1", mood_logits, self.labels, test, gtz_logits, gtest, count=1)
        # (a2) as the plugin writes genres now: broad genres (audio_styles), the best one always (min_count 1)
        broad_mood, roots = broad_logits(mood_logits, self.labels)
        self.add("broad", broad_mood, roots, test, broad_logits(gtz_logits, self.labels)[0], gtest, min_count=1)
        return fitted

    def score_heads(self, test, gtest, gtrain, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(b), (b') and (b*) on one round; returns the trained head's
        probabilities on all mood_4q clips and on the gtzan test clips."""
        model = logistic_regression(self.gtz.embedding[gtrain], self.gtz_truth[gtrain], seed=seed)
        order = [list(model.classes_).index(g) for g in GTZAN_GENRES]
        head_mood = model.predict_proba(self.mood.embedding)[:, order]
        head_gtz = model.predict_proba(self.gtz.embedding[gtest])[:, order]
        hl, hlab = head_only_logits(head_mood[test])
        self.add("head", hl, hlab, test, head_only_logits(head_gtz)[0], gtest)
        self.add("head03", hl, hlab, test, head_only_logits(head_gtz)[0], gtest, threshold=0.3)
        if self.shipped_head is not None:
            self.add("genre10", head_only_logits(self.shipped_head[test])[0], hlab, test)
        return head_mood, head_gtz

    def score_fusion(self, test, gtest, train, fitted, head_mood, head_gtz) -> None:
        """(c): (a)'s thresholds kept, the head's fitted on mood_4q's training clips."""
        x_c = np.concatenate([self.x_mood, head_mood], axis=1).astype(np.float32)
        fused = fit_thresholds([(FastMap(x_c[train], self.inputs_c, self.labels_c, fitted + self.head_rules),
                                 [self.mood.labels[i] for i in train])],
                               range(len(fitted), len(fitted) + len(self.head_rules)))
        gx_c = np.concatenate([self.x_gtz[gtest], head_gtz], axis=1).astype(np.float32)
        self.add("fusion", self.logits(x_c[test], fused, self.labels_c, self.inputs_c), self.labels_c, test,
                 self.logits(gx_c, fused, self.labels_c, self.inputs_c), gtest)

    def score_allmusic_heads(self, test, train, gtrain, seed: int) -> None:
        """(h), (h+) and (m): a head on the AllMusic genres themselves, one
        logistic regression per genre (:func:`allmusic_head_logits`),
        trained on mood_4q's training clips on the MSD embedding (h), the
        same with gtzan_mini's training clips added under their AllMusic
        genres (h+, GTZAN_ALLMUSIC), and on the MFCC statistics (m, when
        given); written as the plugin writes genres (at most 2 above 0.5,
        the best always) and scored on mood_4q's test clips. They cannot
        name a GTZAN genre, so no GTZAN accuracy."""
        inputs = {"allmusic_head": (self.mood.embedding, None)}
        inputs["allmusic_head_gtzan"] = (self.mood.embedding, (self.gtz.embedding[gtrain], self.y_gtz_allmusic[gtrain]))
        if self.mfcc is not None:
            inputs["allmusic_mfcc"] = (self.mfcc, None)
        for name, (x, extra) in inputs.items():
            x_train, y_train = x[train], self.y_allmusic[train]
            if extra is not None:
                x_train, y_train = np.concatenate([x_train, extra[0]]), np.concatenate([y_train, extra[1]])
            logits = allmusic_head_logits(x_train, y_train, x[test], seed=seed)
            self.add(name, logits, self.allmusic, test, allmusic_labels=True, min_count=1)

    def round(self, test, gtest, *, seed: int) -> None:
        """Every option on one round: ``test``, ``gtest`` are the test clips
        of mood_4q and gtzan_mini, the rest of each set trains."""
        train = np.setdiff1d(np.arange(len(self.mood.paths)), test)
        gtrain = np.setdiff1d(np.arange(len(self.gtz.paths)), gtest)
        fitted = self.score_maps(test, gtest, train, gtrain)
        self.score_allmusic_heads(test, train, gtrain, seed)
        head_mood, head_gtz = self.score_heads(test, gtest, gtrain, seed)
        self.score_fusion(test, gtest, train, fitted, head_mood, head_gtz)


def allmusic_head_logits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, seed: int = 0,
                         min_positives: int = 10) -> np.ndarray:
    """One logistic regression per label column of ``y_train`` (clips,
    labels) bool on standardised ``x_train`` (clips, dims), C chosen by
    3-fold CV on the training clips (:func:`trainer.linear.logistic_regression`);
    the logits of ``x_test``, shape (test clips, labels). A label with fewer
    than ``min_positives`` training clips gets no model: -inf (never said).
    Inputs with NaN (a clip that did not decode) are read as 0."""
    from trainer import linear

    x_train, x_test = np.nan_to_num(x_train), np.nan_to_num(x_test)
    out = np.full((len(x_test), y_train.shape[1]), -np.inf)
    for j in range(y_train.shape[1]):
        if y_train[:, j].sum() < min_positives:
            continue
        model = linear.logistic_regression(x=x_train, y=y_train[:, j].astype(int), c_grid=linear.C_GRID,
                                           inner_folds=3, seed=seed, max_iter=2000)
        probability = model.predict_proba(x_test)[:, list(model.classes_).index(1)]
        out[:, j] = np.log(np.clip(probability, 1e-7, 1.0)) - np.log(np.clip(1.0 - probability, 1e-7, 1.0))
    return out


def evaluate_genre(mood: Clips, gtz: Clips, *, seeds: Sequence[int] = (0, 1, 2), k: int = 5,
                   mfcc: np.ndarray | None = None, log=print) -> dict:
    """The table of the default-genre options (see docs/models/tagmap.md).

    Each seed cuts mood_4q into ``k`` artist-disjoint folds and gtzan_mini
    into ``k`` stratified folds; fold i of both is the test data of round
    i, the rest its training data. Per round: (a0) the rule thresholds;
    (a) thresholds fitted on the training clips of both sets
    (:func:`fit_thresholds`, GTZAN genres counted as GTZAN_ALLMUSIC);
    (b) a GTZAN head trained on the gtzan training clips; (c) the max
    fusion of (a) and (b), the head's own thresholds fitted on the mood_4q
    training clips; (h) and (m) heads on mood_4q's AllMusic genres, on the
    MSD embedding and on the MFCC statistics ``mfcc`` (mood_4q clips, dims;
    left out when None). All are scored on the test clips of both sets
    (the AllMusic heads on mood_4q's only)."""
    from trainer import splits

    rounds = _GenreRounds(mood, gtz, mfcc=mfcc)
    rows = rounds.rows
    for seed in seeds:
        mood_folds = artist_folds(mood.artists, k=k, seed=seed)
        gtz_folds = splits.group_folds(y=rounds.gtz_truth, k=k, seed=seed)  # scikit-learn's StratifiedKFold, shuffled
        for fold, (test, gtest) in enumerate(zip(mood_folds, gtz_folds)):
            rounds.round(test, gtest, seed=seed)
            log(f"  seed {seed} fold {fold}: F1 map {rows['map'][-1]['f1']:.3f}, head {rows['head'][-1]['f1']:.3f}, "
                f"fusion {rows['fusion'][-1]['f1']:.3f}; GTZAN map {rows['map'][-1]['gtzan']:.2f}, "
                f"head {rows['head'][-1]['gtzan']:.2f}, fusion {rows['fusion'][-1]['gtzan']:.2f}")

    shipped = rounds.fit(np.arange(len(mood.paths)), np.arange(len(gtz.paths)))
    summary = {name: {key: _mean_sd([f[key] for f in folds]) for key in folds[0]} for name, folds in rows.items()}
    return {"summary": summary, "folds": rows,
            "shipped_thresholds": {tuple(r[0].split(":", 1)): r[2] for r in shipped},
            "rule_thresholds": rounds.start,
            "protocol": f"{k} rounds per seed (seeds {list(seeds)}): mood_4q ({len(mood.paths)} clips, "
                        f"{len(set(mood.artists))} artists) in {k} artist-disjoint folds and gtzan_mini "
                        f"({len(gtz.paths)} clips) in {k} stratified folds; round i fits on the other folds of "
                        f"both and scores fold i of both; mean and sd over the {k * len(seeds)} rounds"}


# --- Rule maps --------------------------------------------------------------------------


def _predict(model, x: np.ndarray) -> np.ndarray:
    import torch

    from tagcore.families import tagmap

    return tagmap.predict(model, torch.from_numpy(x)).numpy()


def _energy_arousal(probs: np.ndarray, labels: list[str], quadrants: Sequence[str]) -> dict:
    """Per energy word: clips it is written on and their share of high
    arousal (quadrants Q1, Q2); ``probs``: the energy map on those clips."""
    high = np.array([q in ("Q1", "Q2") for q in quadrants])
    return {
        l: {"written": int((probs[:, j] >= 0.5).sum()),
            "high_arousal_share": round(float(high[probs[:, j] >= 0.5].mean()), 3)
            if (probs[:, j] >= 0.5).any() else None}
        for j, l in enumerate(labels)}


def _msd_mood_words(mood: Clips, thresholds: dict[tuple[str, str], float]) -> dict:
    """Each MSD mood word alone on mood_4q against the clips' AllMusic
    moods: clips written, precision, base rate (no fitting)."""
    words = {}
    for tag, word in MSD_MOODS.items():
        p = mood.scores[MSD][:, mood.tags[MSD].index(tag)]
        fired = p >= thresholds[(MSD, tag)]
        relevant = np.array([bool(set(m) & set(ALLMUSIC_MOODS[word])) for m in mood.moods])
        words[tag] = {"word": word, "written": int(fired.sum()),
                      "precision": round(float(relevant[fired].mean()), 3) if fired.any() else None,
                      "base_rate": round(float(relevant.mean()), 3)}
    return words


def evaluate_rule_maps(mood: Clips, gtz: Clips, *, log=print) -> dict:
    """Thresholds of the rule maps and what they do on the reference clips:
    how often each label is written, agreement of the energy words with
    the quadrants' arousal, MSD mood words against AllMusic moods, and
    per-GTZAN-genre rates of instruments and voices."""
    tags = [source for table in CANDIDATE_MAPS.values() for source in table] + [(MSD, t) for t in MSD_MOODS]
    thresholds = rule_thresholds([mood, gtz], tags)
    report: dict = {"thresholds": {f"{b}:{t}": v for (b, t), v in thresholds.items()}}
    for task in MTT_MAPS:
        # The maps alone, before the energy map's quadrant gate (moods.py measures that).
        spec = mtt_spec(task, thresholds)
        spec = replace(spec, gate=None, sources=[s for s in spec.sources if s != MOOD_HEAD])
        _, model = spec.build()
        for clips in (mood, gtz):
            probs = _predict(model, clips.matrix(spec.sources))
            report.setdefault(task, {})[clips.name] = {
                l: round(float((probs[:, j] >= 0.5).mean()), 3) for j, l in enumerate(spec.labels)}
        if task == "energy":
            report["energy"]["arousal"] = _energy_arousal(_predict(model, mood.matrix(spec.sources)), spec.labels,
                                                          mood.quadrants)
            report["energy"]["arousal_base_rate"] = round(float(np.mean([q in ("Q1", "Q2")
                                                                         for q in mood.quadrants])), 3)
        if task in ("instrument", "voice"):
            probs = _predict(model, gtz.matrix(spec.sources))
            truth = np.array([l[0] for l in gtz.labels])
            report[task]["gtzan_by_genre"] = {
                g: {l: round(float((probs[truth == g, j] >= 0.5).mean()), 2) for j, l in enumerate(spec.labels)}
                for g in GTZAN_GENRES}
    report["msd_mood_words"] = _msd_mood_words(mood, thresholds)
    return report


# --- Mood ---------------------------------------------------------------------------------


def _quadrant_probabilities(mood: Clips, *, k: int, seed: int) -> np.ndarray:
    """Out-of-fold (clips, 4) probabilities of a quadrant head (logistic
    regression on the MSD embedding, a stand-in for mood4q) over
    artist-disjoint folds; columns in QUADRANTS order."""
    quadrant = np.array(mood.quadrants)
    probs = np.zeros((len(quadrant), 4))
    for test in artist_folds(mood.artists, k=k, seed=seed):
        train = np.setdiff1d(np.arange(len(quadrant)), test)
        model = logistic_regression(mood.embedding[train], quadrant[train], seed=seed)
        got = model.predict_proba(mood.embedding[test])
        probs[test] = np.stack([got[:, list(model.classes_).index(q)] for q in QUADRANTS], axis=1)
    return probs


def _mood_figures(mood: Clips, probs: np.ndarray, thresholds: dict[tuple[str, str], float]) -> dict[str, float]:
    """The mood map's figures on mood_4q given the quadrant head's
    probabilities ``probs`` (clips, 4)."""
    quadrant = np.array(mood.quadrants)
    inputs = [f"{MOOD_HEAD}:{q}" for q in QUADRANTS] + [f"{MSD}:{t}" for t in mood.tags[MSD]]
    x = np.concatenate([probs, mood.scores[MSD]], axis=1)
    # The ungated map of before issue 22 (moods.py measures the gate).
    labels = [w for w in MOOD_LABELS if w not in SIDE_MOODS]
    rules = [r for r in mood_rules(thresholds) if r[1] in labels]
    logits = FastMap(x, inputs, labels, rules).logit_matrix()
    head_only = FastMap(x, inputs, labels, rules[:len(QUADRANT_MOODS)]).logit_matrix()
    sets = written(logits, count=DECISIONS["mood"]["count"])
    said = [[labels[j] for j in s] for s in sets]
    from_msd = [[logits[i, j] > head_only[i, j] for j in s] for i, s in enumerate(sets)]
    relevant = [{w for w, group in ALLMUSIC_MOODS.items() if set(m) & set(group)} for m in mood.moods]
    best = [QUADRANT_MOODS[QUADRANTS[int(np.argmax(p))]] for p in probs]
    return {
        "quadrant_accuracy": float(np.mean(np.array(QUADRANTS)[probs.argmax(1)] == quadrant)),
        "first_is_head_best": float(np.mean([bool(s) and s[0] == b for s, b in zip(said, best)])),
        "first_is_true_quadrant_word": float(np.mean([bool(s) and s[0] == QUADRANT_MOODS[q]
                                                      for s, q in zip(said, quadrant)])),
        "two_moods_share": float(np.mean([len(s) > 1 for s in said])),
        "msd_word_share": float(np.mean([any(f) for f in from_msd])),
        "first_word_precision": float(np.mean([bool(s) and s[0] in r for s, r in zip(said, relevant)])),
        "msd_words_precision": float(np.mean([w in r for s, f, r in zip(said, from_msd, relevant)
                                              for w, m in zip(s, f) if m] or [np.nan])),
    }


def evaluate_mood(mood: Clips, *, seeds: Sequence[int] = (0, 1, 2), k: int = 5, thresholds=None) -> dict:
    """The mood map with a quadrant head cross-validated on mood_4q
    (artist-disjoint folds; a stand-in for mood4q: logistic regression on
    the MSD embedding): the first mood's agreement with the clip's
    quadrant, how often an MSD word is written, and the precision of the
    written words against AllMusic moods. Mean and sd over ``seeds``."""
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    results = [_mood_figures(mood, _quadrant_probabilities(mood, k=k, seed=seed), thresholds) for seed in seeds]
    return {key: _mean_sd([r[key] for r in results]) for key in results[0] if results[0][key] is not None}
