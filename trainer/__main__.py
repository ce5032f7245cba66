"""Command line: ``python -m trainer <command> [options]``.

One registry (:data:`COMMANDS`) names every command, the module that
serves it (``trainer.<module>``, with ``add_arguments(parser)`` and
``run(args)``) and its older names. A module is imported only when its
command runs, so ``python -m trainer --help`` answers without importing
torch or any trainer.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A trainer command: ``trainer.<module>`` serves it; ``status``: its
    ``run`` returns the exit status (the others return their results)."""

    module: str
    help: str
    aliases: tuple[str, ...] = ()
    status: bool = False


#: The model families first (named as in tagcore.families), then the tools.
COMMANDS: dict[str, Command] = {
    "disambig": Command("disambig", "audio genre classifier (CNN + GRU, monolabel training)"),
    "head": Command("head", "small classifier (logistic regression or MLP) on a backbone's track embedding"),
    "samplecnn": Command("samplecnn", "sample-level CNN on raw audio with playlist-based tag propagation; "
                                        "--spotify: the MLP experiment", aliases=("propagation",)),
    "triplet": Command("triplet", "LSI-guided triplet embedding (DPNN, 256-d) with its retrieval "
                                  "evaluation"),
    "han": Command("han", "review-driven multi-label styles (HAN + label graph + soft training) with "
                           "its baselines", aliases=("rmsc",)),
    "lyrics": Command("lyrics", "genre from lyrics (LSTM + attention over GloVe), its ablations and a "
                                "TF-IDF baseline", status=True),
    "tagmap": Command("tagmap", "write the shipped tag maps (musicnn tags onto genres, moods, instruments...); "
                                 "--evaluate scores them", aliases=("tagmaps",), status=True),
    "musicnn": Command("musicnn", "convert musicnn 0.1.0's TF checkpoints into the musicnn-msd/-mtt "
                                         "bundles", aliases=("import-musicnn",), status=True),
    "onnx": Command("onnx", "add an ONNX export (model.onnx, checked against torch) to audio bundles", status=True),
    "fetch": Command("fetch", "download a public dataset from its official location", status=True),
    "tag-embeddings": Command("tag_embeddings", "tag embeddings f_w, f_c, f_m, f_dist of a disambig "
                                                "bundle on held-out tracks, as similarity CSVs", status=True),
    "disambig-eval": Command("disambig_eval", "tag tasks on a similarity CSV: taxonomy learning, "
                                              "deduplication, translation", status=True),
    "related": Command("related", "build the related-tags bundle (AllMusic LSI + Last.fm co-occurrence); "
                                  "--evaluate: held-out P@5/R@5", status=True),
    "lsi-topics": Command("lsi_topics", "LSI topics of mixed AllMusic tag sets (the triplet paper's "
                                        "Figure 3)", status=True),
    "tag-dedup": Command("tag_dedup", "artificial deduplication on the 4Q clips (artist split, "
                                      "monolabel vs multi-label heads)", status=True),
}
#: Older command names -> today's.
ALIASES = {alias: name for name, command in COMMANDS.items() for alias in command.aliases}


def lookup(name: str) -> tuple[str, Command] | None:
    """(today's name, command) of a command name or an older alias."""
    name = ALIASES.get(name, name)
    return (name, COMMANDS[name]) if name in COMMANDS else None


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m trainer <command> [options]   (python -m trainer <command> --help for its options)",
             "", "Train and evaluate a tagcore model family, or build a shipped bundle.", "", "commands:"]
    for name, command in COMMANDS.items():
        also = f" (also: {', '.join(command.aliases)})" if command.aliases else ""
        lines.append(f"  {name:<{width}}  {command.help}{also}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    found = lookup(argv[0])
    if found is None:
        from tagcore.spelling import did_you_mean

        print(f"error: unknown command {argv[0]!r}{did_you_mean(argv[0], [*COMMANDS, *ALIASES])}"
              f" (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    name, command = found
    module = importlib.import_module(f"trainer.{command.module}")
    parser = argparse.ArgumentParser(prog=f"python -m trainer {argv[0]}", description=command.help)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    args.family = name
    from tagcore.bundle import BundleError
    from trainer.datasets import DatasetError

    try:
        result = module.run(args)
    except (DatasetError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0) if command.status else 0


if __name__ == "__main__":
    sys.exit(main())
