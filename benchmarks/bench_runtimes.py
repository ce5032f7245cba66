#!/usr/bin/env python
"""The default model set's speed by how its models run, side by side:
one model thread on torch (the earlier pass), model batches side by side
(``model_threads``), ONNX Runtime for the musicnn backbones (``runtime``),
and both; beside the decode floor, with peak memory.

Two measurements, each in rounds that alternate the configurations (so a
busy machine slows them alike):

1. a musicnn-msd forward pass of 2 patches (the pass's chunk) in one
   thread, by torch, by torch with its linear layers quantized to int8
   (dynamic quantization) and by ONNX Runtime: milliseconds per pass, and
   the largest difference of each from torch's outputs;
2. :class:`tagcore.analysis.Analysis` over ``--n`` three-minute mp3s
   (``common.generate``) with the plugin's default model set, in a fresh
   process per run (model loading included; beets not involved), and the
   decode floor: ``tagcore.workers.read_excerpts`` of the same excerpts
   with the same workers.

    python benchmarks/bench_runtimes.py                 # 100 files, 2 rounds
    python benchmarks/bench_runtimes.py --n 20 --rounds 1

Target (issue "the default models"): the default set at least 5 tracks/s
(goal 8) with peak memory under 1 GB. Exit status: 0 met by the default
configuration, 1 missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

from common import TARGET_RSS_MB, BenchError, add_run_arguments, generate, installed_defaults, machine, measure

TARGET_TPS = 5.0
#: label -> Analysis options; the last is the default.
CONFIGURATIONS = {
    "one model thread, torch (before)": {"model_threads": 1, "runtime": "torch"},
    "model threads side by side, torch": {"runtime": "torch"},
    "one model thread, ONNX Runtime": {"model_threads": 1, "runtime": "auto"},
    "model threads side by side, ONNX Runtime (default)": {"runtime": "auto"},
}


def forward_times(rounds: int, reps: int) -> dict:
    """ms per 2-patch forward of musicnn-msd in one thread, torch against
    ONNX Runtime, alternating; and their largest output difference."""
    import numpy as np
    import torch

    from tagcore import onnx_runtime
    from tagcore.bundle import load_bundle

    torch.set_num_threads(1)
    bundle = load_bundle("musicnn-msd")
    ort, why = onnx_runtime.onnx_model(bundle, threads=1)
    x = np.random.default_rng(0).normal(size=(2, bundle.features.patch_frames, bundle.features.n_mels))
    x = x.astype(np.float32)
    tx = torch.from_numpy(x)
    family = bundle.family_module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notes
        int8 = torch.ao.quantization.quantize_dynamic(bundle.model, {torch.nn.Linear}, dtype=torch.qint8)
    runs = {"torch": lambda: family.predict_with_embedding(bundle.model, tx),
            "torch_int8_dynamic": lambda: family.predict_with_embedding(int8, tx)}
    if ort is not None:
        runs["onnx"] = lambda: ort.predict_with_embedding(x)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            run()
            start = time.perf_counter()
            for _ in range(reps):
                run()
            times[name].append((time.perf_counter() - start) / reps * 1000)
    out = {name: round(statistics.median(v), 1) for name, v in times.items()}
    want = family.predict_with_embedding(bundle.model, tx)
    got = family.predict_with_embedding(int8, tx)
    out["int8_max_abs_diff"] = max(float((g - w).abs().max()) for g, w in zip(got, want))
    if ort is not None:
        got = ort.predict_with_embedding(x)
        out["max_abs_diff"] = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
        out["onnx_over_torch"] = round(out["onnx"] / out["torch"], 3)
    else:
        out["onnx_unavailable"] = why
    return out


def floor(paths, workers: int) -> dict:
    """read_excerpts of the musicnn excerpt over ``paths``."""
    from tagcore.bundle import load_bundle
    from tagcore.workers import read_excerpts

    params = load_bundle("musicnn-msd").features
    start = time.perf_counter()
    failed = [r for _, _, r in read_excerpts([str(p) for p in paths], sample_rate=params.sample_rate,
                                             duration=params.excerpt_seconds, workers=workers)
              if isinstance(r, BaseException)]
    if failed:
        raise BenchError(f"floor: {failed[:3]}")
    wall = time.perf_counter() - start
    return {"wall_s": wall, "tps": len(paths) / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--reps", type=int, default=20, help="forward passes per round and runtime (default 20)")
    parser.set_defaults(n=100)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    forward = forward_times(args.rounds, args.reps)
    print(f"musicnn-msd, 2 patches, 1 thread: {json.dumps(forward)}", flush=True)
    paths = generate(args.workdir / "music", args.n)
    try:
        bundles = installed_defaults()
        runs: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
        floors = []
        for r in range(args.rounds):
            print(f"round {r + 1}", flush=True)
            floors.append(floor(paths, args.workers))
            print(f"  {'decode floor':<70} {floors[-1]['wall_s']:7.2f} s  {floors[-1]['tps']:6.2f} tracks/s")
            for label, options in CONFIGURATIONS.items():
                runs[label].append(measure(bundles, paths, args.workers, args.device, options, label=label))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    floor_tps = statistics.median(f["tps"] for f in floors)
    before = statistics.median(r["tps"] for r in runs[next(iter(CONFIGURATIONS))])
    summary = {}
    print(f"\nmedian over {args.rounds} rounds, {args.n} files; decode floor {floor_tps:.2f} tracks/s")
    for label, results in runs.items():
        tps = statistics.median(r["tps"] for r in results)
        rss = max(r["peak_rss_mb"] for r in results)
        summary[label] = {"tps": tps, "to_floor": tps / floor_tps, "to_before": tps / before, "peak_rss_mb": rss,
                          "runtimes": results[-1]["runtimes"]}
        print(f"  {label:<55} {tps:6.2f} tracks/s  x{tps / before:.2f} before  {tps / floor_tps:.2f} of the floor  "
              f"peak {rss:.0f} MB")
    default = summary[list(CONFIGURATIONS)[-1]]
    checks = {f"default >= {TARGET_TPS} tracks/s": default["tps"] >= TARGET_TPS,
              f"peak memory < {TARGET_RSS_MB:.0f} MB": default["peak_rss_mb"] < TARGET_RSS_MB}
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "forward": forward, "floors": floors, "runs": runs,
                                         "summary": summary, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
