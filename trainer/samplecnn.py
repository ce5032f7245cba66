"""``python -m trainer samplecnn``: the sample-level CNN trained with
playlist-based tag propagation (the samplecnn paper).

Modes:

- ``--data DIR`` (a 4Q dataset, a folder of label folders, or a CSV
  ``path,labels[,artist]``) or ``--beets-library library.db --field mood``
  (the user's own tags): audio tracks with tags. Playlists (optional, any
  number): ``--playlists DIR`` (a folder of M3U/M3U8 files, such as the
  smartplaylist plugin writes), ``--m3u FILE``, ``--aotm FILE`` (AotM-2011
  JSON; entries matched by MSD track id to the audio file's stem, or by
  artist and title to beets items). Tracks in no playlist train on the plain
  loss. ``--init BUNDLE`` fine-tunes a samplecnn bundle (its convolutions;
  a new output layer when the labels differ).
  With ``--folds K`` it first cross-validates on artist-disjoint folds
  (trainer.head's splitting), comparing in the same folds the sample-level
  CNN, a logistic head on the musicnn-msd embedding (``--compare-head``)
  and the trivial majority / label-frequency baseline; then it trains on
  all tracks (10% of artists held out for early stopping) and writes a bundle.
- ``--spotify FILE``: the Spotify playlist experiment of
  :mod:`trainer.samplecnn_spotify` (an MLP over the 12 audio features).

Training follows section IV-A: SGD, momentum 0.9, learning rate 0.01,
divided by 5 whenever the validation loss rises; stopped when the
validation loss has not improved for 12 epochs (best weights kept). Each
epoch, each training track gives one random 59,049-sample window of its
decoded excerpt and a fresh walk draws its s'. The loop is the shared one
(:func:`trainer.loop.fit`), given the paper's batches and schedule by
:mod:`trainer.propagation_fit`.
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

from tagcore.families import samplecnn
from tagcore.features import WaveParams
from trainer import propagation as prop
from trainer import splits
from trainer.datasets import DatasetError, LoadReport, Record
from trainer.loop import FitResult
from trainer.propagation_fit import fit

SMALL_CHANNELS = "32,32,32,64,64,64,64,64,64,128"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a 4Q dataset, a folder of label folders, or a CSV path,labels[,artist]")
    source.add_argument("--beets-library", help="a beets library database (library.db): the user's tags")
    source.add_argument("--spotify", help="spotify_songs.csv(.gz): the Spotify playlist experiment (MLP on 12 features)")
    parser.add_argument("--field", default="mood", help="with --beets-library: the item field giving the tags")
    parser.add_argument("--music-dir", help="with --beets-library: the library directory, for relative paths")
    parser.add_argument("--labels", default="quadrant", choices=["quadrant", "moods", "genres"],
                        help="4Q layout: which labels")
    parser.add_argument("--playlists", action="append", default=[],
                        help="a folder of .m3u/.m3u8 playlists (repeatable)")
    parser.add_argument("--m3u", action="append", default=[], help="one .m3u/.m3u8 playlist (repeatable)")
    parser.add_argument("--aotm", help="AotM-2011 playlists JSON (.json or .json.gz)")
    parser.add_argument("--r", type=float, default=0.4, help="search range r of the walk (0: no propagation)")
    parser.add_argument("--weighting", choices=prop.WEIGHTINGS, default="eq4",
                        help="weight of the supportive term: eq4 = P(s'|s) as the paper, none = 1")
    parser.add_argument("--init", help="a samplecnn bundle to fine-tune (name or directory)")
    parser.add_argument("--channels", default=",".join(map(str, samplecnn.Config().channels)),
                        help=f"widths of the strided conv and the 9 blocks (CPU-sized: {SMALL_CHANNELS})")
    parser.add_argument("--embedding", type=int, default=512, help="width of the final 1x1 convolution")
    parser.add_argument("--patches", type=int, default=3,
                        help="centred 59,049-sample patches decoded per track (train windows; test average)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--decay", type=float, default=5.0, help="divide the learning rate by this when val loss rises")
    parser.add_argument("--epochs", type=int, default=200, help="most epochs")
    parser.add_argument("--patience", type=int, default=12, help="epochs without a better validation loss")
    parser.add_argument("--folds", type=int, default=0, help="artist-disjoint CV folds before the final fit (0: none)")
    parser.add_argument("--max-folds", type=int, default=0,
                        help="run only the first N folds of the CV plan (0: all), to fit a budget")
    parser.add_argument("--fold-numbers", default="",
                        help="run only these folds of each seed (e.g. 4,5), to finish a stopped run in parts; "
                             "every fold is seeded on its own, so a fold gives what it gives in the whole run")
    parser.add_argument("--seeds", default="0", help="seeds of the CV repetitions (and of the final fit: the first)")
    parser.add_argument("--top-tags", type=int, default=0,
                        help="keep the N most frequent tags only (the paper's top-50 / top-1000 vocabularies); 0: all")
    parser.add_argument("--no-cnn", action="store_true",
                        help="in the CV: only the baselines (trivial, --compare-head) on the same folds")
    parser.add_argument("--compare-head", action="store_true",
                        help="in the CV: a logistic head on the musicnn-msd embedding, same folds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else the CPU), cpu, cuda, cuda:1")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--name", help="bundle name (default: samplecnn-<task>)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--task", help="what the labels serve (mood, genre...); default from the data")
    parser.add_argument("--out", help="bundle directory (default: user data dir/bundles/NAME)")
    parser.add_argument("--no-bundle", action="store_true", help="evaluate only")
    parser.add_argument("--report-dir", help="report folder (default: runs/NAME)")
    parser.add_argument("--cache-dir", help="cache of decoded excerpts and backbone outputs")
    # Spotify experiment (see trainer.samplecnn_spotify)
    parser.add_argument("--r-grid", default="0,0.1,0.2,0.4,0.6,0.8", help="--spotify: search ranges swept")
    parser.add_argument("--control-r", default="",
                        help="--spotify: r values (of --r-grid) of the shuffled-playlist control; default every r")
    parser.add_argument("--keep-tags", default="1.0,0.3",
                        help="--spotify: fractions of training (song, tag) links kept (1: the data as is)")
    parser.add_argument("--hidden", type=int, default=128, help="--spotify: MLP hidden units (two layers)")
    parser.add_argument("--bucket", type=int, default=6, help="--spotify: tags per popularity bucket (Figure 5)")
    parser.add_argument("--summary-only", action="store_true",
                        help="--spotify: train nothing; summarise and plot the runs in --report-dir/results.json")


# --- audio data ---------------------------------------------------------------


@dataclass
class AudioData:
    """Tracks with decoded excerpts and tags. ``audio`` (n, patches,
    samples) float16; ``counts`` patches per track; ``y`` (n, tags) bool."""

    records: list[Record]
    labels: list[str]
    y: np.ndarray
    audio: np.ndarray
    counts: np.ndarray
    groups: list[str]
    has_artists: bool
    titles: list[tuple[str, str]] = field(default_factory=list)  # (artist, title), lower case, where known


def window_inputs(data: AudioData, samples: int) -> Callable:
    """inputs(ids, rng): one random ``samples`` window per track, anywhere
    in its decoded excerpt (the patches are contiguous)."""

    def inputs(ids, rng):
        out = np.empty((len(ids), samples), np.float32)
        for row, i in enumerate(ids):
            flat = data.audio[i, : data.counts[i]].reshape(-1)
            start = int(rng.integers(0, len(flat) - samples + 1))
            out[row] = flat[start : start + samples]
        return torch.from_numpy(out)

    return inputs


@torch.inference_mode()
def predict_tracks(model: samplecnn.Model, data: AudioData, ids: np.ndarray, *, chunk: int = 16) -> np.ndarray:
    """(len(ids), tags): sigmoid averaged over each track's patches."""
    model.eval()
    out = np.zeros((len(ids), data.y.shape[1]), np.float32)
    for row, i in enumerate(ids):
        x = torch.from_numpy(data.audio[i, : data.counts[i]].astype(np.float32)).to(_device(model))
        out[row] = torch.cat([samplecnn.predict(model, x[s : s + chunk]) for s in range(0, len(x), chunk)]).mean(0).cpu().numpy()
    return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def val_loss_fn(data: AudioData, ids: np.ndarray) -> Callable:
    """Plain BCE over every patch of the tracks ``ids``."""

    @torch.inference_mode()
    def value(model):
        model.eval()
        total, count = 0.0, 0
        for i in ids:
            x = torch.from_numpy(data.audio[i, : data.counts[i]].astype(np.float32)).to(_device(model))
            y = torch.from_numpy(np.repeat(data.y[i : i + 1].astype(np.float32), len(x), axis=0)).to(x.device)
            total += float(samplecnn.loss(model(x), y)) * len(x)
            count += len(x)
        return total / max(count, 1)

    return value


