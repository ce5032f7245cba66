#!/usr/bin/env python
"""Speed and memory benchmark of ``beet autotag-ml``.

The requirement it measures: ``beet autotag-ml`` over 100 three-minute mp3
files reaches at least 10 tracks per second on a 2-core machine, next to the
time it takes merely to decode the same excerpts (the floor), and the peak
memory stays under 1 GB whatever the library size.

What it does:

1. generates ``--n`` three-minute 44.1 kHz stereo mp3 files of synthetic,
   music-like audio (chords, bass, melody, drums; one seed per file) with
   distinct title/artist tags into ``--workdir`` (files already there are
   reused, so reruns are quick; :func:`common.generate`);
2. builds a fresh beets library (``beet import -A -q``, not timed);
3. times the floor: :func:`tagcore.workers.read_excerpts` over the same
   files with the bundle's excerpt parameters, decode only and decode + the
   log-mel features the analysis pass computes (:func:`tagcore.features.excerpt_features`);
4. times the whole command ``beet autotag-ml -w`` as a subprocess (beets
   start-up, torch import, model load, decoding, inference, tag writes,
   database rows), ``--repeat`` times (``--reanalyze`` after the first), and
   once with ``--reanalyze -W`` (no file writes);
5. samples the summed RSS of the beet process and all its descendants every
   50 ms; does the same on a second library of ``--n * --scale`` items
   (hard links to the same files under other names);
6. prints a table and PASS/FAIL against the targets; ``--json`` saves the
   figures.

The model (``--model``) is one bundle configured as the genre model
(``autotagml.model``). The default, ``genre10-cnn``, is the CNN + GRU genre
model on its own 22.05 kHz log-mel excerpt; it is not in the plugin's
default model set (``beetsplug.autotagml.DEFAULT_MODELS``), which
``--model default`` runs instead (that set's own target, 4 tracks/s, is
measured by ``bench_models.py``).

Run from the repository root (the checkout's ``beetsplug`` and ``tagcore``
are put first on the beet subprocess's PYTHONPATH)::

    python benchmarks/bench_autotag.py                 # genre10-cnn
    python benchmarks/bench_autotag.py --model random  # random weights, genre10-cnn's architecture
    python benchmarks/bench_autotag.py --model default --repeat 1 --scale 1   # the plugin's default model set
    python benchmarks/bench_autotag.py --n 10 --repeat 1 --scale 2   # quick check

Exit status: 0 targets met, 1 a target missed, 2 the benchmark itself
failed (an item not analysed, a command error...).

Keep module-level imports to the standard library (and :mod:`common`):
decoding workers are started with 'spawn' and import this file again.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
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

TARGET_TPS = 10.0
PLUGIN_BATCH_SIZE = 16  # autotagml.batch_size default, for a note only
RANDOM_LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
#: Architecture of the random stand-in when genre10-cnn is absent.
RANDOM_MODEL = {"channels": (16, 32, 64, 128), "gru_hidden": 128}

SUMMARY_RE = re.compile(
    r"autotag-ml: (?P<analysed>\d+) analysed \((?P<decoded>\d+) decoded\), (?P<from_store>\d+) from the store.*\n"
    r"  genre \(.*?\): (?P<tagged>\d+) tagged, (?P<unchanged>\d+) unchanged, (?P<short>\d+) skipped as too short, "
    r"(?P<failed>\d+) failed, (?P<below>\d+) below threshold"
)




# --------------------------------------------------------------- bundle


def prepare_model(spec: str, workdir: Path) -> tuple[str, dict]:
    """The bundle path or name to configure, and its config.json."""
    from tagcore.bundle import BundleError, resolve_bundle

    if spec == "random":
        return make_random_bundle(workdir / "bundles" / "random")
    if spec == "default":
        # The plugin's default model set: no model in the config; the floor
        # decodes the excerpt the musicnn backbones read.
        path = resolve_bundle("musicnn-msd")
        return "", json.loads((path / "config.json").read_text(encoding="utf-8"))
    try:
        path = resolve_bundle(spec)
    except BundleError as exc:
        raise BenchError(f"{exc}\n  (use --model random for a random-weight bundle of the same architecture)") from None
    return str(path), json.loads((path / "config.json").read_text(encoding="utf-8"))


def bundle_features(config: dict) -> dict:
    """The log-mel parameters of a bundle's config.json, format 1 or 2."""
    if "features" in config:
        return dict(config["features"])
    return {k: v for k, v in config["input"]["feature"].items() if k != "kind"}


