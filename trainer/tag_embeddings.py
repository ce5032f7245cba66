"""``python -m trainer tag-embeddings``: the four tag embeddings of the disambig paper
(section 2.4) and their cosine similarity matrices.

- f_w: the columns of the classifier's last-layer weights (no data needed);
- f_c: the columns of the output matrix P (held-out tracks x tags);
- f_m: the mean output over the held-out tracks annotated with each tag;
- f_dist: the columns of the binary held-out track x tag annotation matrix
  (no classifier).

``--data`` must hold tracks the bundle was *not* trained on (the paper uses
its 20 % artist-split test set): nothing here can check that, so the
provenance written beside the matrices records what was given. Tags of the
data outside the bundle's labels are ignored (counted). Each matrix is
written as ``OUT/f{w,c,m,dist}_tag_similarity.csv`` in the format of the
published Deezer files (tag names as header and index), which
``python -m trainer disambig-eval`` reads; a tag without held-out tracks
gets empty (NaN) cells in f_m and f_dist.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore.families import disambig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="held-out tracks: genre folders (GTZAN layout) or MTG-Jamendo TSVs")
    parser.add_argument("--bundle", help="a disambig (CNN+GRU) bundle; without it only f_dist is written")
    parser.add_argument("--out", required=True, help="folder for the similarity CSVs")
    parser.add_argument("--layout", choices=["auto", "gtzan", "jamendo"], default="auto")
    parser.add_argument("--audio-dir", help="MTG-Jamendo audio tree (default DATA/audio)")
    parser.add_argument("--category", default="genre")
    parser.add_argument("--split", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache-dir", help="feature cache (default: the user cache dir)")


def annotation_matrix(records_labels: Sequence[Sequence[str]], labels: Sequence[str]) -> tuple[np.ndarray, int]:
    """Binary (n_tracks, n_labels) matrix of the tracks' labels among
    ``labels``, and how many (track, tag) pairs fell outside them."""
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(records_labels), len(labels)), dtype=np.float64)
    outside = 0
    for row, tags in enumerate(records_labels):
        for tag in tags:
            if tag in position:
                matrix[row, position[tag]] = 1.0
            else:
                outside += 1
    return matrix, outside


def similarities(*, annotations: np.ndarray, probabilities: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The cosine similarity matrices (n_labels, n_labels) of the
    embeddings that the inputs allow: fw from ``weights`` (n_labels,
    hidden), fc and fm from ``probabilities`` (n_tracks, n_labels), fm and
    fdist from ``annotations`` (n_tracks, n_labels). Rows of a tag without
    annotated tracks are NaN in fm and fdist."""
    out: dict[str, np.ndarray] = {}
    present = annotations.sum(axis=0) > 0
    if weights is not None:
        out["fw"] = disambig.cosine_similarity_matrix(weights)
    if probabilities is not None:
        out["fc"] = disambig.cosine_similarity_matrix(disambig.embedding_from_output_columns(probabilities))
        fm = disambig.cosine_similarity_matrix(disambig.embedding_from_output_means(probabilities, annotations))
        fm[~present] = np.nan
        fm[:, ~present] = np.nan
        out["fm"] = fm
    fdist = disambig.cosine_similarity_matrix(disambig.embedding_from_cooccurrence(annotations))
    fdist[~present] = np.nan
    fdist[:, ~present] = np.nan
    out["fdist"] = fdist
    return out


def write_similarity_csv(path: Path, labels: Sequence[str], matrix: np.ndarray) -> None:
    """Square CSV, tag names as header and index, NaN as an empty cell;
    written to a temporary file then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", *labels])
        for label, row in zip(labels, matrix):
            writer.writerow([label, *("" if np.isnan(v) else f"{v:.6f}" for v in row)])
    os.replace(tmp, path)


def run(args) -> int:
    from tagcore.bundle import load_bundle
    from tagcore.features import MelParams
    from trainer import disambig as trainer_disambig
    from trainer.datasets import DatasetError

    records, layout, report = trainer_disambig.load_records(args)
    for message in report.skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if not records:
        raise DatasetError(f"{args.data}: no tracks")
    bundle = None
    if args.bundle:
        bundle = load_bundle(args.bundle)
        if bundle.family != disambig.FAMILY:
            raise DatasetError(f"{args.bundle}: a {bundle.family} bundle; tag-embeddings needs a disambig one")
        labels = bundle.labels
    else:
        labels = sorted({t for r in records for t in r.labels})
    probabilities = weights = None
    failures: list[str] = []
    if bundle is not None:
        params = bundle.features
        if not isinstance(params, MelParams):
            raise DatasetError(f"{args.bundle}: reads {type(params).__name__}, not a log-mel spectrogram")

        class Place:
            enabled = False
            is_main = True

        records, features, failures = trainer_disambig.load_features(records, params, args, Place())
        probabilities = trainer_disambig.predict_records(bundle.model, records, np.arange(len(records)), features, params)
        weights = disambig.embedding_from_weights(bundle.model)
    annotations, outside = annotation_matrix([r.labels for r in records], labels)
    mats = similarities(annotations=annotations, probabilities=probabilities, weights=weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, matrix in mats.items():
        write_similarity_csv(out / f"{name}_tag_similarity.csv", labels, matrix)
    provenance = {
        "command": "python -m trainer tag-embeddings " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["tag-embeddings"] else "",
        "data": Path(args.data).name,
        "layout": layout,
        "tracks": len(records),
        "failed_tracks": len(failures),
        "tags_outside_bundle": outside,
        "tracks_per_tag": dict(zip(labels, annotations.sum(axis=0).astype(int).tolist())),
        "bundle": None if bundle is None else {
            "name": bundle.name, "version": bundle.version,
            "trained_with": bundle.config.get("provenance", {}).get("command", ""),
            # trainer/disambig.py has one training scheme: section 2.2's.
            "training_scheme": "monolabel (the disambig paper, 2.2): one tag per album drawn inversely to its popularity, "
                               "tags capped at --tag-cap and upsampled, softmax outputs",
        },
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "f_c, f_m and f_dist must come from tracks the bundle was not trained on",
    }
    tmp = out / ".provenance.json.tmp"
    tmp.write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    os.replace(tmp, out / "provenance.json")
    print(f"{len(records)} tracks, {len(labels)} tags; wrote {', '.join(sorted(mats))} to {out}", file=sys.stderr)
    if probabilities is not None:
        hits = np.mean([labels[p] in r.labels for p, r in zip(probabilities.argmax(1), records)])
        print(f"held-out accuracy (argmax among the track's tags): {hits:.3f} on {len(records)} tracks", file=sys.stderr)
    return 0