def load_audio_data(args, *, log=print) -> tuple[AudioData, str, LoadReport]:
    """Records of ``--data``/``--beets-library`` with their decoded
    excerpts; tracks that fail to decode are dropped and reported."""
    from trainer import head as head_trainer
    from trainer.waveforms import waveform_excerpts

    report = LoadReport()
    head_args = argparse.Namespace(beets_library=args.beets_library, data=args.data, field=args.field,
                                   music_dir=args.music_dir, labels=args.labels,
                                   plugin_labels=getattr(args, "plugin_labels", False))
    records, layout = head_trainer.load_records(head_args, report)
    titles = [("", "")] * len(records)
    if layout == "beets":
        from trainer.datasets import beets_library

        items = {str(item.id): item for item in beets_library.load(args.beets_library, music_dir=args.music_dir)}
        titles = [(items[r.key].artist.lower(), items[r.key].title.lower()) if r.key in items else ("", "")
                  for r in records]
    params = WaveParams(patches=args.patches)
    cache = Path(args.cache_dir) / "waveforms" if args.cache_dir else None
    waves = waveform_excerpts([r.path for r in records], params=params, workers=args.workers, cache_dir=cache)
    keep = [i for i in range(len(records)) if waves.counts[i] > 0]
    for i, message in sorted(waves.errors.items()):
        report.skip(records[i].path, message)
    records = [records[i] for i in keep]
    if args.top_tags:
        counts = Counter(t for r in records for t in r.labels)
        top = {t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: args.top_tags]}
        kept = [Record(key=r.key, path=r.path, labels=tuple(t for t in r.labels if t in top), artist=r.artist,
                       album=r.album, split=r.split) for r in records]
        keep = [i for i, r in zip(keep, kept) if r.labels]
        for r in kept:
            if not r.labels:
                report.skip(r.path, f"none of its tags is among the {args.top_tags} most frequent")
        records = [r for r in kept if r.labels]
    labels = sorted({t for r in records for t in r.labels})
    if len(labels) < 2:
        raise DatasetError(f"need at least two labels, found {labels}")
    column = {t: j for j, t in enumerate(labels)}
    y = np.zeros((len(records), len(labels)), bool)
    for i, r in enumerate(records):
        y[i, [column[t] for t in r.labels]] = True
    has_artists = any(r.artist for r in records)
    groups = [(r.artist or r.key) if has_artists else r.key for r in records]
    data = AudioData(records, labels, y, waves.audio[keep], waves.counts[keep], groups, has_artists,
                     [titles[i] for i in keep])
    return data, layout, report


