"""Dataset loaders on fixtures that mirror the real layouts, and on the real
data in ../shared/datasets when it is there."""

from pathlib import Path

import pytest

from trainer.datasets import DatasetError, LoadReport, gtzan, mtg_jamendo

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def write_jamendo(root: Path) -> None:
    split = root / "split-0"
    split.mkdir(parents=True)
    rows = {
        "train": [
            "track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t340.1\tgenre---rock",
            "track_0000242\tartist_000005\talbum_000033\t42/242.mp3\t248.5\tgenre---rock\tgenre---pop",
            "broken row",
            "track_0000300\tartist_000006\talbum_000040\t00/300.mp3\t120.0\tmood/theme---happy",
        ],
        "validation": ["track_0000400\tartist_000007\talbum_000041\t00/400.mp3\t200.0\tgenre---jazz"],
        "test": ["track_0000500\tartist_000008\talbum_000042\t00/500.mp3\t210.0\tgenre---jazz"],
    }
    for name, lines in rows.items():
        (split / f"autotagging_genre-{name}.tsv").write_text(HEADER + "\n".join(lines) + "\n")


def test_jamendo_layout(tmp_path):
    write_jamendo(tmp_path)
    report = LoadReport()
    records = mtg_jamendo.load(tmp_path, report=report)
    assert mtg_jamendo.check_layout(tmp_path) is None
    assert [r.key for r in records] == ["track_0000241", "track_0000242", "track_0000400", "track_0000500"]
    assert records[1].labels == ("rock", "pop")
    assert records[1].album == "album_000033" and records[1].artist == "artist_000005"
    assert records[0].path == str(tmp_path / "audio" / "41" / "241.mp3")
    assert [r.split for r in records] == ["train", "train", "validation", "test"]
    assert len(report.skipped) == 2
    assert "autotagging_genre-train.tsv:4" in report.skipped[0] and "6 tab-separated" in report.skipped[0]
    assert "autotagging_genre-train.tsv:5" in report.skipped[1]


def test_jamendo_missing_split_is_named(tmp_path):
    with pytest.raises(DatasetError, match="autotagging_genre-train.tsv: missing"):
        mtg_jamendo.load(tmp_path)


def test_gtzan_layout(tmp_path):
    for genre in ("blues", "rock"):
        (tmp_path / genre).mkdir()
        (tmp_path / genre / f"{genre}.00000.wav").write_bytes(b"")
    (tmp_path / "rock" / "notes.txt").write_text("x")
    report = LoadReport()
    records = gtzan.load(tmp_path, report=report)
    assert [(r.key, r.labels) for r in records] == [("blues/blues.00000", ("blues",)), ("rock/rock.00000", ("rock",))]
    assert len(report.skipped) == 1 and "notes.txt" in report.skipped[0]


def test_gtzan_empty_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no <genre>/<audio file>"):
        gtzan.load(tmp_path)


@pytest.mark.skipif(not (SHARED / "gtzan_mini").is_dir(), reason="../shared/datasets/gtzan_mini absent")
def test_real_gtzan_mini():
    records = gtzan.load(SHARED / "gtzan_mini")
    assert len(records) == 100
    assert len({r.labels for r in records}) == 10


@pytest.mark.skipif(not (SHARED / "mtg_jamendo").is_dir(), reason="../shared/datasets/mtg_jamendo absent")
def test_real_mtg_jamendo_genre_split():
    report = LoadReport()
    records = mtg_jamendo.load(SHARED / "mtg_jamendo", report=report)
    assert len(records) > 10000
    assert not report.skipped
    assert len({tag for r in records for tag in r.labels}) == 87
