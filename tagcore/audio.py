"""Audio input of the engine: decode an excerpt of an audio file to a mono array.

:func:`read_excerpt` decodes one file at a sample rate; :func:`read_span`
decodes, in one read, the part of a file that covers several windows (see
:class:`Window`, :class:`Span`). Many files in worker processes, with a
per-file timeout: :mod:`tagcore.workers`.

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
import math
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "Span", "TooShortError", "Window", "check_excerpt_parameters", "read_excerpt", "read_span"]

# libsndfile reports this frame count when it does not know a file's length.
_UNKNOWN_FRAMES = 2**62
# PyAV fallback: give up after this many consecutive undecodable packets.
_MAX_BAD_PACKETS = 100
# A seek may land a little after the wanted position; beyond this many seconds
# the excerpt is decoded again from the start of the file instead.
_SEEK_TOLERANCE = 0.1
# Timestamps at least this fine (seconds) are trusted for seeking.
_FINE_TIME_BASE = Fraction(1, 1000)
#: A centred excerpt starts on a multiple of this many seconds (the nearest
#: one to the true centre). Decoders disagree about a track's length by up
#: to about a codec frame (AAC in MP4 through FFmpeg counts the encoder's
#: 1,024 priming samples: 46 ms at 22,050 Hz), which moved the centred
#: excerpt by half that and changed scores with the codec; on a 2 s grid
#: such a difference moves the excerpt only when the centre lies within
#: a few ms of a grid boundary. The excerpt stays within 1 s of the centre.
EXCERPT_GRID = 2.0


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
    ``offset`` (None: centred in the track, its start on a 2 s grid, see
    :func:`read_excerpt`)."""

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
        check_excerpt_parameters(sample_rate=1, duration=window.duration, offset=window.offset,
                                 min_duration=min_duration)
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
        centres the excerpt: ``max(0, (track_duration - duration) / 2)``
        moved to the nearest multiple of :data:`EXCERPT_GRID` (2 s), so that
        the few ms by which decoders disagree about a track's length do not
        move it (:func:`on_grid`).
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
    check_excerpt_parameters(sample_rate=sample_rate, duration=duration, offset=offset,
                             min_duration=min_duration)
    span = read_span(path, windows=[Window(duration, offset)], min_duration=min_duration)
    audio = span.cut(0)
    if span.rate != sample_rate:
        audio = soxr.resample(audio, span.rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def check_excerpt_parameters(*, sample_rate, duration, offset, min_duration) -> None:
    """Raise ValueError when a parameter of :func:`read_excerpt` is out of
    range (the same checks, before any file is opened)."""
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
    """Start of the excerpt in seconds: ``offset``, or centred in the track
    on the :data:`EXCERPT_GRID` (:func:`on_grid`)."""
    if offset is not None:
        return float(offset)
    if duration is None or track_seconds is None:
        return 0.0
    return on_grid(max(0.0, (track_seconds - duration) / 2))


def on_grid(seconds: float, grid: float = EXCERPT_GRID) -> float:
    """``seconds`` (>= 0) to the nearest multiple of ``grid``, 0 below
    ``grid / 2``. For a centred start ``c = (track - excerpt) / 2`` the
    result never exceeds ``2 c``, so the excerpt still ends in the track."""
    if seconds < grid / 2:
        return 0.0
    return grid * math.floor(seconds / grid + 0.5)


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


def _seek_near(container, stream, seconds: float) -> bool:
    """Seek ``container`` to the keyframe at or before ``seconds`` on the
    stream's clock; False where the stream cannot seek."""
    try:
        # backward=True: land on a keyframe at or before the target.
        container.seek(math.floor(seconds / stream.time_base), stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        return False  # not seekable: decode from the start and skip by timestamps
    return True


def _decoded_frames(path, container, stream, errors: list):
    """The audio frames of ``stream`` in order. A corrupt packet is skipped,
    as players do, and ``errors`` then holds its error (the last one only);
    more than _MAX_BAD_PACKETS in a row raise AudioError."""
    bad_packets = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as error:
            errors[:] = [error]
            bad_packets += 1
            if bad_packets > _MAX_BAD_PACKETS:
                raise AudioError(path, f"corrupt audio: {_ffmpeg_message(error)}") from None
            continue
        bad_packets = 0
        yield from frames


class _Excerpt:
    """Mono samples gathered frame by frame from ``start`` seconds into the
    track, ``duration`` seconds long (None: to the end). ``origin`` is the
    stream's start time (frame timestamps count from it); ``sought`` says
    whether decoding began after a seek, so the position is known only from
    the first timestamp."""

    def __init__(self, path, *, start: float, duration: float | None, origin: float, sought: bool):
        self.path, self.start, self.duration, self.origin, self.sought = path, start, duration, origin, sought
        self.chunks: list[np.ndarray] = []
        self.gathered = 0
        self.rate: int | None = None
        self.wanted: int | None = None  # samples, once the rate is known
        self.position = None if sought else 0.0  # seconds from the track start

    def add(self, frame) -> bool:
        """Keep the part of ``frame`` inside the excerpt; True once it is complete."""
        if self.rate is None:
            self.rate = frame.sample_rate
            self.wanted = None if self.duration is None else round(self.duration * self.rate)
        elif frame.sample_rate != self.rate:
            raise AudioError(self.path, "sample rate changes within the stream")
        if frame.pts is not None and frame.time_base:
            self.position = float(frame.pts * frame.time_base) - self.origin
        if self.position is None:
            raise _PositionLost()  # landed after a seek with no timestamp
        if self.sought and not self.chunks and self.position > self.start + _SEEK_TOLERANCE:
            raise _PositionLost()  # the seek overshot the excerpt
        mono = _frame_to_mono(frame)
        frame_start = self.position
        self.position += frame.samples / self.rate
        if frame_start < self.start:  # drop what comes before the excerpt
            mono = mono[max(0, round((self.start - frame_start) * self.rate)):]
        if mono.size:
            self.chunks.append(mono)
            self.gathered += mono.size
        return self.wanted is not None and self.gathered >= self.wanted

    def samples(self) -> np.ndarray:
        """The excerpt so far, float32 (samples,), at most ``duration`` long."""
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self.chunks)[: self.wanted]


def _decode_stream(path, container, stream, windows, seek) -> tuple[np.ndarray, int, float | None]:
    """(mono samples, sample rate, track seconds or None) of the span of
    ``windows`` in an open PyAV ``stream``."""
    track_seconds = _pyav_track_seconds(container, stream)
    start, duration, _ = _span_of(windows, track_seconds)
    # Frame timestamps count from the stream's start time (e.g. an MP3's
    # encoder delay), so positions in the track are relative to it.
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    # Seek only where timestamps are fine-grained: with coarse ones (Musepack
    # counts in units of 1.67 s) FFmpeg lands far from the target.
    sought = bool(seek and start > 0 and stream.time_base and stream.time_base <= _FINE_TIME_BASE
                  and _seek_near(container, stream, origin + start))
    excerpt = _Excerpt(path, start=start, duration=duration, origin=origin, sought=sought)
    errors: list = []
    for frame in _decoded_frames(path, container, stream, errors):
        if excerpt.add(frame):
            return excerpt.samples(), excerpt.rate, track_seconds
    if not excerpt.chunks and errors:
        raise AudioError(path, f"no audio could be decoded: {_ffmpeg_message(errors[-1])}")
    if excerpt.rate is None:
        return np.zeros(0, np.float32), 1, track_seconds
    return excerpt.samples(), excerpt.rate, track_seconds


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