# --- playlists ----------------------------------------------------------------


@dataclass
class PlaylistSet:
    """Playlists as lists of dataset track ids, with what was left out."""

    names: list[str]
    tracks: list[list[int]]
    missing_files: int = 0
    not_in_library: int = 0
    unmatched: int = 0
    messages: list[str] = field(default_factory=list)


def read_playlists(data: AudioData, args) -> PlaylistSet:
    """The playlists of ``--playlists``/``--m3u``/``--aotm`` over the
    tracks of ``data``. M3U entries are matched by real path; an entry whose
    file does not exist, or exists but is not a track of the data, is
    counted (and the first few named); AotM entries are matched by MSD id
    (the audio file's stem) or by artist and title (beets items)."""
    from trainer.datasets import aotm2011, m3u

    result = PlaylistSet([], [])
    by_path = {os.path.realpath(r.path): i for i, r in enumerate(data.records)}
    report = LoadReport()
    lists = []
    for folder in args.playlists:
        lists += m3u.load_folder(folder, report=report)
    for path in args.m3u:
        lists.append(m3u.load(path, report=report))
    for playlist in lists:
        ids = []
        for entry in playlist.entries:
            if m3u.URL.match(entry.path):
                result.not_in_library += 1
                continue
            real = os.path.realpath(entry.path)
            if real in by_path:
                ids.append(by_path[real])
            elif not os.path.exists(entry.path):
                result.missing_files += 1
                if result.missing_files <= 5:
                    result.messages.append(f"{playlist.key}: no such file {entry.path}")
            else:
                result.not_in_library += 1
                if result.not_in_library <= 5:
                    result.messages.append(f"{playlist.key}: {entry.path} is not among the tracks")
        result.names.append(playlist.name)
        result.tracks.append(ids)
    if args.aotm:
        by_stem = {Path(r.path).stem.upper(): i for i, r in enumerate(data.records)}
        by_title = {t: i for i, t in enumerate(data.titles) if t != ("", "")}
        for playlist in aotm2011.load(args.aotm, report=report):
            ids = []
            for ref in playlist.tracks:
                i = by_stem.get((ref.msd_id or "").upper())
                if i is None:
                    i = by_title.get((ref.artist.lower(), ref.title.lower()))
                if i is None:
                    result.unmatched += 1
                else:
                    ids.append(i)
            result.names.append(playlist.name or f"mix {playlist.key}")
            result.tracks.append(ids)
    result.messages += report.skipped[:20]
    return result


