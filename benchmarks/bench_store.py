#!/usr/bin/env python
"""Speed of the analysis pass with several bundles, and of runs the store
answers.

Targets (issue "one analysis pass for every model, and a store"):

1. a pass with two audio bundles of different feature parameters costs one
   decode per file: decode count and tracks/s for one bundle and for two;
2. ``beet autotag-ml`` on an unchanged, fully analysed library of 10,000
   items: at least 500 items/s;
3. re-applying a changed threshold from the store to 10,000 items: at least
   200 items/s, no decoding;
4. peak memory (the beet process and its children) under 1 GB.

Part 1 uses ``--n`` three-minute mp3 files made by ``common.generate``
(reused from its ``--workdir``). Parts 2 to 4 use a synthetic
library: ``--items`` hard links to a few generated files, added to a beets
library through beets' API, and a store filled with one real analysis of
each source file (the hard links share size and mtime). Each beet command
runs as a subprocess and is timed whole (beets start-up included).

    python benchmarks/bench_store.py                  # 20 files, 10,000 items
    python benchmarks/bench_store.py --n 5 --items 2000   # quick check

Exit status: 0 targets met, 1 a target missed, 2 the benchmark failed.
Keep module-level imports to the standard library: decoding workers are
started with 'spawn' and import this file again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common import (
    TARGET_RSS_MB,
    BenchError,
    beet_env,
    beet_executable,
    db_scalar,
    generate,
    machine,
    run_measured,
)

TARGET_UNCHANGED_IPS = 500.0
TARGET_REAPPLY_IPS = 200.0
HEAD_RE = re.compile(r"autotag-ml: (\d+) analysed \((\d+) decoded\), (\d+) from the store")


def second_bundle(workdir: Path) -> str:
    """A bundle on another feature than genre10-cnn's 22.05 kHz mel: musicnn-msd
    when shipped, else a random-weight CNN+GRU on a 16 kHz 96-band mel of
    3 s patches (the musicnn input)."""
    from tagcore.bundle import BundleError, read_config, save_bundle
    from tagcore.families import disambig
    from tagcore.features import MelParams, feature_spec

    try:
        read_config("musicnn-msd")
        return "musicnn-msd"
    except BundleError:
        pass
    import torch

    torch.manual_seed(0)
    params = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, log="log10", center=True,
                       mel_float16=True, excerpt_frames=5 * 187, patch_frames=187)
    config = disambig.Config(channels=(16, 32, 64, 128), gru_hidden=128, n_labels=10)
    path = save_bundle(workdir / "bench-16k", model=disambig.Model(config).eval(), family="disambig",
                       name="bench-16k", version="1", labels=[f"l{i}" for i in range(10)],
                       model_config=config.to_dict(), input={"kind": "audio", "feature": feature_spec(params)})
    return str(path)


def pass_run(bundles: list[str], paths: list[Path], workers: int) -> dict:
    """One analysis pass; wall time, tracks/s and decode count."""
    from tagcore.analysis import Analysis

    analysis = Analysis(bundles, workers=workers)
    start = time.perf_counter()
    results = list(analysis.analyse([str(p) for p in paths]))
    wall = time.perf_counter() - start
    failed = [m for r in results for m in (o.message for o in r.outputs.values() if not o.ok)]
    if failed or analysis.broken:
        raise BenchError(f"pass failed: {failed[:3]} {analysis.broken}")
    decodes = sum(r.decodes for r in results)
    return {"bundles": bundles, "files": len(paths), "wall_s": wall, "tps": len(paths) / wall, "decodes": decodes}


def synthetic_library(workdir: Path, sources: list[Path], items: int) -> tuple[Path, Path]:
    """``items`` hard links to ``sources`` in a beets library (added through
    beets' API, not imported) and a store holding a real analysis of each
    source under every link's path. Returns (config, library directory)."""
    from beets.library import Item, Library

    from tagcore.analysis import Analysis
    from tagcore.bundle import read_config
    from tagcore.store import Store, file_key

    libdir = workdir / f"store-lib-{items}"
    music = libdir / "music"
    music.mkdir(parents=True, exist_ok=True)
    for stale in ("library.db", "autotagml.sqlite", "autotagml.sqlite-wal", "autotagml.sqlite-shm"):
        (libdir / stale).unlink(missing_ok=True)
    links = []
    for i in range(items):
        link = music / f"item{i:05d}.mp3"
        if not link.exists():
            os.link(sources[i % len(sources)], link)
        links.append(link)
    lib = Library(str(libdir / "library.db"), str(music))
    with lib.transaction():
        for i, link in enumerate(links):
            Item(path=os.fsencode(link), title=f"Item {i}", artist=f"Artist {i % 97}", album=f"Album {i % 211}",
                 format="MP3").add(lib)
    _, meta = read_config("genre10-cnn")
    outputs = {str(r.path): r.outputs["genre10-cnn"] for r in Analysis(["genre10-cnn"], workers=2).analyse([str(s) for s in sources])}
    with Store(libdir / "autotagml.sqlite") as store:
        for i, link in enumerate(links):
            output = outputs[str(sources[i % len(sources)])]
            store.put(os.fsencode(link), file_key(link), {"genre10-cnn": (meta["version"], meta["labels"], output)})
    config = libdir / "config.yaml"
    write = "\n".join([
        f"directory: {json.dumps(str(music))}", f"library: {json.dumps(str(libdir / 'library.db'))}",
        "plugins: autotagml", "autotagml:", "    auto: no", "    model: genre10-cnn", "    workers: 2", "",
    ])
    config.write_text(write, encoding="utf-8")
    return config, libdir


def store_run(config: Path, libdir: Path, items: int, label: str, *flags: str) -> dict:
    cmd = beet_executable() + ["-c", str(config), "autotag-ml", "-W", *flags]
    result = run_measured(cmd, beet_env(libdir))
    match = HEAD_RE.search(result["stdout"])
    if result["returncode"] != 0 or match is None:
        raise BenchError(f"`{shlex.join(cmd)}` failed:\n{result['stdout'][-2000:]}{result['stderr'][-2000:]}")
    analysed, decoded, from_store = map(int, match.groups())
    if decoded or from_store != items:
        raise BenchError(f"{label}: expected {items} items from the store and no decoding:\n{result['stdout'][-2000:]}")
    result.update(label=label, command=shlex.join(cmd), ips=items / result["wall_s"], summary=result["stdout"].strip())
    print(f"  {label:<34} {result['wall_s']:7.2f} s  {result['ips']:8.0f} items/s  "
          f"peak RSS {result['peak_rss_mb']:5.0f} MB", flush=True)
    return result


def set_threshold(config: Path, threshold: float) -> None:
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"\n    threshold: .*", "", text) + f"    threshold: {threshold}\n"
    config.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="three-minute mp3 files for the pass (default 20)")
    parser.add_argument("--items", type=int, default=10_000, help="items of the synthetic library (default 10,000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        paths = generate(args.workdir / "music", args.n)
        print(f"machine: {machine()}")
        print(f"1. analysis pass over {args.n} three-minute mp3 files, {args.workers} workers")
        other = second_bundle(args.workdir)
        passes = [pass_run(bundles, paths, args.workers) for bundles in (["genre10-cnn"], [other], ["genre10-cnn", other])]
        for run in passes:
            print(f"  {' + '.join(Path(b).name for b in run['bundles']):<34} {run['wall_s']:7.2f} s  "
                  f"{run['tps']:6.2f} tracks/s  {run['decodes']} decodes")
        one_decode = passes[2]["decodes"] == args.n

        print(f"2-4. synthetic library of {args.items} items, store filled")
        config, libdir = synthetic_library(args.workdir, paths[:5], args.items)
        first = store_run(config, libdir, args.items, "first run (fields from the store)")
        unchanged = store_run(config, libdir, args.items, "unchanged re-run")
        set_threshold(config, 0.05)
        reapply = store_run(config, libdir, args.items, "threshold 0.3 -> 0.05 re-applied")
        if db_scalar(libdir / "library.db", "SELECT COUNT(*) FROM items") != args.items:
            raise BenchError("library lost items")
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    peak = max(r["peak_rss_mb"] for r in (first, unchanged, reapply))
    checks = {
        "one decode per file with two bundles": one_decode,
        f"unchanged re-run >= {TARGET_UNCHANGED_IPS:.0f} items/s": unchanged["ips"] >= TARGET_UNCHANGED_IPS,
        f"threshold re-applied >= {TARGET_REAPPLY_IPS:.0f} items/s": reapply["ips"] >= TARGET_REAPPLY_IPS,
        f"peak memory < {TARGET_RSS_MB:.0f} MB": peak < TARGET_RSS_MB,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "passes": passes,
                                         "store_runs": [first, unchanged, reapply], "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
