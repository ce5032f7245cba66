"""``python -m trainer disambig``: train the seed-002 audio genre classifier.

Data: a folder of genre folders (GTZAN layout) or the MTG-Jamendo layout
(autotagging TSVs + audio tree). Steps:

1. load records and decode each track once into a log-mel matrix;
2. GTZAN layout: k-fold cross-validation (stratified; grouped by artist
   when artists are known), the CNN+GRU and the MFCC + logistic-regression
   baseline trained and tested on the same folds; MTG-Jamendo layout: the
   official train/validation/test split;
3. a final model trained on all training data, written as a bundle, with
   the evaluation figures in its config.json and in ``report.json``.

Within every training set, 10% (by group) is held out for early stopping
on the validation loss (section 2.3); the test fold is never seen in
training or model selection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tagcore import bundle as bundles
from tagcore.features import MelParams
from tagcore.families import disambig
from trainer import metrics, monolabel, splits
from trainer.baseline import fit_classifier, mfcc_statistics_from_logmel
from trainer.cache import CroppedFeatures, FeatureCache, collate, default_cache_root
from trainer.datasets import DatasetError, LoadReport, Record, gtzan, mtg_jamendo, resolve
from trainer.loop import add_loop_arguments, fit, loop_config, setup_distributed
from trainer.report import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset root (GTZAN-style genre folders or MTG-Jamendo TSVs)")
    parser.add_argument("--layout", choices=["auto", "gtzan", "jamendo"], default="auto")
    parser.add_argument("--audio-dir", help="MTG-Jamendo audio tree (default DATA/audio)")
    parser.add_argument("--category", default="genre", help="MTG-Jamendo category (genre, moodtheme, instrument, top50tags)")
    parser.add_argument("--split", type=int, default=0, help="MTG-Jamendo split number (0-4)")
    parser.add_argument("--name", default="genre-custom", help="bundle name")
    parser.add_argument("--version", default="1", help="bundle version")
    parser.add_argument("--bundle-dir", help="where to write the bundle (default: user data dir/bundles/NAME)")
    parser.add_argument("--report-dir", help="the run's report folder (default: runs/NAME)")
    parser.add_argument("--channels", default="64,128,256,512", help="conv widths (Table 1: 64,128,256,512)")
    parser.add_argument("--gru-hidden", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--train-seconds", type=float, default=0.0,
                        help="length of the random training crops in seconds (0: the full 30 s excerpt)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="decode at most this much of each track")
    parser.add_argument("--lr", type=float, default=1.0, help="Adadelta learning rate (Keras default 1.0)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds for the GTZAN layout (0: none)")
    parser.add_argument("--tag-cap", type=int, default=2000, help="per-tag cap of the monolabel scheme")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (feature cache)")
    parser.add_argument("--cache-dir", help="feature cache (default: the user cache dir)")
    add_loop_arguments(parser)


# --- data -------------------------------------------------------------------


def load_records(args) -> tuple[list[Record], str, LoadReport]:
    report = LoadReport()
    layout = args.layout
    if layout == "auto":
        name, _ = resolve(args.data, among=("mtg_jamendo", "gtzan"))
        layout = {"mtg_jamendo": "jamendo", "gtzan": "gtzan"}[name]
    if layout == "gtzan":
        records = gtzan.load(args.data, report=report)
    else:
        records = mtg_jamendo.load(
            args.data, category=args.category, split_number=args.split, audio_dir=args.audio_dir, report=report
        )
    return records, layout, report


def group_of(record: Record) -> str:
    """Sampling group: album, else artist, else the track itself."""
    return record.album or record.artist or record.key


def fold_group(record: Record) -> str:
    """Group kept on one side of the folds and hold-outs: artist, else
    album, else the track itself."""
    return record.artist or record.album or record.key


def stratified_folds(records: Sequence[Record], *, k: int, seed: int | Sequence[int]) -> list[np.ndarray]:
    """Test indices of ``k`` folds (:func:`trainer.splits.group_folds`):
    the records of a group (:func:`fold_group`) stay together, stratified
    by each record's first label."""
    return splits.group_folds(y=[r.labels[0] for r in records], groups=[fold_group(r) for r in records], k=k,
                              seed=seed)