def training_index(playlists: PlaylistSet | None, n: int, train: np.ndarray) -> prop.PlaylistIndex | None:
    """The playlist index over dataset ids restricted to the ``train``
    tracks (others' tags are unknown at training time); None without
    playlists."""
    if playlists is None or not playlists.tracks:
        return None
    allowed = set(np.asarray(train).tolist())
    lists = [[t for t in p if t in allowed] for p in playlists.tracks]
    return prop.build_index(lists, keys=list(range(n)), names=playlists.names)


# --- cross-validation -----------------------------------------------------------


def split_validation(data_groups: Sequence[str], y: np.ndarray, ids: np.ndarray, *, seed: int,
                     share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) of ``ids``: about ``share`` of them held out by
    whole groups (artists), stratified by label (a stratified
    :func:`trainer.splits.group_split`; with fewer than 1/share artists,
    one fold of as many as there are)."""
    groups = [data_groups[i] for i in ids]
    if len(set(groups)) < 2:
        raise DatasetError("one artist (or one track) only: nothing to hold out for validation")
    train, val = splits.group_split(y=y[ids], groups=groups, shares=(1 - share, share), seed=(seed, 7))
    return ids[train], ids[val]


def choose_device(args) -> str:
    """``--device`` as the shared loop reads it (trainer.loop.choose_device:
    ``auto`` is CUDA, then Apple MPS, then the CPU)."""
    from trainer.loop import choose_device as shared

    return str(shared(getattr(args, "device", "auto") or "auto"))


def model_config(args, n_labels: int) -> samplecnn.Config:
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise DatasetError(f"--channels: expected integers separated by commas, got {args.channels!r}") from None
    return samplecnn.Config(channels=channels, embedding=args.embedding, n_labels=n_labels)


def train_one(data: AudioData, train: np.ndarray, val: np.ndarray, args, *, seed: int,
              playlists: PlaylistSet | None, init: dict | None = None, log=print) -> tuple[samplecnn.Model, FitResult]:
    config = model_config(args, len(data.labels))
    torch.manual_seed(seed)
    model = samplecnn.Model(config)
    if init is not None:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in init.items() if k in own and own[k].shape == v.shape}, strict=False)
    index = training_index(playlists, len(data.records), train)
    result = fit(model, train=train, tags=data.y, inputs=window_inputs(data, config.input_samples),
                 val_loss=val_loss_fn(data, val), index=index, r=args.r, weighting=args.weighting,
                 epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                 momentum=args.momentum, decay=args.decay, seed=seed, device=choose_device(args), log=log)
    return model, result


def fold_scores(y: np.ndarray, probs: np.ndarray, *, single: bool) -> dict:
    """Single-label: accuracy and macro-F1 of the argmax (and the
    section IV-C figures); multi-label: the section IV-C figures."""
    from trainer import metrics

    out = {k: v for k, v in prop.evaluate(y, probs).items() if not k.startswith("per_tag")}
    if single:
        truth, predicted = y.argmax(1), probs.argmax(1)
        out = {"accuracy": metrics.accuracy(y_true=truth, y_pred=predicted),
               "macro_f1": metrics.macro_f1(y_true=truth, y_pred=predicted), **out}
    return out


def _cnn_fold(data: AudioData, args, train: np.ndarray, val: np.ndarray, test: np.ndarray, *, seed: int,
              playlists: PlaylistSet | None, single: bool, log) -> tuple[dict, dict, dict | None]:
    """The sample-level CNN on one fold (and, with playlists and r > 0, the
    same fold without propagation). Returns (scores per model, the fit's
    record without seed and fold, per-tag figures with and without
    propagation or None)."""
    model, result = train_one(data, train, val, args, seed=seed, playlists=playlists, log=log)
    fit = {"best_epoch": result.best_epoch, "epochs": len(result.history), "seconds": round(result.seconds, 1),
           "history": result.history}
    probs = predict_tracks(model, data, test)
    found = {"samplecnn": fold_scores(data.y[test], probs, single=single)}
    per_tag = None
    if playlists is not None and args.r > 0:  # the same fold without propagation
        plain = argparse.Namespace(**{**vars(args), "r": 0.0})
        base_model, _ = train_one(data, train, val, plain, seed=seed, playlists=None, log=log)
        base_probs = predict_tracks(base_model, data, test)
        found["samplecnn_r0"] = fold_scores(data.y[test], base_probs, single=single)
        with_p, without = prop.evaluate(data.y[test], probs), prop.evaluate(data.y[test], base_probs)
        per_tag = {"popularity": data.y[train].sum(0).tolist(),
                   **{f"{k}_{name}": v.tolist() for name, figures in (("r", with_p), ("r0", without))
                      for k, v in figures.items() if k.startswith("per_tag")}}
    return found, fit, per_tag


def _head_folds(data: AudioData, args, plan, *, single: bool, record, log) -> None:
    """``--compare-head``: a logistic head on musicnn-msd (C by 3-fold CV on
    the fold's training tracks) on each fold of ``plan``, passed to ``record``."""
    from trainer import head as head_trainer
    from trainer.embeddings import backbone_outputs

    everything = np.arange(len(data.records))
    cache = Path(args.cache_dir) / "backbone-outputs" if args.cache_dir else None
    outputs = backbone_outputs([r.path for r in data.records], bundles=["musicnn-msd", "musicnn-mtt"],
                               patches=10, workers=args.workers, cache_dir=cache)
    _, tagging_patches, _ = head_trainer.backbone_patches("musicnn-msd")
    head_x = outputs["musicnn-msd"].track_embeddings(patches=tagging_patches)
    head_ok = outputs["musicnn-msd"].counts > 0
    for seed, number, test in plan:
        rest = np.setdiff1d(everything, test)
        fit_rows = rest[head_ok[rest]]
        y_fit = data.y[fit_rows].argmax(1) if single else data.y[fit_rows]
        groups = [data.groups[i] for i in fit_rows]
        c, _ = head_trainer.choose_c(head_x[fit_rows], y_fit, groups, n_labels=len(data.labels),
                                     multilabel=not single, hidden=0, grid=head_trainer.C_GRID, k=3,
                                     split_seed=(seed, number), seed=seed)
        head_model = head_trainer.fit_head(head_x[fit_rows], y_fit, n_labels=len(data.labels),
                                           multilabel=not single, hidden=0, c=c, seed=seed, max_iter=500)
        probs = head_trainer.predict(head_model, np.nan_to_num(head_x[test]))
        log(f"seed {seed} fold {number}: musicnn-msd head, C {c:g}")
        record({"musicnn_msd_head": fold_scores(data.y[test], probs, single=single)})


def _popularity_buckets(per_tag: list[dict], *, bucket: int) -> dict:
    """Per metric (map, auc): the relative improvement of propagation over
    r = 0 by tag-popularity bucket, from the folds' per-tag figures."""
    buckets = {}
    popularity = np.mean([f["popularity"] for f in per_tag], axis=0)
    for metric in ("map", "auc"):
        starts, gains = prop.bucket_improvement(np.nanmean([f[f"per_tag_{metric}_r0"] for f in per_tag], axis=0),
                                                np.nanmean([f[f"per_tag_{metric}_r"] for f in per_tag], axis=0),
                                                popularity, bucket=bucket)
        buckets[metric] = {"first_rank": starts.tolist(), "relative_improvement": gains.tolist()}
    return buckets


def cross_validate(data: AudioData, args, *, playlists: PlaylistSet | None, seeds: Sequence[int],
                   log=print) -> dict:
    """Artist-disjoint k-fold CV (trainer.splits.group_folds): the
    sample-level CNN, the trivial baseline and (``--compare-head``) a
    logistic head on musicnn-msd, on the same folds."""
    single = bool((data.y.sum(axis=1) == 1).all())
    scores: dict[str, dict[str, list[float]]] = {}
    fits = []
    everything = np.arange(len(data.records))
    per_tag: list[dict] = []
    plan = [(seed, number, test) for seed in seeds for number, test in enumerate(
        splits.group_folds(y=data.y, groups=data.groups, k=args.folds, seed=seed), start=1)]
    wanted = parse_fold_numbers(getattr(args, "fold_numbers", ""), k=args.folds)
    if wanted:
        plan = [step for step in plan if step[1] in wanted]
    if getattr(args, "max_folds", 0):
        plan = plan[: args.max_folds]

    def record(found):
        for name, values in found.items():
            for metric, value in values.items():
                scores.setdefault(name, {}).setdefault(metric, []).append(float(value))
        log("  " + " | ".join(f"{name} " + " ".join(f"{m} {v:.3f}" for m, v in values.items())
                              for name, values in found.items()))

    for seed, number, test in plan:
        rest = np.setdiff1d(everything, test)
        # The training label frequencies, for every track.
        trivial = fold_scores(data.y[test], np.tile(data.y[rest].mean(axis=0), (len(test), 1)), single=single)
        if getattr(args, "no_cnn", False):
            record({"trivial": trivial})
            continue
        train, val = split_validation(data.groups, data.y, rest, seed=seed)
        log(f"seed {seed} fold {number}: {len(train)} train, {len(val)} validation, {len(test)} test tracks")
        found, fit, fold_per_tag = _cnn_fold(data, args, train, val, test, seed=seed, playlists=playlists,
                                             single=single, log=log)
        fits.append({"seed": seed, "fold": number, **fit})
        if fold_per_tag is not None:
            per_tag.append(fold_per_tag)
        record({**found, "trivial": trivial})
    if args.compare_head:
        # After the CNN folds: the backbone outputs are usually cached by then.
        _head_folds(data, args, plan, single=single, record=record, log=log)
    summary = {name: {m: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                          "folds": v} for m, v in values.items()} for name, values in scores.items()}
    out = {"models": summary, "fits": fits, "single_label": single}
    if per_tag:
        out["per_tag"] = per_tag
        out["buckets"] = _popularity_buckets(per_tag, bucket=args.bucket)
    return out


