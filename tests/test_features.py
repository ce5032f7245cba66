"""Log-mel features of the disambig paper (section 2.3)."""

import numpy as np
import pytest

from tagcore.features import MelParams, excerpt_features, frame_signal, hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz


def test_reference_shape_is_646_by_96():
    params = MelParams()
    y = np.zeros(params.excerpt_samples, dtype=np.float32)
    assert params.excerpt_samples == 646 * 1024
    assert log_mel_spectrogram(y, params=params).shape == (646, 96)


def test_frames_do_not_overlap():
    y = np.arange(4096, dtype=np.float32)
    frames = frame_signal(y, frame_length=1024, hop_length=1024)
    assert frames.shape == (4, 1024)
    assert frames[1, 0] == 1024


def test_mel_scale_round_trip():
    hz = np.array([0.0, 440.0, 1000.0, 5000.0, 11025.0])
    assert np.allclose(mel_to_hz(hz_to_mel(hz)), hz)


def test_filterbank_covers_spectrum_and_peaks_in_order():
    fb = mel_filterbank(sample_rate=22050, n_fft=1024, n_mels=96)
    assert fb.shape == (96, 513)
    assert (fb >= 0).all()
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()


def test_tone_lands_in_the_right_band_and_compression_is_log1p():
    params = MelParams()
    t = np.arange(params.excerpt_samples) / params.sample_rate
    y = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    mel = log_mel_spectrogram(y, params=params)
    band = mel.mean(axis=0).argmax()
    centres = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(11025), 98))[1:-1]
    assert abs(centres[band] - 1000.0) < 120.0
    silent = log_mel_spectrogram(np.zeros_like(y), params=params)
    assert np.allclose(silent, 0.0)


def test_excerpt_is_cut_around_the_centre():
    params = MelParams(excerpt_frames=10)
    y = np.zeros(params.excerpt_samples * 3, dtype=np.float32)
    y[len(y) // 2 + 300] = 1.0  # an impulse near the middle must stay inside
    mel = excerpt_features(y, params=params)
    assert mel.shape == (10, 96)
    assert mel.max() > 0


def test_params_round_trip_and_reject_unknown_keys():
    params = MelParams(n_mels=64)
    assert MelParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="unknown"):
        MelParams.from_dict({"n_mel": 96})