def hold_out(indices: np.ndarray, records: Sequence[Record], *, fraction: float,
             seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation) with about ``fraction`` of
    them in validation, by whole groups, stratified by first label (a
    stratified :func:`trainer.splits.group_split`)."""
    chosen = [records[i] for i in indices]
    fit, val = splits.group_split(y=[r.labels[0] for r in chosen], groups=[fold_group(r) for r in chosen],
                                  shares=(1 - fraction, fraction), seed=seed)
    return indices[fit], indices[val]


# --- inputs -----------------------------------------------------------------


def crop(mel: np.ndarray, frames: int) -> np.ndarray:
    """The centred window of ``frames`` frames (a shorter matrix whole)."""
    start = max(0, (len(mel) - frames) // 2)
    return np.array(mel[start : start + frames], dtype=np.float32)  # a copy, out of the memmap


def centred_batches(samples, features, label_index, *, frames, batch_size):
    """(inputs (batch, frames, mels), targets (batch,)) of centred crops, in
    order; every input of a batch is cut to the batch's shortest."""
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        yield collate([(torch.from_numpy(crop(features[key], frames)), label_index[tag]) for key, tag in chunk])


def monolabel_samples(records: Sequence[Record], *, cap: int, rng) -> list[tuple[str, str]]:
    """(key, tag) pairs of section 2.2's scheme; balanced up to the largest
    drawn tag count, capped at ``cap`` (the paper upsamples every tag to
    2000; on small datasets that would only repeat clips)."""
    tracks = [monolabel.Track(key=r.key, labels=r.labels, group=group_of(r)) for r in records]
    drawn = monolabel.monolabel_sample(tracks, cap=cap, upsample_to=0, rng=rng)
    largest = max(Counter(tag for _, tag, _ in drawn).values())
    balanced = monolabel.monolabel_sample(tracks, cap=cap, upsample_to=min(cap, largest), rng=rng)
    return [(track.key, tag) for track, tag, _ in balanced]


# --- training and evaluation ------------------------------------------------


def model_config(args, n_labels: int) -> disambig.Config:
    channels = tuple(int(c) for c in args.channels.split(","))
    pools = disambig.Config().pools
    return disambig.Config(
        channels=channels, pools=pools[: len(channels)], gru_hidden=args.gru_hidden,
        dropout=args.dropout, n_labels=n_labels, tag_cap=args.tag_cap,
    )


def train_one(records, train_idx, features, labels, params, args, rng, *, name: str, val_idx=None):
    """Train a model on ``train_idx`` with the shared loop, stopping early on
    the validation loss of ``val_idx`` (default: 10% of ``train_idx``, by
    group, held out)."""
    if val_idx is None:
        fit_idx, val_idx = hold_out(train_idx, records, fraction=0.1, seed=int(rng.integers(2**31)))
    else:
        fit_idx = train_idx
    label_index = {tag: i for i, tag in enumerate(labels)}
    train_samples = monolabel_samples([records[i] for i in fit_idx], cap=args.tag_cap, rng=rng)
    val_samples = monolabel_samples([records[i] for i in val_idx], cap=args.tag_cap, rng=rng) if len(val_idx) else []
    frames = round(args.train_seconds * params.sample_rate / params.hop_length) if args.train_seconds else params.excerpt_frames
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)
    model = disambig.Model(model_config(args, len(labels)))
    optimizer = torch.optim.Adadelta(model.parameters(), lr=args.lr, rho=0.95, eps=1e-7)
    train_set = CroppedFeatures(train_samples, features, label_index, frames=frames, seed=seed)

    def evaluate(trained) -> dict:
        if not val_samples:
            return {"val_loss": float("nan")}
        device = next(trained.parameters()).device
        total = 0.0
        for x, y in centred_batches(val_samples, features, label_index, frames=params.excerpt_frames,
                                    batch_size=args.batch_size):
            total += disambig.loss(trained(x.to(device)), y.to(device)).item() * len(y)
        return {"val_loss": total / len(val_samples)}

    config = loop_config(args, seed=seed, name=name, monitor_available=bool(val_samples))
    result = fit(model, optimizer=optimizer, train_set=train_set, collate=collate, loss_fn=disambig.loss,
                 evaluate=evaluate, config=config)
    return model, result


@torch.no_grad()
def predict_records(model, records, indices, features, params, batch_size=16) -> np.ndarray:
    """Softmax outputs on the centred 30 s excerpt of each record, (n, n_labels)."""
    device = next(model.parameters()).device
    samples = [(records[i].key, records[i].labels[0]) for i in indices]
    label_index = {tag: 0 for _, tag in samples}  # targets are not used here
    out = [disambig.predict(model, x.to(device)).cpu().numpy()
           for x, _ in centred_batches(samples, features, label_index, frames=params.excerpt_frames,
                                       batch_size=batch_size)]
    return np.concatenate(out)


