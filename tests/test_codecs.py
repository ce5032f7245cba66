"""The same recording in another codec gives the same excerpt and genres.

Decoders disagree about a track's length by a few ms (FFmpeg counts the
AAC priming samples of an MP4), so a centred excerpt moved with the codec;
its start now sits on a 2 s grid (tagcore.audio.on_grid). The real-data
test encodes one gtzan_mini clip into mp3, flac, m4a and opus with PyAV
(benchmarks/bench_codecs.py's encoder) and runs the default genre decision.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import step_signal
from realdata_fixtures import SHARED, needs_shared
from tagcore.audio import EXCERPT_GRID, on_grid, read_excerpt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.parametrize(
    "seconds, start",
    [(0.0, 0.0), (0.99, 0.0), (1.0, 2.0), (2.9, 2.0), (3.1, 4.0), (12.0, 12.0), (12.02, 12.0), (12.99, 12.0)],
)
def test_on_grid(seconds, start):
    assert on_grid(seconds) == start


def test_a_centred_excerpt_stays_inside_the_track_and_near_its_centre():
    for centre in np.linspace(0.0, 40.0, 4001):
        start = on_grid(float(centre))
        assert start <= 2 * centre + 1e-9  # ends before the track does
        assert abs(start - centre) <= EXCERPT_GRID / 2 + 1e-9


def test_a_few_ms_more_length_does_not_move_the_excerpt(tmp_path):
    rate = 16000
    signal = step_signal(seconds=30.0, sample_rate=rate, channels=1)
    exact, padded = tmp_path / "exact.wav", tmp_path / "padded.wav"
    sf.write(exact, signal, rate)
    # 46 ms of silence at the end: the length FFmpeg reports for AAC in MP4.
    sf.write(padded, np.concatenate([signal, np.zeros((736, 1), np.float32)]), rate)

    one = read_excerpt(exact, sample_rate=rate, duration=6.0)
    other = read_excerpt(padded, sample_rate=rate, duration=6.0)

    np.testing.assert_array_equal(one, other)


def _aac_click(path, *, edit_list: bool, rate: int = 44100) -> None:
    """3 s of AAC in MP4 (PyAV's encoder, 1,024 priming samples), silent but
    for a 50-sample click at 1.0 s; ``edit_list`` False: the muxer writes no
    edit list, so nothing in the file says how many samples to drop."""
    import av

    signal = np.zeros(3 * rate, np.float32)
    signal[rate:rate + 50] = 0.9
    with av.open(str(path), "w", format="mp4", options={} if edit_list else {"use_editlist": "0"}) as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, len(signal), 1024):
            frame = av.AudioFrame.from_ndarray(signal[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _click_seconds(path, rate: int = 44100) -> float:
    audio = read_excerpt(path, sample_rate=rate, offset=0.0, duration=3.0)
    return float(np.argmax(np.abs(audio))) / rate


def test_aac_priming_is_dropped_by_the_edit_list_or_by_itunsmpb(tmp_path):
    """MP4 says how many priming samples to drop in an edit list or, as
    iTunes writes it, in an iTunSMPB tag: FFmpeg honours both, so the click
    comes out at 1.0 s. With neither, nothing says (the click is 1,024
    samples, 23 ms, late): docs/design.md, "Codecs"."""
    from mutagen.mp4 import MP4, MP4FreeForm

    with_list, without, tagged = tmp_path / "list.m4a", tmp_path / "none.m4a", tmp_path / "smpb.m4a"
    _aac_click(with_list, edit_list=True)
    _aac_click(without, edit_list=False)
    _aac_click(tagged, edit_list=False)
    tags = MP4(tagged)
    delay, padding, samples = 1024, 0, 3 * 44100
    tags["----:com.apple.iTunes:iTunSMPB"] = [MP4FreeForm(
        f" 00000000 {delay:08X} {padding:08X} {samples:016X}".encode() + b" 00000000" * 8)]
    tags.save()

    assert _click_seconds(with_list) == pytest.approx(1.0, abs=0.002)
    assert _click_seconds(tagged) == pytest.approx(1.0, abs=0.002)
    assert _click_seconds(without) == pytest.approx(1.0 + 1024 / 44100, abs=0.002)


CLIP = ("gtzan_mini", "blues", "blues.00001.flac")
FORMATS = ("mp3", "flac", "m4a", "opus")


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    import av
    from bench_codecs import FORMATS as ENCODERS
    from bench_codecs import decode_mono, encode

    samples, rate = decode_mono(SHARED.joinpath(*CLIP))
    folder = tmp_path_factory.mktemp("codecs")
    files, missing = {}, {}
    for fmt in FORMATS:
        try:
            files[fmt] = encode(samples, rate, folder / "clip", fmt)
        except (av.codec.codec.UnknownCodecError, av.FFmpegError) as error:
            missing[fmt] = f"PyAV cannot encode {fmt} here ({ENCODERS[fmt][1]}): {error}"
    return files, missing


@needs_shared(*CLIP)
def test_one_real_clip_gets_the_same_genres_in_four_formats(encoded):
    from beetsplug.autotagml.fields import choose_genres
    from tagcore.analysis import Analysis
    from tagcore.bundle import read_config

    files, missing = encoded
    if len(files) < 2:
        pytest.skip("; ".join(missing.values()))
    decision = read_config("genre-musicnn")[1]["decision"]
    fmts = list(files)
    results = list(Analysis(["genre-musicnn", "musicnn-msd"], workers=0).analyse([files[f] for f in fmts]))
    genres = {fmts[r.index]: choose_genres(r.outputs["genre-musicnn"].scores, threshold=decision["threshold"],
                                           count=decision["count"], min_count=1) for r in results}
    msd = np.array([[r.outputs["musicnn-msd"].scores[k] for k in sorted(r.outputs["musicnn-msd"].scores)]
                    for r in results])

    assert all(genres.values()), genres
    assert len({tuple(g) for g in genres.values()}) == 1, genres
    assert np.ptp(msd, axis=0).max() < 0.05
    for reason in missing.values():  # a format this FFmpeg cannot encode is left out, and said so
        warnings.warn(f"left out: {reason}", stacklevel=1)
