"""Audio input of the engine: decode an excerpt of an audio file to a mono array.

:func:`read_excerpt` decodes one file; :func:`read_excerpts` decodes many in
worker processes, with a per-file timeout, yielding results as they finish.

Decoding tries soundfile (libsndfile: WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF,
...) first, reading only the frames that are needed, then falls back to PyAV
(FFmpeg: AAC/ALAC in MP4, WMA, WavPack, Monkey's Audio, Musepack, ...).
Every failure is reported as :class:`AudioError`, naming the file and the
cause.

This module imports only the standard library, numpy, soundfile, av and soxr
(never torch), so that worker processes stay light.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "TooShortError", "Window", "Span", "read_span", "read_excerpt", "read_excerpts"]

# libsndfile reports this frame count when it does not know a file's length.
_UNKNOWN_FRAMES = 2**62
# PyAV fallback: give up after this many consecutive undecodable packets.
_MAX_BAD_PACKETS = 100
# A seek may land a little after the wanted position; beyond this many seconds
# the excerpt is decoded again from the start of the file instead.
_SEEK_TOLERANCE = 0.1
# Timestamps at least this fine (seconds) are trusted for seeking.
_FINE_TIME_BASE = Fraction(1, 1000)
# How long a freshly spawned worker may take to import its modules.
_WORKER_START_LIMIT = 120.0


class AudioError(Exception):
    """A file could not be turned into audio.

    Attributes
    ----------
    path : str
        The file, as given (bytes paths are decoded with ``os.fsdecode``).
    cause : str
        Why, in words: ``"file not found"``, ``"too short: 1.2 s < 3.0 s"``...

    ``str(error) == f"{path}: {cause}"``.
    """

    def __init__(self, path: Any, cause: str):
        self.path = _path_text(path)
        self.cause = str(cause)
        super().__init__(f"{self.path}: {self.cause}")

    def __reduce__(self):
        # Pickled by value so that worker processes can send it back.
        return (type(self), (self.path, self.cause))


class TooShortError(AudioError):
    """The file decodes, but holds less audio than the analysis needs.

    Callers report it as skipped, not failed: nothing is wrong with the file.
    """


def _path_text(path: Any) -> str:
    try:
        return os.fsdecode(path)
    except TypeError:
        return str(path)


# --------------------------------------------------------------- one file

@dataclass(frozen=True)
class Window:
    """A part of a track in seconds: ``duration`` (None: to the end) from
    ``offset`` (None: centred in the track, see :func:`read_excerpt`)."""

    duration: float | None = None
    offset: float | None = None


@dataclass
class Span:
    """The decoded audio covering several windows, from one read.

    ``audio`` is mono float32 at the file's own ``rate``; ``starts[i]`` is
    where window ``i`` begins in ``audio``, in seconds.
    """

    audio: np.ndarray
    rate: int
    windows: tuple[Window, ...]
    starts: tuple[float, ...]

    def cut(self, index: int, audio: np.ndarray | None = None, rate: int | None = None) -> np.ndarray:
        """Window ``index`` out of ``audio`` (default: this span's audio),
        which covers the same seconds at ``rate`` (e.g. a resampled copy)."""
        audio = self.audio if audio is None else audio
        rate = self.rate if rate is None else rate
        start = round(self.starts[index] * rate)
        duration = self.windows[index].duration
        stop = None if duration is None else start + round(duration * rate)
        return audio[start:stop]


def _span_of(windows: tuple[Window, ...], track_seconds: float | None) -> tuple[float, float | None, list[float]]:
    """(start, duration or None, window starts) of the part of a track
    covering every window, all in seconds from the track's start."""
    starts = [_excerpt_start(w.offset, w.duration, track_seconds) for w in windows]
    ends = [None if w.duration is None else s + w.duration for s, w in zip(starts, windows)]
    start = min(starts)
    duration = None if None in ends else max(ends) - start
    return start, duration, starts


def read_span(path, *, windows, min_duration: float = 3.0) -> Span:
    """Decode, in one read, the part of a file that covers every window.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    windows : sequence of Window
        The parts of the track needed (each analysis feature names one).
    min_duration : float
        Shortest acceptable result in seconds (capped at the longest window).

    Returns
    -------
    Span
        Mono audio at the file's own rate, and where each window starts in
        it; :meth:`Span.cut` takes a window out, of this audio or of a
        resampled copy. Windows past the end of a short track are cut short.

    Raises
    ------
    AudioError
        As :func:`read_excerpt`; :class:`TooShortError` (a subclass) when
        less than ``min_duration`` seconds decode.
    """
    windows = tuple(windows)
    if not windows:
        raise ValueError("read_span needs at least one window")
    for window in windows:
        _check_parameters(1, window.duration, window.offset, min_duration)
    _check_regular_file(path)
    try:
        try:
            audio, rate, track_seconds = _read_with_soundfile(path, windows)
        except (sf.SoundFileError, RuntimeError):
            # libsndfile does not know this format (or could not read it):
            # let FFmpeg try.
            audio, rate, track_seconds = _read_with_pyav(path, windows)
    except AudioError:
        raise
    except Exception as error:  # any decoder failure becomes an AudioError
        raise AudioError(path, f"cannot decode: {type(error).__name__}: {error}") from error

    longest = None if None in [w.duration for w in windows] else max(w.duration for w in windows)
    shortest = min_duration if longest is None else min(min_duration, longest)
    if audio.size == 0:
        raise AudioError(path, "no audio could be decoded")
    if audio.size < round(shortest * rate):
        raise TooShortError(path, f"too short: {_seconds_pair(audio.size / rate, shortest)}")
    if not np.isfinite(audio).all():
        raise AudioError(path, "decoded audio contains NaN/inf")
    start, _, starts = _span_of(windows, track_seconds)
    return Span(np.ascontiguousarray(audio, dtype=np.float32), rate, windows,
                tuple(s - start for s in starts))


def read_excerpt(path, *, sample_rate: int = 22050, duration: float | None = None,
                 offset: float | None = None, min_duration: float = 3.0) -> np.ndarray:
    """Decode an excerpt of an audio file as mono audio at ``sample_rate``.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The audio file.
    sample_rate : int
        Rate of the returned audio in Hz; resampled with soxr (quality "HQ").
    duration : float or None
        Length of the excerpt in seconds; ``None`` decodes the whole file.
        A track shorter than ``duration`` gives what there is (no padding).
    offset : float or None
        Start of the excerpt in seconds from the start of the track; ``None``
        centres the excerpt: ``max(0, (track_duration - duration) / 2)``.
    min_duration : float
        Shortest acceptable result in seconds (capped at ``duration``).

    Returns
    -------
    np.ndarray
        float32, shape (samples,): the channels averaged to mono.

    Raises
    ------
    AudioError
        The file is missing, a directory, not a regular file (e.g. a FIFO),
        empty, not audio, corrupt, unsupported, or gives less than
        ``min_duration`` seconds of audio (:class:`TooShortError`); decoder
        exceptions are wrapped, keeping their message.
    ValueError
        A parameter is out of range.
    """
    _check_parameters(sample_rate, duration, offset, min_duration)
    span = read_span(path, windows=[Window(duration, offset)], min_duration=min_duration)
    audio = span.cut(0)
    if span.rate != sample_rate:
        audio = soxr.resample(audio, span.rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _check_parameters(sample_rate, duration, offset, min_duration) -> None:
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int, not {sample_rate!r}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be None or > 0 seconds, not {duration!r}")
    if offset is not None and not offset >= 0:
        raise ValueError(f"offset must be None or >= 0 seconds, not {offset!r}")
    if not min_duration >= 0:
        raise ValueError(f"min_duration must be >= 0 seconds, not {min_duration!r}")


def _check_regular_file(path) -> None:
    """Fail early, and without blocking, on what cannot be an audio file.

    Checking the type before opening means a FIFO or a device is never
    opened (opening a FIFO blocks until a writer comes).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except (OSError, TypeError, ValueError) as error:
        raise AudioError(path, f"cannot access file: {error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(path, "not a regular file")
    if info.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")


def _seconds_pair(got: float, need: float) -> str:
    """ "1.2 s < 3.0 s", with more decimals when one would hide the difference."""
    for decimals in (1, 3):
        text = f"{got:.{decimals}f} s < {need:.{decimals}f} s"
        if f"{got:.{decimals}f}" != f"{need:.{decimals}f}":
            return text
    return text


def _excerpt_start(offset: float | None, duration: float | None,
                   track_seconds: float | None) -> float:
    """Start of the excerpt in seconds: ``offset``, or centred in the track."""
    if offset is not None:
        return float(offset)
    if duration is None or track_seconds is None:
        return 0.0
    return max(0.0, (track_seconds - duration) / 2)


def _mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,). The seed paper sums the stereo
    channels; for a float signal normalised to [-1, 1] we take the mean
    instead, which is the same up to a constant gain and cannot clip."""
    return samples.mean(axis=1, dtype=np.float32)


def _read_with_soundfile(path, windows) -> tuple[np.ndarray, int, float | None]:
    """Mono float32 audio covering ``windows``, its sample rate and the
    track's length in seconds (None if unknown), read with libsndfile.

    Seeks to the span and reads only its frames. Raises a soundfile or
    RuntimeError exception when libsndfile cannot open or read the file.
    """
    with sf.SoundFile(path) as file:
        rate = file.samplerate
        known = 0 < file.frames < _UNKNOWN_FRAMES
        track_seconds = file.frames / rate if known else None
        span_start, duration, _ = _span_of(windows, track_seconds)
        start = round(span_start * rate)
        count = -1 if duration is None else round(duration * rate)
        if known and start >= file.frames:
            return np.zeros(0, np.float32), rate, track_seconds
        if start > 0:
            file.seek(start)
        samples = file.read(frames=count, dtype="float32", always_2d=True)
    return _mix_to_mono(samples), rate, track_seconds


class _PositionLost(Exception):
    """After a seek, PyAV could not tell where in the track it landed."""


def _read_with_pyav(path, windows) -> tuple[np.ndarray, int, float | None]:
    """As :func:`_read_with_soundfile`, decoded with PyAV (FFmpeg).

    Seeks near the span when it does not start at 0; when the seek lands
    at an unknown or wrong place, decodes again from the start of the file.
    """
    try:
        return _decode_with_pyav(path, windows, seek=True)
    except _PositionLost:
        return _decode_with_pyav(path, windows, seek=False)


def _ffmpeg_url(path) -> str | None:
    """``file:`` URL of a path for FFmpeg's own file protocol, or None when
    the name cannot be passed as text (undecodable bytes).

    The ``file:`` prefix makes FFmpeg read the name as a file name, never as
    another protocol ("concat:...", "http:..."). FFmpeg reads the file
    itself: with a Python file object, PyAV's read and seek callbacks print
    "PyAV library exception being dropped" tracebacks for some WMA files.
    """
    name = os.path.abspath(_path_text(path))
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return "file:" + name


def _decode_with_pyav(path, windows, *, seek: bool) -> tuple[np.ndarray, int, float | None]:
    url = _ffmpeg_url(path)
    with contextlib.ExitStack() as stack:
        source = url if url is not None else stack.enter_context(open(path, "rb"))
        try:
            container = av.open(source, mode="r", metadata_errors="replace")
        except av.error.InvalidDataError:
            raise AudioError(path, "not a recognised audio file") from None
        except av.FFmpegError as error:
            raise AudioError(path, f"cannot open: {_ffmpeg_message(error)}") from None
        with container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(path, "no audio stream")
            return _decode_stream(path, container, stream, windows, seek)


def _ffmpeg_message(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _pyav_track_seconds(container, stream) -> float | None:
    """Track length in seconds from the headers, or None when unknown."""
    if stream.duration and stream.time_base:
        units = stream.duration
        if stream.time_base > _FINE_TIME_BASE:
            # Coarse units (Musepack: 1.67 s) hold the length rounded down;
            # the middle of the last unit is the best guess.
            units += 0.5
        return float(units * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _decode_stream(path, container, stream, windows, seek) -> tuple[np.ndarray, int, float | None]:
    track_seconds = _pyav_track_seconds(container, stream)
    start, duration, _ = _span_of(windows, track_seconds)
    # Frame timestamps count from the stream's start time (e.g. an MP3's
    # encoder delay), so positions in the track are relative to it.
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0

    sought = False
    # Seek only where timestamps are fine-grained: with coarse ones (Musepack
    # counts in units of 1.67 s) FFmpeg lands far from the target.
    if seek and start > 0 and stream.time_base and stream.time_base <= _FINE_TIME_BASE:
        try:
            # backward=True: land on a keyframe at or before the target.
            container.seek(math.floor((origin + start) / stream.time_base), stream=stream,
                           backward=True, any_frame=False)
            sought = True
        except av.FFmpegError:
            pass  # not seekable: decode from the start and skip by timestamps

    chunks: list[np.ndarray] = []
    gathered = 0
    rate = None
    wanted = None  # samples, once the rate is known
    position = None if sought else 0.0  # seconds from the track start
    bad_packets = 0
    last_error = None
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
            bad_packets = 0
        except av.error.InvalidDataError as error:
            # A corrupt packet: skip it, as players do, unless they all are.
            last_error = error
            bad_packets += 1
            if bad_packets > _MAX_BAD_PACKETS:
                raise AudioError(path, f"corrupt audio: {_ffmpeg_message(error)}") from None
            continue
        for frame in frames:
            if rate is None:
                rate = frame.sample_rate
                wanted = None if duration is None else round(duration * rate)
            elif frame.sample_rate != rate:
                raise AudioError(path, "sample rate changes within the stream")
            if frame.pts is not None and frame.time_base:
                position = float(frame.pts * frame.time_base) - origin
            if position is None:
                raise _PositionLost()  # landed after a seek with no timestamp
            if sought and not chunks and position > start + _SEEK_TOLERANCE:
                raise _PositionLost()  # the seek overshot the excerpt
            mono = _frame_to_mono(frame)
            frame_start = position
            position += frame.samples / rate
            if frame_start < start:  # drop what comes before the excerpt
                mono = mono[max(0, round((start - frame_start) * rate)):]
            if mono.size:
                chunks.append(mono)
                gathered += mono.size
            if wanted is not None and gathered >= wanted:
                return np.concatenate(chunks)[:wanted], rate, track_seconds
    if not chunks and last_error is not None:
        raise AudioError(path, f"no audio could be decoded: {_ffmpeg_message(last_error)}")
    if rate is None:
        return np.zeros(0, np.float32), 1, track_seconds
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio, rate, track_seconds


def _frame_to_mono(frame) -> np.ndarray:
    """A decoded PyAV audio frame as mono float32, shape (samples,)."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels or 1
    if frame.format.is_planar:
        planes = array  # (channels, samples)
    else:
        planes = array.reshape(-1, channels).T  # interleaved (1, samples * channels)
    if planes.dtype == np.uint8:
        planes = (planes.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(planes.dtype, np.integer):
        planes = planes.astype(np.float32) / float(2 ** (8 * planes.dtype.itemsize - 1))
    # Mean over channels; see _mix_to_mono for why not the sum.
    return planes.mean(axis=0, dtype=np.float32)


# ------------------------------------------------------------ many files

def read_excerpts(paths: Iterable, *, sample_rate: int = 22050, duration: float | None = None,
                  offset: float | None = None, min_duration: float = 3.0,
                  transform: Callable[[np.ndarray], Any] | None = None, workers: int = 2,
                  timeout: float | None = 30.0) -> Iterator[tuple[int, Any, Any]]:
    """Decode many files in worker processes; yield results as they finish.

    Parameters
    ----------
    paths : iterable of paths
        Read lazily, a few at a time, so it may be a generator of any length.
    sample_rate, duration, offset, min_duration
        As for :func:`read_excerpt`.
    transform : callable or None
        Applied to each excerpt inside the worker, e.g. to compute features
        there; must be a picklable top-level function (or a
        ``functools.partial`` of one) that the workers can import.
    workers : int
        Number of worker processes, started with 'spawn' (never 'fork', the
        parent may hold torch threads). ``0`` decodes in this process, one
        file after the other, and cannot enforce ``timeout``.
    timeout : float or None
        Seconds one file may take in a worker; past it the worker is killed
        and replaced, and the file gets an AudioError. ``None``: no limit.

    Yields
    ------
    (index, path, result)
        In completion order. ``index`` is the position of ``path`` in
        ``paths``; ``result`` is the excerpt (float32, shape (samples,)), or
        ``transform(excerpt)``, or an :class:`AudioError` instance (returned,
        not raised) when the file failed; an exception in ``transform``
        becomes an AudioError too.

    Each worker holds one file at a time, so memory stays bounded. Closing
    the iterator (``close()``, garbage collection, ``break`` out of a loop
    over it, KeyboardInterrupt) kills the worker processes.
    """
    _check_parameters(sample_rate, duration, offset, min_duration)
    if not (isinstance(workers, int) and workers >= 0):
        raise ValueError(f"workers must be an int >= 0, not {workers!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be None or > 0 seconds, not {timeout!r}")
    options = dict(sample_rate=sample_rate, duration=duration, offset=offset,
                   min_duration=min_duration)
    if workers:
        try:
            pickle.dumps(transform)
        except Exception as error:
            raise TypeError(f"transform must be picklable for worker processes: {error}") from error
    job = functools.partial(_excerpt_job, options=options, transform=transform)
    return map_files(paths, job=job, workers=workers, timeout=timeout)


def map_files(paths: Iterable, *, job: Callable[[Any], Any], workers: int = 2,
              timeout: float | None = 30.0) -> Iterator[tuple[int, Any, Any]]:
    """Run ``job(path)`` for many files in worker processes; yield results
    as they finish.

    The machinery under :func:`read_excerpts`, for any per-file work that
    starts by decoding (the analysis pass decodes once and computes several
    features in the same job).

    Parameters
    ----------
    paths : iterable of paths
        Read lazily, a few at a time.
    job : callable
        A picklable top-level function (or ``functools.partial`` of one)
        taking a path. An :class:`AudioError` it raises or returns is the
        file's result; any other exception becomes an AudioError naming the
        file.
    workers, timeout
        As for :func:`read_excerpts`.

    Yields
    ------
    (index, path, result)
        In completion order; ``result`` is what ``job`` returned, or an
        AudioError instance.
    """
    if not (isinstance(workers, int) and workers >= 0):
        raise ValueError(f"workers must be an int >= 0, not {workers!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be None or > 0 seconds, not {timeout!r}")
    if workers == 0:
        return _run_in_this_process(paths, job)
    try:
        pickle.dumps(job)
    except Exception as error:
        raise TypeError(f"job must be picklable for worker processes: {error}") from error
    return _read_in_workers(paths, job, workers, timeout)


def _excerpt_job(path, *, options: dict, transform) -> Any:
    """read_excerpt then ``transform``; a failing transform is an AudioError."""
    excerpt = read_excerpt(path, **options)
    if transform is None:
        return excerpt
    try:
        return transform(excerpt)
    except Exception as error:
        return AudioError(path, f"transform failed: {type(error).__name__}: {error}")


def _run_job(job, path) -> Any:
    """``job(path)``, with every failure turned into an AudioError."""
    try:
        return job(path)
    except AudioError as error:
        return error
    except Exception as error:  # a bug, but one file must not stop a batch
        return AudioError(path, f"unexpected {type(error).__name__}: {error}")


def _run_in_this_process(paths, job):
    for index, path in enumerate(paths):
        yield index, path, _run_job(job, path)


def _worker_main(conn) -> None:
    """Body of a worker process: run the job on the paths the parent sends.

    Messages from the parent: first the job, then ``(index, path)`` tasks,
    one at a time (``None`` stops the worker, but the parent usually just
    kills it). Messages to the parent: ``("ready", None)``, ``("result",
    result)`` or ``("broken", text)``.
    """
    # Ctrl-C reaches the whole process group; the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = conn.recv()
    except EOFError:
        return
    except Exception as error:  # e.g. the job's module is not importable
        conn.send(("broken", f"cannot load the job: {type(error).__name__}: {error}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        _, path = task
        result = _run_job(job, path)
        try:
            conn.send(("result", result))
        except Exception as error:  # the result could not be pickled
            conn.send(("result", AudioError(path, f"result cannot be sent back: {error}")))


# Thread-count variables of the maths libraries numpy may load.
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_maths():
    """Start child processes with one BLAS/OpenMP thread each.

    The workers already run in parallel; a multi-threaded BLAS in each one
    oversubscribes the cores (measured here: the log-mel matrix product went
    from 7 ms to 26 ms per track with two workers on two cores). A spawned
    child copies the environment at start, before it imports numpy.
    """
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Worker:
    """One worker process and the pipe to it, with the task it is working on."""

    def __init__(self, context, setup):
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child_conn,),
                                       name="tagcore-audio-worker", daemon=True)
        with _single_threaded_maths():
            self.process.start()
        child_conn.close()  # so that our recv() sees EOF if the worker dies
        self.started = time.monotonic()
        self.ready = False
        self.task = None  # (index, path) being decoded
        self.deadline = None  # monotonic time when the task times out
        self.stopped = False
        self.conn.send(setup)

    def give(self, index, path, timeout) -> None:
        self.conn.send((index, os.fspath(path) if _is_path(path) else path))
        self.task = (index, path)
        self._arm(timeout)

    def _arm(self, timeout) -> None:
        # The clock starts when the worker is ready, so that its start-up
        # (importing numpy, av...) never counts against a file.
        if self.task is not None and self.ready and timeout is not None:
            self.deadline = time.monotonic() + timeout

    def receive(self, timeout) -> list[tuple[str, Any]]:
        """Messages waiting in the pipe; ``("died", exitcode)`` if it broke."""
        messages = []
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                    self._arm(timeout)
                else:
                    messages.append((kind, value))
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            messages.append(("died", self.process.exitcode))
        return messages

    def stop(self) -> None:
        """Kill the process (it holds nothing worth saving) and reap it."""
        if self.stopped:
            return
        self.stopped = True
        try:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5.0)
        finally:
            self.conn.close()
            if self.process.exitcode is not None:
                self.process.close()


def _is_path(path) -> bool:
    return isinstance(path, (str, bytes, os.PathLike))


def _read_in_workers(paths, job, workers, timeout):
    context = multiprocessing.get_context("spawn")
    setup = job
    slots: list[_Worker | None] = [None] * workers  # workers start when needed
    pending = enumerate(paths)
    exhausted = False
    try:
        while True:
            # 1. Give every idle slot a path (one at a time per worker).
            for slot, worker in enumerate(slots):
                if exhausted:
                    break
                if worker is not None and worker.task is not None:
                    continue
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                slots[slot] = _give_to_live_worker(worker, item, context, setup, timeout)

            busy = [worker for worker in slots if worker is not None and worker.task is not None]
            if not busy:
                return

            # 2. Wait for a result, a dead worker or the nearest deadline.
            multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy],
                timeout=_time_to_next_deadline(busy))

            # 3. Collect what happened, then yield it (state is consistent
            #    at every yield, so closing the generator there is safe).
            finished = []
            for slot, worker in enumerate(slots):
                if worker is None or worker.task is None:
                    continue
                result = _outcome(worker, timeout)
                if result is _STILL_WORKING:
                    continue
                index, path = worker.task
                worker.task = worker.deadline = None
                finished.append((index, path, result))
                if worker.stopped:
                    slots[slot] = None  # replaced when there is a path for it
            yield from finished
    finally:
        for worker in slots:
            if worker is not None:
                worker.stop()


_STILL_WORKING = object()


def _outcome(worker: _Worker, timeout):
    """The result of a busy worker's task: what it sent back, or an AudioError
    when it died or ran past its deadline (then it is stopped), or
    ``_STILL_WORKING``. Raises RuntimeError when workers cannot work at all."""
    index, path = worker.task
    for kind, value in worker.receive(timeout):
        if kind == "result":
            return value
        if kind == "broken":
            raise RuntimeError(f"read_excerpts worker failed: {value}")
        # "died": a crash in a decoder, or a kill from outside.
        if not worker.ready:
            raise RuntimeError(f"read_excerpts worker process failed to start (exit code {value})")
        worker.stop()
        return AudioError(path, f"decoder process died (exit code {value})")
    now = time.monotonic()
    if worker.deadline is not None and now >= worker.deadline:
        worker.stop()
        return AudioError(path, f"decoding took longer than {timeout} s")
    if not worker.ready and now - worker.started > _WORKER_START_LIMIT:
        raise RuntimeError(
            f"read_excerpts worker process did not start within {_WORKER_START_LIMIT:.0f} s")
    return _STILL_WORKING


def _give_to_live_worker(worker, item, context, setup, timeout) -> _Worker:
    """Send ``item`` to ``worker``, or to a new worker if it is gone or
    missing; return the worker that has it."""
    if worker is not None and worker.process.is_alive():
        try:
            worker.give(*item, timeout)
            return worker
        except OSError:
            pass  # it died just now
    if worker is not None:
        worker.stop()
    worker = _Worker(context, setup)
    worker.give(*item, timeout)
    return worker


def _time_to_next_deadline(busy: list[_Worker]) -> float | None:
    """Seconds until the earliest deadline or start-up limit; None if none."""
    moments = [w.deadline for w in busy if w.deadline is not None]
    moments += [w.started + _WORKER_START_LIMIT for w in busy if not w.ready]
    if not moments:
        return None
    return max(0.0, min(moments) - time.monotonic())
