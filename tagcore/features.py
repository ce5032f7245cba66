"""Features of the analysis pass: log-mel spectrograms and raw waveforms.

Pure numpy, so it can run in light decoding worker processes.

Every feature is described by a frozen dataclass (:class:`MelParams`,
:class:`WaveParams`) that a bundle's config.json names as a plain dict with
a ``kind`` (:func:`feature_spec`, :func:`feature_params`). Two bundles whose
dicts are equal share one computation (:func:`feature_key`).
:func:`compute_feature` turns the audio of the feature's excerpt into the
model input, shape ``(patches, ...)``.

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
    center : bool
        librosa's ``center=True``: the signal is padded by ``n_fft // 2``
        samples on each side (reflection) so that frame ``t`` is centred on
        sample ``t * hop_length``; frames = 1 + samples // hop_length.
        ``False``: frames start at sample ``t * hop_length``, no padding.
    log : str
        ``"ln"``: ``log(1 + C * mel)``; ``"log10"``: ``log10(1 + C * mel)``
        (musicnn).
    mel_float16 : bool
        Round the mel energies to float16 before the log, as musicnn's
        extractor does (it matters for faint bins).
    patch_frames : int
        ``0``: the excerpt is one model input of up to ``excerpt_frames``
        frames. ``> 0``: the excerpt is cut into non-overlapping patches of
        this many frames (musicnn: 187 frames = 3 s), ``excerpt_frames //
        patch_frames`` of them at most; a track with less than one patch is
        too short.
    offset : float or None
        Start of the excerpt in seconds; ``None`` centres it in the track (its start on a 2 s grid: ``tagcore.audio.on_grid``).
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
    center: bool = False
    log: str = "ln"
    mel_float16: bool = False
    patch_frames: int = 0
    offset: float | None = None

    kind = "logmel"

    def __post_init__(self):
        if self.log not in ("ln", "log10"):
            raise ValueError(f"log must be 'ln' or 'log10', not {self.log!r}")
        if self.patch_frames < 0 or self.patch_frames > self.excerpt_frames:
            raise ValueError(f"patch_frames must be in 0..excerpt_frames, not {self.patch_frames}")

    @property
    def excerpt_samples(self) -> int:
        """Samples needed for ``excerpt_frames`` frames."""
        if self.center:
            return (self.excerpt_frames - 1) * self.hop_length + 1
        return (self.excerpt_frames - 1) * self.hop_length + self.n_fft

    @property
    def min_samples(self) -> int:
        """Fewest samples that give one model input (one patch)."""
        if not self.patch_frames:
            return 1
        if self.center:
            return (self.patch_frames - 1) * self.hop_length + 1
        return (self.patch_frames - 1) * self.hop_length + self.n_fft

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


#: The triplet paper's DPNN input (Schindler & Knees 2019, IV-B-2): a 6 s segment
#: read at a 3 s offset, 22,050 Hz, 2048-sample Hann windows with 50 %
#: overlap, centred frames, 80 mel bands from 16 Hz to 11 kHz: 130 x 80.
DPNN_SEGMENT = MelParams(n_fft=2048, hop_length=1024, n_mels=80, fmin=16.0, fmax=11000.0, excerpt_frames=130,
                         center=True, offset=3.0)

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
    if params.center:
        pad = params.n_fft // 2
        y = np.pad(y, pad, mode="reflect" if len(y) > pad else "constant")
    frames = frame_signal(y, frame_length=params.n_fft, hop_length=params.hop_length)
    window = np.hanning(params.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
    if params.power != 1.0:
        spectrum **= params.power
    mel = spectrum @ _cached_filterbank(params).T
    if params.mel_float16:
        mel = mel.astype(np.float16).astype(np.float32)
    if params.log == "log10":
        return np.log10(1.0 + params.log_c * mel).astype(np.float32)
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


@dataclass(frozen=True)
class WaveParams:
    """The raw waveform as model input (the sample-level CNN of the samplecnn paper).

    Attributes
    ----------
    sample_rate : int
        Rate in Hz.
    patch_samples : int
        Samples in one model input (59,049 = 3^10 for Lee et al.'s 3^9 model).
    patches : int
        Non-overlapping inputs cut from the centre of the track.
    offset : float or None
        Start of the excerpt in seconds; ``None`` centres it (start on a 2 s grid, as above).
    """

    sample_rate: int = 22050
    patch_samples: int = 59049
    patches: int = 1
    offset: float | None = None

    kind = "waveform"

    @property
    def excerpt_samples(self) -> int:
        return self.patch_samples * self.patches

    @property
    def excerpt_seconds(self) -> float:
        return self.excerpt_samples / self.sample_rate

    @property
    def min_samples(self) -> int:
        return self.patch_samples

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "WaveParams":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown waveform parameters: {sorted(unknown)}")
        return cls(**data)


FeatureParams = MelParams | WaveParams
_KINDS = {"logmel": MelParams, "waveform": WaveParams}


def feature_spec(params: FeatureParams) -> dict:
    """The dict a bundle's config.json stores: ``{"kind": ..., **fields}``."""
    return {"kind": params.kind, **params.to_dict()}


def feature_params(spec: dict) -> FeatureParams:
    """Parse :func:`feature_spec`'s dict; raises ValueError when malformed.

    Example
    -------
    >>> feature_params({"kind": "waveform", "patch_samples": 59049}).sample_rate
    22050
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a feature must be an object, not {type(spec).__name__}")
    fields = dict(spec)
    kind = fields.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; known: {', '.join(_KINDS)}")
    return _KINDS[kind].from_dict(fields)


def feature_key(params: FeatureParams) -> str:
    """A stable name of the computation: equal for equal parameters, so two
    bundles asking for the same feature share one computation."""
    import json

    return json.dumps(feature_spec(params), sort_keys=True)


class InputTooShort(ValueError):
    """The audio holds less than one model input."""


def compute_feature(y: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """The model input of one track from the audio of its excerpt.

    Parameters
    ----------
    y : np.ndarray, shape (samples,)
        Mono audio at ``params.sample_rate``, at most ``params.excerpt_samples``
        long (a longer signal is cut around its centre).
    params : MelParams or WaveParams

    Returns
    -------
    np.ndarray, float32
        ``(patches, frames, n_mels)`` for a log-mel feature (one patch of up
        to ``excerpt_frames`` frames when ``patch_frames`` is 0),
        ``(patches, patch_samples)`` for a waveform.

    Raises
    ------
    InputTooShort
        Fewer samples than one patch needs (``params.min_samples``).

    Example
    -------
    >>> p = MelParams(sample_rate=16000, n_fft=512, hop_length=256, excerpt_frames=374,
    ...               patch_frames=187, center=True)
    >>> compute_feature(np.zeros(16000 * 7, np.float32), params=p).shape
    (2, 187, 96)
    """
    need = params.excerpt_samples
    if len(y) > need:
        start = (len(y) - need) // 2
        y = y[start : start + need]
    if len(y) < params.min_samples:
        raise InputTooShort(
            f"too short: {len(y) / params.sample_rate:.1f} s < "
            f"{params.min_samples / params.sample_rate:.1f} s needed by one model input"
        )
    if isinstance(params, WaveParams):
        count = len(y) // params.patch_samples
        return np.ascontiguousarray(y[: count * params.patch_samples], dtype=np.float32).reshape(count, -1)
    mel = log_mel_spectrogram(y, params=params)
    if not params.patch_frames:
        return mel[None]
    count = mel.shape[0] // params.patch_frames
    return np.ascontiguousarray(mel[: count * params.patch_frames]).reshape(count, params.patch_frames, -1)
