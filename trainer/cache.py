"""On-disk feature cache: decode each track once, read it back memory-mapped.

Audio is decoded and turned into a family's input (a log-mel matrix, or the
raw waveform excerpt) by :func:`tagcore.workers.read_excerpts` worker
processes, which write each result straight into the cache; the parent
checks the file and moves it into place. Later epochs and later runs map the
stored ``.npy`` files instead of decoding again.

Layout::

    ROOT/<kind>-<hash>/manifest.json          what the folder holds (for people)
    ROOT/<kind>-<hash>/<key[:2]>/<key>.npy    one array per track
    ROOT/<kind>-<hash>/.partial/              files being written

``<hash>`` covers the kind, the feature parameters, the excerpt spec and the
cache format version, so changing any of them selects another folder.
``<key>`` is the sha1 of the file's content identity (:func:`file_identity`:
its size and a hash of its bytes), so a file whose bytes change gets a new
key (its old entry is simply no longer used), while a dataset copied or
moved elsewhere, or re-copied with new modification times, keeps its
entries.

Writes are atomic: a worker writes a temporary file in ``.partial/`` (same
file system), the parent verifies it and ``os.replace``-s it to its final
name. A killed run therefore never leaves a half-written final file; an
unreadable or truncated ``.npy`` found later is treated as absent (reported
once on stderr, then recomputed). Files that fail to decode are reported,
never cached, so they are tried again on the next run.

The module imports torch only when :class:`CroppedFeatures` or
:func:`collate` are used: the decoding workers import this module to run the
transform and must stay light.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagcore.audio import AudioError
from tagcore.features import MelParams, log_mel_spectrogram
from tagcore.workers import read_excerpts

__all__ = ["FORMAT_VERSION", "FeatureCache", "CroppedFeatures", "collate", "default_cache_root"]  # noqa: F822 (lazy: __getattr__)

#: Bump when the stored arrays change meaning; it is part of the folder hash.
FORMAT_VERSION = 1
KINDS = ("logmel", "waveform")
#: Leftover temporary files older than this are removed by the next build.
_STALE_PARTIAL_SECONDS = 24 * 3600
_PARTIAL_DIR = ".partial"
#: MelParams fields that do not change the spectrogram (only how it is cut
#: later), left out of the folder hash so that changing them reuses the cache.
_MEL_FIELDS_NOT_HASHED = ("excerpt_frames", "patch_frames", "offset")
#: MelParams fields added after caches existed: hashed only when they differ
#: from their default, so that older cache folders keep their names.
_MEL_FIELDS_HASHED_IF_SET = ("center", "log", "mel_float16")


#: Files up to this size are hashed whole by :func:`file_identity`; larger
#: ones by their first and last ``_EDGE_BYTES`` (audio datasets here are
#: clips of a few MB; a multi-GB file is not read whole to key a cache).
_WHOLE_FILE_BYTES = 32 << 20
_EDGE_BYTES = 4 << 20


def file_identity(path) -> str:
    """A file's identity for the trainer's caches: ``"<size>:<sha1>"`` of
    its bytes (whole up to 32 MiB, else its first and last 4 MiB).

    It does not depend on the path or on modification times: a dataset
    copied elsewhere, or re-copied (new mtimes, same bytes), keeps its
    cache entries; a file whose bytes change gets new ones. Raises OSError
    when the file cannot be read.
    """
    size = os.stat(path).st_size
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        if size <= _WHOLE_FILE_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(_EDGE_BYTES))
            handle.seek(size - _EDGE_BYTES)
            digest.update(handle.read(_EDGE_BYTES))
    return f"{size}:{digest.hexdigest()}"


def default_cache_root() -> Path:
    """``platformdirs.user_cache_dir("beets-autotagml")/features``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("beets-autotagml")) / "features"


# --------------------------------------------------------------- the spec

