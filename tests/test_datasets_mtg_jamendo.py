"""MTG-Jamendo full autotagging files and the top50tags split, on fixtures and
on ../shared/datasets/mtg_jamendo."""

import pytest

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import DatasetError, LoadReport, mtg_jamendo

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def test_load_full_moodtheme_file(tmp_path):
    (tmp_path / "autotagging_moodtheme.tsv").write_text(
        HEADER
        + "track_0000948\tartist_000087\talbum_000149\t48/948.mp3\t212.7\tmood/theme---background\n"
        + "track_0000950\tartist_000087\talbum_000149\t50/950.mp3\t248.0\tmood/theme---calm\tmood/theme---film\n"
        + "track_0000951\tartist_000087\n"
    )
    report = LoadReport()
    records = mtg_jamendo.load_full(tmp_path / "autotagging_moodtheme.tsv", category="moodtheme", report=report)
    assert [(r.key, r.labels, r.split) for r in records] == [
        ("track_0000948", ("background",), ""),
        ("track_0000950", ("calm", "film"), ""),
    ]
    assert records[0].path == str(tmp_path / "audio" / "48" / "948.mp3")
    assert len(report.skipped) == 1 and "autotagging_moodtheme.tsv:4" in report.skipped[0]
    everything = mtg_jamendo.load_full(tmp_path / "autotagging_moodtheme.tsv", tmp_path / "mp3")
    assert everything[1].labels == ("mood/theme---calm", "mood/theme---film")
    assert everything[0].path == str(tmp_path / "mp3" / "48" / "948.mp3")


def test_load_full_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="autotagging_genre.tsv: missing"):
        mtg_jamendo.load_full(tmp_path / "autotagging_genre.tsv")
    with pytest.raises(DatasetError, match="unknown MTG-Jamendo category 'mood'"):
        mtg_jamendo.load_full(tmp_path / "autotagging_genre.tsv", category="mood")


def test_top50tags_keeps_category_prefixes(tmp_path):
    split = tmp_path / "split-0"
    split.mkdir()
    row = "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t151.4\tgenre---metal\tinstrument---guitar\n"
    for name in mtg_jamendo.SPLITS:
        (split / f"autotagging_top50tags-{name}.tsv").write_text(HEADER + row)
    records = mtg_jamendo.load(tmp_path, category="top50tags")
    assert records[0].labels == ("genre---metal", "instrument---guitar")


JAMENDO = SHARED / "mtg_jamendo"


@needs_shared("mtg_jamendo")
def test_real_full_files():
    report = LoadReport()
    moods = mtg_jamendo.load_full(JAMENDO / "autotagging_moodtheme.tsv", category="moodtheme", report=report)
    assert len(moods) == 18486 and len({t for r in moods for t in r.labels}) == 59
    instruments = mtg_jamendo.load_full(JAMENDO / "autotagging_instrument.tsv", report=report)
    assert len(instruments) == 25135
    assert all(t.startswith("instrument---") for r in instruments for t in r.labels)
    assert not report.skipped


@needs_shared("mtg_jamendo")
def test_real_top50tags_split_mixes_categories():
    report = LoadReport()
    records = mtg_jamendo.load(JAMENDO, category="top50tags", report=report)
    tags = {t for r in records for t in r.labels}
    assert not report.skipped and len(tags) == 50
    assert {t.split("---")[0] for t in tags} == {"genre", "instrument", "mood/theme"}
