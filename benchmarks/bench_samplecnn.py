#!/usr/bin/env python
"""Inference speed of the sample-level CNN (the samplecnn paper) beside the other
audio models, each file decoded once in the shared analysis pass.

Configurations, each timed as one :class:`tagcore.analysis.Analysis` pass
over ``--n`` three-minute mp3s (``common.generate``, reused
from ``--workdir``) in a fresh subprocess (``common.measure``: wall
time from the call to the last result, model loading included; peak RSS of
the process tree):

1. the baseline: musicnn-msd alone (the backbone of the default set);
2. the sample-level CNN alone: ``--bundle`` (a trained samplecnn bundle),
   else a bundle with random weights written to a temporary folder: the
   3^9 model at full width (1.9 M parameters) or ``--channels``, reading
   ``--patches`` centred 59,049-sample patches (speed does not depend on
   the weights);
3. the plugin's default set alone, and the default set plus the
   sample-level CNN in one pass (one decode per file, checked).

It prints tracks/s, the ratio of the sample-level CNN to the baseline, and
what adding it costs the default pass.

    python benchmarks/bench_samplecnn.py                 # 20 files, full-width model, 3 patches
    python benchmarks/bench_samplecnn.py --n 5 --patches 1

Exit status: 0 done (one decode per file in the shared pass), 1 a file was
decoded more than once, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import BenchError, add_run_arguments, generate, installed_defaults, machine, measure


def random_bundle(directory: Path, *, channels: str, embedding: int, patches: int) -> Path:
    """A samplecnn mood bundle with random weights (4 labels)."""
    import torch

    from tagcore.bundle import save_bundle
    from tagcore.families import samplecnn
    from tagcore.features import WaveParams, feature_spec

    torch.manual_seed(0)
    config = samplecnn.Config(channels=tuple(int(c) for c in channels.split(",")), embedding=embedding, n_labels=4)
    model = samplecnn.Model(config)
    return save_bundle(directory, model=model, family="samplecnn", name="samplecnn-bench", version="0",
                       labels=["Q1", "Q2", "Q3", "Q4"], model_config=config.to_dict(), task="mood-bench",
                       input={"kind": "audio", "feature": feature_spec(WaveParams(patches=patches))},
                       outputs=("scores", "embedding"), embedding_dim=embedding,
                       provenance={"made_by": "benchmarks/bench_samplecnn.py (random weights)",
                                   "parameters": samplecnn.parameter_count(model)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--bundle", help="a trained samplecnn bundle (default: random weights)")
    parser.add_argument("--channels", default="128,128,128,256,256,256,256,256,256,512")
    parser.add_argument("--embedding", type=int, default=512)
    parser.add_argument("--patches", type=int, default=3)
    args = parser.parse_args(argv)
    from tagcore.bundle import read_config

    paths = generate(args.workdir / "music", args.n)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or str(random_bundle(Path(tmp) / "samplecnn-bench", channels=args.channels,
                                                  embedding=args.embedding, patches=args.patches))
        _, config = read_config(bundle)
        print(f"sample-level CNN: {config['name']} {config['version']}, channels {config['model']['channels']}, "
              f"{config['input']['feature']['patches']} patch(es) of {config['input']['feature']['patch_samples']} samples")
        defaults = installed_defaults()
        try:
            baseline = measure(["musicnn-msd"], paths, args.workers, args.device)
            alone = measure([bundle], paths, args.workers, args.device)
            default = measure(defaults, paths, args.workers, args.device)
            shared = measure([*defaults, bundle], paths, args.workers, args.device)
        except BenchError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 2
    ratio = alone["tps"] / baseline["tps"]
    cost = default["tps"] / shared["tps"] - 1
    print(f"sample-level CNN alone: {alone['tps']:.2f} tracks/s = {ratio:.2f} x musicnn-msd alone "
          f"({baseline['tps']:.2f} tracks/s)")
    print(f"default set {default['tps']:.2f} tracks/s; with the sample-level CNN in the same pass "
          f"{shared['tps']:.2f} tracks/s ({100 * cost:+.0f}% time per track), {shared['decodes']} decodes for {args.n} files")
    one_decode = shared["decodes"] == args.n
    print(f"{'PASS' if one_decode else 'FAIL'}: one decode per file in the shared pass")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "bundle": config["name"], "baseline": baseline,
                                         "samplecnn": alone, "default": default, "shared": shared,
                                         "ratio_to_musicnn_msd": ratio}, indent=2))
    return 0 if one_decode else 1


if __name__ == "__main__":
    sys.exit(main())
