"""What the benchmark scripts share: synthetic music, beets as a
subprocess, peak memory of a process tree, the machine's description, and
analysis passes timed in a fresh process.

The scripts run as ``python benchmarks/<script>.py`` from the repository
root; Python then puts ``benchmarks/`` first on ``sys.path``, so they import
this module plainly (``from common import ...``). Importing it puts the
checkout's root first on ``sys.path`` as well, so that the scripts (and the
processes they spawn) use this checkout's ``tagcore``, ``trainer`` and
``beetsplug``: the project need not be installed.

Keep module-level imports to the standard library: decoding workers are
started with 'spawn' and import the running script, hence this module, again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

#: The synthetic tracks: three-minute 44.1 kHz stereo mp3 files.
SAMPLE_RATE = 44100
TRACK_SECONDS = 180.0
SEED_BASE = 20240
#: Peak memory target of every benchmark (the process and its children).
TARGET_RSS_MB = 1024.0
#: How often the memory of a process tree is sampled, in seconds.
SAMPLE_INTERVAL = 0.05


class BenchError(Exception):
    """The benchmark could not measure what it should (exit status 2)."""



# --------------------------------------------------------------- synthetic music


@dataclass(frozen=True)
class _Style:
    """What ``synth_track`` draws from its seed: tempo (beat in seconds), key
    (MIDI root, scale steps, the four chords' degrees) and timbre."""

    beat: float
    root: int
    scale: tuple[int, ...]
    degrees: tuple[int, ...]
    harm_amps: object  # float32 (harmonics,): amplitude of each harmonic
    note_decay: float
    mel_subdiv: int
    kick_pattern: tuple[float, ...]

    @classmethod
    def draw(cls, rng) -> _Style:
        """The style of one track; the draws come in a fixed order, so a seed
        always gives the same track."""
        import numpy as np

        beat = 60.0 / rng.uniform(70, 160)
        root = int(rng.integers(40, 52))  # MIDI, E2..D#3
        scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.5 else (0, 2, 3, 5, 7, 8, 10)
        degrees = (0, *(int(d) for d in rng.choice([1, 2, 3, 4, 5, 6], size=3)))
        harmonics = int(rng.integers(1, 7))
        rolloff = rng.uniform(0.8, 2.0)
        harm_amps = np.array([1.0 / k**rolloff for k in range(1, harmonics + 1)], np.float32)
        note_decay = rng.uniform(2.0, 8.0)
        mel_subdiv = int(rng.choice([1, 2, 4]))
        kick_pattern = (0.0, 2.0) if rng.random() < 0.5 else (0.0, 1.5, 2.0)
        return cls(beat, root, scale, degrees, harm_amps, note_decay, mel_subdiv, kick_pattern)

    def hz(self, degree: int, octave: int) -> float:
        """The frequency of scale ``degree`` (any integer) in ``octave`` above the root."""
        midi = self.root + 12 * (octave + degree // 7) + self.scale[degree % 7]
        return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def _tone(freq: float, dur: float, amp: float, decay: float, *, harm_amps, sr: int, attack: float = 0.01):
    """A harmonic tone, float32 (dur * sr,), with a linear attack and an
    exponential decay (per second); harmonics above Nyquist are left out."""
    import numpy as np

    t = np.arange(int(dur * sr), dtype=np.float32) / sr
    phase = (2 * np.pi * freq) * t
    wave = np.zeros_like(t)
    for k, a in enumerate(harm_amps, start=1):
        if freq * k < sr / 2:
            wave += a * np.sin(k * phase)
    env = np.minimum(1.0, t / attack) * np.exp(-decay * t)
    return (amp * wave * env).astype(np.float32)


def _noise(rng, dur: float, amp: float, decay: float, *, sr: int, highpass: bool = False):
    """A decaying burst of white (or first-differenced) noise, float32 (dur * sr,)."""
    import numpy as np

    w = rng.standard_normal(int(dur * sr)).astype(np.float32)
    if highpass:
        w = np.diff(w, prepend=0.0).astype(np.float32)
    t = np.arange(w.size, dtype=np.float32) / sr
    return (amp * w * np.exp(-decay * t)).astype(np.float32)


def _kick(sr: int):
    """A 0.25 s kick drum: a falling sine sweep, float32."""
    import numpy as np

    t = np.arange(int(0.25 * sr), dtype=np.float32) / sr
    sweep = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-30 * t)) / 30))
    return (0.5 * sweep * np.exp(-12 * t)).astype(np.float32)


