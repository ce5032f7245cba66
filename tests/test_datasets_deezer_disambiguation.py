"""Deezer tag-disambiguation supporting data (similarity and embedding CSVs,
a gzip named .csv.zip, segment lists) on a fixture task folder and on
../shared/datasets/deezer_disambiguation."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import DatasetError, LoadReport
from trainer.datasets import deezer_disambiguation as deezer

REAL = SHARED / "deezer_disambiguation"


def write_task(task: Path) -> None:
    (task / "dataset").mkdir(parents=True)
    (task / "fw_tag_similarity.csv").write_text(
        ',aor,"genre:folk, world, & country",acid jazz\n'
        'aor,1.0,0.5,0.25\n"genre:folk, world, & country",0.5,1.0,\nacid jazz,0.25,,1.0\n'
    )
    (task / "fm_tag_similarity.csv").write_text(
        'tag,acid jazz,aor,"genre:folk, world, & country"\n'
        'acid jazz,1.0,0.2,0.1\naor,0.2,1.0,0.3\n"genre:folk, world, & country",0.1,0.3,1.0\n'
    )
    embedding = 'aor,"genre:folk, world, & country",acid jazz\n0.1,0.2,0.3\n-0.1,-0.2,-0.3\n'
    (task / "fw_tag_embedding.csv").write_text(embedding)
    (task / "fdist_tag_embedding.csv.zip").write_bytes(gzip.compress(embedding.encode()))
    (task / "dataset" / "validation.csv").write_text(
        "sng_id,label,seg_start,seg_duration\n67466693,AOR,113.3895,30\n11288871,Acid Jazz,130.636,30\nx,AOR,1,30\n"
    )


def test_task_folder(tmp_path):
    write_task(tmp_path / "taxonomy_learning")
    report = LoadReport()
    task = deezer.load(tmp_path / "taxonomy_learning", embeddings=True, report=report)
    fw = task.similarities["fw"]
    assert fw.labels == ("aor", "genre:folk, world, & country", "acid jazz")
    assert fw.values[0].tolist() == [1.0, 0.5, 0.25] and np.isnan(fw.values[1, 2])
    fm = deezer.reorder(task.similarities["fm"], fw.labels, columns=True)
    assert fm.values[0].tolist() == [1.0, 0.3, 0.2] and np.allclose(fm.values, fm.values.T)
    fw_embedding = task.embeddings["fw"].values
    assert fw_embedding.shape == (3, 2) and fw_embedding[2].tolist() == pytest.approx([0.3, -0.3])
    assert np.array_equal(task.embeddings["fdist"].values, task.embeddings["fw"].values)
    assert task.segments["validation"] == [deezer.Segment(67466693, "AOR", 113.3895, 30.0),
                                           deezer.Segment(11288871, "Acid Jazz", 130.636, 30.0)]
    assert len(report.skipped) == 1 and "validation.csv:4" in report.skipped[0]
    assert {deezer.tag_name(s.label) for s in task.segments["validation"]} <= set(fw.labels)
    assert deezer.load(tmp_path / "taxonomy_learning").embeddings == {}


def test_matrix_checks_name_the_file(tmp_path):
    (tmp_path / "a.csv").write_text(",x,y\nx,1,0\n")
    with pytest.raises(DatasetError, match="a.csv: not square: 1 rows, 2 columns"):
        deezer.load_similarity(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text(",x,y\nx,1,0\nz,0,1\n")
    with pytest.raises(DatasetError, match="b.csv:3: row label 'z' differs from column label 'y'"):
        deezer.load_similarity(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text(",x,y\nx,1,0\ny,0,one\n")
    with pytest.raises(DatasetError, match="c.csv:3: could not convert"):
        deezer.load_similarity(tmp_path / "c.csv")
    (tmp_path / "e.csv").write_text("x,y\n0.1,0.2\n0.3\n")
    with pytest.raises(DatasetError, match="e.csv:3: expected 2 values, got 1"):
        deezer.load_embedding(tmp_path / "e.csv")
    with pytest.raises(DatasetError, match="no f\\*_tag_similarity.csv"):
        deezer.load(tmp_path)


@pytest.mark.slow
@needs_shared("deezer_disambiguation")
def test_real_taxonomy_learning():
    report = LoadReport()
    task = deezer.load(REAL / "taxonomy_learning", report=report)
    assert sorted(task.similarities) == ["fc", "fdist", "fm", "fw"] and not report.skipped
    reference = task.similarities["fw"].labels
    assert len(reference) == 250 and sum(tag.startswith("genre:") for tag in reference) == 15
    for matrix in task.similarities.values():
        aligned = deezer.reorder(matrix, reference, columns=True)
        assert aligned.values.shape == (250, 250) and np.allclose(aligned.values, aligned.values.T)
        assert np.allclose(np.diag(aligned.values), 1.0, atol=1e-5)
    assert task.similarities["fm"].labels == tuple(sorted(reference))  # fm sorts case-insensitively
    assert {k: len(v) for k, v in task.segments.items()} == {"test": 83625, "validation": 42547}
    assert {deezer.tag_name(s.label) for s in task.segments["test"]} == set(reference)
    fdist = deezer.load_embedding(REAL / "taxonomy_learning" / "fdist_tag_embedding.csv.zip")
    assert fdist.values.shape == (250, 82304) and set(np.unique(fdist.values)) == {0.0, 1.0}
    assert set(fdist.labels) == set(reference)


@needs_shared("deezer_disambiguation")
def test_real_deduplication_and_translation():
    dedup = deezer.load_similarity(REAL / "deduplication" / "fc_tag_similarity.csv")
    assert dedup.values.shape == (500, 500) and dedup.labels[:2] == ("aor_1", "aor_2")
    translation = deezer.load(REAL / "mumu_discogs_translation")
    labels = translation.similarities["fw"].labels
    assert len(labels) == 461 and sum(tag.startswith("mumu:") for tag in labels) == 211
    assert len(translation.segments["validation"]) == 79748
    assert set(labels) - {deezer.tag_name(s.label) for s in translation.segments["validation"]} == {"mumu:arena rock"}
    fdist = translation.similarities["fdist"]
    empty = [tag for tag, row in zip(fdist.labels, fdist.values) if np.isnan(row).all()]
    assert empty == ["baroque", "dub techno", "impressionist", "post-modern", "renaissance"]
    assert deezer.load_embedding(REAL / "mumu_discogs_translation" / "fm_tag_embedding.csv").values.shape == (461, 461)
