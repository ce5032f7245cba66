"""Vagalume lyrics (artists-data.csv + lyrics-data.csv joined on the artist
link), both released headers; fixture only."""

import csv

import pytest

from trainer.datasets import DatasetError, LoadReport, Lyrics, vagalume


MORE_THAN_THIS = "I could feel at the time\nThere was no way of knowing"


def write(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def test_songs_take_their_artist_genres(tmp_path):
    write(tmp_path / "artists-data.csv", [
        ["Artist", "Genres", "Songs", "Popularity", "Link"],
        ["10000 Maniacs", "Rock; Pop; Electronica", "110.0", "0.3", "/10000-maniacs/"],
        ["Ivete Sangalo", "Pop; Axé; Romântico", "313.0", "4.4", "/ivete-sangalo/"],
        ["Sem Gênero", "", "1.0", "", "/sem-genero/"],
        ["Broken", "Rock"],
    ])
    write(tmp_path / "lyrics-data.csv", [
        ["ALink", "SName", "SLink", "Lyric", "language"],
        ["/10000-maniacs/", "More Than This", "/10000-maniacs/more-than-this.html", MORE_THAN_THIS, "en"],
        ["/ivete-sangalo/", "Arerê", "/ivete-sangalo/arere.html", "Tudo o que ele faz\nEu faço também", "pt"],
        ["/ivete-sangalo/", "Arerê", "/ivete-sangalo/arere.html", "Tudo o que ele faz", "pt"],
        ["/nobody/", "Song", "/nobody/song.html", "la la", "pt"],
        ["/sem-genero/", "Song", "/sem-genero/song.html", "la la", "pt"],
        ["/10000-maniacs/", "Silent", "/10000-maniacs/silent.html", "", "en"],
    ])
    report = LoadReport()
    songs = vagalume.load(tmp_path, report=report)
    assert songs[0] == Lyrics(
        key="/10000-maniacs/more-than-this.html", artists=("10000 Maniacs",), title="More Than This",
        text=MORE_THAN_THIS, labels=("Rock", "Pop", "Electronica"), language="en",
    )
    assert [s.key for s in songs] == ["/10000-maniacs/more-than-this.html", "/ivete-sangalo/arere.html"]
    assert songs[1].labels == ("Pop", "Axé", "Romântico")
    assert [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped] == ["5", "6", "7", "8", "9"]
    assert "artists-data.csv:5" in report.skipped[0]
    assert "repeated" in report.skipped[1] and "not in artists-data.csv" in report.skipped[2]
    assert "has no genre" in report.skipped[3] and "empty Lyric" in report.skipped[4]
    assert [s.key for s in vagalume.load(tmp_path, language="PT")] == ["/ivete-sangalo/arere.html"]
    artists = vagalume.load_artists(tmp_path / "artists-data.csv")
    ivete = vagalume.Artist("/ivete-sangalo/", "Ivete Sangalo", ("Pop", "Axé", "Romântico"), 313, 4.4)
    assert artists["/ivete-sangalo/"] == ivete
    assert artists["/sem-genero/"].popularity is None


def test_older_release_with_idiom_and_genre_rows(tmp_path):
    write(tmp_path / "artists-data.csv", [
        ["Artist", "Songs", "Popularity", "Link", "Genre", "Genres"],
        ["Ivete Sangalo", "313", "4.4", "/ivete-sangalo/", "Pop", "Pop; Axé"],
        ["Ivete Sangalo", "313", "4.4", "/ivete-sangalo/", "Axé", "Axé; Romântico"],
    ])
    write(tmp_path / "lyrics-data.csv", [
        ["ALink", "SName", "SLink", "Lyric", "Idiom"],
        ["/ivete-sangalo/", "Arerê", "/ivete-sangalo/arere.html", "Tudo o que ele faz", "PORTUGUESE"],
    ])
    songs = vagalume.load(tmp_path, language="portuguese")
    assert songs[0].labels == ("Pop", "Axé", "Romântico") and songs[0].language == "PORTUGUESE"


def test_missing_file_is_named(tmp_path):
    write(tmp_path / "artists-data.csv", [["Artist", "Genres", "Songs", "Popularity", "Link"]])
    with pytest.raises(DatasetError, match="lyrics-data.csv: missing"):
        vagalume.load(tmp_path)
