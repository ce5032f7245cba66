"""Genius lyrics (gzipped CSV with an unnamed index column and Python-list
artist strings) on a fixture and on ../shared/datasets/genius_lyrics."""

import csv
import gzip
from collections import Counter
from pathlib import Path

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import LoadReport, Lyrics, genius

REAL = SHARED / "genius_lyrics" / "lyrics.csv.gz"


def write_lyrics(path: Path) -> None:
    rows = [
        ["", "artist", "title", "lyrics", "genre"],
        ["0", "['Lil Nas X']", "Old Town Road (Remix)", "Oh, oh-oh\nOh\n\n[Chorus: Billy Ray Cyrus]\nYeah", "country"],
        ["1", "['Drake', 'Future']", "Life Is Good", "Workin' on a weekend\nlike usual", "rap"],
        ["2", "['Lil Nas X']", "Old Town Road (Remix)", "Oh, oh-oh\nOh", "pop"],
        ["3", "__import__('os').system('echo pwned')", "Evil", "text", "rock"],
        ["4", "['Someone']", "Empty", "  \n ", "rock"],
        ["5", "['Drake', 3]", "Not names", "text", "rap"],
        ["6", "['A']", "Too few"],
    ]
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_lyrics_rows_and_report(tmp_path):
    path = tmp_path / "lyrics.csv.gz"
    write_lyrics(path)
    report = LoadReport()
    records = genius.load(path, report=report)
    assert [r.key for r in records] == ["0", "1", "2"]
    assert records[1] == Lyrics("1", ("Drake", "Future"), "Life Is Good", "Workin' on a weekend\nlike usual", ("rap",))
    assert records[0].text.startswith("Oh, oh-oh\nOh\n\n[Chorus")
    lines = [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped]
    assert lines == ["11", "12", "14", "15"]  # where each record starts (lyrics span lines)
    assert "not a Python list literal" in report.skipped[0]
    assert "empty lyrics" in report.skipped[1] and "non-empty list" in report.skipped[2]
    assert "expected 5 fields, got 3" in report.skipped[3]
    assert genius.multi_genre(records) == {("Old Town Road (Remix)", ("Lil Nas X",)): ("country", "pop")}


@needs_shared("genius_lyrics", "lyrics.csv.gz")
def test_real_genius_counts():
    report = LoadReport()
    records = genius.load(REAL, report=report)
    assert len(records) == 4939 and not report.skipped
    genres = Counter(r.labels[0] for r in records)
    assert set(genres) == {"rock", "rap", "r-b", "pop", "country"}
    assert all(950 <= n <= 1000 for n in genres.values())
    assert len(genius.multi_genre(records)) == 700
    assert Counter(len(r.artists) for r in records) == {1: 4607, 2: 331, 3: 1}