def make_random_bundle(directory: Path) -> tuple[str, dict]:
    """A bundle with random (seeded) weights: the shipped genre10-cnn's
    architecture, labels and features when it exists, else RANDOM_MODEL."""
    import torch

    from tagcore.bundle import BundleError, resolve_bundle, save_bundle
    from tagcore.families import disambig
    from tagcore.features import MelParams

    labels, model_cfg, features = RANDOM_LABELS, disambig.Config(n_labels=10, **RANDOM_MODEL), MelParams().to_dict()
    try:
        shipped = json.loads((resolve_bundle("genre10-cnn") / "config.json").read_text(encoding="utf-8"))
        if shipped["family"] == "disambig":
            labels, features = shipped["labels"], bundle_features(shipped)
            model_cfg = disambig.Config.from_dict(shipped["model"])
    except (BundleError, OSError, KeyError, ValueError):
        pass
    torch.manual_seed(0)
    model = disambig.Model(model_cfg).eval()
    with torch.no_grad():
        # Sharper outputs, so that scores reach the plugin's threshold as a
        # trained model's do and genres get written (plain random weights
        # give ~uniform scores: every item "below threshold").
        model.dense.weight.mul_(10.0)
        model.dense.bias.mul_(10.0)
    save_bundle(
        directory,
        model=model,
        family="disambig",
        name="bench-random",
        version="1",
        labels=labels,
        model_config=model_cfg.to_dict(),
        features=features,
        provenance={"made_by": "benchmarks/bench_autotag.py --model random (random weights)"},
    )
    return str(directory), json.loads((directory / "config.json").read_text(encoding="utf-8"))



# --------------------------------------------------------------- beets


