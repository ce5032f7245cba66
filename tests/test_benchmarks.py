"""The benchmark scripts start, and benchmarks/common.py (what they share)
works: each script's --help, the synthetic music, a function run in a fresh
process. The benchmarks themselves are not run here."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# As when a script runs as `python benchmarks/<script>.py`: its folder first.
sys.path.insert(0, str(BENCHMARKS))
import common  # noqa: E402

SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("bench_*.py"))


def test_every_script_is_listed():
    assert len(SCRIPTS) >= 9 and "bench_autotag" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_imports_and_answers_help(name, capsys):
    script = importlib.import_module(name)
    with pytest.raises(SystemExit) as stop:
        script.main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_synthetic_tracks_are_stereo_bounded_and_reproducible():
    a = common.synth_track(1, seconds=0.5, sr=8000)
    assert a.shape == (4000, 2) and a.dtype == np.float32
    assert 0.5 < np.abs(a).max() <= 0.8 + 1e-6
    assert np.array_equal(a, common.synth_track(1, seconds=0.5, sr=8000))
    assert not np.array_equal(a, common.synth_track(2, seconds=0.5, sr=8000))


def test_synthetic_style_notes_follow_the_scale():
    style = common._Style.draw(np.random.default_rng(3))
    assert 60 / 160 <= style.beat <= 60 / 70 and style.degrees[0] == 0 and len(style.degrees) == 4
    root_hz = 440.0 * 2.0 ** ((style.root - 69) / 12.0)
    assert style.hz(0, 0) == root_hz
    assert np.isclose(style.hz(7, 0), 2 * root_hz)  # degree 7 is the root an octave up
    assert np.isclose(style.hz(0, 1), 2 * root_hz)


def test_run_in_child_returns_the_childs_dict_with_its_memory():
    result = common.run_in_child("common", "machine", [], label="machine")
    assert result["nproc"] >= 1 and result["peak_rss_mb"] >= 0


def test_run_in_child_failure_is_a_bench_error_with_the_label():
    with pytest.raises(common.BenchError, match=r"(?s)^no such: .*AttributeError"):
        common.run_in_child("common", "no_such_function", [], label="no such")