def _add(out, start: float, wave, pan: float, sr: int) -> None:
    """Mix ``wave`` into the stereo ``out`` (samples, 2) from ``start``
    seconds, panned (0 left, 1 right); what passes the end is cut."""
    n = len(out)
    i0 = int(start * sr)
    if i0 >= n:
        return
    wave = wave[: n - i0]
    out[i0 : i0 + wave.size, 0] += wave * (1.0 - pan)
    out[i0 : i0 + wave.size, 1] += wave * pan


def _render_bar(out, style: _Style, rng, bar_index: int, sr: int) -> None:
    """Mix bar ``bar_index`` into ``out``: its chord as a pad, a bass note per
    beat, a random melody on the chord's scale, kick, snare and hi-hats."""
    beat, decay, harm_amps = style.beat, style.note_decay, style.harm_amps
    bar = 4 * beat
    t0 = bar_index * bar
    degree = style.degrees[bar_index % 4]
    for offset in (0, 2, 4):  # triad pad
        pad = _tone(style.hz(degree + offset, 1), bar, 0.08, 1.0, harm_amps=harm_amps, sr=sr, attack=0.05)
        _add(out, t0, pad, 0.3 + 0.2 * offset / 4, sr)
    for q in range(4):  # bass on each beat
        _add(out, t0 + q * beat, _tone(style.hz(degree, 0), beat, 0.2, decay, harm_amps=harm_amps, sr=sr), 0.5, sr)
    step = beat / style.mel_subdiv
    for s in range(4 * style.mel_subdiv):  # melody
        if rng.random() < 0.7:
            freq = style.hz(degree + int(rng.integers(0, 8)), 2)
            _add(out, t0 + s * step, _tone(freq, step, 0.12, decay, harm_amps=harm_amps, sr=sr), 0.65, sr)
    for k in style.kick_pattern:
        _add(out, t0 + k * beat, _kick(sr), 0.5, sr)
    for k in (1.0, 3.0):  # snare
        _add(out, t0 + k * beat, _noise(rng, 0.2, 0.25, 20.0, sr=sr), 0.45, sr)
    for e in range(8):  # hi-hat
        _add(out, t0 + e * beat / 2, _noise(rng, 0.05, 0.08, 80.0, sr=sr, highpass=True), 0.55, sr)


