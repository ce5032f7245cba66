"""MagnaTagATune annotations_final.csv (tab separated, every field quoted) on
a fixture; no real MTAT data here."""

from pathlib import Path

import pytest

from trainer.datasets import DatasetError, LoadReport, magnatagatune

TAGS = ["no voice", "singer", "duet", "plucking", "hard rock", "world", "bongos", "harpsichord", "female singing",
        "clasical"]


def quoted(fields):
    return "\t".join(f'"{field}"' for field in fields) + "\n"


def write_annotations(root: Path) -> Path:
    rows = [
        ["2", "0", "0", "0", "0", "0", "0", "0", "1", "0", "1",
         "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"],
        ["6", "1", "0", "0", "1", "0", "0", "0", "0", "0", "0",
         "c/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-204-233.mp3"],
        ["10", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0",
         "0/chicago_chamber_choir-and_the_choir_sang-02-gloria-88-117.mp3"],
        ["11", "1", "2", "0", "0", "0", "0", "0", "0", "0", "0", "0/x-y-01-z-0-29.mp3"],
        ["12", "1", "0"],
        ["15", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0",
         "3/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3"],
    ]
    path = root / "annotations_final.csv"
    path.write_text(quoted(["clip_id", *TAGS, "mp3_path"]) + "".join(quoted(row) for row in rows), encoding="utf-8")
    return path


def test_annotations_to_records_with_folder_split(tmp_path):
    path = write_annotations(tmp_path)
    report = LoadReport()
    records = magnatagatune.load(path, split_by_folder=True, report=report)
    assert [(r.key, r.labels, r.split) for r in records] == [
        ("2", ("harpsichord", "clasical"), "test"),
        ("6", ("no voice", "plucking"), "validation"),
        ("15", ("no voice", "singer"), "train"),
    ]
    assert records[0].artist == "american_bach_soloists" and records[0].album == "j_s__bach_solo_cantatas"
    assert records[0].path == str(tmp_path / "f" / records[0].path.rsplit("/", 1)[1])
    assert [s.split(": ", 1)[0][-1] for s in report.skipped] == ["4", "5", "6"]
    assert "no tag" in report.skipped[0] and "0 or 1, got '2'" in report.skipped[1] and "got 3" in report.skipped[2]
    with_untagged = magnatagatune.load(path, keep_untagged=True, audio_dir=tmp_path / "mp3")
    assert [r.key for r in with_untagged] == ["2", "6", "10", "15"] and with_untagged[2].labels == ()
    assert with_untagged[0].split == ""


def test_top_tags_and_keep_tags(tmp_path):
    records = magnatagatune.load(write_annotations(tmp_path))
    assert magnatagatune.top_tags(records, n=2) == ["no voice", "clasical"]
    kept = magnatagatune.keep_tags(records, ["singer"])
    assert [(r.key, r.labels) for r in kept] == [("15", ("singer",))]
    assert [magnatagatune.folder_split(p) for p in ("0/a.mp3", "b/a.mp3", "c/a.mp3", "d/a.mp3", "x/a.mp3")] == [
        "train", "train", "validation", "test", ""]


def test_bad_header_is_an_error(tmp_path):
    (tmp_path / "annotations_final.csv").write_text(quoted(["id", "singer", "path"]))
    with pytest.raises(DatasetError, match="annotations_final.csv:1: expected the header clip_id"):
        magnatagatune.load(tmp_path / "annotations_final.csv")
