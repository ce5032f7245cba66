"""FMA metadata (tracks.csv with its 3-row header, genres.csv) on a fixture
that mirrors fma_metadata; no real FMA data here."""

import csv
from pathlib import Path

import pytest

from trainer.datasets import DatasetError, LoadReport, fma

COLUMNS = {
    "album": "comments date_created date_released engineer favorites id information listens producer tags title "
    "tracks type",
    "artist": "active_year_begin active_year_end associated_labels bio comments date_created favorites id latitude "
    "location longitude members name related_projects tags website wikipedia_page",
    "set": "split subset",
    "track": "bit_rate comments composer date_created date_recorded duration favorites genre_top genres genres_all "
    "information interest language_code license listens lyricist number publisher tags title",
}
PAIRS = [(group, name) for group, names in COLUMNS.items() for name in names.split()]


def track_row(track_id, **values):
    """A data row: values keyed group_name (album_id=...)."""
    row = [str(track_id)] + [""] * len(PAIRS)
    for key, value in values.items():
        group, name = key.split("_", 1)
        row[1 + PAIRS.index((group, name))] = value
    return row


def write_metadata(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with (folder / "genres.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        writer.writerows([[12, 32923, 0, "Rock", 12], [21, 8389, 0, "Hip-Hop", 21], [25, 9261, 12, "Punk", 12],
                          [38, 38154, 0, "Experimental", 38]])
    base = dict(set_split="training", album_id="1", artist_id="1")
    rows = [
        track_row(2, track_genre_top="Hip-Hop", track_genres="[21]", track_genres_all="[21]", set_subset="small",
                  artist_bio="<p>A Way Of Life,\nmulti-line</p>", track_title="Food", **base),
        track_row(5, track_genre_top="Rock", track_genres="[25]", track_genres_all="[12, 25]", set_subset="medium",
                  **dict(base, set_split="validation", album_id="6")),
        track_row(10, track_genre_top="", track_genres="[25, 38]", track_genres_all="[12, 25, 38]",
                  set_subset="large", **dict(base, set_split="test")),
        track_row(11, track_genre_top="Rock", track_genres="[99]", track_genres_all="[99]", set_subset="small",
                  **base),
        ["12", "too", "short"],
    ]
    with (folder / "tracks.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([""] + [group for group, _ in PAIRS])
        writer.writerow([""] + [name for _, name in PAIRS])
        writer.writerow(["track_id"] + [""] * len(PAIRS))
        writer.writerows(rows)
    return folder / "tracks.csv"


def test_tracks_top_genre_and_subsets(tmp_path):
    tracks = write_metadata(tmp_path / "fma_metadata")
    report = LoadReport()
    small = fma.load(tracks, subset="small", report=report)
    assert [(r.key, r.labels, r.split, r.artist, r.album) for r in small] == [
        ("2", ("Hip-Hop",), "train", "1", "1"), ("11", ("Rock",), "train", "1", "1")]
    assert small[0].path == str(tmp_path / "fma_small" / "000" / "000002.mp3")
    assert len(report.skipped) == 1 and "tracks.csv:9" in report.skipped[0]  # the bio spans lines 4-5
    assert "expected a track id and 53 fields, got 3" in report.skipped[0]
    medium = fma.load(tracks, subset="medium", audio_dir=tmp_path / "audio")
    assert [r.key for r in medium] == ["2", "5", "11"] and medium[1].split == "validation"
    report = LoadReport()
    everything = fma.load(tracks, report=report)
    assert [r.key for r in everything] == ["2", "5", "11"]
    assert "tracks.csv:7" in report.skipped[0] and "no top genre" in report.skipped[0]
    assert "tracks.csv:9" in report.skipped[1] and len(report.skipped) == 2


def test_tracks_all_genres_through_genre_tree(tmp_path):
    tracks = write_metadata(tmp_path / "fma_metadata")
    report = LoadReport()
    records = fma.load(tracks, labels="genres_all", report=report)
    assert [(r.key, r.labels) for r in records] == [
        ("2", ("Hip-Hop",)), ("5", ("Rock", "Punk")), ("10", ("Rock", "Punk", "Experimental"))]
    assert "tracks.csv:8" in report.skipped[0] and "99" in report.skipped[0]
    genres = fma.load_genres(tmp_path / "fma_metadata" / "genres.csv")
    assert genres[25] == fma.Genre(id=25, title="Punk", parent=12, top_level=12, tracks=9261)


def test_bad_header_and_options_are_errors(tmp_path):
    (tmp_path / "tracks.csv").write_text("track_id,title\n2,Food\n")
    with pytest.raises(DatasetError, match="3-row header"):
        fma.load(tmp_path / "tracks.csv")
    with pytest.raises(DatasetError, match="unknown FMA subset 'tiny'"):
        fma.load(tmp_path / "tracks.csv", subset="tiny")
    with pytest.raises(DatasetError, match="missing"):
        fma.load(tmp_path / "nope.csv")
