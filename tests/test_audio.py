"""Tests of tagcore.audio and tagcore.workers: decoding every supported format, seeking, bad
inputs, and the worker processes of read_excerpts (timeouts, crashes,
clean-up). All audio is synthesized by tests/audio_fixtures.py."""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import pickle
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

# Worker processes are spawned: they import the transforms of audio_fixtures
# by module name, so its folder must be on sys.path (they inherit it).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import audio_fixtures as af

from tagcore.audio import AudioError, read_excerpt
from tagcore.workers import read_excerpts

SR = 22050  # every test asks for this rate; the files are at 44.1 or 48 kHz
# Codecs add or drop up to one frame of padding (WMA: 2048 samples at 44.1 kHz).
LENGTH_TOLERANCE = 0.05  # seconds


# ----------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def make_file(tmp_path_factory):
    """make_file(fmt, signal="chord", seconds=6.0) -> path, written once per
    module; skips the test when the format's encoder is not installed (fails
    it under CI: audio_fixtures.skip_or_fail)."""
    directory = tmp_path_factory.mktemp("audio")
    cache: dict = {}

    def make(fmt: str, signal: str = "chord", seconds: float = 6.0) -> Path:
        key = (fmt, signal, seconds)
        if key not in cache:
            try:
                cache[key] = af.write_audio(directory, fmt, signal=signal, seconds=seconds,
                                            name=f"{signal}-{seconds}-{fmt}")
            except af.EncoderUnavailable as reason:
                cache[key] = reason
        if isinstance(cache[key], af.EncoderUnavailable):
            af.skip_or_fail(cache[key])
        return cache[key]

    return make


def dominant_frequency(audio: np.ndarray, sample_rate: int = SR) -> float:
    """Frequency in Hz of the strongest FFT bin of a Hann-windowed signal."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum)) * sample_rate / audio.size


def seconds(audio: np.ndarray, sample_rate: int = SR) -> float:
    return audio.size / sample_rate


@contextlib.contextmanager
def fails_after(limit: float):
    """Turn a hang into a test failure after ``limit`` seconds (SIGALRM)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"hung for more than {limit} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def worker_processes() -> list:
    return [p for p in multiprocessing.active_children() if p.name == "tagcore-audio-worker"]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ----------------------------------------------------------- every format

@pytest.mark.parametrize("fmt", af.ALL_FORMATS)
def test_every_format_decodes_to_mono_float32_at_the_requested_rate(make_file, fmt):
    audio = read_excerpt(make_file(fmt), sample_rate=SR)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert seconds(audio) == pytest.approx(6.0, abs=LENGTH_TOLERANCE)
    # Real decoding: the loudest partial of the chord comes out.
    assert dominant_frequency(audio) == pytest.approx(af.MAIN_FREQUENCY, abs=3.0)
    assert np.isfinite(audio).all() and 0.3 < np.abs(audio).max() < 1.0


@pytest.mark.parametrize("fmt", af.ALL_FORMATS)
def test_offset_and_duration_select_the_right_seconds(make_file, fmt):
    path = make_file(fmt, signal="steps")  # second k plays 300 + 100 k Hz

    audio = read_excerpt(path, sample_rate=SR, duration=2.0, offset=1.0)
    assert seconds(audio) == pytest.approx(2.0, abs=0.002)
    first, second = audio[int(0.1 * SR):int(0.9 * SR)], audio[int(1.1 * SR):int(1.9 * SR)]
    assert dominant_frequency(first) == pytest.approx(af.step_frequency(1), abs=5)
    assert dominant_frequency(second) == pytest.approx(af.step_frequency(2), abs=5)

    centred = read_excerpt(path, sample_rate=SR, duration=2.0)  # 2 s to 4 s of 6 s
    first, second = centred[int(0.1 * SR):int(0.9 * SR)], centred[int(1.1 * SR):int(1.9 * SR)]
    assert dominant_frequency(first) == pytest.approx(af.step_frequency(2), abs=5)
    assert dominant_frequency(second) == pytest.approx(af.step_frequency(3), abs=5)


