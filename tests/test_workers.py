"""Tests of tagcore.workers.map_files on its own (read_excerpts, its use for
decoding, is tested in test_audio.py): results by index, every failure an
AudioError naming the file, the same answers in and out of worker processes."""

from __future__ import annotations

import os

import pytest

from tagcore.audio import AudioError, read_excerpt
from tagcore.workers import map_files


@pytest.mark.parametrize("workers", [0, 1])
def test_results_by_index_and_failures_as_audio_errors(tmp_path, workers):
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"x" * 3)
    large.write_bytes(b"x" * 1000)
    missing = tmp_path / "missing.bin"
    results = {index: (path, result) for index, path, result in
               map_files([str(small), str(missing), str(large)], job=os.path.getsize, workers=workers, timeout=60)}
    assert sorted(results) == [0, 1, 2]
    assert results[0] == (str(small), 3) and results[2] == (str(large), 1000)
    path, error = results[1]
    assert path == str(missing) and isinstance(error, AudioError)
    assert error.path == str(missing) and error.cause.startswith("unexpected FileNotFoundError")


def test_an_audio_error_of_the_job_is_the_files_result_as_it_is(tmp_path):
    [(_, _, error)] = map_files([str(tmp_path / "gone.wav")], job=read_excerpt, workers=0)
    assert isinstance(error, AudioError) and error.cause == "file not found"


def test_parameters_are_checked_when_called(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        map_files([], job=os.path.getsize, workers=-1)
    with pytest.raises(ValueError, match="timeout"):
        map_files([], job=os.path.getsize, timeout=0)
    with pytest.raises(TypeError, match="picklable"):
        map_files([], job=lambda path: path, workers=1)
    assert list(map_files([str(tmp_path)], job=lambda path: path, workers=0)) == [(0, str(tmp_path), str(tmp_path))]