# --- the command --------------------------------------------------------------------


def command_line() -> str:
    """The command as run (``python -m trainer samplecnn ...``, also when
    called by its alias ``propagation``); "" when not run from the shell."""
    if sys.argv[1:2] in (["samplecnn"], ["propagation"]):
        return "python -m trainer samplecnn " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return ""


def parse_fold_numbers(text: str, *, k: int) -> set[int]:
    """The fold numbers (1 to ``k``) named in ``text`` ("4,5"); an empty
    set for "". DatasetError for anything else."""
    try:
        numbers = {int(v) for v in (text or "").split(",") if v.strip()}
    except ValueError:
        raise DatasetError(f"--fold-numbers: expected integers separated by commas, got {text!r}") from None
    outside = sorted(n for n in numbers if not 1 <= n <= k)
    if outside:
        raise DatasetError(f"--fold-numbers: {outside} not among the folds 1 to {k}")
    return numbers


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DatasetError(f"--seeds: expected integers separated by commas, got {text!r}") from None


def _playlists_of(data: AudioData, args, *, log) -> PlaylistSet | None:
    """The playlists of ``--playlists``/``--m3u``/``--aotm`` matched to the
    tracks, with what was left out logged; None without any."""
    if not (args.playlists or args.m3u or args.aotm):
        return None
    playlists = read_playlists(data, args)
    covered = len({t for p in playlists.tracks for t in p})
    log(f"playlists: {len(playlists.tracks)} read, {covered} of {len(data.records)} tracks in one or more; "
        f"entries left out: {playlists.missing_files} missing files, {playlists.not_in_library} not among the "
        f"tracks, {playlists.unmatched} unmatched AotM entries")
    for message in playlists.messages:
        log(f"  {message}")
    index = training_index(playlists, len(data.records), np.arange(len(data.records)))
    log(f"  indexed: {index.n_playlists} playlists of two or more tracks; dropped {index.dropped['duplicates']} "
        f"repeated entries and {index.dropped['short']} playlists of fewer than two tracks")
    return playlists


