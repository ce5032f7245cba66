#!/usr/bin/env python
"""Tracks per second of each shipped model alone and of the plugin's default
model set in one analysis pass, with decode counts and peak memory.

Target (issue "taggers that have heard 200,000 songs"): the full default
model set at least 4 tracks/s on three-minute mp3s on the project's 2-core
machine, peak memory under 1 GB.

The files are ``--n`` three-minute mp3s made by ``bench_autotag.py``'s
generator (reused from its ``--workdir``). Each configuration runs in a
fresh subprocess (so peak RSS is its own: the process and its decoding
workers, sampled every 50 ms), as :class:`tagcore.analysis.Analysis` over
the files with ``--workers`` decoding processes; time counts from the call
to the last result (model loading included, beets not involved).

    python benchmarks/bench_models.py                # 20 files
    python benchmarks/bench_models.py --n 5          # quick check

Exit status: 0 target met, 1 missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_autotag import TARGET_RSS_MB, REPO, BenchError, generate, machine, run_measured  # noqa: E402

TARGET_TPS = 4.0


def _one(bundles: list[str], paths: list[str], workers: int, device: str) -> dict:
    """Run in the child: one pass, its figures as a dict."""
    import time

    from tagcore.analysis import Analysis

    analysis = Analysis(bundles, workers=workers, device=device)
    start = time.perf_counter()
    results = list(analysis.analyse(paths))
    wall = time.perf_counter() - start
    bad = sorted({o.message for r in results for o in r.outputs.values() if not o.ok})
    return {"bundles": bundles, "files": len(paths), "wall_s": wall, "tps": len(paths) / wall,
            "decodes": sum(r.decodes for r in results), "broken": analysis.broken, "not_ok": bad[:3]}


def measure(bundles: list[str], paths: list[Path], workers: int, device: str) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, %r); sys.path.insert(0, %r); import bench_models; "
        "print('RESULT ' + json.dumps(bench_models._one(%r, %r, %d, %r)))"
        % (str(REPO), str(Path(__file__).resolve().parent), bundles, [str(p) for p in paths], workers, device)
    )
    run = run_measured([sys.executable, "-c", code], env=None)
    lines = [line for line in run["stdout"].splitlines() if line.startswith("RESULT ")]
    if run["returncode"] != 0 or not lines:
        raise BenchError(f"{bundles}: {run['stderr'][-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if result["broken"] or result["not_ok"]:
        raise BenchError(f"{bundles}: {result['broken']} {result['not_ok']}")
    result["peak_rss_mb"] = run["peak_rss_mb"]
    print(f"  {' + '.join(bundles):<70} {result['wall_s']:7.2f} s  {result['tps']:6.2f} tracks/s  "
          f"{result['decodes']:3d} decodes  peak RSS {result['peak_rss_mb']:5.0f} MB", flush=True)
    return result


def installed_defaults() -> list[str]:
    """The default model set's bundle names (each once) that are installed;
    each one missing is named and left out."""
    from beetsplug.autotagml import DEFAULT_MODELS
    from tagcore.bundle import BundleError, read_config

    present = []
    for task, name in DEFAULT_MODELS.items():
        try:
            read_config(name)
            present.append(name)
        except BundleError as error:
            print(f"  {task}: {name} not installed ({error}); left out", flush=True)
    return list(dict.fromkeys(present))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every analysis-pass benchmark takes: files, workers,
    device, where the synthetic music goes, and a JSON report."""
    parser.add_argument("--n", type=int, default=20, help="synthetic files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench")
    parser.add_argument("--json", type=Path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
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
