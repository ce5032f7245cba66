"""The on-disk feature cache (trainer.cache) and its cropping Dataset."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import trainer.cache as cache_module
from tagcore.audio import read_excerpt
from tagcore.features import MelParams, log_mel_spectrogram
from trainer.cache import FeatureCache, collate, default_cache_root

EXCERPT = {"max_seconds": 4.0, "offset": "centre"}


def write_audio(path: Path, *, seconds: float, rate: int, freq: float, channels: int = 1,
                seed: int = 0) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    mono = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    # A slow sweep, so that crops at different times differ.
    mono += 0.2 * np.sin(2 * np.pi * (200 + 100 * t) * t)
    data = np.stack([mono * (0.8 + 0.2 * c) for c in range(channels)], axis=1)
    sf.write(path, data.astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.fixture
def tracks(tmp_path):
    """Three short files: wav 44.1 kHz stereo, flac 22.05 kHz mono, wav 16 kHz."""
    folder = tmp_path / "audio"
    folder.mkdir()
    return [
        write_audio(folder / "a.wav", seconds=6.0, rate=44100, freq=440, channels=2, seed=1),
        write_audio(folder / "b.flac", seconds=5.0, rate=22050, freq=660, seed=2),
        write_audio(folder / "c.wav", seconds=3.5, rate=16000, freq=330, seed=3),
    ]


def direct_log_mel(path, params=MelParams(), excerpt=EXCERPT):
    audio = read_excerpt(path, sample_rate=params.sample_rate, duration=excerpt["max_seconds"],
                         offset=None, min_duration=3.0)
    return log_mel_spectrogram(audio, params=params)


def logmel_cache(root, params=MelParams(), excerpt=EXCERPT) -> FeatureCache:
    return FeatureCache(root, kind="logmel", params=params.to_dict(), excerpt=excerpt)


def stored_files(cache: FeatureCache) -> set[Path]:
    return {p for p in cache.folder.glob("*/*.npy") if p.parent.name != ".partial"}


@pytest.fixture
def count_reads(monkeypatch):
    """Wraps read_excerpts as the cache calls it; records the paths decoded."""
    decoded: list[str] = []
    real = cache_module.read_excerpts

    def counting(paths, **kwargs):
        paths = list(paths)
        decoded.extend(os.fspath(p) for p in paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(cache_module, "read_excerpts", counting)
    return decoded


def test_arrays_equal_direct_log_mel_and_layout(tracks, tmp_path):
    cache = logmel_cache(tmp_path / "cache")
    given = [tracks[0], str(tracks[1]), str(tracks[2])]  # a Path and strings
    arrays, failures = cache.build(given, workers=0, progress=False)
    assert failures == []
    assert list(arrays) == [str(p) for p in tracks]
    for path in tracks:
        array = arrays[str(path)]
        assert isinstance(array, np.memmap) and not array.flags.writeable
        assert array.dtype == np.float32 and array.shape[1] == 96
        np.testing.assert_array_equal(array, direct_log_mel(path))
        key = cache.key(path)
        assert cache.file(key) == cache.folder / key[:2] / f"{key}.npy"
        assert cache.file(key).is_file()
        np.testing.assert_array_equal(cache.get(path), array)
    assert cache.folder.parent == tmp_path / "cache"
    assert cache.folder.name.startswith("logmel-")
    manifest = json.loads((cache.folder / "manifest.json").read_text())
    assert manifest["kind"] == "logmel"
    assert manifest["params"]["n_mels"] == 96
    assert manifest["excerpt"] == {"max_seconds": 4.0, "offset": "centre", "min_duration": 3.0}
    assert list((cache.folder / ".partial").iterdir()) == []
    assert cache.stats == {"cached": 0, "computed": 3, "failed": 0, "corrupt": 0}


def test_second_build_decodes_nothing(tracks, tmp_path, monkeypatch):
    first, _ = logmel_cache(tmp_path / "cache").build(tracks, workers=0, progress=False)

    def no_decoding(*args, **kwargs):
        raise AssertionError("read_excerpts called on a warm cache")

    monkeypatch.setattr(cache_module, "read_excerpts", no_decoding)
    cache = logmel_cache(tmp_path / "cache")  # a later run
    second, failures = cache.build(tracks, workers=0, progress=False)
    assert failures == []
    assert cache.stats["computed"] == 0 and cache.stats["cached"] == 3
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])


def test_a_file_whose_bytes_change_is_recomputed(tracks, tmp_path, count_reads):
    cache = logmel_cache(tmp_path / "cache")
    cache.build(tracks, workers=0, progress=False)
    old_key = cache.key(tracks[1])
    write_audio(tracks[1], seconds=5.0, rate=22050, freq=880, seed=2)  # same name, other sound
    assert cache.key(tracks[1]) != old_key
    assert cache.get(tracks[1]) is None  # stale
    count_reads.clear()
    arrays, failures = cache.build(tracks, workers=0, progress=False)
    assert failures == [] and len(arrays) == 3
    assert count_reads == [str(tracks[1])]
    assert cache.stats["computed"] == 1 and cache.stats["cached"] == 2
    np.testing.assert_array_equal(arrays[str(tracks[1])], direct_log_mel(tracks[1]))


def test_a_touched_or_copied_file_keeps_its_entry(tracks, tmp_path, count_reads):
    """Keys follow the bytes, not the path or the mtime: a dataset copied
    again (as a fresh checkout of shared data is) is not decoded again."""
    cache = logmel_cache(tmp_path / "cache")
    cache.build(tracks, workers=0, progress=False)
    info = os.stat(tracks[0])
    os.utime(tracks[0], ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    copy = tmp_path / "elsewhere" / "a.wav"
    copy.parent.mkdir()
    copy.write_bytes(Path(tracks[0]).read_bytes())
    assert cache.key(copy) == cache.key(tracks[0])
    count_reads.clear()
    arrays, failures = cache.build([tracks[0], copy], workers=0, progress=False)
    assert failures == [] and count_reads == []
    np.testing.assert_array_equal(arrays[str(copy)], arrays[str(tracks[0])])


def test_file_identity_reads_the_edges_of_a_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_WHOLE_FILE_BYTES", 1000)
    monkeypatch.setattr(cache_module, "_EDGE_BYTES", 100)
    big = tmp_path / "big.bin"
    data = bytearray(range(256)) * 20
    big.write_bytes(bytes(data))
    before = cache_module.file_identity(big)
    data[2000] ^= 1  # the middle: not read
    big.write_bytes(bytes(data))
    assert cache_module.file_identity(big) == before
    data[-1] ^= 1  # the tail: read
    big.write_bytes(bytes(data))
    assert cache_module.file_identity(big) != before
    assert before.startswith(f"{len(data)}:")


def test_feature_and_excerpt_changes_select_another_folder(tracks, tmp_path):
    root = tmp_path / "cache"
    base = logmel_cache(root)
    assert logmel_cache(root, MelParams(n_mels=64)).folder != base.folder
    assert logmel_cache(root, excerpt={"max_seconds": 3.0}).folder != base.folder
    assert logmel_cache(root, excerpt={"max_seconds": 4.0, "offset": 1.0}).folder != base.folder
    wave = FeatureCache(root, kind="waveform", params={"sample_rate": 22050}, excerpt=EXCERPT)
    assert wave.folder != base.folder and wave.folder.name.startswith("waveform-")
    # Same features spelt differently, or another crop length: same folder.
    same = dict(MelParams(excerpt_frames=215).to_dict(), log_c=10000, sample_rate=22050.0)
    assert FeatureCache(root, kind="logmel", params=same,
                        excerpt={"max_seconds": 4, "offset": None}).folder == base.folder

    small = logmel_cache(root, MelParams(n_mels=64))
    arrays, _ = small.build(tracks[:1], workers=0, progress=False)
    assert arrays[str(tracks[0])].shape[1] == 64
    assert base.get(tracks[0]) is None  # the 96-band folder is untouched


def test_truncated_npy_is_recomputed_and_reported_once(tracks, tmp_path, capsys, count_reads):
    cache = logmel_cache(tmp_path / "cache")
    cache.build(tracks, workers=0, progress=False)
    stored = cache.file(cache.key(tracks[0]))
    size = stored.stat().st_size
    with open(stored, "r+b") as file:
        file.truncate(size // 2)
    capsys.readouterr()

    later = logmel_cache(tmp_path / "cache")
    assert later.get(tracks[0]) is None
    assert later.get(tracks[0]) is None
    count_reads.clear()
    arrays, failures = later.build(tracks, workers=0, progress=False)
    err = capsys.readouterr().err
    assert err.count(str(stored)) == 1 and "unreadable" in err
    assert failures == [] and count_reads == [str(tracks[0])]
    assert stored.stat().st_size == size
    np.testing.assert_array_equal(arrays[str(tracks[0])], direct_log_mel(tracks[0]))

    # A header that is not an array at all is treated the same way.
    stored.write_bytes(b"not a numpy file")
    assert logmel_cache(tmp_path / "cache").get(tracks[0]) is None


def test_bad_audio_fails_with_its_name_and_is_not_cached(tracks, tmp_path, count_reads):
    bad = tmp_path / "audio" / "noise.wav"
    bad.write_bytes(b"this is not audio at all" * 100)
    empty = tmp_path / "audio" / "empty.flac"
    empty.write_bytes(b"")
    short = write_audio(tmp_path / "audio" / "short.wav", seconds=1.0, rate=22050, freq=440)
    missing = tmp_path / "audio" / "missing.wav"
    cache = logmel_cache(tmp_path / "cache")
    paths = [tracks[0], bad, empty, short, missing]
    arrays, failures = cache.build(paths, workers=0, progress=False)
    assert list(arrays) == [str(tracks[0])]
    assert len(failures) == 4
    for path, cause in [(bad, ""), (empty, "empty"), (short, "too short"), (missing, "not found")]:
        assert any(m.startswith(f"{path}:") and cause in m for m in failures), failures
    for path in (bad, empty, short):
        assert not cache.file(cache.key(path)).exists()
    assert len(stored_files(cache)) == 1
    assert list((cache.folder / ".partial").iterdir()) == []
    count_reads.clear()
    _, again = cache.build(paths, workers=0, progress=False)  # retried next run
    assert sorted(count_reads) == sorted(str(p) for p in (bad, empty, short))
    assert len(again) == 4


def test_final_files_are_only_made_by_os_replace(tracks, tmp_path, monkeypatch):
    real_replace = os.replace
    moved: list[Path] = []

    def checking_replace(source, target):
        target = Path(target)
        if target.suffix == ".npy":
            assert not target.exists()  # nothing wrote the final name before
            assert Path(source).parent.name == ".partial"
            np.load(source)  # the temporary file is complete
            moved.append(target)
        real_replace(source, target)

    monkeypatch.setattr(cache_module.os, "replace", checking_replace)
    cache = logmel_cache(tmp_path / "cache")
    cache.build(tracks, workers=0, progress=False)
    assert sorted(moved) == sorted(stored_files(cache)) and len(moved) == 3

    # Killed between writing and moving: no final file, no temporary left.
    def killed(source, target):
        if str(target).endswith(".npy"):
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(cache_module.os, "replace", killed)
    other = logmel_cache(tmp_path / "cache", MelParams(n_mels=32))
    with pytest.raises(KeyboardInterrupt):
        other.build(tracks, workers=0, progress=False)
    assert stored_files(other) == set()
    assert list((other.folder / ".partial").iterdir()) == []

    # A failing move is reported as a failure of that file, nothing cached.
    def failing(source, target):
        if str(target).endswith(".npy"):
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(cache_module.os, "replace", failing)
    arrays, failures = other.build(tracks[:1], workers=0, progress=False)
    assert arrays == {} and len(failures) == 1
    assert failures[0].startswith(f"{tracks[0]}: cannot store features")
    assert stored_files(other) == set()
    monkeypatch.setattr(cache_module.os, "replace", real_replace)
    arrays, failures = other.build(tracks[:1], workers=0, progress=False)
    assert failures == [] and arrays[str(tracks[0])].shape[1] == 32


def test_build_in_worker_processes(tracks, tmp_path):
    bad = tmp_path / "audio" / "bad.flac"
    bad.write_bytes(b"\x00garbage" * 500)
    cache = logmel_cache(tmp_path / "cache")
    arrays, failures = cache.build([*tracks, bad], workers=2, timeout=60.0, progress=False)
    assert list(arrays) == [str(p) for p in tracks]  # in the order given
    for path in tracks:
        # Workers run single-threaded BLAS: the mel product may round differently.
        np.testing.assert_allclose(arrays[str(path)], direct_log_mel(path), rtol=1e-6, atol=1e-6)
    assert len(failures) == 1 and failures[0].startswith(f"{bad}:")
    assert list((cache.folder / ".partial").iterdir()) == []


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_waveform_kind(tracks, tmp_path, dtype):
    cache = FeatureCache(tmp_path / "cache", kind="waveform",
                         params={"sample_rate": 16000, "dtype": dtype}, excerpt=EXCERPT)
    arrays, failures = cache.build(tracks, workers=0, progress=False)
    assert failures == []
    for path in tracks:
        expected = read_excerpt(path, sample_rate=16000, duration=4.0)
        array = arrays[str(path)]
        assert array.dtype == np.dtype(dtype) and array.shape == expected.shape
        if dtype == "float32":
            np.testing.assert_array_equal(array, expected)
        else:
            np.testing.assert_allclose(array / 32767.0, expected, atol=1 / 32767)


def test_bad_specs_are_refused(tmp_path):
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, kind="mfcc", params={}, excerpt={})
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, kind="logmel", params={"n_mel": 96}, excerpt={})
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, kind="logmel", params={}, excerpt={"seconds": 3})
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, kind="waveform", params={"dtype": "float64"}, excerpt={})


def test_default_cache_root():
    root = default_cache_root()
    assert root.name == "features" and "beets-autotagml" in str(root)


# ------------------------------------------------------------ the dataset

@pytest.fixture
def stored_arrays(tmp_path):
    """Memmapped (frames, 8) arrays of different lengths, as the cache gives."""
    arrays = {}
    for i, frames in enumerate([50, 37, 20, 64]):
        path = tmp_path / f"{i}.npy"
        np.save(path, np.arange(frames * 8, dtype=np.float32).reshape(frames, 8) + 1000 * i)
        arrays[f"k{i}"] = np.load(path, mmap_mode="r")
    return arrays


def make_dataset(stored_arrays, **kwargs):
    samples = [("k0", "rock"), ("k1", "jazz"), ("k2", "rock"), ("k3", "pop"), ("k0", "rock")]
    label_index = {"jazz": 0, "pop": 1, "rock": 2}
    kwargs.setdefault("frames", 16)
    kwargs.setdefault("seed", 7)
    return cache_module.CroppedFeatures(samples, stored_arrays, label_index, **kwargs)


def test_crops_depend_only_on_seed_epoch_and_index(stored_arrays):
    import torch

    data = make_dataset(stored_arrays)
    x, y = data[0]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (16, 8)
    assert y == 2
    again = make_dataset(stored_arrays)
    for i in reversed(range(len(data))):  # any order, another instance
        assert torch.equal(again[i][0], data[i][0])
    assert not torch.equal(data[0][0], data[4][0])  # same track, other index
    starts = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        starts.add(data.crop_bounds(0)[0])
    assert len(starts) > 1  # new crops each epoch
    assert make_dataset(stored_arrays, seed=8)[0][0].shape == (16, 8)
    # The crop is a window of the stored array.
    data.set_epoch(3)
    start, stop = data.crop_bounds(1)
    np.testing.assert_array_equal(data[1][0].numpy(), stored_arrays["k1"][start:stop])


def test_whole_and_centred_crops(stored_arrays):
    whole = make_dataset(stored_arrays, frames=None)
    assert [whole[i][0].shape[0] for i in range(4)] == [50, 37, 20, 64]
    short = make_dataset(stored_arrays, frames=30)
    assert short[2][0].shape[0] == 20  # shorter than the crop: all of it
    centred = make_dataset(stored_arrays, frames=10, random=False)
    np.testing.assert_array_equal(centred[3][0].numpy(), stored_arrays["k3"][27:37])
    centred.set_epoch(5)
    np.testing.assert_array_equal(centred[3][0].numpy(), stored_arrays["k3"][27:37])
    with pytest.raises(KeyError):
        make_dataset({"k0": stored_arrays["k0"]})


def test_collate_cuts_to_the_shortest(stored_arrays):
    data = make_dataset(stored_arrays, frames=30)
    inputs, targets = collate([data[0], data[2], data[3]])
    assert inputs.shape == (3, 20, 8)
    assert targets.tolist() == [2, 2, 1]


def test_same_batches_whatever_the_loader_workers(stored_arrays):
    import torch
    from torch.utils.data import DataLoader

    data = make_dataset(stored_arrays, frames=12)

    def epochs(workers):
        out = []
        for epoch in range(2):
            data.set_epoch(epoch)
            loader = DataLoader(data, batch_size=2, shuffle=False, num_workers=workers,
                                collate_fn=collate)
            out.append([batch for batch in loader])
        return out

    serial, parallel = epochs(0), epochs(2)
    for a_epoch, b_epoch in zip(serial, parallel):
        assert len(a_epoch) == len(b_epoch) == 3
        for (xa, ya), (xb, yb) in zip(a_epoch, b_epoch):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(serial[0], serial[1]))


def test_pickled_dataset_maps_the_files_again(stored_arrays):
    data = make_dataset(stored_arrays)
    data.set_epoch(2)
    copy = pickle.loads(pickle.dumps(data))
    assert isinstance(copy.arrays["k0"], np.memmap)
    assert len(pickle.dumps(data)) < 2000  # paths, not array contents
    assert copy.epoch == 2
    for i in range(len(data)):
        np.testing.assert_array_equal(copy[i][0].numpy(), data[i][0].numpy())


def test_importing_the_cache_does_not_import_torch():
    # Decoding workers import trainer.cache to run the transform.
    import subprocess
    import sys

    code = "import sys, trainer.cache; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[1])


def test_old_temporary_files_are_cleared(tracks, tmp_path):
    cache = logmel_cache(tmp_path / "cache")
    partial = cache.folder / ".partial"
    partial.mkdir(parents=True)
    old, recent = partial / "1-dead-x.npy", partial / "2-busy-y.npy"
    old.write_bytes(b"half")
    recent.write_bytes(b"half")
    two_days_ago = os.stat(old).st_mtime - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    cache.build(tracks[:1], workers=0, progress=False)
    assert not old.exists() and recent.exists()  # another run may be writing it