def test_a_track_shorter_than_duration_is_returned_whole_without_padding(make_file):
    audio = read_excerpt(make_file("wav"), sample_rate=SR, duration=30.0)
    assert seconds(audio) == pytest.approx(6.0, abs=1e-3)


def test_no_resampling_when_the_rate_matches(make_file):
    audio = read_excerpt(make_file("flac"), sample_rate=44100)
    assert audio.size == 6 * 44100


def test_min_duration_is_capped_at_duration(make_file):
    # Asking for 2 s with the default min_duration of 3 s must not fail.
    assert seconds(read_excerpt(make_file("wav"), sample_rate=SR, duration=2.0)) == 2.0


def test_bytes_and_path_objects_are_accepted(make_file):
    path = make_file("wav")
    assert read_excerpt(os.fsencode(path), duration=3.0).size == 3 * SR
    assert read_excerpt(Path(path), duration=3.0).size == 3 * SR


def test_parameters_out_of_range_are_value_errors(make_file):
    with pytest.raises(ValueError):
        read_excerpt(make_file("wav"), duration=0)
    with pytest.raises(ValueError):
        read_excerpt(make_file("wav"), offset=-1.0)


# -------------------------------------------------------------- bad inputs

def _missing(d):
    return d / "missing.mp3"


def _directory(d):
    (d / "album.flac").mkdir()
    return d / "album.flac"


def _fifo(d):
    os.mkfifo(d / "pipe.wav")
    return d / "pipe.wav"


def _nan_wav(d):
    audio = np.zeros((4 * 44100, 2), np.float32)
    audio[1000] = np.nan
    sf.write(d / "nan.wav", audio, 44100, subtype="FLOAT")
    return d / "nan.wav"


