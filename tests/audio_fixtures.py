"""Synthetic audio files for the tests of ``tagcore.audio``; nothing is downloaded.

Good files hold a deterministic test signal: by default a 440 Hz + 660 Hz
chord (440 Hz is the loudest partial) with a little white noise, so a decoder
that really decodes gives back a signal whose strongest frequency is 440 Hz;
or a staircase of tones whose pitch tells the time, to check seeking.

Formats written with soundfile: wav, flac, ogg (Vorbis), opus, mp3, aiff.
Formats written with PyAV's encoders: m4a-aac, m4a-alac, wma, wv (WavPack).
Formats written with an external encoder when one is installed: mpc
(``mpcenc`` from Debian's musepack-tools) and ape (``mac``, Monkey's Audio);
without it :class:`EncoderUnavailable` is raised so that a test can skip
(:func:`skip_or_fail`; under CI it fails instead).

This module also holds test-only ``transform`` functions for
``read_excerpts``; they live here, in an importable module, because worker
processes are started with 'spawn' and must be able to import them.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import soundfile as sf

#: Frequency of the strongest partial of the test chord, in Hz.
MAIN_FREQUENCY = 440.0
#: The step signal plays STEP_START + STEP_HZ * k Hz during second k.
STEP_START = 300.0
STEP_HZ = 100.0

#: fmt -> (soundfile format, soundfile subtype, file suffix).
SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16", ".wav"),
    "flac": ("FLAC", "PCM_16", ".flac"),
    "ogg": ("OGG", "VORBIS", ".ogg"),
    "opus": ("OGG", "OPUS", ".opus"),
    "mp3": ("MP3", "MPEG_LAYER_III", ".mp3"),
    "aiff": ("AIFF", "PCM_16", ".aiff"),
}

#: fmt -> (PyAV muxer, codec, sample format fed to the encoder, file suffix).
PYAV_FORMATS = {
    "m4a-aac": ("mp4", "aac", "fltp", ".m4a"),
    "m4a-alac": ("mp4", "alac", "s16p", ".m4a"),
    "wma": ("asf", "wmav2", "fltp", ".wma"),
    "wv": ("wv", "wavpack", "fltp", ".wv"),
}

#: fmt -> external encoder programs that can write it (the first found is used):
#: mpcenc from Debian's musepack-tools; Monkey's Audio's own ``mac`` or the
#: Java port ``jmac`` from Debian's libjmac-java.
EXTERNAL_FORMATS = {"mpc": ("mpcenc",), "ape": ("mac", "jmac")}

ALL_FORMATS = [*SOUNDFILE_FORMATS, *PYAV_FORMATS, *EXTERNAL_FORMATS]

# Opus only runs at these rates; libsndfile refuses others (such as 44.1 kHz).
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


#: Set (.ci/run sets it) to make a missing encoder fail a test instead of skipping it.
REQUIRE_ENCODERS = "AUTOTAGML_REQUIRE_ENCODERS"


class EncoderUnavailable(RuntimeError):
    """The encoder needed to write a format is not installed (test should skip)."""


def skip_or_fail(reason: EncoderUnavailable) -> None:
    """Skip the running test for want of an encoder; fail it instead when
    ``$AUTOTAGML_REQUIRE_ENCODERS`` is set, as under CI."""
    import pytest  # here, not at the top: worker processes import this module too

    if os.environ.get(REQUIRE_ENCODERS):
        pytest.fail(f"{reason} ({REQUIRE_ENCODERS} is set: CI must test every format)")
    pytest.skip(str(reason))


def chord_signal(*, seconds: float = 6.0, sample_rate: int = 44100, channels: int = 2,
                seed: int = 0) -> np.ndarray:
    """The test chord: float32 array of shape (frames, channels), peak below 1.

    Every channel holds the same chord, so averaging the channels keeps it;
    the small noise differs per channel.
    """
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    chord = 0.5 * np.sin(2 * np.pi * MAIN_FREQUENCY * t) + 0.2 * np.sin(2 * np.pi * 660.0 * t)
    noise = np.random.default_rng(seed).normal(0.0, 0.01, size=(t.size, channels))
    return (chord[:, None] + noise).astype(np.float32)


def step_frequency(second: float) -> float:
    """Frequency in Hz of :func:`step_signal` at time ``second`` (s)."""
    return STEP_START + STEP_HZ * math.floor(second)


def step_signal(*, seconds: float = 6.0, sample_rate: int = 44100,
                channels: int = 2) -> np.ndarray:
    """A staircase of tones, one per second (300, 400, 500... Hz): the pitch of
    a piece of it tells where in the file it comes from. float32 array of
    shape (frames, channels)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    frequency = STEP_START + STEP_HZ * np.floor(t)
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate  # continuous: no clicks
    tone = 0.5 * np.sin(phase)
    return np.repeat(tone[:, None], channels, axis=1).astype(np.float32)


