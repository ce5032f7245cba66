"""A beets library database read without beets: the test builds a real
library with beets 2.x and reads it back through sqlite3 read-only."""

import contextvars
import os
import sqlite3

import pytest

from trainer.datasets import DatasetError, LoadReport, beets_library

beets_library_module = pytest.importorskip("beets.library")


def build_library(tmp_path):
    """Inside a copied context: beets.library.Library sets the music
    directory context variable, which must not leak into other tests."""
    music = tmp_path / "music"
    db = tmp_path / "library.db"

    def build():
        lib = beets_library_module.Library(str(db), directory=str(music))
        inside = beets_library_module.Item(
            path=os.fsencode(music / "Weezer" / "Blue" / "04 Buddy Holly.mp3"), artist="Weezer", album="Blue",
            title="Buddy Holly", genres=["Alternative Rock", "Power Pop"], mb_trackid="trk-1", mb_artistid="art-1",
            mb_albumid="alb-1",
        )
        inside["mood"] = "happy"
        inside["autotagml_score"] = 0.75
        lib.add_album([inside])
        outside = beets_library_module.Item(path=b"/elsewhere/caf\xe9.flac", artist="Björk", title="Jóga", genres=[])
        lib.add(outside)

    contextvars.copy_context().run(build)
    return db, music


def test_items_genres_paths_and_flexible_attributes(tmp_path, monkeypatch):
    db, music = build_library(tmp_path)
    stored = sqlite3.connect(db).execute("SELECT path, genres FROM items ORDER BY id").fetchall()
    assert stored[0] == (b"Weezer/Blue/04 Buddy Holly.mp3", "Alternative Rock\\␀Power Pop")  # beets 2.x storage
    items = beets_library.load(db, music_dir=music)
    first, second = items
    assert first.path == str(music / "Weezer" / "Blue" / "04 Buddy Holly.mp3")
    assert (first.artist, first.album, first.title) == ("Weezer", "Blue", "Buddy Holly")
    assert first.genres == ("Alternative Rock", "Power Pop")
    assert (first.mb_trackid, first.mb_artistid, first.mb_albumid) == ("trk-1", "art-1", "alb-1")
    assert first.album_id == 1 and first.attributes == {"mood": "happy", "autotagml_score": "0.75"}
    assert second.path == os.fsdecode(b"/elsewhere/caf\xe9.flac") and second.genres == () and second.album_id is None
    assert second.attributes == {} and second.artist == "Björk"
    # Without music_dir, relative paths are under the directory beets is configured with.
    config = tmp_path / "beetsdir"
    config.mkdir()
    (config / "config.yaml").write_text(f"directory: {music}\n", encoding="utf-8")
    monkeypatch.setenv("BEETSDIR", str(config))
    assert beets_library.configured_directory() == str(music)
    assert beets_library.load(db)[0].path == str(music / "Weezer" / "Blue" / "04 Buddy Holly.mp3")


def test_read_only_and_errors(tmp_path):
    db, _ = build_library(tmp_path)
    os.chmod(db, 0o444)
    try:
        assert len(beets_library.load(db, report=LoadReport())) == 2
    finally:
        os.chmod(db, 0o644)
    with pytest.raises(DatasetError, match="missing"):
        beets_library.load(tmp_path / "none.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(DatasetError, match="not a beets library"):
        beets_library.load(other)


def test_old_single_genre_column_and_missing_path(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, artist, album, title, genre)")
        connection.execute("INSERT INTO items VALUES (1, ?, 'A', 'B', 'C', 'Rock')", (b"/m/a.mp3",))
        connection.execute("INSERT INTO items VALUES (2, NULL, 'A', 'B', 'D', '')")
    report = LoadReport()
    items = beets_library.load(db, report=report)
    assert [(i.path, i.genres, i.attributes) for i in items] == [("/m/a.mp3", ("Rock",), {})]
    assert report.skipped == [f"{db}: item 2: no path"]
    assert beets_library.split_genres("Rock; Pop") == ("Rock", "Pop")
