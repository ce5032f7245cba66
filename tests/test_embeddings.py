"""Tests of trainer.embeddings: backbone outputs per patch, computed once
and then read back from the cache."""

from __future__ import annotations

import numpy as np
from plugin_fixtures import write_audio, write_text_as_mp3

from trainer.embeddings import backbone_outputs


def test_backbone_outputs_fill_good_files_keep_errors_and_come_back_from_the_cache(tmp_path):
    good = write_audio(tmp_path / "tone.flac", "flac", seconds=7.0)
    bad = write_text_as_mp3(tmp_path / "text.mp3")
    cache = tmp_path / "cache"
    first = backbone_outputs([good, bad], bundles=["musicnn-msd"], patches=3, workers=1, cache_dir=cache,
                             progress=False)
    out = first["musicnn-msd"]
    assert out.scores.shape == (2, 3, len(out.labels)) and out.embeddings.shape[:2] == (2, 3)
    assert out.counts[0] == 2 and out.counts[1] == 0  # 7 s hold two 3 s patches
    assert np.isfinite(out.scores[0, :2]).all() and np.isnan(out.scores[0, 2]).all() and np.isnan(out.scores[1]).all()
    assert list(out.errors) == [1] and out.ok.tolist() == [True, False]
    assert len(list(cache.glob("*.npz"))) == 1
    again = backbone_outputs([good, bad], bundles=["musicnn-msd"], patches=3, workers=1, cache_dir=cache,
                             progress=False)["musicnn-msd"]
    np.testing.assert_array_equal(again.scores, out.scores)
    np.testing.assert_array_equal(again.embeddings, out.embeddings)
    assert again.errors == out.errors and again.counts.tolist() == out.counts.tolist()
