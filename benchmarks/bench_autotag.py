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
   reused, so reruns are quick);
2. builds a fresh beets library (``beet import -A -q``, not timed);
3. times the floor: :func:`tagcore.audio.read_excerpts` over the same files
   with the bundle's excerpt parameters, decode only and decode + the
   Tagger's feature transform;
4. times the whole command ``beet autotag-ml -w`` as a subprocess (beets
   start-up, torch import, model load, decoding, inference, tag writes,
   database rows), ``--repeat`` times (``-f`` after the first), and once
   with ``--reanalyze -W`` (no file writes);
5. samples the summed RSS of the beet process and all its descendants every
   50 ms; does the same on a second library of ``--n * --scale`` items
   (hard links to the same files under other names);
6. prints a table and PASS/FAIL against the targets; ``--json`` saves the
   figures.

Run from the repository root (the checkout's ``beetsplug`` and ``tagcore``
are put first on the beet subprocess's PYTHONPATH)::

    python benchmarks/bench_autotag.py                 # shipped genre10
    python benchmarks/bench_autotag.py --model random  # random weights, same architecture
    python benchmarks/bench_autotag.py --model default --repeat 1 --scale 1   # the plugin's default model set
    python benchmarks/bench_autotag.py --n 10 --repeat 1 --scale 2   # quick check

Exit status: 0 targets met, 1 a target missed, 2 the benchmark itself
failed (an item not analysed, a command error...).

Keep module-level imports to the standard library: decoding workers are
started with 'spawn' and import this file again.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 44100
TRACK_SECONDS = 180.0
SEED_BASE = 20240
TARGET_TPS = 10.0
TARGET_RSS_MB = 1024.0
SAMPLE_INTERVAL = 0.05
PLUGIN_BATCH_SIZE = 16  # autotagml.batch_size default, for a note only
RANDOM_LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
#: Architecture of the random stand-in when the shipped bundle is absent.
RANDOM_MODEL = dict(channels=(16, 32, 64, 128), gru_hidden=128)
SUMMARY_RE = re.compile(
    r"autotag-ml: (?P<analysed>\d+) analysed \((?P<decoded>\d+) decoded\), (?P<from_store>\d+) from the store.*\n"
    r"  genre \(.*?\): (?P<tagged>\d+) tagged, (?P<unchanged>\d+) unchanged, (?P<short>\d+) skipped as too short, "
    r"(?P<failed>\d+) failed, (?P<below>\d+) below threshold"
)


class BenchError(Exception):
    """The benchmark could not measure what it should (exit status 2)."""


# --------------------------------------------------------------- audio


def synth_track(seed: int, seconds: float = TRACK_SECONDS, sr: int = SAMPLE_RATE):
    """Deterministic music-like stereo audio, float32 (samples, 2) in [-1, 1]:
    a looping four-chord progression (pad), a bass line, a plucked melody and
    a kick/snare/hi-hat pattern, with tempo, key, mode and timbre drawn from
    ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros((n, 2), np.float32)
    bpm = rng.uniform(70, 160)
    beat = 60.0 / bpm
    root = int(rng.integers(40, 52))  # MIDI, E2..D#3
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10]
    degrees = [0] + list(rng.choice([1, 2, 3, 4, 5, 6], size=3))
    harmonics = int(rng.integers(1, 7))
    rolloff = rng.uniform(0.8, 2.0)
    harm_amps = np.array([1.0 / k**rolloff for k in range(1, harmonics + 1)], np.float32)
    note_decay = rng.uniform(2.0, 8.0)
    mel_subdiv = int(rng.choice([1, 2, 4]))

    def midi_hz(m):
        return 440.0 * 2.0 ** ((m - 69) / 12.0)

    def scale_note(degree, octave):
        return root + 12 * (octave + degree // 7) + scale[degree % 7]

    def add(start, dur, wave, pan):
        i0 = int(start * sr)
        if i0 >= n:
            return
        wave = wave[: n - i0]
        out[i0 : i0 + wave.size, 0] += wave * (1.0 - pan)
        out[i0 : i0 + wave.size, 1] += wave * pan

    def tone(freq, dur, amp, decay, attack=0.01):
        t = np.arange(int(dur * sr), dtype=np.float32) / sr
        phase = (2 * np.pi * freq) * t
        wave = np.zeros_like(t)
        for k, a in enumerate(harm_amps, start=1):
            if freq * k < sr / 2:
                wave += a * np.sin(k * phase)
        env = np.minimum(1.0, t / attack) * np.exp(-decay * t)
        return (amp * wave * env).astype(np.float32)

    def noise(dur, amp, decay, highpass=False):
        w = rng.standard_normal(int(dur * sr)).astype(np.float32)
        if highpass:
            w = np.diff(w, prepend=0.0).astype(np.float32)
        t = np.arange(w.size, dtype=np.float32) / sr
        return (amp * w * np.exp(-decay * t)).astype(np.float32)

    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    kick_pattern = [0.0, 2.0] if rng.random() < 0.5 else [0.0, 1.5, 2.0]
    for b in range(n_bars):
        t0 = b * bar
        degree = int(degrees[b % 4])
        for offset in (0, 2, 4):  # triad pad
            add(t0, bar, tone(midi_hz(scale_note(degree + offset, 1)), bar, 0.08, 1.0, 0.05), 0.3 + 0.2 * offset / 4)
        for q in range(4):  # bass on each beat
            add(t0 + q * beat, beat, tone(midi_hz(scale_note(degree, 0)), beat, 0.2, note_decay), 0.5)
        step = beat / mel_subdiv
        for s in range(4 * mel_subdiv):  # melody
            if rng.random() < 0.7:
                note = scale_note(degree + int(rng.integers(0, 8)), 2)
                add(t0 + s * step, step, tone(midi_hz(note), step, 0.12, note_decay), 0.65)
        for k in kick_pattern:
            t = np.arange(int(0.25 * sr), dtype=np.float32) / sr
            sweep = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-30 * t)) / 30))
            add(t0 + k * beat, 0.25, (0.5 * sweep * np.exp(-12 * t)).astype(np.float32), 0.5)
        for k in (1.0, 3.0):
            add(t0 + k * beat, 0.2, noise(0.2, 0.25, 20.0), 0.45)
        for e in range(8):
            add(t0 + e * beat / 2, 0.05, noise(0.05, 0.08, 80.0, highpass=True), 0.55)
    out += 0.003 * rng.standard_normal(out.shape).astype(np.float32)
    out *= 0.8 / max(1e-6, float(np.abs(out).max()))
    return out


def track_path(directory: Path, index: int) -> Path:
    return directory / f"bench_{index:04d}.mp3"


def _usable_mp3(path: Path) -> bool:
    try:
        import soundfile as sf

        return abs(sf.info(str(path)).duration - TRACK_SECONDS) < 1.0
    except Exception:
        return False


def make_track(job: tuple[str, int]) -> str:
    """Write one tagged mp3 (if not there already); returns 'made' or 'kept'."""
    path_text, index = job
    path = Path(path_text)
    if path.exists() and _usable_mp3(path):
        return "kept"
    import mutagen
    import soundfile as sf

    partial = path.with_name(f".{path.name}.partial")
    sf.write(str(partial), synth_track(SEED_BASE + index), SAMPLE_RATE, format="MP3")
    audio = mutagen.File(str(partial), easy=True)
    if audio.tags is None:
        audio.add_tags()
    audio["title"] = f"Bench Track {index:04d}"
    audio["artist"] = f"Bench Artist {index:04d}"
    audio["album"] = "autotagml benchmark"
    audio["tracknumber"] = str(index + 1)
    audio.save()
    os.replace(partial, path)
    return "made"


def generate(directory: Path, n: int) -> list[Path]:
    import multiprocessing

    directory.mkdir(parents=True, exist_ok=True)
    paths = [track_path(directory, i) for i in range(n)]
    missing = [(str(p), i) for i, p in enumerate(paths) if not (p.exists() and _usable_mp3(p))]
    if missing:
        print(f"generating {len(missing)} of {n} mp3 files in {directory} ...", flush=True)
        start = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
            for done, _ in enumerate(pool.imap_unordered(make_track, missing), start=1):
                if done % 10 == 0 or done == len(missing):
                    print(f"  {done}/{len(missing)} ({time.monotonic() - start:.0f} s)", flush=True)
    else:
        print(f"reusing {n} mp3 files in {directory}", flush=True)
    return paths


# --------------------------------------------------------------- bundle


def prepare_model(spec: str, workdir: Path) -> tuple[str, dict]:
    """The bundle path or name to configure, and its config.json."""
    sys.path.insert(0, str(REPO))
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
    """A bundle with random (seeded) weights: the shipped genre10's
    architecture, labels and features when it exists, else RANDOM_MODEL."""
    import torch

    from tagcore.bundle import BundleError, DEFAULT_BUNDLE, resolve_bundle, save_bundle
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


def beet_executable() -> list[str]:
    beet = Path(sys.executable).with_name("beet")
    if beet.exists():
        return [str(beet)]
    found = shutil.which("beet")
    return [found] if found else [sys.executable, "-m", "beets"]


def beet_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BEETSDIR"] = str(workdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def write_config(libdir: Path, music: Path, model: str, workers: int) -> Path:
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
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


def build_library(libdir: Path, music: Path, model: str, workers: int, expected: int) -> Path:
    """A fresh library of the files in ``music``, imported as they are."""
    for stale in ("library.db", "state.pickle", "autotagml.sqlite", "autotagml.sqlite-wal", "autotagml.sqlite-shm"):
        (libdir / stale).unlink(missing_ok=True)
    config = write_config(libdir, music, model, workers)
    cmd = beet_executable() + ["-c", str(config), "import", "-A", "-q", str(music)]
    print(f"importing {expected} files: {shlex.join(cmd)}", flush=True)
    done = subprocess.run(cmd, env=beet_env(libdir), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"import failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    count = db_scalar(libdir / "library.db", "SELECT COUNT(*) FROM items")
    if count != expected:
        raise BenchError(f"import gave {count} items, expected {expected}:\n{done.stdout}{done.stderr}")
    return config


def db_scalar(db: Path, query: str) -> int:
    with sqlite3.connect(str(db)) as conn:
        return int(conn.execute(query).fetchone()[0])


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


# --------------------------------------------------------------- memory


def _process_table() -> dict[int, int]:
    """pid -> ppid for every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            table[int(entry.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return table


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in _process_table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _status_kb(pid: int, *keys: str) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                name, _, rest = line.partition(b":")
                if name.decode() in keys:
                    values[name.decode()] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values


class TreeMemory(threading.Thread):
    """Samples the summed VmRSS of a process and its descendants."""

    def __init__(self, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.proc = proc
        self.peak_kb = 0
        self.peak_processes = 0
        self.main_hwm_kb = 0
        self.samples = 0

    def run(self) -> None:
        while self.proc.poll() is None:
            pids = _descendants(self.proc.pid)
            total = sum(_status_kb(pid, "VmRSS").get("VmRSS", 0) for pid in pids)
            self.main_hwm_kb = max(self.main_hwm_kb, _status_kb(self.proc.pid, "VmHWM").get("VmHWM", 0))
            if total > self.peak_kb:
                self.peak_kb, self.peak_processes = total, len(pids)
            self.samples += 1
            time.sleep(SAMPLE_INTERVAL)


def run_measured(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``; its wall time, output and peak tree RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeMemory(proc)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "stdout": stdout,
        "stderr": stderr,
        "peak_rss_mb": sampler.peak_kb / 1024,
        "peak_processes": sampler.peak_processes,
        "main_hwm_mb": sampler.main_hwm_kb / 1024,
        "samples": sampler.samples,
    }


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
    """read_excerpts over ``paths`` as the Tagger does it, in this process."""
    sys.path.insert(0, str(REPO))
    from tagcore.audio import AudioError, read_excerpts
    from tagcore.features import MelParams, excerpt_features

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


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for package in ("torch", "beets", "numpy", "soundfile", "av", "soxr"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="number of three-minute mp3 files (default 100)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench",
        help="where files, libraries and configs go; files are reused (default: %(default)s)",
    )
    parser.add_argument(
        "--model", default="genre10-cnn",
        help="bundle name or path, or 'random' for random weights of the same architecture (default genre10)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed `autotag-ml -w` runs (default 3)")
    parser.add_argument("--scale", type=int, default=4, help="second library of N*SCALE items for memory (default 4; 0 skips)")
    parser.add_argument("--workers", type=int, default=2, help="autotagml.workers, also used for the floor (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or args.scale < 0 or args.workers < 0:
        parser.error("--n and --repeat must be >= 1, --scale and --workers >= 0")
    return args


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

    music = workdir / "music"
    paths = generate(music, args.n)
    # Files beyond --n from an earlier, larger run stay out of the library.
    wanted = set(paths)
    stray = [p for p in music.glob("*.mp3") if p not in wanted]
    if stray:
        music = workdir / f"music-n{args.n}"
        link_copies(paths, music, 1)
        paths = sorted(music.glob("*.mp3"))

    libdir = workdir / "lib"
    config = build_library(libdir, music, model, args.workers, args.n)

    print(f"floor: read_excerpts(workers={args.workers}) over the same {args.n} files", flush=True)
    floor = floor_run(paths, features, args.workers, with_features=False)
    print(f"  decode only            {floor['wall_s']:7.2f} s  {floor['tps']:6.2f} tracks/s", flush=True)
    floor_feat = floor_run(paths, features, args.workers, with_features=True)
    print(f"  decode + features      {floor_feat['wall_s']:7.2f} s  {floor_feat['tps']:6.2f} tracks/s", flush=True)

    startup = run_measured(beet_executable() + ["-c", str(config), "version"], beet_env(libdir))
    print(f"  beet start-up (`beet version`) {startup['wall_s']:.2f} s", flush=True)

    print(f"beet autotag-ml, library of {args.n}:", flush=True)
    runs = []
    for i in range(args.repeat):
        flags = ["-w"] if i == 0 else ["--reanalyze", "-w"]
        forget_genres(libdir)  # so that every run writes every file (reused files hold earlier tags)
        runs.append(autotag_run(config, libdir, flags, args.n, f"run {i + 1} ({' '.join(flags)})"))
    nowrite = autotag_run(config, libdir, ["--reanalyze", "-W"], args.n, "no writes (--reanalyze -W)")
    median_wall = statistics.median(r["wall_s"] for r in runs)
    median_tps = args.n / median_wall
    peak_n = max(r["peak_rss_mb"] for r in runs + [nowrite])

    scaled = None
    if args.scale:
        big_n = args.n * args.scale
        print(f"beet autotag-ml, library of {big_n} ({args.scale} hard links per file):", flush=True)
        big_music = link_copies(paths, workdir / f"music-x{args.scale}", args.scale)
        big_lib = workdir / f"lib-x{args.scale}"
        big_config = build_library(big_lib, big_music, model, args.workers, big_n)
        forget_genres(big_lib)
        scaled = autotag_run(big_config, big_lib, ["-w"], big_n, "run 1 (-w)")
        scaled["n"] = big_n

    rss_ok = peak_n < TARGET_RSS_MB and (scaled is None or scaled["peak_rss_mb"] < TARGET_RSS_MB)
    tps_ok = median_tps >= TARGET_TPS
    rows = [
        ("tracks (N)", f"{args.n}"),
        ("floor: decode only", f"{floor['tps']:.2f} tracks/s ({floor['wall_s']:.2f} s)"),
        ("floor: decode + features", f"{floor_feat['tps']:.2f} tracks/s ({floor_feat['wall_s']:.2f} s)"),
        ("beet start-up", f"{startup['wall_s']:.2f} s"),
        (
            f"autotag-ml -w, median of {args.repeat}",
            f"{median_tps:.2f} tracks/s ({median_wall:.2f} s; runs "
            + ", ".join(f"{r['wall_s']:.2f}" for r in runs)
            + " s)",
        ),
        ("autotag-ml --reanalyze -W (no writes)", f"{nowrite['tps']:.2f} tracks/s ({nowrite['wall_s']:.2f} s)"),
        ("autotag-ml / floor (decode)", f"{median_tps / floor['tps']:.2f}"),
        ("autotag-ml / floor (decode+feat)", f"{median_tps / floor_feat['tps']:.2f}"),
        (f"peak RSS, N={args.n}", f"{peak_n:.0f} MB (beet process alone {max(r['main_hwm_mb'] for r in runs):.0f} MB)"),
    ]
    if scaled:
        rows += [
            (f"peak RSS, N={scaled['n']}", f"{scaled['peak_rss_mb']:.0f} MB (beet process alone {scaled['main_hwm_mb']:.0f} MB)"),
            (f"autotag-ml -w, N={scaled['n']}", f"{scaled['tps']:.2f} tracks/s ({scaled['wall_s']:.2f} s)"),
        ]
    load_end = os.getloadavg()
    width = max(len(k) for k, _ in rows)
    print()
    print(f"command: {command_line}")
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, torch {info['versions']['torch']}, beets {info['versions']['beets']}")
    print(f"load average: start {info['loadavg_start'][0]:.2f}, end {load_end[0]:.2f}")
    print(f"summary line of the last run: {runs[-1]['summary']}")
    print("-" * (width + 40))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 40))
    verdict = "PASS" if tps_ok and rss_ok else "FAIL"
    print(
        f"{verdict}: {median_tps:.2f} tracks/s {'>=' if tps_ok else '<'} {TARGET_TPS:g}; "
        f"peak RSS {max(peak_n, scaled['peak_rss_mb'] if scaled else 0):.0f} MB "
        f"{'<' if rss_ok else '>='} {TARGET_RSS_MB:.0f} MB"
    )
    print("(peak RSS sums VmRSS of beet and all its descendants every 50 ms; shared pages count once per process)")
    if args.n < PLUGIN_BATCH_SIZE:
        print(f"(N < the plugin's batch size {PLUGIN_BATCH_SIZE}: peak RSS at N is from a smaller batch than at N*scale)")

    if args.json:
        def strip(run):
            return {k: v for k, v in run.items() if k not in ("stdout", "stderr")}

        figures = {
            "command": command_line,
            "machine": {**info, "loadavg_end": load_end},
            "model": {"spec": args.model, "path": model, "name": bundle_config["name"], "version": bundle_config["version"]},
            "n": args.n,
            "workers": args.workers,
            "floor_decode": floor,
            "floor_decode_features": floor_feat,
            "beet_startup_s": startup["wall_s"],
            "autotag_runs": [strip(r) for r in runs],
            "autotag_median_wall_s": median_wall,
            "autotag_median_tps": median_tps,
            "autotag_nowrite": strip(nowrite),
            "ratio_to_floor_decode": median_tps / floor["tps"],
            "ratio_to_floor_decode_features": median_tps / floor_feat["tps"],
            "peak_rss_mb": peak_n,
            "scaled": strip(scaled) if scaled else None,
            "targets": {"tps": TARGET_TPS, "rss_mb": TARGET_RSS_MB},
            "pass": verdict == "PASS",
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.stdout.flush()
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        sys.exit(2)
