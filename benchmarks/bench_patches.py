#!/usr/bin/env python
"""How many 3 s patches per track: tagging speed against head accuracy.

The musicnn backbones read a centred excerpt cut into 3 s patches (187
frames of the 16 kHz log-mel) and average their outputs over the patches;
their cost grows with the number of patches P, and the heads read the mean
embedding over them. For P = 1..10 this script measures:

- **speed**: tracks per second of one analysis pass
  (:class:`tagcore.analysis.Analysis`) of musicnn-msd and musicnn-mtt (one
  shared log-mel) plus the heads named by ``--with`` (default: the shipped
  heads ``genre10`` and ``mood4q`` when installed), with the backbones'
  excerpt set to ``187 * P`` frames, over ``--n`` three-minute mp3 files
  made by ``common.generate`` (reused from ``--workdir``) with
  ``--workers`` decoding processes. Each run is a fresh subprocess as in
  ``bench_models.py``: the time counts from the call to the last result,
  model loading included; the best of ``--repeat`` runs is kept. One more
  run times the shipped musicnn-msd alone (5 patches) as a reference;
- **accuracy**, for each ``--data`` (a dataset ``python -m trainer head``
  reads: label folders, a 4Q dataset...): the head's k-fold CV accuracy
  (``trainer.head.cross_validate``: same folds, C chosen on the training
  folds) when it is trained and tested on the mean of the P central patches
  (``train P``), and when it is trained on 10 patches and tested on P
  (``train 10``: a shipped head used with another patch count), next to the
  trivial baseline. Embeddings come from the cached per-patch backbone
  outputs (``trainer.embeddings.backbone_outputs``; computed once).

Run from the repository root::

    python benchmarks/bench_patches.py --data ../shared/datasets/gtzan_mini \\
        --data ../shared/datasets/mood_4q --json patches.json
    python benchmarks/bench_patches.py --no-accuracy --n 5 --patches 1,5   # quick speed check

Keep module-level imports to the standard library: decoding workers are
started with 'spawn' and import this file again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import BenchError, generate, machine, run_in_child

BACKBONES = ("musicnn-msd", "musicnn-mtt")
DEFAULT_HEADS = ("genre10", "mood4q")
TARGET_TPS = 4.0


def _one(patches: int, heads: list[str], paths: list[str], workers: int, device: str) -> dict:
    """In the child: one pass with the backbones at ``patches`` patches
    (``patches`` 0: the shipped musicnn-msd alone); its figures."""
    import copy

    from tagcore.analysis import Analysis
    from tagcore.bundle import Bundle, load_bundle

    start = time.perf_counter()
    if patches:
        bundles = []
        for name in BACKBONES:
            shipped = load_bundle(name, device=device)
            config = copy.deepcopy(shipped.config)
            feature = config["input"]["feature"]
            feature["excerpt_frames"] = feature["patch_frames"] * patches
            bundles.append(Bundle(path=shipped.path, config=config, model=shipped.model))
        bundles += heads
    else:
        bundles = ["musicnn-msd"]
    analysis = Analysis(bundles, workers=workers, device=device)
    excerpts = sorted({p.excerpt_frames // max(1, p.patch_frames) for p in analysis.features.values()})
    results = list(analysis.analyse(paths))
    wall = time.perf_counter() - start
    bad = sorted({o.message for r in results for o in r.outputs.values() if not o.ok})
    return {"patches": patches or 5, "bundles": list(analysis.requested), "files": len(paths), "wall_s": wall,
            "tps": len(paths) / wall, "decodes": sum(r.decodes for r in results), "feature_patches": excerpts,
            "broken": analysis.broken, "not_ok": bad[:3]}


def measure(patches: int, heads: list[str], paths: list[Path], workers: int, device: str) -> dict:
    """:func:`_one` in a fresh process (its own peak memory)."""
    return run_in_child("bench_patches", "_one", [patches, heads, [str(p) for p in paths], workers, device],
                        label=f"{patches} patches")


def speed(args) -> tuple[list[dict], dict]:
    from tagcore.bundle import BundleError, read_config

    heads = []
    for name in args.with_heads:
        try:
            _, config = read_config(name)
        except BundleError as error:
            print(f"  {name}: not installed ({error}); left out", flush=True)
            continue
        if config["input"]["kind"] == "backbone" and config["input"]["bundle"] in BACKBONES:
            heads.append(name)
        else:
            print(f"  {name}: not a head on {' or '.join(BACKBONES)}; left out", flush=True)
    paths = generate(args.workdir / "music", args.n)
    print(f"speed: {' + '.join([*BACKBONES, *heads])}, {args.n} files, {args.workers} workers, best of {args.repeat}",
          flush=True)
    rows = []
    for patches in args.patches:
        runs = [measure(patches, heads, paths, args.workers, args.device) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["tps"])
        best["all_tps"] = [r["tps"] for r in runs]
        rows.append(best)
        print(f"  P={patches:2d}: {best['tps']:5.2f} tracks/s ({best['wall_s']:.1f} s, runs "
              f"{', '.join(f'{t:.2f}' for t in best['all_tps'])}), {best['decodes']} decodes, "
              f"peak RSS {best['peak_rss_mb']:.0f} MB", flush=True)
    runs = [measure(0, [], paths, args.workers, args.device) for _ in range(args.repeat)]
    reference = max(runs, key=lambda r: r["tps"])
    print(f"  reference: shipped musicnn-msd alone (5 patches): {reference['tps']:.2f} tracks/s", flush=True)
    return rows, reference


def accuracy(args) -> dict:
    from trainer import head
    from trainer.datasets import LoadReport

    curves = {}
    for data_path in args.data:
        parser = argparse.ArgumentParser()
        head.add_arguments(parser)
        options = parser.parse_args(["--data", data_path, "--name", "patch-curve", "--no-mfcc",
                                     "--folds", str(args.folds), "--seeds", args.seeds, "--workers", str(args.workers)])
        records, layout = head.load_records(options, LoadReport())
        data = head.build_dataset(records, options, log=lambda m: print(f"  {m}", flush=True))
        seeds = head.parse_seeds(options.seeds)
        common = dict(multilabel=False, hidden=0, folds=options.folds, seeds=seeds,
                      grid=head.parse_grid(options.c_grid), inner_folds=options.inner_folds, log=lambda m: None)
        name = Path(data_path).name
        started = time.monotonic()
        trained_10 = head.cross_validate(data, data.embeddings(10), test_inputs={
            str(p): data.embeddings(p) for p in args.patches}, **common)
        rows = []
        for patches in args.patches:
            cv = head.cross_validate(data, data.embeddings(patches), **common)
            row = {"patches": patches,
                   "train_p": cv["models"]["head"]["accuracy"],
                   "train_10": trained_10["models"][f"head@{patches}"]["accuracy"],
                   "trivial": cv["models"]["trivial"]["accuracy"]}
            if "derived_from_quadrants" in cv:
                row["valence_train_p"] = cv["derived_from_quadrants"]["head"]["valence"]
                row["arousal_train_p"] = cv["derived_from_quadrants"]["head"]["arousal"]
            rows.append(row)
            print(f"  {name} P={patches:2d}: train P {row['train_p']['mean']:.3f} ± {row['train_p']['std']:.3f}, "
                  f"train 10 {row['train_10']['mean']:.3f} ± {row['train_10']['std']:.3f} "
                  f"(trivial {row['trivial']['mean']:.3f})", flush=True)
        curves[name] = {"tracks": len(data.records), "protocol": head.protocol_text(data, options, seeds, "P"), "rows": rows,
                        "seconds": round(time.monotonic() - started, 1)}
    return curves


def table(speed_rows: list[dict] | None, curves: dict) -> str:
    patches = sorted({r["patches"] for r in speed_rows or []} | {row["patches"] for c in curves.values() for row in c["rows"]})
    header = ["P"]
    if speed_rows:
        header.append("tracks/s (msd+mtt+heads)")
    for name in curves:
        header += [f"{name} acc, train P", f"{name} acc, train 10"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    tps = {r["patches"]: r["tps"] for r in speed_rows or []}
    for p in patches:
        cells = [str(p)]
        if speed_rows:
            cells.append(f"{tps[p]:.2f}" if p in tps else "")
        for curve in curves.values():
            row = next((r for r in curve["rows"] if r["patches"] == p), None)
            cells += [f"{row['train_p']['mean']:.3f} ± {row['train_p']['std']:.3f}",
                      f"{row['train_10']['mean']:.3f} ± {row['train_10']['std']:.3f}"] if row else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", default="1,2,3,4,5,6,7,8,9,10", help="patch counts to try")
    parser.add_argument("--n", type=int, default=20, help="three-minute mp3 files for the speed runs")
    parser.add_argument("--repeat", type=int, default=1, help="speed runs per patch count (the best is kept)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--with", dest="with_heads", nargs="*", default=list(DEFAULT_HEADS),
                        help="heads in the speed runs (default: genre10 mood4q, when installed)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench")
    parser.add_argument("--no-speed", dest="speed", action="store_false")
    parser.add_argument("--data", action="append", default=[], help="a dataset for the accuracy curve (repeatable)")
    parser.add_argument("--no-accuracy", dest="accuracy", action="store_false")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.patches = [int(p) for p in args.patches.split(",") if p.strip()]
    info = machine()
    print(f"machine: {info}", flush=True)
    try:
        speed_rows, reference = speed(args) if args.speed else (None, None)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    curves = accuracy(args) if args.accuracy and args.data else {}
    print(table(speed_rows, curves))
    if speed_rows:
        fast = [r["patches"] for r in speed_rows if r["tps"] >= TARGET_TPS]
        print(f"patch counts at >= {TARGET_TPS} tracks/s: {fast or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "loadavg_end": os.getloadavg(), "speed": speed_rows,
                                         "reference_msd_alone_5_patches": reference, "accuracy": curves,
                                         "options": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