def _normalise_params(kind: str, params: Mapping) -> dict:
    """Canonical feature parameters (defaults filled in, types fixed), so
    that equal parameters always hash the same."""
    if kind == "logmel":
        full = MelParams.from_dict(dict(params)).to_dict()
        defaults = MelParams().to_dict()
        normal = {}
        for name, value in full.items():
            if name in _MEL_FIELDS_NOT_HASHED:
                continue
            if name in _MEL_FIELDS_HASHED_IF_SET and value == defaults[name]:
                continue
            normal[name] = type(defaults[name])(value)
        return normal
    if kind == "waveform":
        unknown = set(params) - {"sample_rate", "dtype"}
        if unknown:
            raise ValueError(f"unknown waveform parameters: {sorted(unknown)}")
        sample_rate = int(params.get("sample_rate", 22050))
        dtype = np.dtype(params.get("dtype", "float32")).name
        if dtype not in ("float32", "int16"):
            raise ValueError(f"waveform dtype must be float32 or int16, not {dtype!r}")
        return {"sample_rate": sample_rate, "dtype": dtype}
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def _normalise_excerpt(excerpt: Mapping) -> dict:
    """Canonical excerpt spec: ``max_seconds`` (None: whole track),
    ``offset`` ("centre" or seconds from the start), ``min_duration``."""
    unknown = set(excerpt) - {"max_seconds", "offset", "min_duration"}
    if unknown:
        raise ValueError(f"unknown excerpt keys: {sorted(unknown)}")
    max_seconds = excerpt.get("max_seconds")
    max_seconds = None if max_seconds in (None, 0) else float(max_seconds)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be None or > 0, not {max_seconds!r}")
    offset = excerpt.get("offset", "centre")
    if offset in (None, "centre", "center"):
        offset = "centre"
    else:
        offset = float(offset)
        if not offset >= 0:
            raise ValueError(f"offset must be 'centre' or >= 0 seconds, not {offset!r}")
    min_duration = float(excerpt.get("min_duration", 3.0))
    if not min_duration >= 0:
        raise ValueError(f"min_duration must be >= 0 seconds, not {min_duration!r}")
    return {"max_seconds": max_seconds, "offset": offset, "min_duration": min_duration}


# --------------------------------------------------- in the worker process

def _features(excerpt: np.ndarray, kind: str, params: dict) -> np.ndarray:
    """The stored array of one decoded excerpt."""
    if kind == "logmel":
        array = log_mel_spectrogram(excerpt, params=MelParams.from_dict(params))
        if array.shape[0] == 0:
            raise ValueError("no spectrogram frame: the audio is shorter than one window")
        return np.ascontiguousarray(array, dtype=np.float32)
    if params["dtype"] == "int16":
        return np.round(np.clip(excerpt, -1.0, 1.0) * 32767.0).astype(np.int16)
    return np.ascontiguousarray(excerpt, dtype=np.float32)


def _store_features(excerpt: np.ndarray, *, kind: str, params: dict, partial_dir: str,
                    prefix: str) -> tuple[str, tuple[int, ...], str]:
    """``read_excerpts`` transform: compute the array and write it to a new
    temporary file in ``partial_dir``; return (file, shape, dtype) so that
    only a few bytes travel back through the pipe."""
    array = _features(excerpt, kind, params)
    name = os.path.join(partial_dir, f"{prefix}{uuid.uuid4().hex}.npy")
    with open(name, "xb") as file:
        np.save(file, array, allow_pickle=False)
    return name, tuple(array.shape), array.dtype.str


# ----------------------------------------------------------------- cache

