"""``python -m trainer tag-dedup``: the disambig paper's deduplication experiment
(section 3.2) on real multi-label audio, with a head on a backbone's
embedding as the classifier.

Data: the 4Q emotion dataset (``--data``; 900 clips, 662 artists, 21
AllMusic genres per clip, multi-label). Per seed:

1. artificial duplication (:func:`trainer.disambig_eval.duplicate_split`):
   artists dealt into two halves, every genre of a half-1 clip becomes
   ``GENRE_1``, of a half-2 clip ``GENRE_2``;
2. artist-level split (:func:`trainer.splits.group_split`): about 80 % of
   the clips, by whole artists, train the classifier, the other clips
   (``--test-fraction``, 20 %) are the held-out tracks of section 2.4;
3. classifier: logistic regression on the backbone's track embedding
   (``--backbone``, mean of the centred patches), trained either with the
   monolabel scheme of section 2.2 (one tag per artist drawn inversely to
   its popularity, capped at 2000 and balanced by repetition) or, for
   comparison, multi-label (one sigmoid per tag, binary cross-entropy);
4. f_w (the weights), f_c and f_m (softmax / sigmoid outputs on the
   held-out clips) and f_dist (held-out annotations); each tag retrieves its
   twin among all other tags (:func:`trainer.disambig_eval.deduplication_scores`).

f_dist between the two systems is 0 by construction (no clip carries tags
of both), so its figures are chance: the paper's point that only audio can
link disjoint tag systems. Tags whose twin has no training clip are left
out of the ranking for that seed.

Deviation from the paper: the classifier is a logistic regression on a
pretrained embedding, not the CNN+GRU trained from the spectrogram, and
the data are 900 clips, not 170,000 tracks.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from tagcore.families import disambig
from trainer import disambig_eval as E
from trainer import monolabel
from trainer.report import write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="4Q emotion dataset folder (mood_4q)")
    parser.add_argument("--features", choices=["mfcc", "backbone"], default="mfcc",
                        help="track vector: MFCC statistics of the centred 30 s log-mel (cheap), or a backbone's embedding")
    parser.add_argument("--backbone", default="musicnn-msd", help="embedding bundle (with --features backbone)")
    parser.add_argument("--cache-dir", help="log-mel feature cache (default: the user cache dir)")
    parser.add_argument("--patches", type=int, default=10, help="patches of the backbone cache (10: 30 s)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", help="write the figures to this JSON file")


def one_seed(x: np.ndarray, artists: list[str], genres: list[tuple[str, ...]], *, seed: int, c: float,
             fraction: float) -> dict:
    """One repetition: ``x`` (n_clips, dim) track vectors, the clips'
    artists and genres. Returns the deduplication scores (in %) of f_w,
    f_c, f_m for the monolabel and the multi-label head, of f_dist, the
    held-out accuracy of each head, and the counts."""
    from trainer import splits
    from trainer.head import fit_head, predict

    rng = np.random.default_rng(seed)
    tags = E.duplicate_split(list(zip(artists, genres)), rng=rng)
    # About ``fraction`` of the clips held out, by whole artists.
    train_idx, test_idx = splits.group_split(groups=artists, shares=(1 - fraction, fraction), seed=(seed, 1))
    labels = sorted({t for i in train_idx for t in tags[i]})
    position = {t: j for j, t in enumerate(labels)}
    annotations = np.zeros((len(test_idx), len(labels)))
    for row, i in enumerate(test_idx):
        for t in tags[i]:
            if t in position:
                annotations[row, position[t]] = 1
    out: dict = {"tags": len(labels), "train_clips": int(len(train_idx)), "test_clips": int(len(test_idx))}
    # Monolabel scheme (section 2.2), grouped by artist (4Q has no albums).
    tracks = [monolabel.Track(key=str(i), labels=tags[i], group=artists[i]) for i in train_idx]
    drawn = monolabel.monolabel_sample(tracks, cap=2000, upsample_to=0, rng=rng)
    largest = max(Counter(tag for _, tag, _ in drawn).values())
    samples = monolabel.monolabel_sample(tracks, cap=2000, upsample_to=largest, rng=rng)
    xs = x[[int(t.key) for t, _, _ in samples]]
    ys = np.array([position[tag] for _, tag, _ in samples])
    schemes = {}
    # Every training tag keeps its softmax row, drawn or not (a tag never
    # drawn is learnt only as a negative).
    schemes["monolabel"] = fit_head(xs, ys, n_labels=len(labels), multilabel=False, c=c, seed=seed)
    y_multi = np.zeros((len(train_idx), len(labels)))
    for row, i in enumerate(train_idx):
        for t in tags[i]:
            y_multi[row, position[t]] = 1
    schemes["multilabel"] = fit_head(x[train_idx], y_multi, multilabel=True, c=c, seed=seed)
    for name, model in schemes.items():
        weights = model.layers[-1].weight.detach().numpy().astype(np.float64)
        probs = predict(model, x[test_idx])
        sims = {
            "fw": disambig.cosine_similarity_matrix(weights),
            "fc": disambig.cosine_similarity_matrix(disambig.embedding_from_output_columns(probs)),
            "fm": disambig.cosine_similarity_matrix(disambig.embedding_from_output_means(probs, annotations)),
        }
        present = annotations.sum(0) > 0
        sims["fm"][~present] = np.nan
        sims["fm"][:, ~present] = np.nan
        out[name] = {k: E.deduplication_scores(labels, v) for k, v in sims.items()}
        out[name]["accuracy"] = float(np.mean([labels[p] in tags[i] for p, i in zip(probs.argmax(1), test_idx)]))
    fdist = disambig.cosine_similarity_matrix(disambig.embedding_from_cooccurrence(annotations))
    out["fdist"] = E.deduplication_scores(labels, fdist)
    n = sum(1 for t in labels if E.twin_of(t) in position)
    out["chance_hr@1"] = 100.0 / (len(labels) - 1)
    out["ranked"] = n
    return out


def mfcc_vectors(records, args) -> tuple[np.ndarray, list]:
    """MFCC statistics (80-d) of each record's centred 30 s log-mel, read
    through the feature cache; failed records are dropped."""
    from tagcore.features import MelParams
    from trainer import disambig as trainer_disambig
    from trainer.baseline import mfcc_statistics_from_logmel

    class Place:
        enabled = False
        is_main = True

    params = MelParams()
    args.max_seconds = 120.0
    kept, features, failures = trainer_disambig.load_features(records, params, args, Place())
    x = np.stack([mfcc_statistics_from_logmel(trainer_disambig.crop(features[r.key], params.excerpt_frames),
                                              log_c=params.log_c) for r in kept]).astype(np.float64)
    return x, kept


def run(args) -> int:
    from trainer.datasets import DatasetError, LoadReport, mood_4q

    report = LoadReport()
    records = mood_4q.load(args.data, labels="genres", report=report)
    if not records:
        raise DatasetError(f"{args.data}: no clips")
    if args.features == "backbone":
        from trainer.embeddings import backbone_outputs

        # musicnn-msd and -mtt together, as the shared cache of the 4Q clips holds them.
        bundles = [args.backbone] + (["musicnn-mtt"] if args.backbone == "musicnn-msd" else [])
        outputs = backbone_outputs([r.path for r in records], bundles=bundles, patches=args.patches, workers=args.workers)
        emb = outputs[args.backbone]
        x = emb.track_embeddings()[emb.ok].astype(np.float64)
        kept = [r for r, good in zip(records, emb.ok) if good]
        described = f"{args.backbone} embedding (mean of {args.patches} centred patches)"
    else:
        x, kept = mfcc_vectors(records, args)
        described = "MFCC statistics (mean and std of 20 MFCCs and their deltas) of the centred 30 s log-mel"
    artists = [r.artist or r.key for r in kept]
    genres = [tuple(r.labels) for r in kept]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = [one_seed(x, artists, genres, seed=s, c=args.c, fraction=args.test_fraction) for s in seeds]
    summary: dict = {"clips": len(kept), "artists": len(set(artists)), "seeds": seeds, "c": args.c,
                     "features": described, "runs": runs}
    print(f"{described}; {len(kept)} clips, {len(set(artists))} artists, {len(set(t for g in genres for t in g))} genres -> "
          f"{runs[0]['tags']} tags; seeds {seeds}")
    print(f"{'':24s} {'HR@1':>12s} {'HR@2':>12s} {'MAP':>12s}")
    table = {}
    for scheme in ("monolabel", "multilabel"):
        for emb_name in ("fw", "fc", "fm"):
            vals = {m: [r[scheme][emb_name][m] for r in runs] for m in ("hr@1", "hr@2", "map")}
            table[f"{scheme} {emb_name}"] = {m: (float(np.mean(v)), float(np.std(v))) for m, v in vals.items()}
    table["fdist (annotations)"] = {m: (float(np.mean([r["fdist"][m] for r in runs])), float(np.std([r["fdist"][m] for r in runs])))
                                    for m in ("hr@1", "hr@2", "map")}
    for name, row in table.items():
        print(f"{name:24s} " + " ".join(f"{row[m][0]:5.1f} ± {row[m][1]:4.1f}" for m in ("hr@1", "hr@2", "map")))
    print(f"chance HR@1 {np.mean([r['chance_hr@1'] for r in runs]):.1f}; held-out accuracy (top tag among the clip's): "
          f"monolabel {np.mean([r['monolabel']['accuracy'] for r in runs]):.3f}, "
          f"multilabel {np.mean([r['multilabel']['accuracy'] for r in runs]):.3f}")
    summary["table"] = table
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, summary)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer tag-dedup")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