def write_audio(directory, fmt: str, *, seconds: float = 6.0, sample_rate: int = 44100,
                channels: int = 2, name: str | None = None, signal: str = "chord") -> Path:
    """Write a test signal as ``fmt`` into ``directory``; return the file's path.

    ``fmt`` is one of :data:`ALL_FORMATS`; ``signal`` is ``"chord"``
    (:func:`chord_signal`) or ``"steps"`` (:func:`step_signal`). ``name`` is
    the file name without suffix (default: ``fmt``). Opus is written at
    48 kHz when ``sample_rate`` is not an Opus rate. Raises
    :class:`EncoderUnavailable` when an external encoder (mpc, ape) is missing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = name or fmt
    if fmt == "opus" and sample_rate not in _OPUS_RATES:
        sample_rate = 48000
    synthesize = {"chord": chord_signal, "steps": step_signal}[signal]
    signal = synthesize(seconds=seconds, sample_rate=sample_rate, channels=channels)

    if fmt in SOUNDFILE_FORMATS:
        container, subtype, suffix = SOUNDFILE_FORMATS[fmt]
        path = directory / f"{stem}{suffix}"
        # Written in blocks: one big write to Ogg Vorbis crashes libsndfile
        # 1.2.2 (segfault) for signals longer than about a minute.
        with sf.SoundFile(path, "w", sample_rate, signal.shape[1], subtype,
                          format=container) as out:
            for start in range(0, signal.shape[0], sample_rate):
                out.write(signal[start:start + sample_rate])
        return path
    if fmt in PYAV_FORMATS:
        muxer, codec, sample_format, suffix = PYAV_FORMATS[fmt]
        path = directory / f"{stem}{suffix}"
        _write_with_pyav(path, signal, sample_rate, muxer, codec, sample_format)
        return path
    if fmt in EXTERNAL_FORMATS:
        path = directory / f"{stem}.{fmt}"
        _write_with_external_encoder(path, signal, sample_rate, EXTERNAL_FORMATS[fmt])
        return path
    raise ValueError(f"unknown format {fmt!r}; expected one of {ALL_FORMATS}")


def _write_with_pyav(path: Path, signal: np.ndarray, sample_rate: int, muxer: str,
                     codec: str, sample_format: str) -> None:
    """Encode ``signal`` (frames, channels) with one of FFmpeg's encoders."""
    layout = {1: "mono", 2: "stereo"}[signal.shape[1]]
    planar = signal.T  # PyAV wants planar audio as (channels, samples)
    if sample_format == "s16p":
        planar = np.round(planar * 32767).astype(np.int16)
    chunk = 1024  # the encoder re-frames to its own frame size when it needs to
    with av.open(str(path), mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = layout
        stream.format = sample_format
        if codec in ("aac", "wmav2"):
            stream.bit_rate = 128_000  # wmav2 refuses to open without one
        for start in range(0, planar.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start:start + chunk]),
                format=sample_format, layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder


