"""GTZAN fault-filtered split lists (Kereliuk/Sturm) on a fixture tree and
on ../shared/datasets/gtzan_mini (.flac copies of the .wav names)."""

from pathlib import Path

import pytest

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import DatasetError, LoadReport, gtzan



def write_tree(root: Path) -> None:
    for genre in ("blues", "rock"):
        (root / genre).mkdir(parents=True)
        for n in range(3):
            (root / genre / f"{genre}.{n:05d}.wav").write_bytes(b"")
    (root / "rock" / "rock.00002.wav").rename(root / "rock" / "rock.00002.flac")


def write_lists(split_dir: Path) -> None:
    split_dir.mkdir()
    (split_dir / "train_filtered.txt").write_text(
        "blues/blues.00000.wav\nblues/blues.00001.wav\nrock/rock.00002.wav\n"
        "blues/blues.00000.wav\nrock/rock.00009.wav\nnot-a-path\n\n",
        encoding="utf-8",
    )
    (split_dir / "valid_filtered.txt").write_text("rock/rock.00000.wav\r\nblues/blues.00001.wav\r\n")
    (split_dir / "test_filtered.txt").write_text("blues/blues.00002.wav\nrock/rock.00001.wav\n")


def test_load_split_matches_by_stem_and_reports(tmp_path):
    write_tree(tmp_path / "genres")
    write_lists(tmp_path / "splits")
    report = LoadReport()
    records = gtzan.load_split(tmp_path / "genres", tmp_path / "splits" / "train_filtered.txt", report=report)
    assert [r.key for r in records] == ["blues/blues.00000", "blues/blues.00001", "rock/rock.00002"]
    assert records[2].path.endswith("rock.00002.flac") and records[2].labels == ("rock",)
    assert [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped] == ["4", "5", "6"]
    assert "listed twice" in report.skipped[0]
    assert "no audio file rock/rock.00009.*" in report.skipped[1]
    assert "expected <genre>/<file>" in report.skipped[2]


def test_load_splits_sets_split_and_keeps_splits_disjoint(tmp_path):
    write_tree(tmp_path / "genres")
    write_lists(tmp_path / "splits")
    report = LoadReport()
    records = gtzan.load_splits(tmp_path / "genres", tmp_path / "splits", report=report)
    assert [(r.key, r.split) for r in records] == [
        ("blues/blues.00000", "train"),
        ("blues/blues.00001", "train"),
        ("rock/rock.00002", "train"),
        ("rock/rock.00000", "validation"),
        ("blues/blues.00002", "test"),
        ("rock/rock.00001", "test"),
    ]
    assert len(report.skipped) == 4
    assert "valid_filtered.txt" in report.skipped[3] and "already in an earlier split" in report.skipped[3]


def test_missing_split_list_is_named(tmp_path):
    write_tree(tmp_path / "genres")
    (tmp_path / "splits").mkdir()
    with pytest.raises(DatasetError, match="train_filtered.txt: missing"):
        gtzan.load_splits(tmp_path / "genres", tmp_path / "splits")


@needs_shared("gtzan_mini")
def test_real_gtzan_mini_with_wav_split_list(tmp_path):
    lines = [f"{g}/{g}.0000{n}.wav" for g in ("blues", "jazz", "metal") for n in range(3)]
    (tmp_path / "test_filtered.txt").write_text("\n".join(lines) + "\n")
    report = LoadReport()
    records = gtzan.load_split(SHARED / "gtzan_mini", tmp_path / "test_filtered.txt", split="test", report=report)
    assert not report.skipped
    assert len(records) == 9 and all(r.path.endswith(".flac") and r.split == "test" for r in records)