def classification_metrics(records, indices, probs, labels) -> dict:
    """Accuracy (argmax is one of the track's labels) and macro-F1 against
    the first label (single-label data: the label)."""
    label_index = {tag: i for i, tag in enumerate(labels)}
    pred = probs.argmax(1)
    hits = [labels[p] in records[i].labels for p, i in zip(pred, indices)]
    truth = [label_index[records[i].labels[0]] for i in indices]
    return {
        "accuracy": float(np.mean(hits)),
        "macro_f1": metrics.macro_f1(y_true=truth, y_pred=pred),
        "n": int(len(indices)),
    }


def baseline_predict(records, train_idx, test_idx, features, labels, params) -> np.ndarray:
    """MFCC-statistics + logistic regression: predicted class per test record."""
    label_index = {tag: i for i, tag in enumerate(labels)}

    def vec(i):
        return mfcc_statistics_from_logmel(crop(features[records[i].key], params.excerpt_frames), log_c=params.log_c)

    x_train = np.stack([vec(i) for i in train_idx])
    y_train = np.array([label_index[records[i].labels[0]] for i in train_idx])
    clf = fit_classifier(x=x_train, y=y_train)
    return clf.predict(np.stack([vec(i) for i in test_idx]))


def summarise(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "folds": [float(v) for v in arr]}


def load_features(records, params, args, place) -> tuple[list[Record], dict[str, np.ndarray], list[str]]:
    """Log-mel matrices of the records through the on-disk feature cache
    (decoded once, read back memory-mapped); failed records are dropped."""
    cache = FeatureCache(
        Path(args.cache_dir) if args.cache_dir else default_cache_root(),
        kind="logmel", params=params.to_dict(), excerpt={"max_seconds": args.max_seconds, "offset": "centre"},
    )
    if place.enabled and not place.is_main:
        torch.distributed.barrier()  # the main process fills the cache first
    by_path, failures = cache.build([r.path for r in records], workers=args.workers, progress=place.is_main)
    if place.enabled and place.is_main:
        torch.distributed.barrier()
    for message in failures:
        print(f"skipped: {message}", file=sys.stderr)
    kept = [r for r in records if r.path in by_path]
    return kept, {r.key: by_path[r.path] for r in kept}, failures


def gtzan_cross_validation(records, features, labels: list[str], params: MelParams, args, rng) -> dict:
    """``--folds``-fold CV stratified by genre: the model (early stopping on
    10% of each training fold) and the MFCC baseline on the same folds.
    Returns the figures (mean and spread per metric), the model's pooled
    confusion matrix and the labels. ``rng`` is shared with the caller's
    later training, so the draws stay in one stream."""
    label_index = {tag: i for i, tag in enumerate(labels)}
    model_scores = {"accuracy": [], "macro_f1": []}
    base_scores = {"accuracy": [], "macro_f1": []}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    all_idx = np.arange(len(records))
    for fold, test_idx in enumerate(stratified_folds(records, k=args.folds, seed=args.seed), start=1):
        train_idx = np.setdiff1d(all_idx, test_idx)
        model, result = train_one(records, train_idx, features, labels, params, args, rng,
                                  name=f"fold-{fold}")
        probs = predict_records(model, records, test_idx, features, params)
        scores = classification_metrics(records, test_idx, probs, labels)
        truth = [label_index[records[i].labels[0]] for i in test_idx]
        confusion += metrics.confusion_matrix(y_true=truth, y_pred=probs.argmax(1), n_classes=len(labels))
        base_pred = baseline_predict(records, train_idx, test_idx, features, labels, params)
        base = {"accuracy": metrics.accuracy(y_true=truth, y_pred=base_pred),
                "macro_f1": metrics.macro_f1(y_true=truth, y_pred=base_pred)}
        for key in model_scores:
            model_scores[key].append(scores[key])
            base_scores[key].append(base[key])
        print(f"fold {fold}: model acc {scores['accuracy']:.3f} f1 {scores['macro_f1']:.3f} | "
              f"baseline acc {base['accuracy']:.3f} f1 {base['macro_f1']:.3f} | best epoch "
              f"{result.best_epoch}", file=sys.stderr)
    evaluation = {
        "protocol": f"{args.folds}-fold cross-validation, stratified by genre, seed {args.seed}; "
                    "10% of each training fold held out for early stopping",
        "model": {k: summarise(v) for k, v in model_scores.items()},
        "baseline_mfcc_logreg": {k: summarise(v) for k, v in base_scores.items()},
        "confusion_matrix": confusion.tolist(),
        "labels": labels,
    }
    if not any(r.artist for r in records):
        evaluation["caveat"] = (
            "no artist ids: folds are not artist-filtered. In GTZAN the clips of a genre "
            "often share artists (the first ten of each genre largely do), so the same "
            "artists sit in training and test folds and the figures flatter every model."
        )
    return evaluation