BAD_INPUTS = {
    "missing": (_missing, "file not found"),
    "directory": (_directory, "is a directory"),
    "fifo": (_fifo, "not a regular file"),
    "empty": (af.write_empty, "empty file"),
    "text-as-mp3": (af.write_text_as_audio, "not a recognised audio file"),
    "jpeg-as-mp3": (af.write_jpeg_as_audio, "not a recognised audio file"),
    # The first 2 KB of a valid file: a few ms of audio, or none at all.
    "truncated-mp3": (functools.partial(af.write_truncated, fmt="mp3"), "too short: 0.0 s"),
    "truncated-flac": (functools.partial(af.write_truncated, fmt="flac"), "no audio"),
    "truncated-m4a": (functools.partial(af.write_truncated, fmt="m4a-aac"), "not a recognised"),
    "too-short": (af.write_short, "too short: 0.5 s < 3.0 s"),
    "nan": (_nan_wav, "decoded audio contains NaN/inf"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_audio_error_naming_file_and_cause(tmp_path, case):
    make, cause = BAD_INPUTS[case]
    path = make(tmp_path)

    with fails_after(10), pytest.raises(AudioError) as caught:
        read_excerpt(path, sample_rate=SR, duration=30.0)

    assert caught.value.path == str(path)
    assert cause in caught.value.cause
    assert str(caught.value) == f"{path}: {caught.value.cause}"


def test_audio_error_survives_pickling():
    error = pickle.loads(pickle.dumps(AudioError("/music/a.mp3", "too short: 1.2 s < 3.0 s")))
    assert (error.path, error.cause) == ("/music/a.mp3", "too short: 1.2 s < 3.0 s")
    assert str(error) == "/music/a.mp3: too short: 1.2 s < 3.0 s"


# ---------------------------------------------------------- read_excerpts

@pytest.mark.parametrize("workers", [0, 2])
def test_read_excerpts_reports_every_path_once_and_carries_on(make_file, tmp_path, workers):
    paths = [make_file("wav"), tmp_path / "missing.ogg", make_file("mp3"),
             af.write_text_as_audio(tmp_path), make_file("flac"), _fifo(tmp_path)]
    good = {0, 2, 4}

    with fails_after(30):
        results = list(read_excerpts(paths, sample_rate=SR, duration=4.0, workers=workers))

    assert sorted(index for index, _, _ in results) == list(range(len(paths)))
    for index, path, result in results:
        assert path == paths[index]
        if index in good:
            assert isinstance(result, np.ndarray) and result.dtype == np.float32
            assert seconds(result) == pytest.approx(4.0, abs=1e-3)
        else:
            assert isinstance(result, AudioError) and result.path == str(path)
    assert not worker_processes()


def test_read_excerpts_applies_the_transform_in_the_workers(make_file):
    paths = [make_file("wav"), make_file("ogg"), make_file("m4a-alac")]
    results = list(read_excerpts(paths, sample_rate=SR, duration=3.0,
                                 transform=af.length_and_pid, workers=2))
    assert {index for index, _, _ in results} == {0, 1, 2}
    lengths, pids = zip(*(result for _, _, result in results))
    assert set(lengths) == {3 * SR}
    assert os.getpid() not in pids
    assert not any(is_running(pid) for pid in pids)


def test_a_failing_transform_gives_an_audio_error(make_file):
    [(_, _, result)] = read_excerpts([make_file("wav")], transform=af.fail_always, workers=0)
    assert isinstance(result, AudioError)
    assert "transform failed: ValueError: transform refused" in result.cause


def test_a_transform_that_cannot_be_pickled_is_refused_at_once(make_file):
    with pytest.raises(TypeError):
        read_excerpts([make_file("wav")], transform=lambda x: x, workers=1)


def test_a_hanging_or_crashing_worker_costs_only_its_file(make_file):
    hanging = make_file("wav", seconds=4.5)  # excerpts of 4.5 s hang
    crashing = make_file("wav", seconds=3.5)  # excerpts of 3.5 s crash the worker
    good = [make_file("wav"), make_file("flac"), make_file("ogg")]
    paths = [good[0], hanging, good[1], crashing, good[2]]
    transform = functools.partial(af.misbehave_on_short, hang_below=5 * SR, crash_below=4 * SR)

    started = time.monotonic()
    with fails_after(40):
        results = {index: result for index, _, result in read_excerpts(
            paths, sample_rate=SR, duration=6.0, transform=transform, workers=2, timeout=2)}
    elapsed = time.monotonic() - started

    assert sorted(results) == [0, 1, 2, 3, 4]
    assert [results[i] for i in (0, 2, 4)] == [6 * SR] * 3
    assert isinstance(results[1], AudioError)
    assert results[1].cause == "decoding took longer than 2 s"
    assert isinstance(results[3], AudioError) and "process died" in results[3].cause
    assert elapsed < 20, "the hanging worker was not killed in time"
    assert not worker_processes()


@pytest.mark.parametrize("ending", ["close", "garbage-collect"])
def test_closing_the_iterator_early_stops_the_workers(make_file, ending):
    path, taken = make_file("wav"), []

    def endless_paths():
        while True:
            taken.append(path)
            yield path

    excerpts = read_excerpts(endless_paths(), duration=3.0, transform=af.length_and_pid,
                             workers=2)
    _, _, (length, pid) = next(excerpts)
    assert length == 3 * SR and is_running(pid)
    assert len(taken) <= 3  # paths are taken lazily, about one per worker

    if ending == "close":
        excerpts.close()
    else:
        del excerpts
        gc.collect()
    assert not is_running(pid)
    assert not worker_processes()


def _write_wma(path, seconds=8.0, rate=44100):
    """A WMA (wmav2 in ASF) tone, encoded with PyAV."""
    container = av.open(str(path), "w", format="asf")
    stream = container.add_stream("wmav2", rate=rate)
    stream.layout, stream.bit_rate = "stereo", 128000
    t = np.arange(int(seconds * rate)) / rate
    data = np.tile((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (2, 1))
    for pts in range(0, data.shape[1], 2048):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, pts:pts + 2048]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, pts
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path


def test_wma_files_whole_or_damaged_print_no_traceback(tmp_path, capfd):
    """FFmpeg reads the file itself (a file: URL), so PyAV's file-object
    callbacks can no longer print "PyAV library exception being dropped"."""
    good = _write_wma(tmp_path / "good.wma")
    data = good.read_bytes()
    cut = tmp_path / "cut.wma"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.wma"
    garbage.write_bytes(data[:5000] + bytes(range(256)) * 50)
    results = {Path(p).name: r for _, p, r in read_excerpts([good, cut, garbage], duration=3.0, workers=1)}
    assert results["good.wma"].shape == (3 * 22050,)
    assert isinstance(results["garbage.wma"], AudioError)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "exception being dropped" not in captured.err


# ------------------------------------------------- the decoding steps alone

class _FakeFrame:
    """What tagcore.audio reads of a PyAV audio frame: mono float32 planar."""

    def __init__(self, samples: np.ndarray, *, rate: int, pts: int | None):
        self._samples = np.asarray(samples, np.float32)[None, :]
        self.sample_rate, self.pts, self.samples = rate, pts, self._samples.shape[1]
        self.time_base = None if pts is None else Fraction(1, rate)
        self.layout = type("Layout", (), {"nb_channels": 1})()
        self.format = type("Format", (), {"is_planar": True})()

    def to_ndarray(self) -> np.ndarray:
        return self._samples


def test_excerpt_trims_the_frames_to_start_and_duration():
    from tagcore.audio import _Excerpt

    excerpt = _Excerpt("x", start=0.5, duration=1.0, origin=0.0, sought=False)
    signal = np.arange(40, dtype=np.float32)  # 4 s at 10 Hz, in frames of 4 samples
    done = [excerpt.add(_FakeFrame(signal[i:i + 4], rate=10, pts=i)) for i in range(0, 40, 4)]
    assert done.index(True) == 3  # samples 5..14 are in hand after the fourth frame
    np.testing.assert_array_equal(excerpt.samples(), signal[5:15])


def test_excerpt_refuses_a_rate_change_and_an_overshooting_seek():
    from tagcore.audio import _Excerpt, _PositionLost

    excerpt = _Excerpt("x", start=0.0, duration=None, origin=0.0, sought=False)
    excerpt.add(_FakeFrame(np.zeros(4), rate=10, pts=None))
    with pytest.raises(AudioError, match="sample rate changes"):
        excerpt.add(_FakeFrame(np.zeros(4), rate=20, pts=None))
    sought = _Excerpt("x", start=1.0, duration=1.0, origin=0.0, sought=True)
    with pytest.raises(_PositionLost):
        sought.add(_FakeFrame(np.zeros(4), rate=10, pts=20))  # lands at 2 s, after the excerpt's start
    with pytest.raises(_PositionLost):
        _Excerpt("x", start=1.0, duration=1.0, origin=0.0, sought=True).add(_FakeFrame(np.zeros(4), rate=10, pts=None))


def test_decoded_frames_skip_corrupt_packets_until_too_many_in_a_row():
    from tagcore.audio import _MAX_BAD_PACKETS, _decoded_frames

    class Packet:
        def __init__(self, frames):
            self.frames = frames

        def decode(self):
            if self.frames is None:
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            return self.frames

    class Container:
        def __init__(self, packets):
            self.packets = packets

        def demux(self, stream):
            return iter(self.packets)

    errors: list = []
    packets = [Packet(["a"]), Packet(None), Packet(["b", "c"])]
    assert list(_decoded_frames("x", Container(packets), None, errors)) == ["a", "b", "c"]
    assert len(errors) == 1
    packets = [Packet(["a"])] + [Packet(None)] * (_MAX_BAD_PACKETS + 1)
    with pytest.raises(AudioError, match="corrupt audio"):
        list(_decoded_frames("x", Container(packets), None, []))