class FeatureCache:
    """On-disk cache of per-track feature arrays, read back memory-mapped.

    Parameters
    ----------
    root : str or os.PathLike
        Cache root, e.g. :func:`default_cache_root`.
    kind : "logmel" or "waveform"
        ``logmel``: float32 (frames, n_mels) from
        :func:`tagcore.features.log_mel_spectrogram`; ``waveform``: the mono
        excerpt, shape (samples,), float32 or int16 (``params["dtype"]``,
        int16 holds ``round(32767 * clip(x, -1, 1))``).
    params : dict
        Feature parameters: ``MelParams(...).to_dict()`` for logmel
        (``excerpt_frames`` is ignored: it does not change the matrix), or
        ``{"sample_rate": 22050, "dtype": "float32"}`` for waveform.
    excerpt : dict
        How the audio is cut: ``{"max_seconds": 120.0, "offset": "centre",
        "min_duration": 3.0}`` (``max_seconds`` None: whole tracks;
        ``offset`` a number: seconds from the start).

    ``stats`` holds the counts of the last :meth:`build` (cached, computed,
    failed, corrupt).
    """

    def __init__(self, root, *, kind: str, params: dict, excerpt: dict):
        self.kind = kind
        self.params = _normalise_params(kind, params)
        self.excerpt = _normalise_excerpt(excerpt)
        spec = {"format": FORMAT_VERSION, "kind": kind, "params": self.params,
                "excerpt": self.excerpt}
        self.spec_hash = hashlib.sha1(
            json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:12]
        self.root = Path(root)
        self.folder = self.root / f"{kind}-{self.spec_hash}"
        self.stats: dict[str, int] = {}
        self._reported: set[str] = set()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.folder)!r})"

    # --- keys and files

    def key(self, path) -> str:
        """sha1 of the file's :func:`file_identity`. Raises OSError when the
        file cannot be read."""
        return hashlib.sha1(file_identity(path).encode()).hexdigest()

    def file(self, key: str) -> Path:
        """Where the array of ``key`` is (or would be) stored."""
        return self.folder / key[:2] / f"{key}.npy"

    @property
    def sample_rate(self) -> int:
        return self.params["sample_rate"]

    # --- reading

    def get(self, path) -> np.ndarray | None:
        """The cached array of ``path``, memory-mapped read-only; None when it
        is absent, stale (the file changed) or unreadable."""
        try:
            key = self.key(path)
        except (OSError, TypeError, ValueError):
            return None
        return self._load(key, path)

    def _load(self, key: str, path) -> np.ndarray | None:
        file = self.file(key)
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
            problem = self._problem(array)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            return array
        self.stats["corrupt"] = self.stats.get("corrupt", 0) + 1
        if key not in self._reported:
            self._reported.add(key)
            print(f"feature cache: {file} (for {os.fsdecode(path)}) is unreadable ({problem}); "
                  "treated as absent", file=sys.stderr)
        return None

    def _problem(self, array: np.ndarray) -> str | None:
        """Why a loaded array is not a valid entry of this cache, or None."""
        if self.kind == "logmel":
            want_dtype, want_ndim = np.dtype(np.float32), 2
        else:
            want_dtype, want_ndim = np.dtype(self.params["dtype"]), 1
        if array.dtype != want_dtype:
            return f"dtype {array.dtype}, expected {want_dtype}"
        if array.ndim != want_ndim:
            return f"shape {array.shape}, expected {want_ndim} dimensions"
        if array.shape[0] == 0:
            return "empty array"
        if self.kind == "logmel" and array.shape[1] != self.params["n_mels"]:
            return f"shape {array.shape}, expected {self.params['n_mels']} mel bands"
        return None

    # --- building

    def build(self, paths: Iterable, *, workers: int = 2, timeout: float | None = 60.0,
              progress: bool = True) -> tuple[dict[str, np.ndarray], list[str]]:
        """Memory-mapped arrays of ``paths``, computing the missing ones.

        Missing entries are decoded and transformed by ``workers`` processes
        (0: in this process) with a per-file ``timeout`` in seconds.

        Returns
        -------
        (arrays, failures)
            ``arrays`` maps each path, as given (``os.fsdecode(path)``), to
            its read-only memmap, in the order of ``paths``; paths that
            failed are left out and ``failures`` holds one message per
            failure, naming the file and the cause. With ``progress`` a
            progress line and the failures are printed on stderr.
        """
        self.stats = {"cached": 0, "computed": 0, "failed": 0, "corrupt": 0}
        names: list[str] = []
        arrays: dict[str, np.ndarray] = {}
        failures: list[str] = []
        todo: list[tuple[str, Any, str]] = []  # (name, path, key)
        seen: set[str] = set()
        paths = list(paths)
        _allow_open_files(len(paths))
        for path in paths:
            name = os.fsdecode(path)
            if name in seen:
                continue
            seen.add(name)
            names.append(name)
            try:
                key = self.key(path)
            except FileNotFoundError:
                failures.append(str(AudioError(path, "file not found")))
                continue
            except (OSError, TypeError, ValueError) as error:
                failures.append(str(AudioError(path, f"cannot access file: {error}")))
                continue
            array = self._load(key, path)
            if array is None:
                todo.append((name, path, key))
            else:
                arrays[name] = array
        self.stats["cached"] = len(arrays)
        if todo:
            self._compute(todo, arrays, failures, workers=workers, timeout=timeout,
                          progress=progress)
        self.stats["failed"] = len(failures)
        if progress:
            for message in failures:
                print(f"skipped: {message}", file=sys.stderr)
        return {name: arrays[name] for name in names if name in arrays}, failures

    def _compute(self, todo, arrays, failures, *, workers, timeout, progress) -> None:
        self._prepare_folder()
        partial_dir = self.folder / _PARTIAL_DIR
        prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-"
        transform = functools.partial(_store_features, kind=self.kind, params=self.params,
                                      partial_dir=str(partial_dir), prefix=prefix)
        offset = self.excerpt["offset"]
        bar = None
        if progress:
            from trainer.progress import Progress

            bar = Progress(len(todo), label=f"features ({self.kind})")
        try:
            for index, _path, result in read_excerpts(
                [path for _, path, _ in todo],
                sample_rate=self.sample_rate,
                duration=self.excerpt["max_seconds"],
                offset=None if offset == "centre" else offset,
                min_duration=self.excerpt["min_duration"],
                transform=transform,
                workers=workers,
                timeout=timeout,
            ):
                name, path, key = todo[index]
                if isinstance(result, BaseException):
                    failures.append(str(result))
                else:
                    array = self._commit(result, key, path, failures)
                    if array is not None:
                        arrays[name] = array
                        self.stats["computed"] += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            # Files of workers that were killed (timeout, crash) or of an
            # interrupted loop: never moved into place, removed here.
            for leftover in partial_dir.glob(f"{prefix}*"):
                _unlink_quietly(leftover)

    def _commit(self, result, key: str, path, failures: list[str]) -> np.ndarray | None:
        """Verify a worker's temporary file and move it to its final name."""
        temporary, shape, dtype = result
        try:
            written = np.load(temporary, mmap_mode="r", allow_pickle=False)
            problem = self._problem(written)
            if problem is None and (tuple(written.shape) != tuple(shape)
                                    or written.dtype.str != dtype):
                problem = f"wrote {written.shape} {written.dtype}, expected {tuple(shape)} {dtype}"
            del written  # unmap before moving
            if problem is not None:
                raise ValueError(problem)
            final = self.file(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, final)
            return np.load(final, mmap_mode="r", allow_pickle=False)
        except Exception as error:
            _unlink_quietly(temporary)
            failures.append(str(AudioError(
                path, f"cannot store features in the cache: {type(error).__name__}: {error}")))
            return None

    def _prepare_folder(self) -> None:
        """Create the folder with its manifest; clear old temporary files."""
        partial_dir = self.folder / _PARTIAL_DIR
        partial_dir.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "manifest.json"
        if not manifest.exists():
            shape = "(frames, n_mels)" if self.kind == "logmel" else "(samples,)"
            dtype = "float32" if self.kind == "logmel" else self.params["dtype"]
            description = {
                "what": "beets-autotagml feature cache: one .npy array per audio file",
                "format": FORMAT_VERSION,
                "kind": self.kind,
                "params": self.params,
                "excerpt": self.excerpt,
                "array": {"dtype": dtype, "shape": shape},
                "file": "<key[:2]>/<key>.npy, key = sha1(size \\0 sha1 of the content)",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            temporary = partial_dir / f"manifest-{uuid.uuid4().hex}.json"
            temporary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, manifest)
        cutoff = time.time() - _STALE_PARTIAL_SECONDS
        for leftover in partial_dir.iterdir():
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except OSError:
                pass


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _allow_open_files(more: int) -> None:
    """Each memmap keeps a file descriptor open (CPython's mmap duplicates
    it): raise the soft limit on open files towards the hard one when the
    maps would come close to it. Best effort; no-op where unsupported."""
    try:
        import resource
    except ImportError:
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else soft // 2
        if in_use + more + 64 <= soft:  # room enough
            return
        wanted = max(soft * 2, in_use + more + 1024)
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------ the dataset

