#!/usr/bin/env python
"""A head on musicnn-msd, on musicnn-mtt, and on both side by side.

The analysis pass runs both musicnn backbones for every track (their tags
feed the tag maps), so a head could read both embeddings at no extra model
cost. This script measures whether it should: for one dataset that
``python -m trainer head`` reads (label folders, a 4Q dataset with
``--labels``), it runs ``trainer.head.cross_validate`` (the same
artist-disjoint folds and seeds for every input, C chosen by inner CV on
the training folds) on the mean embedding of the ``--patches`` central 3 s
patches of

- ``musicnn-msd`` (200-d, what the shipped heads read),
- ``musicnn-mtt`` (200-d),
- ``both``: the two side by side (400-d; the head standardises its inputs,
  so neither backbone outweighs the other by its scale),

next to the trivial baseline, and prints each model's figures with the
paired difference ``both - musicnn-msd`` per fold (how many folds better,
how many worse). Backbone outputs come from the trainer's cache
(``trainer.embeddings.backbone_outputs``; computed once).

Run from the repository root::

    python benchmarks/bench_backbones.py --data ../shared/datasets/mood_4q --labels quadrant
    python benchmarks/bench_backbones.py --data ../shared/datasets/mood_4q --labels genres --multilabel
    python benchmarks/bench_backbones.py --data ../shared/datasets/gtzan_mini
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

INPUTS = ("musicnn-msd", "musicnn-mtt", "both")


def paired(both: list[float], single: list[float]) -> tuple[float, int, int]:
    """(mean difference, folds better, folds worse) of ``both`` against
    ``single``, two per-fold score lists in the same fold order."""
    differences = [a - b for a, b in zip(both, single)]
    return (sum(differences) / len(differences), sum(d > 0 for d in differences),
            sum(d < 0 for d in differences))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--data", required=True, help="a dataset python -m trainer head reads")
    parser.add_argument("--labels", help="4Q layout: quadrant, genres or moods")
    parser.add_argument("--multilabel", action="store_true")
    parser.add_argument("--patches", type=int, default=2, help="central 3 s patches averaged (2: what ships)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", help="write every model's figures here")
    args = parser.parse_args(argv)

    import numpy as np

    from trainer import head
    from trainer.datasets import LoadReport
    from trainer.embeddings import backbone_outputs

    head_argv = ["--data", args.data, "--name", "bench", "--no-mfcc", "--workers", "1",
                 "--patches", str(args.patches)]
    head_argv += ["--labels", args.labels] if args.labels else []
    head_argv += ["--multilabel"] if args.multilabel else []
    head_parser = argparse.ArgumentParser()
    head.add_arguments(head_parser)
    head_args = head_parser.parse_args(head_argv)
    records, _ = head.load_records(head_args, LoadReport())
    data = head.build_dataset(records, head_args, log=lambda *_: None)
    outputs = backbone_outputs([r.path for r in data.records], bundles=head.PAIRED_BACKBONES, patches=10, workers=1)
    x = {name: outputs[name].track_embeddings(patches=args.patches) for name in head.PAIRED_BACKBONES}
    x["both"] = np.concatenate([x["musicnn-msd"], x["musicnn-mtt"]], axis=1)
    seeds = head.parse_seeds(args.seeds)
    print(f"{args.data}: {len(data.records)} tracks, {len(data.labels)} labels, {args.patches} patches, "
          f"{args.folds} folds x seeds {seeds}")
    figures = {}
    for name in INPUTS:
        started = time.monotonic()
        result = head.cross_validate(data, x[name], multilabel=args.multilabel, hidden=0, folds=args.folds,
                                     seeds=seeds, grid=head.C_GRID, inner_folds=3, log=lambda *_: None)
        figures[name] = result["models"]["head"]
        figures["trivial"] = result["models"]["trivial"]
        shown = ", ".join(f"{m} {v['mean']:.3f} ± {v['std']:.3f}" for m, v in figures[name].items())
        print(f"{name}: {shown} ({time.monotonic() - started:.0f} s)", flush=True)
    print("trivial: " + ", ".join(f"{m} {v['mean']:.3f}" for m, v in figures["trivial"].items()))
    for metric, values in figures["both"].items():
        mean, better, worse = paired(values["folds"], figures["musicnn-msd"][metric]["folds"])
        print(f"both - musicnn-msd, {metric}: {mean:+.4f} (folds better {better}, worse {worse} of "
              f"{len(values['folds'])})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