def synth_track(seed: int, seconds: float = TRACK_SECONDS, sr: int = SAMPLE_RATE):
    """Deterministic music-like stereo audio, float32 (samples, 2) in [-1, 1]:
    a looping four-chord progression (pad), a bass line, a plucked melody and
    a kick/snare/hi-hat pattern, with tempo, key, mode and timbre drawn from
    ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.zeros((int(seconds * sr), 2), np.float32)
    style = _Style.draw(rng)
    for bar_index in range(int(np.ceil(seconds / (4 * style.beat)))):
        _render_bar(out, style, rng, bar_index, sr)
    out += 0.003 * rng.standard_normal(out.shape).astype(np.float32)
    out *= 0.8 / max(1e-6, float(np.abs(out).max()))
    return out


def track_path(directory: Path, index: int) -> Path:
    """Where synthetic track ``index`` goes in ``directory``."""
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
    """``n`` synthetic tracks in ``directory`` (made in parallel where not
    there already, reused otherwise); their paths."""
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


# --------------------------------------------------------------- beets


def beet_executable() -> list[str]:
    """The command that runs beets: the ``beet`` beside this Python, else on
    the PATH, else ``python -m beets``."""
    beet = Path(sys.executable).with_name("beet")
    if beet.exists():
        return [str(beet)]
    found = shutil.which("beet")
    return [found] if found else [sys.executable, "-m", "beets"]


def beet_env(workdir: Path) -> dict[str, str]:
    """The environment of a beet subprocess: ``BEETSDIR`` the workdir, and
    the checkout first on ``PYTHONPATH`` (its beetsplug and tagcore)."""
    env = dict(os.environ)
    env["BEETSDIR"] = str(workdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def db_scalar(db: Path, query: str) -> int:
    """The one number ``query`` gives in the SQLite database ``db``."""
    with sqlite3.connect(str(db)) as conn:
        return int(conn.execute(query).fetchone()[0])



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


# --------------------------------------------------------------- the machine


def machine() -> dict:
    """The machine and the software versions, for the reports: CPU count and
    model, Python, platform, package versions, load average now."""
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



# --------------------------------------------------------------- analysis passes in a fresh process


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every analysis-pass benchmark takes: files, workers,
    device, where the synthetic music goes, and a JSON report."""
    parser.add_argument("--n", type=int, default=20, help="synthetic files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "autotagml-bench")
    parser.add_argument("--json", type=Path)


def installed_defaults() -> list[str]:
    """The plugin's default model set's bundle names (each once) that are
    installed; each one missing is named and left out."""
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


def run_in_child(module: str, function: str, arguments: list, *, label: str) -> dict:
    """``module.function(*arguments)`` in a fresh Python process (so that its
    peak memory is its own), with the checkout and ``benchmarks/`` on its
    path; the dict it returns, plus ``peak_rss_mb`` (the process and its
    workers). ``arguments`` must be JSON values. Raises BenchError, starting
    with ``label``, when the child fails or reports ``broken`` or ``not_ok``
    outputs."""
    code = (f"import json, sys; import {module}; "
            f"print('RESULT ' + json.dumps({module}.{function}(*json.loads(sys.argv[1]))))")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(BENCHMARKS), env.get("PYTHONPATH")]))
    run = run_measured([sys.executable, "-c", code, json.dumps(arguments)], env=env)
    lines = [line for line in run["stdout"].splitlines() if line.startswith("RESULT ")]
    if run["returncode"] != 0 or not lines:
        raise BenchError(f"{label}: {run['stderr'][-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if result.get("broken") or result.get("not_ok"):
        raise BenchError(f"{label}: {result['broken']} {result['not_ok']}")
    result["peak_rss_mb"] = run["peak_rss_mb"]
    return result


def analysis_pass(bundles: list[str], paths: list[str], workers: int, device: str,
                  options: dict | None = None) -> dict:
    """Run in the child: one :class:`tagcore.analysis.Analysis` pass of
    ``bundles`` over ``paths`` (``options``: further keyword arguments of
    Analysis, e.g. ``model_threads``, ``runtime``); its figures as a dict
    (time from the call to the last result, model loading included)."""
    from tagcore.analysis import Analysis

    analysis = Analysis(bundles, workers=workers, device=device, **(options or {}))
    start = time.perf_counter()
    results = list(analysis.analyse(paths))
    wall = time.perf_counter() - start
    # Text bundles get no text here (no lyrics, no reviews): not a failure.
    bad = sorted({o.message for r in results for o in r.outputs.values() if not o.ok and o.status != "no_input"})
    return {"bundles": bundles, "files": len(paths), "wall_s": wall, "tps": len(paths) / wall,
            "decodes": sum(r.decodes for r in results), "broken": analysis.broken, "not_ok": bad[:3],
            "runtimes": analysis.runtimes, "options": options or {}}


def measure(bundles: list[str], paths: list[Path], workers: int, device: str, options: dict | None = None,
            label: str | None = None) -> dict:
    """:func:`analysis_pass` in a fresh process, printed as one line."""
    result = run_in_child("common", "analysis_pass", [bundles, [str(p) for p in paths], workers, device, options],
                          label=str(bundles))
    name = label or " + ".join(bundles)
    print(f"  {name:<70} {result['wall_s']:7.2f} s  {result['tps']:6.2f} tracks/s  "
          f"{result['decodes']:3d} decodes  peak RSS {result['peak_rss_mb']:5.0f} MB", flush=True)
    return result