def jamendo_evaluation(records, features, labels: list[str], params: MelParams, args, rng) -> tuple[dict, np.ndarray]:
    """Train on the official train split (its validation split stops
    training early) and score on the test split, touched only for the
    figures. Returns (figures, or {} without test tracks; the indices of
    train + validation, on which the final model is trained)."""
    split_idx = {s: np.array([i for i, r in enumerate(records) if r.split == s]) for s in mtg_jamendo.SPLITS}
    model, _ = train_one(records, split_idx["train"], features, labels, params, args, rng,
                         name="train-split", val_idx=split_idx["validation"])
    test_idx = split_idx["test"]
    evaluation = {}
    if len(test_idx):
        probs = predict_records(model, records, test_idx, features, params)
        evaluation = {"protocol": f"MTG-Jamendo split-{args.split} {args.category} test set",
                      "model": classification_metrics(records, test_idx, probs, labels)}
    return evaluation, np.concatenate([split_idx["train"], split_idx["validation"]])


def save_outputs(args, final, result, *, labels: list[str], params: MelParams, provenance: dict, evaluation: dict,
                 report_dir: Path) -> None:
    """The bundle (``--bundle-dir``, default the user bundle folder) and the
    report of the final model; the figures are printed."""
    bundle_dir = Path(args.bundle_dir) if args.bundle_dir else bundles.user_bundle_dir() / args.name
    config = model_config(args, len(labels))
    bundles.save_bundle(
        bundle_dir, model=final, family=disambig.FAMILY, name=args.name, version=args.version,
        labels=labels, model_config=config.to_dict(), features=params.to_dict(),
        provenance=provenance, metrics=evaluation,
    )
    embeddings = disambig.embedding_from_weights(final)
    written = write_report(
        report_dir,
        run_config={k: v for k, v in vars(args).items() if not callable(v)},
        metrics={**evaluation, "provenance": provenance, "bundle": str(bundle_dir)},
        history=result.history,
        labels=labels,
        confusion=np.array(evaluation["confusion_matrix"]) if "confusion_matrix" in evaluation else None,
        tag_embeddings=embeddings,
        label_similarity=disambig.cosine_similarity_matrix(embeddings),
    )
    print(f"bundle written to {bundle_dir}\nreport written to {report_dir} ({', '.join(sorted(written))})",
          file=sys.stderr)
    if evaluation.get("model"):
        print(json.dumps({k: v for k, v in evaluation.items() if k not in ("confusion_matrix", "labels")}, indent=2))


def run(args) -> dict:
    """The command: load the tracks and their log-mels, evaluate (GTZAN:
    cross-validation; MTG-Jamendo: the official split), train the final
    model on every (training) track, and on the main process save the
    bundle and the report. Returns the provenance and the figures."""
    place, device = setup_distributed(args.device)
    rng = np.random.default_rng(args.seed)
    params = MelParams()
    records, layout, load_report = load_records(args)
    for message in load_report.skipped:
        print(f"skipped: {message}", file=sys.stderr)
    print(f"{len(records)} tracks ({layout} layout), device {device}", file=sys.stderr)
    records, features, failures = load_features(records, params, args, place)
    labels = sorted({tag for r in records for tag in r.labels})
    if len(labels) < 2:
        raise DatasetError(f"{args.data}: need at least two labels, found {labels}")
    report_dir = Path(args.report_dir) if args.report_dir else Path("runs") / args.name
    args.run_dir = str(report_dir)
    if place.is_main and not args.resume:
        (report_dir / "log.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log

    evaluation: dict = {}
    train_idx = np.arange(len(records))
    if layout == "gtzan" and args.folds >= 2:
        evaluation = gtzan_cross_validation(records, features, labels, params, args, rng)
    elif layout == "jamendo":
        evaluation, train_idx = jamendo_evaluation(records, features, labels, params, args, rng)

    final, result = train_one(records, train_idx, features, labels, params, args, rng, name="final")
    final = final.cpu().eval()
    provenance = {
        "data": Path(args.data).name,
        "layout": layout,
        "tracks": len(records),
        "failed_tracks": len(failures),
        "label_counts": dict(Counter(tag for r in records for tag in r.labels)),
        "command": "python -m trainer disambig " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["disambig"] else "",
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "processes": place.world_size,
        "final_best_epoch": result.best_epoch,
        "seed": args.seed,
    }
    report = {"provenance": provenance, "metrics": evaluation}
    if place.is_main:
        save_outputs(args, final, result, labels=labels, params=params, provenance=provenance, evaluation=evaluation,
                     report_dir=report_dir)
    return report