def _initial_weights(args, data: AudioData, *, log) -> tuple[dict | None, str | None]:
    """(state dict, "name version") of the ``--init`` bundle, or (None,
    None). Its output layer is dropped when its labels differ; ``args``
    takes the bundle's channels and embedding size. DatasetError when the
    bundle is not a samplecnn one."""
    if not args.init:
        return None, None
    from tagcore.bundle import load_bundle

    bundle = load_bundle(args.init)
    if bundle.family != samplecnn.FAMILY:
        raise DatasetError(f"--init {args.init}: a {bundle.family} bundle, not a samplecnn one")
    init_state = bundle.model.state_dict()
    init_name = f"{bundle.name} {bundle.version}"
    if bundle.labels != data.labels:
        init_state = {k: v for k, v in init_state.items() if not k.startswith("dense.")}
        log(f"--init {init_name}: labels differ, a new output layer is trained")
    args.channels = ",".join(map(str, bundle.model.config.channels))
    args.embedding = bundle.model.config.embedding
    return init_state, init_name


def _evaluate(data: AudioData, args, *, playlists: PlaylistSet | None, seeds: Sequence[int], report_dir: Path,
              log) -> dict:
    """With ``--folds`` 2 or more: the cross-validated figures, written to
    cv.json (and popularity.png with playlists) and printed; else {}."""
    if args.folds < 2:
        return {}
    started = time.monotonic()
    evaluation = cross_validate(data, args, playlists=playlists, seeds=seeds, log=log)
    evaluation.update(command=command_line(), seconds=round(time.monotonic() - started, 1),
                      protocol=(f"{args.folds}-fold cross-validation, artist-disjoint (trainer.splits.group_folds), "
                                f"seeds {seeds}" + (f", first {args.max_folds} folds only" if args.max_folds else "")
                                + (f", folds {args.fold_numbers} only" if getattr(args, "fold_numbers", "") else "")
                                + "; sample-level CNN trained on the training folds with 10% of their "
                                "artists held out for early stopping; every model scored on the same test folds"),
                      tracks=len(data.records), labels=data.labels)
    from trainer.report import write_json

    write_json(report_dir / "cv.json", evaluation)
    if "buckets" in evaluation:
        popularity_figure(evaluation["buckets"], report_dir / "popularity.png", bucket=args.bucket, r=args.r)
    print(format_table(evaluation))
    return evaluation


