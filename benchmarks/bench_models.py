#!/usr/bin/env python
"""Tracks per second of each shipped model alone and of the plugin's default
model set in one analysis pass, with decode counts and peak memory.

Target (issue "taggers that have heard 200,000 songs"): the full default
model set at least 4 tracks/s on three-minute mp3s on the project's 2-core
machine, peak memory under 1 GB.

The files are ``--n`` three-minute mp3s made by ``common.generate``
(reused from its ``--workdir``). Each configuration runs in a
fresh subprocess (``common.measure``, so peak RSS is its own: the process
and its decoding workers, sampled every 50 ms), as
:class:`tagcore.analysis.Analysis` over
the files with ``--workers`` decoding processes; time counts from the call
to the last result (model loading included, beets not involved).

    python benchmarks/bench_models.py                # 20 files
    python benchmarks/bench_models.py --n 5          # quick check

Exit status: 0 target met, 1 missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import TARGET_RSS_MB, BenchError, add_run_arguments, generate, installed_defaults, machine, measure

TARGET_TPS = 4.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    paths = generate(args.workdir / "music", args.n)
    print(f"machine: {machine()}")
    try:
        present = installed_defaults()
        runs = [measure([name], paths, args.workers, args.device) for name in present]
        full = measure(present, paths, args.workers, args.device)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    checks = {
        f"default set >= {TARGET_TPS} tracks/s": full["tps"] >= TARGET_TPS,
        "one decode per file": full["decodes"] == args.n,
        f"peak memory < {TARGET_RSS_MB:.0f} MB": full["peak_rss_mb"] < TARGET_RSS_MB,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": runs, "full": full, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