def _write_with_external_encoder(path: Path, signal: np.ndarray, sample_rate: int,
                                 programs: tuple[str, ...]) -> None:
    """Write a temporary WAV and convert it with the first of ``programs`` on PATH."""
    found = [(name, shutil.which(name)) for name in programs]
    found = [(name, executable) for name, executable in found if executable]
    if not found:
        hint = "apt-get install musepack-tools" if "mpcenc" in programs else "apt-get install libjmac-java"
        raise EncoderUnavailable(
            f"no {path.suffix[1:]} encoder: none of {', '.join(programs)} is on PATH ({hint})")
    program, executable = found[0]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "input.wav"
        sf.write(wav, signal, sample_rate, subtype="PCM_16")
        if program == "mpcenc":
            command = [executable, "--silent", "--overwrite", str(wav), str(path)]
        elif program == "jmac":
            command = [executable, "c2", str(wav), str(path)]
        else:
            command = [executable, str(wav), str(path), "-c2000"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or not path.exists():
        raise EncoderUnavailable(f"{program} failed ({done.returncode}): {done.stderr.strip()}")


# ---------------------------------------------------------------- bad inputs

def _new_path(directory, name: str) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def write_empty(directory, name: str = "empty.mp3") -> Path:
    """A 0-byte file."""
    path = _new_path(directory, name)
    path.write_bytes(b"")
    return path


def write_text_as_audio(directory, name: str = "notes.mp3") -> Path:
    """A plain text file with an audio suffix."""
    path = _new_path(directory, name)
    path.write_text("These are not the sounds you are looking for.\n" * 200)
    return path


def write_jpeg_as_audio(directory, name: str = "cover.mp3") -> Path:
    """The start of a JPEG image (SOI + JFIF header + junk) with an audio suffix."""
    path = _new_path(directory, name)
    header = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")
    path.write_bytes(header + bytes(range(256)) * 16 + bytes.fromhex("ffd9"))
    return path


def write_truncated(directory, fmt: str = "mp3", *, keep_bytes: int = 2048) -> Path:
    """The first ``keep_bytes`` bytes of a valid ``fmt`` file (a few ms of audio)."""
    directory = Path(directory)
    full = write_audio(directory, fmt, name=f"full-{fmt}")
    path = directory / f"truncated-{fmt}{full.suffix}"
    path.write_bytes(full.read_bytes()[:keep_bytes])
    full.unlink()
    return path


def write_short(directory, fmt: str = "wav", *, seconds: float = 0.5) -> Path:
    """A valid but very short file (default 0.5 s)."""
    return write_audio(directory, fmt, seconds=seconds, name=f"short-{fmt}")


# ------------------------------------------- transforms for read_excerpts tests

def excerpt_length(excerpt: np.ndarray) -> int:
    """Number of samples of an excerpt."""
    return int(excerpt.shape[0])


def length_and_pid(excerpt: np.ndarray) -> tuple[int, int]:
    """(samples, id of the process that ran the transform)."""
    return int(excerpt.shape[0]), os.getpid()


def misbehave_on_short(excerpt: np.ndarray, *, hang_below: int = 0,
                       crash_below: int = 0) -> int:
    """Stand-in for a decoder that hangs or crashes on some files, chosen by
    the excerpt's length in samples: below ``crash_below`` the process dies
    at once (exit code 3); below ``hang_below`` it sleeps 60 s; otherwise the
    length is returned. Use with ``functools.partial`` to set the limits."""
    if excerpt.shape[0] < crash_below:
        os._exit(3)
    if excerpt.shape[0] < hang_below:
        time.sleep(60)
    return int(excerpt.shape[0])


def fail_always(excerpt: np.ndarray) -> None:
    """A transform that raises, to check that errors are reported per file."""
    raise ValueError("transform refused this excerpt")