def _fit_and_save(data: AudioData, args, *, layout: str, task: str, name: str, seed: int,
                  playlists: PlaylistSet | None, init: tuple[dict | None, str | None], evaluation: dict,
                  report_dir: Path, log) -> Path:
    """The bundle's model, trained on every track (10% of the artists held
    out for early stopping), saved as a bundle with its provenance and the
    figures, and the run's report. Returns the bundle folder."""
    init_state, init_name = init
    train, val = split_validation(data.groups, data.y, np.arange(len(data.records)), seed=seed)
    log(f"final fit: {len(train)} train, {len(val)} validation tracks")
    model, fitted = train_one(data, train, val, args, seed=seed, playlists=playlists, init=init_state, log=log)
    from tagcore import bundle as bundles

    bundle_dir = Path(args.out) if args.out else bundles.user_bundle_dir() / name
    provenance = {
        "data": Path(args.beets_library or args.data).name, "layout": layout, "tracks": len(data.records),
        "label_counts": {l: int(n) for l, n in zip(data.labels, data.y.sum(0))},
        "playlists": len(playlists.tracks) if playlists else 0, "r": args.r, "weighting": args.weighting,
        "init": init_name, "best_epoch": fitted.best_epoch, "epochs": len(fitted.history),
        "validation_loss": fitted.best_value, "command": command_line(),
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(),
    }
    bundles.save_bundle(bundle_dir, model=model, family=samplecnn.FAMILY, name=name, version=args.version,
                        labels=data.labels, model_config=model.config.to_dict(), task=task,
                        input={"kind": "audio", "feature": {"kind": "waveform",
                                                            **WaveParams(patches=args.patches).to_dict()}},
                        outputs=("scores", "embedding"), embedding_dim=model.config.embedding,
                        provenance=provenance, metrics=evaluation)
    from trainer.report import write_report

    write_report(report_dir, run_config={k: v for k, v in vars(args).items() if not callable(v)},
                 metrics={**evaluation, "provenance": provenance, "bundle": str(bundle_dir)},
                 history=fitted.history, labels=data.labels)
    log(f"bundle written to {bundle_dir}; report in {report_dir}")
    return bundle_dir