def write_config(libdir: Path, music: Path, model: str, workers: int, model_threads: str = "auto") -> Path:
    libdir.mkdir(parents=True, exist_ok=True)
    config = libdir / "config.yaml"
    config.write_text(
        "\n".join(
            [
                f"directory: {json.dumps(str(music))}",
                f"library: {json.dumps(str(libdir / 'library.db'))}",
                "plugins: autotagml",
                "import:",
                "    copy: no",
                "    move: no",
                "    write: yes",
                "    duplicate_action: keep",
                "autotagml:",
                "    auto: no",
                *([f"    model: {json.dumps(model)}"] if model else []),
                f"    workers: {workers}",
                f"    model_threads: {model_threads}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


def build_library(libdir: Path, music: Path, model: str, workers: int, expected: int,
                  model_threads: str = "auto") -> Path:
    """A fresh library of the files in ``music``, imported as they are."""
    for stale in ("library.db", "state.pickle", "autotagml.sqlite", "autotagml.sqlite-wal", "autotagml.sqlite-shm"):
        (libdir / stale).unlink(missing_ok=True)
    config = write_config(libdir, music, model, workers, model_threads)
    cmd = beet_executable() + ["-c", str(config), "import", "-A", "-q", str(music)]
    print(f"importing {expected} files: {shlex.join(cmd)}", flush=True)
    done = subprocess.run(cmd, env=beet_env(libdir), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"import failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    count = db_scalar(libdir / "library.db", "SELECT COUNT(*) FROM items")
    if count != expected:
        raise BenchError(f"import gave {count} items, expected {expected}:\n{done.stdout}{done.stderr}")
    return config



def link_copies(sources: list[Path], directory: Path, copies: int) -> Path:
    """``copies`` hard links (copies where links are impossible) of every
    source under distinct names."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    copied = False
    for c in range(copies):
        for src in sources:
            dst = directory / f"x{c:02d}_{src.name}"
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
                copied = True
    if copied:
        print("  (hard links not possible here: files were copied)", flush=True)
    return directory


# --------------------------------------------------------------- the runs


def autotag_run(config: Path, libdir: Path, flags: list[str], n: int, label: str) -> dict:
    cmd = beet_executable() + ["-c", str(config), "autotag-ml", *flags]
    result = run_measured(cmd, beet_env(libdir))
    result["command"] = shlex.join(cmd)
    match = SUMMARY_RE.search(result["stdout"])
    summary = match.group(0) if match else None
    result["summary"] = summary
    result["tps"] = n / result["wall_s"]
    print(
        f"  {label:<22} {result['wall_s']:7.2f} s  {result['tps']:6.2f} tracks/s  "
        f"peak RSS {result['peak_rss_mb']:6.0f} MB ({result['peak_processes']} proc)  | {summary}",
        flush=True,
    )
    if result["returncode"] != 0 or match is None:
        raise BenchError(
            f"`{result['command']}` exited {result['returncode']} without a summary line:\n"
            f"{result['stdout'][-3000:]}{result['stderr'][-3000:]}"
        )
    counts = {k: int(v) for k, v in match.groupdict().items()}
    result["counts"] = counts
    if counts["failed"] or counts["short"] or counts["analysed"] != n or counts["decoded"] != n:
        raise BenchError(f"not every item was analysed ({n} expected):\n{result['stdout'][-3000:]}")
    analysed = db_scalar(
        libdir / "library.db", "SELECT COUNT(DISTINCT entity_id) FROM item_attributes WHERE key = 'ml_genre_model'"
    )
    if analysed != n:
        raise BenchError(f"{analysed} items carry ml_genre_model in the database, expected {n}")
    return result


def forget_genres(libdir: Path) -> None:
    """Empty every item's genres in the library (not the files): a file is
    written only when a tag changes, so a re-run would otherwise write none."""
    with sqlite3.connect(libdir / "library.db") as db:
        db.execute("UPDATE items SET genres = ''")
        db.execute("DELETE FROM item_attributes WHERE key = 'ml_written_genres'")


def floor_run(paths: list[Path], features: dict, workers: int, with_features: bool) -> dict:
    """read_excerpts over ``paths`` with the excerpt and (``with_features``)
    the log-mel features of the analysis pass, from this process."""
    from tagcore.audio import AudioError
    from tagcore.features import MelParams, excerpt_features
    from tagcore.workers import read_excerpts

    params = MelParams.from_dict(features)
    transform = functools.partial(excerpt_features, params=params) if with_features else None
    start = time.perf_counter()
    failures = [
        str(result)
        for _, _, result in read_excerpts(
            [str(p) for p in paths],
            sample_rate=params.sample_rate,
            duration=params.excerpt_seconds,
            transform=transform,
            workers=workers,
        )
        if isinstance(result, (AudioError, BaseException))
    ]
    wall = time.perf_counter() - start
    if failures:
        raise BenchError("floor decode failed:\n  " + "\n  ".join(failures[:10]))
    return {"wall_s": wall, "tps": len(paths) / wall}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="number of three-minute mp3 files (default 100)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench",
        help="where files, libraries and configs go; files are reused (default: %(default)s)",
    )
    parser.add_argument(
        "--model", default="genre10-cnn",
        help="bundle name or path as the genre model; 'random': random weights of genre10-cnn's architecture; "
        "'default': the plugin's default model set (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed `autotag-ml -w` runs (default 3)")
    parser.add_argument("--scale", type=int, default=4, help="second library of N*SCALE items for memory (default 4; 0 skips)")
    parser.add_argument("--workers", type=int, default=2, help="autotagml.workers, also used for the floor (default 2)")
    parser.add_argument("--model-threads", default="auto",
                        help="autotagml.model_threads: auto or a number (default auto)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or args.scale < 0 or args.workers < 0:
        parser.error("--n and --repeat must be >= 1, --scale and --workers >= 0")
    return args


def music_files(workdir: Path, n: int) -> tuple[Path, list[Path]]:
    """The folder of the ``n`` synthetic files and their paths. Files beyond
    ``n`` from an earlier, larger run stay out: then the folder is a new
    one of links to the ``n`` wanted files."""
    music = workdir / "music"
    paths = generate(music, n)
    wanted = set(paths)
    stray = [p for p in music.glob("*.mp3") if p not in wanted]
    if stray:
        music = workdir / f"music-n{n}"
        link_copies(paths, music, 1)
        paths = sorted(music.glob("*.mp3"))
    return music, paths


def timed_runs(config: Path, libdir: Path, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """``--repeat`` runs of ``autotag-ml -w`` (every file written each time),
    then one with ``--reanalyze -W``."""
    print(f"beet autotag-ml, library of {args.n}:", flush=True)
    runs = []
    for i in range(args.repeat):
        flags = ["-w"] if i == 0 else ["--reanalyze", "-w"]
        forget_genres(libdir)  # so that every run writes every file (reused files hold earlier tags)
        runs.append(autotag_run(config, libdir, flags, args.n, f"run {i + 1} ({' '.join(flags)})"))
    nowrite = autotag_run(config, libdir, ["--reanalyze", "-W"], args.n, "no writes (--reanalyze -W)")
    return runs, nowrite


def scaled_run(paths: list[Path], model: str, workdir: Path, args: argparse.Namespace) -> dict:
    """One ``autotag-ml -w`` over a library of ``--scale`` hard links per file."""
    big_n = args.n * args.scale
    print(f"beet autotag-ml, library of {big_n} ({args.scale} hard links per file):", flush=True)
    big_music = link_copies(paths, workdir / f"music-x{args.scale}", args.scale)
    big_lib = workdir / f"lib-x{args.scale}"
    big_config = build_library(big_lib, big_music, model, args.workers, big_n, args.model_threads)
    forget_genres(big_lib)
    scaled = autotag_run(big_config, big_lib, ["-w"], big_n, "run 1 (-w)")
    scaled["n"] = big_n
    return scaled


def report_rows(m: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The table of the figures ``m`` (see :func:`measure_all`)."""
    floor, floor_feat, runs, scaled = m["floor"], m["floor_feat"], m["runs"], m["scaled"]
    rows = [
        ("tracks (N)", f"{args.n}"),
        ("floor: decode only", f"{floor['tps']:.2f} tracks/s ({floor['wall_s']:.2f} s)"),
        ("floor: decode + features", f"{floor_feat['tps']:.2f} tracks/s ({floor_feat['wall_s']:.2f} s)"),
        ("beet start-up", f"{m['startup']['wall_s']:.2f} s"),
        (
            f"autotag-ml -w, median of {args.repeat}",
            f"{m['median_tps']:.2f} tracks/s ({m['median_wall']:.2f} s; runs "
            + ", ".join(f"{r['wall_s']:.2f}" for r in runs)
            + " s)",
        ),
        ("autotag-ml --reanalyze -W (no writes)", f"{m['nowrite']['tps']:.2f} tracks/s ({m['nowrite']['wall_s']:.2f} s)"),
        ("autotag-ml / floor (decode)", f"{m['median_tps'] / floor['tps']:.2f}"),
        ("autotag-ml / floor (decode+feat)", f"{m['median_tps'] / floor_feat['tps']:.2f}"),
        (f"peak RSS, N={args.n}",
         f"{m['peak_n']:.0f} MB (beet process alone {max(r['main_hwm_mb'] for r in runs):.0f} MB)"),
    ]
    if scaled:
        rows += [
            (f"peak RSS, N={scaled['n']}", f"{scaled['peak_rss_mb']:.0f} MB (beet process alone {scaled['main_hwm_mb']:.0f} MB)"),
            (f"autotag-ml -w, N={scaled['n']}", f"{scaled['tps']:.2f} tracks/s ({scaled['wall_s']:.2f} s)"),
        ]
    return rows


def measure_all(args: argparse.Namespace, workdir: Path, model: str, features: dict) -> dict:
    """Every measurement of the benchmark, printed as it goes: the floors,
    beet's start-up, the timed runs and the scaled library's run."""
    music, paths = music_files(workdir, args.n)
    libdir = workdir / "lib"
    config = build_library(libdir, music, model, args.workers, args.n, args.model_threads)

    print(f"floor: read_excerpts(workers={args.workers}) over the same {args.n} files", flush=True)
    floor = floor_run(paths, features, args.workers, with_features=False)
    print(f"  decode only            {floor['wall_s']:7.2f} s  {floor['tps']:6.2f} tracks/s", flush=True)
    floor_feat = floor_run(paths, features, args.workers, with_features=True)
    print(f"  decode + features      {floor_feat['wall_s']:7.2f} s  {floor_feat['tps']:6.2f} tracks/s", flush=True)

    startup = run_measured(beet_executable() + ["-c", str(config), "version"], beet_env(libdir))
    print(f"  beet start-up (`beet version`) {startup['wall_s']:.2f} s", flush=True)

    runs, nowrite = timed_runs(config, libdir, args)
    median_wall = statistics.median(r["wall_s"] for r in runs)
    return {
        "floor": floor, "floor_feat": floor_feat, "startup": startup, "runs": runs, "nowrite": nowrite,
        "median_wall": median_wall, "median_tps": args.n / median_wall,
        "peak_n": max(r["peak_rss_mb"] for r in runs + [nowrite]),
        "scaled": scaled_run(paths, model, workdir, args) if args.scale else None,
    }


def print_report(m: dict, args: argparse.Namespace, info: dict, command_line: str, load_end) -> str:
    """Print the table and the verdict line; return "PASS" or "FAIL"."""
    scaled = m["scaled"]
    rss_ok = m["peak_n"] < TARGET_RSS_MB and (scaled is None or scaled["peak_rss_mb"] < TARGET_RSS_MB)
    tps_ok = m["median_tps"] >= TARGET_TPS
    rows = report_rows(m, args)
    width = max(len(k) for k, _ in rows)
    print()
    print(f"command: {command_line}")
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, torch {info['versions']['torch']}, beets {info['versions']['beets']}")
    print(f"load average: start {info['loadavg_start'][0]:.2f}, end {load_end[0]:.2f}")
    print(f"summary line of the last run: {m['runs'][-1]['summary']}")
    print("-" * (width + 40))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 40))
    verdict = "PASS" if tps_ok and rss_ok else "FAIL"
    print(
        f"{verdict}: {m['median_tps']:.2f} tracks/s {'>=' if tps_ok else '<'} {TARGET_TPS:g}; "
        f"peak RSS {max(m['peak_n'], scaled['peak_rss_mb'] if scaled else 0):.0f} MB "
        f"{'<' if rss_ok else '>='} {TARGET_RSS_MB:.0f} MB"
    )
    print("(peak RSS sums VmRSS of beet and all its descendants every 50 ms; shared pages count once per process)")
    if args.n < PLUGIN_BATCH_SIZE:
        print(f"(N < the plugin's batch size {PLUGIN_BATCH_SIZE}: peak RSS at N is from a smaller batch than at N*scale)")
    return verdict


def figures(m: dict, args: argparse.Namespace, info: dict, command_line: str, load_end, model: str,
            bundle_config: dict, verdict: str) -> dict:
    """What ``--json`` writes."""
    def strip(run):
        return {k: v for k, v in run.items() if k not in ("stdout", "stderr")}

    return {
        "command": command_line,
        "machine": {**info, "loadavg_end": load_end},
        "model": {"spec": args.model, "path": model, "name": bundle_config["name"], "version": bundle_config["version"]},
        "n": args.n,
        "workers": args.workers,
        "floor_decode": m["floor"],
        "floor_decode_features": m["floor_feat"],
        "beet_startup_s": m["startup"]["wall_s"],
        "autotag_runs": [strip(r) for r in m["runs"]],
        "autotag_median_wall_s": m["median_wall"],
        "autotag_median_tps": m["median_tps"],
        "autotag_nowrite": strip(m["nowrite"]),
        "ratio_to_floor_decode": m["median_tps"] / m["floor"]["tps"],
        "ratio_to_floor_decode_features": m["median_tps"] / m["floor_feat"]["tps"],
        "peak_rss_mb": m["peak_n"],
        "scaled": strip(m["scaled"]) if m["scaled"] else None,
        "targets": {"tps": TARGET_TPS, "rss_mb": TARGET_RSS_MB},
        "pass": verdict == "PASS",
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    command_line = shlex.join(["python", os.path.relpath(__file__, Path.cwd()), *(sys.argv[1:] if argv is None else argv)])
    info = machine()
    print(f"command:  {command_line}")
    print(f"machine:  {info['nproc']} CPUs, {info['cpu']}; load average {'/'.join(f'{x:.2f}' for x in info['loadavg_start'])}")
    print(f"software: Python {info['python']}, " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))

    workdir = args.workdir.resolve()
    model, bundle_config = prepare_model(args.model, workdir)
    features = bundle_features(bundle_config)
    print(
        f"model:    {bundle_config['name']} {bundle_config['version']} ({model}); "
        f"excerpt {features.get('sample_rate', 22050)} Hz, "
        f"{features.get('excerpt_frames', 646)} frames, centred"
    )

    measured = measure_all(args, workdir, model, features)
    load_end = os.getloadavg()
    verdict = print_report(measured, args, info, command_line, load_end)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = figures(measured, args, info, command_line, load_end, model, bundle_config, verdict)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.stdout.flush()
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        sys.exit(2)
