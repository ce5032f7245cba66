"""The 4Q emotion dataset loader: quadrant, genre and mood labels, artists,
bad rows; on a fixture mirroring its layout (latin-1 metadata CSV, Q1..Q4
folders) and on ../shared/datasets/mood_4q."""

from collections import Counter
from pathlib import Path

import pytest

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import DatasetError, LoadReport, mood_4q

REAL = SHARED / "mood_4q"

HEADER = ('"Song","Artist","Title","Quadrant","PQuad","MoodsTotal","Moods","MoodsFoundStr","MoodsStr",'
          '"MoodsStrSplit","Genres","GenresStr","Sample","SampleURL"')


def row(song, artist, quadrant, moods, genres):
    return (f'"{song}","{artist}","A title","{quadrant}",0.5,2,2,"x","y","{moods}",2,"{genres}",1,'
            '"http://example.invalid/p.mp3"')


ROWS = [
    row("MT0000000001", "Motörhead", "Q2", "Aggressive; Fierce", "Pop/Rock"),
    row("MT0000000002", "Motörhead", "Q1", "Rousing", "Pop/Rock; Electronic"),
    row("MT0000000003", "Céline Dion", "Q3", "Sad; Wistful", "Pop/Rock"),
    row("MT0000000004", "Nils Frahm", "Q4", "Calm", "Electronic; New Age"),
    row("MT0000000005", "Nobody", "Q1", "Happy", "Jazz"),          # no audio file
    row("MT0000000006", "Misfiled", "Q1", "Happy", "Jazz"),        # in Q4/ but the row says Q1
]


def make_layout(root: Path, *, encoding: str = "latin-1") -> Path:
    for quadrant in mood_4q.QUADRANTS:
        (root / quadrant).mkdir(parents=True)
    for song, quadrant in [("MT0000000001", "Q2"), ("MT0000000002", "Q1"), ("MT0000000003", "Q3"),
                           ("MT0000000004", "Q4"), ("MT0000000006", "Q4")]:
        (root / quadrant / f"{song}.opus").write_bytes(b"not decoded by the loader")
    (root / mood_4q.METADATA).write_bytes(("\r\n".join([HEADER, *ROWS]) + "\r\n").encode(encoding))
    return root


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
def test_quadrants_artists_and_skipped_rows(tmp_path, encoding):
    root = make_layout(tmp_path / "4q", encoding=encoding)
    report = LoadReport()
    records = mood_4q.load(root, report=report)
    assert [(r.key, r.labels, r.artist) for r in records] == [
        ("MT0000000001", ("Q2",), "Motörhead"),
        ("MT0000000002", ("Q1",), "Motörhead"),
        ("MT0000000003", ("Q3",), "Céline Dion"),
        ("MT0000000004", ("Q4",), "Nils Frahm"),
    ]
    assert records[0].path == str(root / "Q2" / "MT0000000001.opus")
    assert len(report.skipped) == 2
    assert "metadata.csv:6: no audio file for MT0000000005" in report.skipped[0]
    assert "metadata.csv:7: MT0000000006 is in Q4/ but its row says Q1" in report.skipped[1]


def test_genres_and_moods_are_multi_label(tmp_path):
    root = make_layout(tmp_path / "4q")
    genres = {r.key: r.labels for r in mood_4q.load(root, labels="genres")}
    moods = {r.key: r.labels for r in mood_4q.load(root, labels="moods")}
    assert genres["MT0000000002"] == ("Pop/Rock", "Electronic")
    assert moods["MT0000000001"] == ("Aggressive", "Fierce")
    assert moods["MT0000000004"] == ("Calm",)


def test_not_a_4q_layout_is_a_clear_error(tmp_path):
    root = make_layout(tmp_path / "4q")
    (root / mood_4q.METADATA).unlink()
    with pytest.raises(DatasetError, match="not a 4Q layout"):
        mood_4q.load(root)
    with pytest.raises(ValueError, match="labels must be one of"):
        mood_4q.load(make_layout(tmp_path / "other"), labels="colours")


def test_a_missing_column_names_the_file(tmp_path):
    root = make_layout(tmp_path / "4q")
    (root / mood_4q.METADATA).write_text('"Song","Artist","Title"\n"MT0000000001","A","B"\n', encoding="latin-1")
    with pytest.raises(DatasetError, match=r"metadata\.csv:1: missing column\(s\) Quadrant"):
        mood_4q.load(root)


@needs_shared("mood_4q")
def test_real_4q():
    report = LoadReport()
    records = mood_4q.load(REAL, report=report)
    assert report.skipped == []
    assert len(records) == 900
    assert Counter(r.labels[0] for r in records) == {q: 225 for q in mood_4q.QUADRANTS}
    assert len({r.artist for r in records}) == 662
    assert "Motörhead" in {r.artist for r in records}  # names read in the file's own encoding
    assert all(Path(r.path).parent.name == r.labels[0] for r in records)
    genres = mood_4q.load(REAL, labels="genres")
    counts = Counter(g for r in genres for g in r.labels)
    assert len(counts) == 21 and counts["Pop/Rock"] == 368
    moods = mood_4q.load(REAL, labels="moods")
    assert len({m for r in moods for m in r.labels}) == 217


def test_playlists_by_artist_and_by_genre_read_back_by_the_m3u_loader(tmp_path):
    from trainer.datasets import m3u

    root = make_layout(tmp_path / "4q")
    records = mood_4q.load(root)
    by_artist = mood_4q.playlists(records, by="artist")
    assert by_artist == {"Motörhead": [records[0].path, records[1].path]}  # one-clip artists make no list
    genres = mood_4q.playlists(mood_4q.load(root, labels="genres"), by="genre")
    assert sorted(genres) == ["Electronic", "Pop/Rock"] and len(genres["Pop/Rock"]) == 3
    with pytest.raises(ValueError):
        mood_4q.playlists(records, by="mood")
    written = mood_4q.write_playlists(root, tmp_path / "lists", by="genre")
    read = m3u.load_folder(tmp_path / "lists")
    assert [p.name for p in read] == ["Electronic", "Pop/Rock"] and len(written) == 2
    assert [Path(e.path) for e in read[1].entries] == [Path(r.path).resolve() for r in records[:3]]