def run(args, *, log=None) -> dict:
    """The command: ``--spotify`` runs trainer.samplecnn_spotify; else load
    the tracks (and playlists), cross-validate (``--folds``) and, unless
    ``--no-bundle``, train and save the bundle's model."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if args.spotify:
        from trainer import samplecnn_spotify

        return samplecnn_spotify.run(args, log=log, command=command_line())
    if not 0.0 <= args.r <= 1.0:
        raise DatasetError(f"--r must be in [0, 1], not {args.r}")
    torch.set_num_threads(max(1, args.threads))
    seeds = parse_seeds(args.seeds) or [0]
    parse_fold_numbers(getattr(args, "fold_numbers", ""), k=args.folds)  # a bad list stops before the decoding
    data, layout, report = load_audio_data(args, log=log)
    for message in report.skipped[:20]:
        log(f"skipped: {message}")
    if len(report.skipped) > 20:
        log(f"skipped: ... {len(report.skipped) - 20} more")
    task = args.task or ("mood" if layout == "4q" and args.labels != "genres" else
                         args.field if layout == "beets" else "genre")
    name = args.name or f"samplecnn-{task}"
    playlists = _playlists_of(data, args, log=log)
    log(f"{len(data.records)} tracks, {len(data.labels)} labels ({layout}), r {args.r}, weighting {args.weighting}")
    report_dir = Path(args.report_dir) if args.report_dir else Path("runs") / name
    report_dir.mkdir(parents=True, exist_ok=True)
    init = _initial_weights(args, data, log=log)
    evaluation = _evaluate(data, args, playlists=playlists, seeds=seeds, report_dir=report_dir, log=log)
    result = {"metrics": evaluation}
    if not args.no_bundle:
        result["bundle"] = str(_fit_and_save(data, args, layout=layout, task=task, name=name, seed=seeds[0],
                                             playlists=playlists, init=init, evaluation=evaluation,
                                             report_dir=report_dir, log=log))
    return result


def format_table(evaluation: dict) -> str:
    models = evaluation["models"]
    names = list(next(iter(models.values())))
    lines = ["| model | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for model, values in models.items():
        lines.append(f"| {model} | " + " | ".join(f"{values[m]['mean']:.3f} ± {values[m]['std']:.3f}"
                                                 for m in names) + " |")
    return "\n".join(lines)


def popularity_figure(buckets: dict, path: Path, *, bucket: int, r: float) -> str:
    """Figure 5: relative retrieval improvement (MAP, AUC) of r over r = 0
    per tag-popularity bucket (``buckets`` as in the evaluation), drawn by
    :func:`trainer.report.popularity_gain_figure`; the path or why not (a
    figure never stops the run)."""
    from trainer.report import popularity_gain_figure, write_figure

    def make():
        panels = [{"title": f"retrieval {metric.upper()}: r = {r:g} vs r = 0",
                   "starts": buckets[metric]["first_rank"],
                   "labels": [f"{s}-{s + bucket - 1}" for s in buckets[metric]["first_rank"]],
                   "gain": 100 * np.array(buckets[metric]["relative_improvement"], float)}
                  for metric in ("map", "auc")]
        return popularity_gain_figure([panels], xlabel=f"tag popularity rank (buckets of {bucket})")

    return write_figure(path, make, name="popularity")
