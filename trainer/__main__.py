"""Command line: ``python -m trainer <family> [options]``."""

from __future__ import annotations

import argparse
import sys

from tagcore.bundle import BundleError
from trainer.datasets import DatasetError

FAMILIES = {
    "disambig": "audio genre classifier of seed 002 (CNN + GRU, monolabel training)",
    "head": "small classifier (logistic regression or MLP) on a backbone's track embedding",
    "propagation": "sample-level CNN on raw audio with playlist-based tag propagation (seed 004); --spotify: the MLP experiment",
    "triplet": "LSI-guided triplet embedding of seed 001 (DPNN, 256-d) with its retrieval evaluation",
    "rmsc": "review-driven multi-label styles of seed 000 (HAN + label graph + soft training) with its baselines",
    "lyrics": "genre from lyrics of seed 003 (LSTM + attention over GloVe), its ablations and a TF-IDF baseline",
}
COMMANDS = {
    "fetch": "download a public dataset from its official location",
    "import-musicnn": "convert musicnn 0.1.0's TF checkpoints into the musicnn-msd/-mtt bundles",
    "tagmaps": "write the shipped tag maps (musicnn tags onto genres, moods, instruments...); --evaluate scores them",
    "tag-embeddings": "seed 002's tag embeddings f_w, f_c, f_m, f_dist of a disambig bundle on held-out tracks, as similarity CSVs",
    "disambig-eval": "seed 002's tag tasks on a similarity CSV: taxonomy learning, deduplication, translation",
    "related": "build the related-tags bundle (AllMusic LSI + Last.fm co-occurrence); --evaluate: held-out P@5/R@5",
    "tag-dedup": "seed 002's artificial deduplication on the 4Q clips (artist split, monolabel vs multi-label heads)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train a tagcore model family.")
    sub = parser.add_subparsers(dest="family", required=True)
    from trainer import disambig, fetch

    disambig.add_arguments(sub.add_parser("disambig", help=FAMILIES["disambig"]))
    fetch.add_arguments(sub.add_parser("fetch", help=COMMANDS["fetch"]))
    from trainer import import_musicnn

    import_musicnn.add_arguments(sub.add_parser("import-musicnn", help=COMMANDS["import-musicnn"]))
    from trainer import tagmaps

    tagmaps.add_arguments(sub.add_parser("tagmaps", help=COMMANDS["tagmaps"]))
    from trainer import head

    head.add_arguments(sub.add_parser("head", help=FAMILIES["head"]))
    from trainer import propagation

    propagation.add_arguments(sub.add_parser("propagation", help=FAMILIES["propagation"]))
    from trainer import triplet

    triplet.add_arguments(sub.add_parser("triplet", help=FAMILIES["triplet"]))
    from trainer import disambig_eval, related, tag_dedup, tag_embeddings

    tag_embeddings.add_arguments(sub.add_parser("tag-embeddings", help=COMMANDS["tag-embeddings"]))
    disambig_eval.add_arguments(sub.add_parser("disambig-eval", help=COMMANDS["disambig-eval"]))
    related.add_arguments(sub.add_parser("related", help=COMMANDS["related"]))
    tag_dedup.add_arguments(sub.add_parser("tag-dedup", help=COMMANDS["tag-dedup"]))
    from trainer import rmsc

    rmsc.add_arguments(sub.add_parser("rmsc", help=FAMILIES["rmsc"]))
    from trainer import lyrics

    lyrics.add_arguments(sub.add_parser("lyrics", help=FAMILIES["lyrics"]))
    args = parser.parse_args(argv)
    try:
        if args.family == "fetch":
            return fetch.run(args)
        if args.family == "import-musicnn":
            return import_musicnn.run(args)
        if args.family == "tagmaps":
            return tagmaps.run(args)
        if args.family == "disambig":
            disambig.run(args)
        if args.family == "head":
            head.run(args)
        if args.family == "propagation":
            propagation.run(args)
        if args.family == "triplet":
            triplet.run(args)
        if args.family == "rmsc":
            rmsc.run(args)
        if args.family == "lyrics":
            return lyrics.run(args)
        if args.family in ("tag-embeddings", "disambig-eval", "related", "tag-dedup"):
            return {"tag-embeddings": tag_embeddings, "disambig-eval": disambig_eval, "related": related,
                    "tag-dedup": tag_dedup}[args.family].run(args)
    except (DatasetError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
