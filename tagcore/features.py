"""Spectral features: the log-compressed mel spectrogram of seed 002.

Pure numpy, so it can run in light decoding worker processes.

The reference parameters (Hennequin et al. 2018, section 2.3): audio at
22,050 Hz, mono, 1024-sample Hann windows without overlap (hop 1024),
96 mel bands, compression ``log(1 + 10000 * x)``. A 30 s excerpt of
646 * 1024 samples gives a (646, 96) matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MelParams:
    """Parameters of a log-mel spectrogram.

    Attributes
    ----------
    sample_rate : int
        Rate the audio is resampled to before analysis, in Hz.
    n_fft : int
        Window length in samples (a Hann window).
    hop_length : int
        Step between windows in samples; ``n_fft`` means no overlap.
    n_mels : int
        Number of mel bands.
    log_c : float
        Compression constant C of ``log(1 + C * x)``.
    excerpt_frames : int
        Frames in one model input; 646 frames of 1024 samples is 30.0 s.
    fmin, fmax : float
        Frequency range of the mel filters in Hz; ``fmax=0`` means Nyquist.
    power : float
        Exponent applied to the magnitude spectrum (1 = magnitude, 2 = power).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 1024
    n_mels: int = 96
    log_c: float = 10000.0
    excerpt_frames: int = 646
    fmin: float = 0.0
    fmax: float = 0.0
    power: float = 2.0

    @property
    def excerpt_samples(self) -> int:
        """Samples needed for ``excerpt_frames`` frames."""
        return (self.excerpt_frames - 1) * self.hop_length + self.n_fft

    @property
    def excerpt_seconds(self) -> float:
        """Duration of one model input in seconds."""
        return self.excerpt_samples / self.sample_rate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MelParams":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown mel parameters: {sorted(unknown)}")
        return cls(**data)


# Slaney's mel scale: 200/3 Hz per mel up to 1 kHz, then logarithmic.
_HZ_PER_MEL = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log, hz / _HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, _HZ_PER_MEL * mel)


def mel_filterbank(
    *, sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float = 0.0
) -> np.ndarray:
    """Triangular, area-normalised (Slaney) mel filters.

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float32

    Example
    -------
    >>> mel_filterbank(sample_rate=22050, n_fft=1024, n_mels=96).shape
    (96, 513)
    """
    fmax = fmax or sample_rate / 2.0
    if not 0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"bad mel range fmin={fmin} fmax={fmax} at {sample_rate} Hz")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    return weights.astype(np.float32)


_FILTERBANKS: dict[tuple, np.ndarray] = {}


def _cached_filterbank(params: MelParams) -> np.ndarray:
    key = (params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    if key not in _FILTERBANKS:
        _FILTERBANKS[key] = mel_filterbank(
            sample_rate=params.sample_rate,
            n_fft=params.n_fft,
            n_mels=params.n_mels,
            fmin=params.fmin,
            fmax=params.fmax,
        )
    return _FILTERBANKS[key]


def frame_signal(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Cut a 1-D signal into frames without padding (``center=False``).

    Returns shape (n_frames, frame_length), a view where possible.
    """
    if y.ndim != 1:
        raise ValueError(f"expected a mono 1-D signal, got shape {y.shape}")
    if len(y) < frame_length:
        return np.zeros((0, frame_length), dtype=y.dtype)
    n_frames = 1 + (len(y) - frame_length) // hop_length
    return np.lib.stride_tricks.as_strided(
        y,
        shape=(n_frames, frame_length),
        strides=(y.strides[0] * hop_length, y.strides[0]),
        writeable=False,
    )


def log_mel_spectrogram(y: np.ndarray, *, params: MelParams = MelParams()) -> np.ndarray:
    """Log-compressed mel spectrogram of a mono signal.

    Parameters
    ----------
    y : np.ndarray, shape (samples,)
        Mono audio at ``params.sample_rate``.
    params : MelParams

    Returns
    -------
    np.ndarray, shape (frames, n_mels), float32
        ``log(1 + C * mel)`` with frames of ``n_fft`` samples every
        ``hop_length`` samples; frames = 1 + (samples - n_fft) // hop_length.

    Example
    -------
    >>> y = np.zeros(646 * 1024, dtype=np.float32)
    >>> log_mel_spectrogram(y).shape
    (646, 96)
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    frames = frame_signal(y, frame_length=params.n_fft, hop_length=params.hop_length)
    window = np.hanning(params.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
    if params.power != 1.0:
        spectrum **= params.power
    mel = spectrum @ _cached_filterbank(params).T
    return np.log1p(params.log_c * mel).astype(np.float32)


def excerpt_features(y: np.ndarray, *, params: MelParams = MelParams()) -> np.ndarray:
    """Log-mel frames of at most one model input (``params.excerpt_frames``).

    A longer signal is cut around its centre; a shorter one is kept whole.
    Returns shape (frames, n_mels).
    """
    need = params.excerpt_samples
    if len(y) > need:
        start = (len(y) - need) // 2
        y = y[start : start + need]
    return log_mel_spectrogram(y, params=params)
