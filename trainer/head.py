"""``python -m trainer head``: a small classifier on a frozen backbone's embedding.

A head (family ``tagcore.families.head``) reads the track embedding of a
backbone bundle (musicnn-msd by default: the mean of its 200-d penultimate
layer over the central 3 s patches of the track) and gives label scores: a
logistic regression (``--hidden 0``) or a one-hidden-layer MLP, softmax
over labels or, with ``--multilabel``, a sigmoid per label. Training is
full-batch L-BFGS in torch on standardised embeddings with an L2 penalty
``||W||^2 / (2 C n)`` on the weights; ``C`` is chosen from ``--c-grid`` by
an inner cross-validation on the training tracks only (log-loss), never on
a test fold.

Data (``--data``): a folder of label folders (GTZAN layout), the 4Q
layout (:mod:`trainer.datasets.mood_4q`, ``--labels quadrant|genres|moods``),
or a CSV file ``path,labels[,artist]`` (labels ``;``-separated, paths
relative to the CSV's folder, a header row optional); or a beets library
(``--beets-library library.db --field genre``: any item field, a column or a
flexible attribute; multi-valued values are split into several labels).

Steps:

1. the backbone's per-patch embeddings of every track, through the on-disk
   cache of :func:`trainer.embeddings.backbone_outputs` (computed once);
2. k-fold cross-validation repeated over ``--seeds``: folds keep each
   artist on one side when artists are known (4Q, CSV with an artist
   column, beets) and are stratified by label; in every fold the head, the
   trivial baseline (majority class / label frequencies), the MFCC baseline
   of :mod:`trainer.baseline` and, with ``--compare-cnn``, the CNN + GRU of
   ``trainer.disambig`` are trained on the same training tracks and scored
   on the same test tracks;
3. a head fitted on all tracks (C chosen by cross-validation on them),
   written as a bundle with the figures, the command and the data in its
   config.json, and a report folder (``runs/NAME``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from tagcore.families import head

from trainer import linear, metrics, splits
from trainer.datasets import DatasetError, LoadReport, Record, csv_rows, gtzan, mood_4q, resolve

#: Backbones extracted together (one cache for heads of either and for the
#: tag-map studies): both musicnn ports read the same log-mel patches.
PAIRED_BACKBONES = ("musicnn-msd", "musicnn-mtt")
#: The inverse L2 strengths tried for C (the same grid as the trainers' logistic regressions).
C_GRID = linear.C_GRID
#: The recipe of the CNN + GRU bundle genre10-cnn (docs/models/disambig.md).
GENRE10_CNN_RECIPE = "--channels 16,32,64,128 --gru-hidden 128 --train-seconds 10 --epochs 120 --patience 25"
QUADRANT_LABELS = list(mood_4q.QUADRANTS)
#: Russell's plane: quadrant -> (positive valence, positive arousal).
QUADRANT_SIGNS = {"Q1": (True, True), "Q2": (False, True), "Q3": (False, False), "Q4": (True, False)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a folder of label folders, a 4Q dataset, or a CSV file path,labels[,artist]")
    source.add_argument("--beets-library", help="a beets library database (library.db)")
    parser.add_argument("--field", default="genre",
                        help="with --beets-library: the item field giving the labels (genre, style, mood, any "
                             "column or flexible attribute; several values split into several labels)")
    parser.add_argument("--music-dir", help="with --beets-library: the library directory, for relative paths "
                                            "(default: beets' configured directory)")
    parser.add_argument("--plugin-labels", action="store_true",
                        help="with --beets-library: also learn values that autotag-ml wrote itself (left out by default)")
    parser.add_argument("--labels", choices=sorted(mood_4q.LABEL_COLUMNS), default="quadrant",
                        help="4Q layout: which labels (quadrant: Q1..Q4; genres, moods: AllMusic's, multi-label)")
    parser.add_argument("--backbone", default="musicnn-msd", help="backbone bundle (name or directory)")
    parser.add_argument("--name", required=True, help="bundle name")
    parser.add_argument("--version", default="1", help="bundle version")
    parser.add_argument("--task", help="what the head's labels serve (genre, mood, style...); default: mood for "
                                       "4Q quadrants and moods, the field for a beets library, else genre")
    parser.add_argument("--out", help="bundle directory (default: user data dir/bundles/NAME)")
    parser.add_argument("--report-dir", help="the run's report folder (default: runs/NAME)")
    parser.add_argument("--multilabel", action="store_true", help="several labels per track (sigmoid per label)")
    parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: logistic regression)")
    parser.add_argument("--patches", type=int,
                        help="central 3 s patches averaged into the track embedding (default: as many as the "
                             "backbone bundle reads when tagging)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: no evaluation)")
    parser.add_argument("--inner-folds", type=int, default=3, help="folds of the inner CV choosing C")
    parser.add_argument("--seeds", default="0,1,2", help="one repetition of the CV per seed")
    parser.add_argument("--c-grid", default=",".join(str(c) for c in C_GRID), help="inverse L2 strengths to try")
    parser.add_argument("--min-count", type=int, default=1, help="drop labels with fewer tracks than this")
    parser.add_argument("--no-mfcc", action="store_true", help="skip the MFCC baseline (it decodes every track once more)")
    parser.add_argument("--compare-cnn", action="store_true",
                        help="also train the CNN + GRU of trainer.disambig on every fold (slow: minutes per fold)")
    parser.add_argument("--cnn-options", default=GENRE10_CNN_RECIPE,
                        help=f"disambig options for --compare-cnn (default: genre10-cnn's recipe, {GENRE10_CNN_RECIPE!r})")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--cache-dir", help="cache of backbone outputs and features (default: the user cache dir)")


# --- data -------------------------------------------------------------------


def load_csv(path: str | Path, *, report: LoadReport) -> list[Record]:
    """Records of a CSV ``path,labels[,artist]`` (labels ``;``-separated).

    A first row whose first field is ``path`` is a header (its column names
    are then used). Relative paths are taken from the CSV's folder. Rows
    naming a missing file or no label are skipped into ``report`` as
    ``file:line: cause``; a missing CSV, or one without a usable row, raises
    DatasetError."""
    path = Path(path)
    base = path.parent
    rows = list(csv_rows(path))
    columns = {"path": 0, "labels": 1, "artist": 2}
    if rows and rows[0][1] and rows[0][1][0].strip().lower() == "path":
        header = [name.strip().lower() for name in rows[0][1]]
        if "labels" not in header:
            raise DatasetError(f"{path}:1: the header names no 'labels' column ({', '.join(header)})")
        columns = {name: header.index(name) for name in ("path", "labels", "artist") if name in header}
        rows = rows[1:]
    records, seen = [], set()
    skipped_before = len(report.skipped)
    for line, fields in rows:
        where = f"{path}:{line}"
        if len(fields) <= max(columns["path"], columns["labels"]):
            report.skip(where, f"expected path,labels, got {len(fields)} field(s)")
            continue
        name = fields[columns["path"]].strip()
        audio = Path(name) if os.path.isabs(name) else base / name
        labels = tuple(dict.fromkeys(v.strip() for v in fields[columns["labels"]].split(";") if v.strip()))
        artist = fields[columns["artist"]].strip() if "artist" in columns and len(fields) > columns["artist"] else ""
        if not name:
            report.skip(where, "no path")
        elif not audio.is_file():
            report.skip(where, f"no audio file {name}")
        elif not labels:
            report.skip(where, f"{name}: no label")
        elif str(audio) in seen:
            report.skip(where, f"{name} listed twice")
        else:
            seen.add(str(audio))
            records.append(Record(key=str(audio), path=str(audio), labels=labels, artist=artist))
    if not records:
        skipped = report.skipped[skipped_before:]
        first = f" (first skipped row: {skipped[0]})" if skipped else ""
        raise DatasetError(f"{path}: no row names an existing audio file with labels{first}")
    return records


def load_beets(db_path: str | Path, *, field_name: str, music_dir: str | None, report: LoadReport,
               plugin_labels: bool = False) -> list[Record]:
    """Records of the items of a beets library that have a value of
    ``field_name`` (``genre``/``genres``: the genres; else a flexible
    attribute or an items column). Multi-valued values (beets' ``\\␀``
    separator, else ``; ``) give several labels. Groups: the MusicBrainz
    artist id, else the artist name. Relative paths are under ``music_dir``,
    else the library directory of beets' configuration.

    Values that the autotagml plugin wrote itself (its ``ml_written_<field>``
    record) are left out unless ``plugin_labels``: a head must learn the
    user's labels, not the plugin's own guesses. Items without labels, with
    only the plugin's, or whose file is missing are counted in one line
    each in ``report``."""
    from trainer.datasets import beets_library

    db_path = Path(db_path)
    items = beets_library.load(db_path, music_dir=music_dir, report=report)
    column = None
    if field_name not in ("genre", "genres") and not any(field_name in item.attributes for item in items):
        column = beets_library.column_values(db_path, column=field_name)
        if column is None:
            raise DatasetError(f"{db_path}: no field {field_name!r} (neither an items column nor a flexible attribute)")
    record_key = f"ml_written_{'genres' if field_name in ('genre', 'genres') else field_name}"
    records = []
    unlabelled, by_plugin, missing = 0, 0, []
    for item in items:
        if field_name in ("genre", "genres"):
            labels = item.genres
        else:
            value = item.attributes.get(field_name, "") if column is None else column.get(item.id, "")
            labels = beets_library.split_genres(value)
        labels = tuple(dict.fromkeys(labels))
        if not plugin_labels and labels and record_key in item.attributes:
            written = set(beets_library.split_genres(item.attributes[record_key]))
            kept = tuple(label for label in labels if label not in written)
            if not kept:
                by_plugin += 1
                continue
            labels = kept
        if not labels:
            unlabelled += 1
        elif not os.path.isfile(item.path):
            missing.append(item.path)
        else:
            records.append(Record(key=str(item.id), path=item.path, labels=labels,
                                  artist=item.mb_artistid or item.artist, album=item.mb_albumid or item.album))
    notes = []
    if unlabelled:
        notes.append(f"{unlabelled} item(s) have no {field_name}")
    if by_plugin:
        notes.append(f"{by_plugin} item(s) have only values of {field_name} that autotag-ml wrote "
                     f"({record_key}; --plugin-labels uses them)")
    if missing:
        relative = sum(not os.path.isabs(path) for path in missing)
        hint = (f"; {relative} of these paths are relative: pass --music-dir, or set directory in beets' "
                "configuration" if relative else "")
        notes.append(f"{len(missing)} item(s) with a {field_name} have no audio file (first: {missing[0]}){hint}")
    for note in notes:
        report.skip(str(db_path), note)
    if not records:
        raise DatasetError(f"{db_path}: no item with a {field_name} and an existing audio file: " + "; ".join(notes))
    return records


def load_records(args, report: LoadReport) -> tuple[list[Record], str]:
    """(records, layout) of ``--data`` or ``--beets-library``; layout is
    ``folders``, ``4q``, ``csv`` or ``beets``."""
    if args.beets_library:
        return load_beets(args.beets_library, field_name=args.field, music_dir=args.music_dir, report=report,
                          plugin_labels=args.plugin_labels), "beets"
    data = Path(args.data)
    if not data.exists():
        raise DatasetError(f"{data}: no such file or folder")
    if data.is_file():
        return load_csv(data, report=report), "csv"
    name, _ = resolve(data, among=("mood_4q", "gtzan"))
    if name == "mood_4q":
        return mood_4q.load(data, labels=args.labels, report=report), "4q"
    return gtzan.load(data, report=report), "folders"


def default_task(args, layout: str) -> str:
    if args.task:
        return args.task
    if layout == "4q":
        return "genre" if args.labels == "genres" else "mood"
    if layout == "beets":
        return "genre" if args.field in ("genre", "genres") else args.field
    return "genre"


@dataclass
class Dataset:
    """Tracks with their labels, groups and backbone outputs.

    ``y``: (tracks, labels) bool; ``groups``: the artist of each track
    (the track's key when unknown); ``mfcc``: (tracks, 80) MFCC statistics
    or None; ``mels``: key -> log-mel for the CNN comparison."""

    records: list[Record]
    labels: list[str]
    y: np.ndarray
    groups: list[str]
    patches: object  # trainer.embeddings.PatchOutputs, rows as records
    rows: np.ndarray  # row of each record in ``patches``
    has_artists: bool
    mfcc: np.ndarray | None = None
    mels: dict | None = None
    mel_params: object = None
    dropped: list[str] = field(default_factory=list)

    def embeddings(self, patches: int) -> np.ndarray:
        return self.patches.track_embeddings(patches=patches)[self.rows]

    @property
    def classes(self) -> np.ndarray:
        """Class index of each track (single-label data)."""
        return self.y.argmax(axis=1)


def backbone_patches(backbone: str) -> tuple[str, int, str]:
    """(name, patches read when tagging, version) of a backbone bundle."""
    from tagcore.bundle import BundleError, read_config
    from tagcore.features import feature_params

    _, config = read_config(backbone)
    if config["input"]["kind"] != "audio" or "embedding" not in config["outputs"]:
        raise BundleError(f"{backbone}: not an audio bundle giving an embedding")
    params = feature_params(config["input"]["feature"])
    if not getattr(params, "patch_frames", 0):
        raise BundleError(f"{backbone}: its feature is not cut into patches")
    return config["name"], max(1, params.excerpt_frames // params.patch_frames), str(config["version"])


def build_dataset(records: list[Record], args, *, log=print) -> Dataset:
    """Labels, folds' groups, backbone outputs (cached) and, unless
    ``--no-mfcc``, the MFCC statistics of every track."""
    from trainer.embeddings import backbone_outputs

    dropped: list[str] = []
    counts = Counter(tag for r in records for tag in r.labels)
    rare = {tag for tag, n in counts.items() if n < args.min_count}
    if not args.multilabel:
        several = [r for r in records if len(r.labels) > 1]
        if several:
            example = several[0]
            raise DatasetError(f"{len(several)} tracks have several labels (e.g. {example.path}: "
                               f"{', '.join(example.labels)}); pass --multilabel")
    kept = []
    for r in records:
        labels = tuple(t for t in r.labels if t not in rare)
        if not labels:
            dropped.append(f"{r.path}: only labels with fewer than {args.min_count} tracks")
        else:
            kept.append(Record(key=r.key, path=r.path, labels=labels, artist=r.artist, album=r.album, split=r.split))
    labels = sorted({t for r in kept for t in r.labels})
    if len(labels) < 2:
        raise DatasetError(f"need at least two labels, found {labels}")

    name, _, _ = backbone_patches(args.backbone)
    bundles = PAIRED_BACKBONES if name in PAIRED_BACKBONES and args.backbone == name else (args.backbone,)
    cache = Path(args.cache_dir) / "backbone-outputs" if args.cache_dir else None
    started = time.monotonic()
    outputs = backbone_outputs([r.path for r in records], bundles=bundles, patches=max(10, args.patches or 0),
                               workers=args.workers, cache_dir=cache, progress=True)
    log(f"backbone outputs of {len(records)} tracks ({', '.join(outputs)}): {time.monotonic() - started:.1f} s")
    patch_outputs = outputs[name]
    row_of = {r.path: i for i, r in enumerate(records)}
    for _index, message in sorted(patch_outputs.errors.items()):
        dropped.append(message)
    kept = [r for r in kept if patch_outputs.counts[row_of[r.path]] > 0]

    mfcc = mels = mel_params = None
    if not args.no_mfcc or args.compare_cnn:
        mels, mel_params, failures = log_mels([r.path for r in kept], args)
        dropped.extend(failures)
        kept = [r for r in kept if r.path in mels]
        if not args.no_mfcc:
            mfcc = np.stack([mfcc_of_logmel(mels[r.path], mel_params) for r in kept])
    index = {t: i for i, t in enumerate(labels)}
    y = np.zeros((len(kept), len(labels)), dtype=bool)
    for i, r in enumerate(kept):
        y[i, [index[t] for t in r.labels]] = True
    if not args.multilabel:
        present = y.sum(axis=0)
        if (present == 0).any():
            raise DatasetError(f"labels without tracks after dropping failures: {np.array(labels)[present == 0].tolist()}")
    has_artists = any(r.artist for r in kept)
    groups = [(r.artist or r.key) if has_artists else r.key for r in kept]
    return Dataset(records=kept, labels=labels, y=y, groups=groups, patches=patch_outputs,
                   rows=np.array([row_of[r.path] for r in kept], dtype=int), has_artists=has_artists,
                   mfcc=mfcc, mels=mels, mel_params=mel_params, dropped=dropped)


def log_mels(paths: list[str], args):
    """:func:`logmel_features` with the command's ``--cache-dir`` and ``--workers``."""
    return logmel_features(paths, cache_dir=args.cache_dir, workers=args.workers)


def logmel_features(paths: list[str], *, cache_dir: str | None = None, workers: int = 1):
    """The log-mel of trainer.disambig (22,050 Hz, 96 bands, centred,
    at most 120 s) through its feature cache: (path -> matrix, the
    MelParams, failure messages)."""
    from tagcore.features import MelParams
    from trainer.cache import FeatureCache, default_cache_root

    params = MelParams()
    cache = FeatureCache(Path(cache_dir) / "features" if cache_dir else default_cache_root(),
                         kind="logmel", params=params.to_dict(), excerpt={"max_seconds": 120.0, "offset": "centre"})
    by_path, failures = cache.build(paths, workers=workers, progress=True)
    return by_path, params, failures


def mfcc_of_logmel(log_mel: np.ndarray, params) -> np.ndarray:
    """The MFCC baseline's vector (80,) of one track's log-mel from
    :func:`logmel_features` (``params``: its MelParams), cropped as the
    disambig trainer crops it."""
    from trainer.baseline import mfcc_statistics_from_logmel
    from trainer.disambig import crop

    return mfcc_statistics_from_logmel(crop(log_mel, params.excerpt_frames), log_c=params.log_c)


def mfcc_statistics(paths: list[str], *, cache_dir: str | None = None, workers: int = 1) -> np.ndarray:
    """The MFCC baseline's input for ``paths``: statistics of the 20 MFCCs
    of each track's log-mel (:func:`logmel_features`, cropped as the
    disambig trainer crops it), shape (tracks, 80); a row of NaN for a
    track that did not decode."""
    mels, params, _ = logmel_features(paths, cache_dir=cache_dir, workers=workers)
    rows = [mfcc_of_logmel(mels[p], params) if p in mels else None for p in paths]
    width = next((len(r) for r in rows if r is not None), 80)
    return np.stack([np.full(width, np.nan) if r is None else r for r in rows]).astype(np.float32)


# --- the head ---------------------------------------------------------------


def fit_head(x: np.ndarray, y: np.ndarray, *, multilabel: bool, n_labels: int | None = None, hidden: int = 0,
             c: float = 1.0, seed: int = 0, max_iter: int = 500, start: dict | None = None) -> head.Model:
    """A head fitted by full-batch L-BFGS (float64) on ``x`` (n, dim):
    ``y`` class indices (n,) or, when ``multilabel``, 0/1 (n, labels).
    ``n_labels``: the head's outputs (default: the width of ``y``, or one
    more than its largest class index); ``start``: layer weights to start
    from (the state dict of a head of the same shape).

    Loss: mean cross-entropy (or binary cross-entropy) + ``||W||^2 / (2 C n)``
    over the weight matrices (not the biases); inputs standardised with the
    training mean and standard deviation (stored in the model). A logistic
    regression starts from zero weights (the optimum is unique); an MLP from
    torch's initialisation under ``seed``."""
    y = np.asarray(y)
    if n_labels is None:
        n_labels = y.shape[1] if multilabel else int(y.max()) + 1
    return _fit(x, y, n_labels, multilabel=multilabel, hidden=hidden, c=c, seed=seed, max_iter=max_iter, start=start)


def _fit(x, y, n_labels, *, multilabel, hidden, c, seed, max_iter, start: dict | None = None) -> head.Model:
    """See :func:`fit_head`; ``start``: layer weights to start from (a
    state dict of a head of the same shape, e.g. the fit of a nearby C)."""
    torch.manual_seed(seed)
    config = head.Config(n_inputs=x.shape[1], n_labels=n_labels, hidden=hidden, multilabel=multilabel, dropout=0.0)
    model = head.Model(config)
    xs = torch.from_numpy(np.asarray(x, dtype=np.float32))
    model.set_standardisation(xs)
    with torch.no_grad():
        if start is not None:
            model.layers.load_state_dict(start)
        elif not hidden:
            for p in model.layers.parameters():
                p.zero_()
    model = model.double().train()
    # Standardise once; the optimiser sees only the layers.
    inputs = (xs.double() - model.mean) / model.std
    targets = torch.from_numpy(np.asarray(y, dtype=np.float64 if multilabel else np.int64))
    weights = [p for name, p in model.layers.named_parameters() if name.endswith("weight")]
    penalty = 1.0 / (2.0 * c * len(x))
    optimiser = torch.optim.LBFGS(list(model.layers.parameters()), lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        value = head.loss(model.layers(inputs), targets, multilabel=multilabel)
        value = value + penalty * sum((w * w).sum() for w in weights)
        value.backward()
        return value

    with single_thread():
        optimiser.step(closure)
    return model.float().eval()


class single_thread:
    """Torch on one thread inside the block: the fits are tiny, and more
    threads only spin against each other (and against decoding workers)."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def predict(model: head.Model, x: np.ndarray) -> np.ndarray:
    """(n, labels) probabilities."""
    return head.predict(model, torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def log_loss(probs: np.ndarray, y: np.ndarray, *, multilabel: bool) -> float:
    """Mean cross-entropy (single-label, ``y`` class indices) or mean binary
    cross-entropy over tracks and labels (``y`` 0/1)."""
    p = np.clip(probs.astype(np.float64), 1e-12, 1 - 1e-12)
    if multilabel:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def choose_c(x, y, groups, *, n_labels: int, multilabel: bool, hidden: int, grid: Sequence[float], k: int,
             split_seed: int | Sequence[int], seed: int = 0) -> tuple[float, dict[float, float]]:
    """C of ``grid`` with the lowest log-loss in a ``k``-fold grouped,
    stratified CV (:func:`trainer.splits.group_folds` under ``split_seed``)
    over (x, y) alone (the training tracks of an outer fold); ties go to
    the smaller C; ``seed`` seeds torch. Returns (C, {C: mean validation
    log-loss}); with fewer than two groups there is nothing to validate on:
    (1.0, {})."""
    y_matrix = y if multilabel else np.eye(n_labels, dtype=bool)[y]
    k = min(k, len(set(groups)))
    if k < 2:  # one artist: nothing to validate on; C = 1
        return 1.0, {}
    folds = splits.group_folds(y=y_matrix, groups=groups, k=k, seed=split_seed)
    values: dict[float, list[float]] = {float(c): [] for c in grid}
    for test in folds:
        train = np.setdiff1d(np.arange(len(x)), test)
        start = None
        for c in sorted(grid):  # each C starts from the fit of the next smaller one
            model = _fit(x[train], y[train], n_labels, multilabel=multilabel, hidden=hidden, c=c, seed=seed,
                         max_iter=500, start=start)
            start = model.layers.state_dict()
            values[float(c)].append(log_loss(predict(model, x[test]), y[test], multilabel=multilabel))
    losses = {c: float(np.mean(v)) for c, v in values.items()}
    best = min(grid, key=lambda c: (round(losses[float(c)], 9), c))
    return float(best), losses


# --- metrics ----------------------------------------------------------------


def single_label_scores(truth: np.ndarray, predicted: np.ndarray, n_labels: int) -> dict:
    return {"accuracy": metrics.accuracy(y_true=truth, y_pred=predicted),
            "macro_f1": metrics.macro_f1(y_true=truth, y_pred=predicted)}


def multilabel_scores(y: np.ndarray, probs: np.ndarray, *, threshold: float = 0.5) -> dict:
    decisions = probs >= threshold
    return {"micro_f1": metrics.micro_f1(y_true=y, y_pred=decisions),
            "macro_f1": metrics.macro_f1(y_true=y, y_pred=decisions),
            "map": metrics.label_map(y_true=y, scores=probs)}


def trivial_multilabel_scores(y_train: np.ndarray, y_test: np.ndarray) -> dict:
    """The label-frequency baseline: every test track gets the training
    set's most frequent labels, as many as a training track has on average
    (at least one); its ranking carries no information, so its mAP is the
    expected AP of a random order."""
    frequency = y_train.mean(axis=0)
    k = max(1, int(round(y_train.sum(axis=1).mean())))
    top = np.argsort(-frequency, kind="stable")[:k]
    decisions = np.zeros_like(y_test, dtype=bool)
    decisions[:, top] = True
    n = len(y_test)
    ap = [metrics.random_ranking_ap(n=n, relevant=int(y_test[:, j].sum()))
          for j in range(y_test.shape[1]) if y_test[:, j].any()]
    return {"micro_f1": metrics.micro_f1(y_true=y_test, y_pred=decisions),
            "macro_f1": metrics.macro_f1(y_true=y_test, y_pred=decisions),
            "map": float(np.mean(ap))}


def quadrant_axes(labels: Sequence[str], classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive valence, positive arousal) of quadrant class indices."""
    signs = np.array([QUADRANT_SIGNS[label] for label in labels])
    return signs[classes, 0], signs[classes, 1]


def summarise(values: Sequence[float], seeds: int) -> dict:
    """Mean and standard deviation over all folds of all seeds, the mean of
    each seed, and the fold values (seed-major)."""
    arr = np.asarray(values, dtype=float)
    per_seed = arr.reshape(seeds, -1).mean(axis=1) if seeds else arr
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_seed": [float(v) for v in per_seed], "folds": [float(v) for v in arr]}


# --- cross-validation -------------------------------------------------------


@dataclass
class _FoldScores:
    """What cross_validate gathers fold after fold: per model name, metric
    -> values and (4Q) axis -> accuracies; the chosen C of each fold; the
    head's confusion matrix summed over folds and seeds (single-label)."""

    names: list[str]
    n_labels: int
    chosen: list[float] = field(default_factory=list)
    scores: dict[str, dict[str, list[float]]] = field(init=False)
    axes: dict[str, dict[str, list[float]]] = field(init=False)
    confusion: np.ndarray = field(init=False)

    def __post_init__(self):
        self.scores = {name: {} for name in self.names}
        self.axes = {name: {"valence": [], "arousal": []} for name in self.names}
        self.confusion = np.zeros((self.n_labels, self.n_labels), dtype=int)

    def add(self, results: dict[str, dict]) -> None:
        for name, values in results.items():
            for metric, value in values.items():
                self.scores[name].setdefault(metric, []).append(value)


def _fold_outputs(model, x_test: np.ndarray, test_inputs: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray,
                  test: np.ndarray, *, multilabel: bool, n_labels: int) -> tuple[dict, dict]:
    """(scores, predictions) of the fitted head on ``x_test[test]`` and on
    each of ``test_inputs`` (as ``head@name``), and of the trivial baseline
    (from ``y[train]``). Multi-label: scores only; single-label: the
    predicted class indices, scored later with the extra models'."""
    probs = predict(model, x_test[test])
    results: dict[str, dict] = {}
    predictions: dict[str, np.ndarray] = {}
    other = {f"head@{name}": predict(model, inputs[test]) for name, inputs in test_inputs.items()}
    if multilabel:
        results["head"] = multilabel_scores(y[test], probs)
        for name, p in other.items():
            results[name] = multilabel_scores(y[test], p)
        results["trivial"] = trivial_multilabel_scores(y[train], y[test])
    else:
        predictions["head"] = probs.argmax(axis=1)
        for name, p in other.items():
            predictions[name] = p.argmax(axis=1)
        predictions["trivial"] = np.full(len(test), np.bincount(y[train], minlength=n_labels).argmax())
    return results, predictions


def _quadrant_accuracies(labels: Sequence[str], y: np.ndarray, train: np.ndarray, test: np.ndarray,
                         predictions: dict[str, np.ndarray], axes: dict[str, dict[str, list[float]]]) -> None:
    """Append each model's valence and arousal accuracy on ``test`` (4Q
    quadrants seen as two binary axes) to ``axes``; the trivial model
    predicts the majority side of each axis in ``train``."""
    valence, arousal = quadrant_axes(labels, y[test])
    train_valence, train_arousal = quadrant_axes(labels, y[train])
    for name, predicted in predictions.items():
        if name == "trivial":  # the majority side of each axis
            pv = np.full(len(test), train_valence.mean() >= 0.5)
            pa = np.full(len(test), train_arousal.mean() >= 0.5)
        else:
            pv, pa = quadrant_axes(labels, predicted)
        axes[name]["valence"].append(float(np.mean(pv == valence)))
        axes[name]["arousal"].append(float(np.mean(pa == arousal)))


def cross_validate(
    data: Dataset,
    x: np.ndarray,
    *,
    multilabel: bool,
    hidden: int,
    folds: int,
    seeds: Sequence[int],
    grid: Sequence[float],
    inner_folds: int,
    x_test: np.ndarray | None = None,
    test_inputs: dict[str, np.ndarray] | None = None,
    extra: dict[str, Callable] | None = None,
    log=print,
) -> dict:
    """Repeated k-fold CV of the head on ``x`` (tracks, dim), with the
    trivial baseline and ``extra`` models on the same folds.

    ``x_test``: inputs of the test tracks when they differ from the training
    inputs (e.g. fewer patches at tagging time); default ``x``.
    ``test_inputs``: name -> other inputs of the test tracks on which the
    same fitted head is scored too, reported as ``head@name``.
    ``extra``: name -> f(train, test, seed, fold) giving class indices
    (single-label) or probabilities (multi-label) for ``test``.
    Returns the figures per model (see :func:`summarise`), the chosen C per
    fold, the pooled confusion matrix of the head (single-label, summed over
    seeds) and, for 4Q quadrants, valence and arousal accuracies.
    """
    x_test = x if x_test is None else x_test
    extra = extra or {}
    n_labels = len(data.labels)
    y = data.y if multilabel else data.classes
    quadrants = not multilabel and data.labels == QUADRANT_LABELS
    test_inputs = test_inputs or {}
    gathered = _FoldScores(names=["head", *(f"head@{name}" for name in test_inputs), "trivial", *extra],
                           n_labels=n_labels)
    everything = np.arange(len(x))
    for seed in seeds:
        outer = splits.group_folds(y=data.y, groups=data.groups, k=folds, seed=seed)
        for fold, test in enumerate(outer, start=1):
            train = np.setdiff1d(everything, test)
            groups = [data.groups[i] for i in train]
            c, _ = choose_c(x[train], y[train], groups, n_labels=n_labels, multilabel=multilabel, hidden=hidden, grid=grid,
                            k=inner_folds, split_seed=(seed, fold), seed=seed)
            gathered.chosen.append(c)
            model = _fit(x[train], y[train], n_labels, multilabel=multilabel, hidden=hidden, c=c, seed=seed,
                         max_iter=500)
            results, predictions = _fold_outputs(model, x_test, test_inputs, y, train, test, multilabel=multilabel,
                                                 n_labels=n_labels)
            if not multilabel:
                gathered.confusion += metrics.confusion_matrix(y_true=y[test], y_pred=predictions["head"],
                                                               n_classes=n_labels)
            for name, run_model in extra.items():
                out = run_model(train, test, seed, fold)
                if multilabel:
                    results[name] = multilabel_scores(y[test], out)
                else:
                    predictions[name] = out
            for name, predicted in predictions.items():
                results[name] = single_label_scores(y[test], predicted, n_labels)
            if quadrants:
                _quadrant_accuracies(data.labels, y, train, test, predictions, gathered.axes)
            gathered.add(results)
            shown = " | ".join(f"{name} " + " ".join(f"{m} {v:.3f}" for m, v in values.items())
                               for name, values in results.items())
            log(f"seed {seed} fold {fold} (C {c:g}): {shown}")
    out = {
        "models": {name: {m: summarise(v, len(seeds)) for m, v in values.items()}
                   for name, values in gathered.scores.items()},
        "chosen_c": gathered.chosen,
    }
    if not multilabel:
        out["confusion_matrix"] = gathered.confusion.tolist()
    if quadrants:
        out["derived_from_quadrants"] = {
            name: {axis: summarise(v, len(seeds)) for axis, v in values.items()} for name, values in gathered.axes.items()
        }
    return out


# --- comparisons on the same folds -------------------------------------------


def mfcc_model(data: Dataset, *, multilabel: bool, grid, inner_folds) -> Callable:
    """The MFCC baseline on a fold: trainer.baseline's logistic regression
    (single-label, as in trainer.disambig); for multi-label data the same
    MFCC statistics through a sigmoid head with C chosen as the head's."""
    from trainer.baseline import fit_classifier

    def run_fold(train, test, seed, fold):
        if not multilabel:
            clf = fit_classifier(x=data.mfcc[train], y=data.classes[train], seed=seed)
            return clf.predict(data.mfcc[test])
        groups = [data.groups[i] for i in train]
        c, _ = choose_c(data.mfcc[train], data.y[train], groups, n_labels=len(data.labels), multilabel=True, hidden=0, grid=grid,
                        k=inner_folds, split_seed=(seed, fold))
        model = _fit(data.mfcc[train], data.y[train], len(data.labels), multilabel=True, hidden=0, c=c, seed=seed,
                     max_iter=500)
        return predict(model, data.mfcc[test])

    return run_fold


def cnn_model(data: Dataset, args, report_dir: Path, *, log=print) -> Callable:
    """The CNN + GRU of trainer.disambig (``--cnn-options``, default
    genre10-cnn's recipe) trained on the fold's training tracks, 10% of
    them held out for early stopping as that trainer does."""
    from trainer import disambig as cnn

    parser = argparse.ArgumentParser()
    cnn.add_arguments(parser)
    options = parser.parse_args(["--data", "-", *shlex.split(args.cnn_options)])
    options.run_dir = str(report_dir / "cnn")
    records = [Record(key=r.path, path=r.path, labels=r.labels, artist=r.artist, album=r.album) for r in data.records]
    features = {r.path: data.mels[r.path] for r in data.records}

    def run_fold(train, test, seed, fold):
        started = time.monotonic()
        rng = np.random.default_rng([seed, fold, 1])
        model, result = cnn.train_one(records, train, features, data.labels, data.mel_params, options, rng,
                                      name=f"seed{seed}-fold{fold}")
        probs = cnn.predict_records(model.cpu().eval(), records, test, features, data.mel_params)
        log(f"  cnn seed {seed} fold {fold}: best epoch {result.best_epoch}, {time.monotonic() - started:.0f} s")
        return probs.argmax(axis=1)

    return run_fold


# --- the command ------------------------------------------------------------


def parse_grid(text: str) -> list[float]:
    try:
        grid = sorted(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DatasetError(f"--c-grid: expected numbers separated by commas, got {text!r}") from None
    if not grid or min(grid) <= 0:
        raise DatasetError("--c-grid: needs positive numbers")
    return grid


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DatasetError(f"--seeds: expected integers separated by commas, got {text!r}") from None


def protocol_text(data: Dataset, args, seeds: Sequence[int], patches: int | str) -> str:
    grouping = (f"artist-disjoint (all tracks of an artist in one fold, {len(set(data.groups))} artists), "
                "stratified by label" if data.has_artists else
                "stratified by label; no artist information, so the folds are not artist-disjoint")
    return (f"{args.folds}-fold cross-validation, {grouping}, repeated with seeds {', '.join(map(str, seeds))}; "
            f"head input: mean embedding of the {patches} central 3 s patches; C chosen per fold by "
            f"{args.inner_folds}-fold CV (log-loss) on the training tracks only; every model is trained on "
            "the same training folds and scored on the same test folds")


def command_line() -> str:
    if sys.argv[1:2] == ["head"]:
        return "python -m trainer head " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return ""


def _load_data(args, *, log) -> tuple[Dataset, str]:
    """The dataset of ``args`` and its layout, with skipped and dropped
    tracks logged; ``--compare-cnn`` is turned off (and said) where the
    CNN + GRU cannot run: multi-label data or a layout without audio labels."""
    report = LoadReport()
    records, layout = load_records(args, report)
    for message in report.skipped:
        log(f"skipped: {message}")
    if args.compare_cnn and layout not in ("folders", "4q"):
        log("--compare-cnn: only for single-label audio datasets; ignored")
        args.compare_cnn = False
    if args.compare_cnn and args.multilabel:
        log("--compare-cnn: the CNN + GRU comparison is single-label only; ignored")
        args.compare_cnn = False
    data = build_dataset(records, args, log=log)
    for message in data.dropped:
        log(f"dropped: {message}")
    return data, layout


def evaluate(args, data: Dataset, x: np.ndarray, *, seeds: Sequence[int], grid: Sequence[float], patches: int,
             report_dir: Path, log) -> dict:
    """The cross-validated figures of the head (inputs ``x``) and of the
    comparison models on the same folds, with the protocol, the command and
    the data named; {} with ``--folds`` under 2. DatasetError when the
    artists (or tracks) cannot fill the folds."""
    groups = len(set(data.groups))
    if args.folds >= 2 and groups < args.folds:
        raise DatasetError(f"{groups} {'artists' if data.has_artists else 'tracks'} cannot fill {args.folds} folds: "
                           "pass fewer --folds (or --folds 0: no evaluation)")
    if args.folds < 2:
        return {}
    extra: dict[str, Callable] = {}
    if data.mfcc is not None:
        extra["mfcc_logreg"] = mfcc_model(data, multilabel=args.multilabel, grid=grid, inner_folds=args.inner_folds)
    if args.compare_cnn:
        extra["cnn_gru"] = cnn_model(data, args, report_dir, log=log)
    started = time.monotonic()
    evaluation = cross_validate(data, x, multilabel=args.multilabel, hidden=args.hidden, folds=args.folds,
                                seeds=seeds, grid=grid, inner_folds=args.inner_folds, extra=extra, log=log)
    evaluation = {
        "protocol": protocol_text(data, args, seeds, patches),
        "command": command_line(),
        "data": data_name(args),
        "tracks": len(data.records),
        "seconds": round(time.monotonic() - started, 1),
        **evaluation,
        "labels": data.labels,
    }
    if not data.has_artists:
        evaluation["caveat"] = ("no artist ids: folds are not artist-filtered, so the same artists can sit in "
                                "training and test folds (in GTZAN the clips of a genre often share artists); "
                                "the figures flatter every model")
    if extra.get("cnn_gru"):
        evaluation["cnn_gru_options"] = args.cnn_options
    return evaluation


def provenance_of(args, data: Dataset, *, layout: str, backbone: str, backbone_version: str, patches: int,
                  c: float, grid: Sequence[float], losses) -> dict:
    """What the bundle records of how its head was made: data, labels,
    backbone, input, the chosen C with the log-loss of each candidate, the
    command and the versions."""
    return {
        "data": data_name(args),
        "layout": layout,
        "labels_from": args.labels if layout == "4q" else args.field if layout == "beets" else layout,
        "tracks": len(data.records),
        "dropped_tracks": len(data.dropped),
        "label_counts": {label: int(n) for label, n in zip(data.labels, data.y.sum(axis=0))},
        "backbone": {"name": backbone, "version": backbone_version},
        "patches": patches,
        "input": f"mean of the {backbone} embedding over the {patches} central 3 s patches of each track",
        "c": c,
        "c_selection": {"grid": grid, "log_loss": losses, "folds": args.inner_folds},
        "command": command_line(),
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run(args, *, log=None) -> dict:
    """The command: load the data, cross-validate (``--folds``), fit the
    bundle's head on every track (C by CV on all of them), save the bundle
    and the report. Returns the provenance, the figures and the bundle path."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    seeds = parse_seeds(args.seeds)
    grid = parse_grid(args.c_grid)
    if args.hidden < 0:
        raise DatasetError("--hidden must be 0 (logistic regression) or a number of units")
    from tagcore import bundle as bundles

    backbone, tagging_patches, backbone_version = backbone_patches(args.backbone)
    patches = args.patches or tagging_patches
    data, layout = _load_data(args, log=log)
    task = default_task(args, layout)
    log(f"{len(data.records)} tracks, {len(data.labels)} labels ({layout} layout), backbone {backbone}, "
        f"{patches} patches per track")
    x = data.embeddings(patches)
    report_dir = Path(args.report_dir) if args.report_dir else Path("runs") / args.name
    report_dir.mkdir(parents=True, exist_ok=True)
    evaluation = evaluate(args, data, x, seeds=seeds, grid=grid, patches=patches, report_dir=report_dir, log=log)

    # The bundle's head: C by CV on all tracks, then fitted on all of them.
    y = data.y if args.multilabel else data.classes
    c, losses = choose_c(x, y, data.groups, n_labels=len(data.labels), multilabel=args.multilabel, hidden=args.hidden, grid=grid,
                         k=args.inner_folds, split_seed=seeds[0] if seeds else 0)
    final = _fit(x, y, len(data.labels), multilabel=args.multilabel, hidden=args.hidden, c=c,
                 seed=seeds[0] if seeds else 0, max_iter=500)
    config = head.Config(n_inputs=x.shape[1], n_labels=len(data.labels), hidden=args.hidden,
                         multilabel=args.multilabel, dropout=0.0)
    provenance = provenance_of(args, data, layout=layout, backbone=backbone, backbone_version=backbone_version,
                               patches=patches, c=c, grid=grid, losses=losses)
    bundle_dir = Path(args.out) if args.out else bundles.user_bundle_dir() / args.name
    bundles.save_bundle(
        bundle_dir, model=final, family=head.FAMILY, name=args.name, version=args.version, labels=data.labels,
        model_config=config.to_dict(), task=task, input={"kind": "backbone", "bundle": backbone},
        outputs=("scores",), provenance=provenance, metrics=evaluation,
    )
    from trainer.report import write_report

    written = write_report(
        report_dir,
        run_config={k: v for k, v in vars(args).items() if not callable(v)},
        metrics={**evaluation, "provenance": provenance, "bundle": str(bundle_dir)},
        history=[],
        labels=data.labels,
        confusion=np.array(evaluation["confusion_matrix"]) if "confusion_matrix" in evaluation else None,
        tag_embeddings=final.layers[-1].weight.detach().numpy(),
    )
    log(f"bundle written to {bundle_dir}\nreport written to {report_dir} ({', '.join(sorted(written))})")
    if evaluation:
        print(format_table(evaluation))
    return {"provenance": provenance, "metrics": evaluation, "bundle": str(bundle_dir)}


def data_name(args) -> str:
    """The data as the bundle records it: the folder or file name only."""
    source = args.beets_library or args.data
    name = Path(source).name or str(source)
    return f"{name} (beets field {args.field})" if args.beets_library else name


def format_table(evaluation: dict) -> str:
    """The CV figures as a Markdown table: mean ± std over all folds."""
    models = evaluation["models"]
    metric_names = list(next(iter(models.values())))
    lines = ["| model | " + " | ".join(metric_names) + " |", "| --- |" + " --- |" * len(metric_names)]
    for name, values in models.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]['mean']:.3f} ± {values[m]['std']:.3f}"
                                                for m in metric_names) + " |")
    for name, axes in evaluation.get("derived_from_quadrants", {}).items():
        lines.append(f"| {name}: valence / arousal accuracy | {axes['valence']['mean']:.3f} ± "
                     f"{axes['valence']['std']:.3f} | {axes['arousal']['mean']:.3f} ± {axes['arousal']['std']:.3f} |")
    return "\n".join(lines)