def _crop_start(length: int, frames: int | None, seed: int, epoch: int, index: int,
                random: bool) -> tuple[int, int]:
    """(start, stop) of the crop of item ``index``: random from a Generator
    seeded by (seed, epoch, index), else centred; the whole array when it is
    not longer than ``frames`` or ``frames`` is None."""
    if frames is None or length <= frames:
        return 0, length
    if random:
        rng = np.random.default_rng([seed, epoch, index])
        start = int(rng.integers(0, length - frames + 1))
    else:
        start = (length - frames) // 2
    return start, start + frames


def _memmap_state(array):
    """A picklable stand-in for a file-backed memmap (so that DataLoader
    workers started with 'spawn' map the file instead of receiving a copy)."""
    if (isinstance(array, np.memmap) and getattr(array, "filename", None)
            and isinstance(array.base, mmap.mmap)):
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return ("memmap", array.filename, array.offset, array.shape, array.dtype.str, order)
    return ("array", np.asarray(array))


def _from_memmap_state(state):
    if state[0] == "memmap":
        _, filename, offset, shape, dtype, order = state
        return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset,
                         shape=tuple(shape), order=order)
    return state[1]


def _make_cropped_features():
    import torch
    from torch.utils.data import Dataset

    class CroppedFeatures(Dataset):
        """Randomly cropped feature arrays with their label index.

        ``samples``: (key, label) pairs (a key may repeat); ``arrays``: key ->
        array (frames, bins), usually the memmaps of
        :meth:`FeatureCache.build`; ``label_index``: label -> class index.

        ``dataset[i]`` is (float32 tensor (frames, bins), label index). The
        crop of ``frames`` frames starts where a numpy Generator seeded by
        (seed, epoch, i) says, so it depends neither on the DataLoader's
        worker count nor on the order items are asked for; call
        :meth:`set_epoch` before each epoch for new crops. ``frames=None``
        or an array not longer than ``frames``: the whole array;
        ``random=False``: the centred crop (evaluation). Only the crop is
        read from the memmap.
        """

        def __init__(self, samples: Sequence[tuple[str, Any]], arrays: Mapping[str, np.ndarray],
                     label_index: Mapping[Any, int], *, frames: int | None, seed: int = 0,
                     random: bool = True):
            missing = sorted({key for key, _ in samples if key not in arrays})
            if missing:
                raise KeyError(f"no array for {len(missing)} sample key(s), e.g. {missing[:3]}")
            if frames is not None and frames < 1:
                raise ValueError(f"frames must be None or >= 1, not {frames!r}")
            self.samples = [(key, label) for key, label in samples]
            self.arrays = dict(arrays)
            self.label_index = dict(label_index)
            self.frames = frames
            self.seed = int(seed)
            self.random = bool(random)
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __len__(self) -> int:
            return len(self.samples)

        def crop_bounds(self, index: int) -> tuple[int, int]:
            """(start, stop) of item ``index``'s crop in the current epoch."""
            key, _ = self.samples[index]
            return _crop_start(len(self.arrays[key]), self.frames, self.seed, self.epoch,
                               index, self.random)

        def __getitem__(self, index: int):
            if index < 0:
                index += len(self.samples)
            key, label = self.samples[index]
            start, stop = self.crop_bounds(index)
            crop = np.array(self.arrays[key][start:stop], dtype=np.float32)  # reads the slice only
            return torch.from_numpy(crop), self.label_index[label]

        def __getstate__(self):
            state = self.__dict__.copy()
            state["arrays"] = {key: _memmap_state(a) for key, a in self.arrays.items()}
            return state

        def __setstate__(self, state):
            state = dict(state)
            state["arrays"] = {key: _from_memmap_state(s) for key, s in state["arrays"].items()}
            self.__dict__.update(state)

    CroppedFeatures.__module__ = __name__
    CroppedFeatures.__qualname__ = "CroppedFeatures"
    return CroppedFeatures


def collate(items):
    """Stack (tensor, label) items into (inputs, targets); every input is
    cut to the batch's shortest length (first axis)."""
    import torch

    tensors = [item[0] for item in items]
    shortest = min(t.shape[0] for t in tensors)
    inputs = torch.stack([t[:shortest] for t in tensors])
    targets = torch.tensor([int(item[1]) for item in items], dtype=torch.long)
    return inputs, targets


def __getattr__(name: str):
    # CroppedFeatures is made on first use, so that importing this module
    # (as the decoding workers do) does not import torch.
    if name == "CroppedFeatures":
        cls = _make_cropped_features()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
