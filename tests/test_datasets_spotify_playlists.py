"""Spotify genre playlists (spotify_songs.csv.gz) on a fixture and on
../shared/datasets/spotify_playlists."""

import csv
import gzip
from collections import Counter

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import LoadReport, spotify_playlists

REAL = SHARED / "spotify_playlists" / "spotify_songs.csv.gz"
HEADER = ("track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
          "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,danceability,energy,"
          "key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,duration_ms").split(",")
FEATURES = ["0.748", "0.916", "6", "-2.634", "1", "0.0583", "0.102", "0", "0.0653", "0.518", "122.036", "194754"]


def row(track, playlist, genre, subgenre, name="Memories", artist="Maroon 5", features=FEATURES):
    return [track, name, artist, "67", "63rPSO264uRjW1X5E6cWv6", "Memories (Remix)", "2019-12-13",
            f"List {playlist}", playlist, genre, subgenre, *features]


def test_playlists_merge_genre_rows(tmp_path):
    path = tmp_path / "spotify_songs.csv.gz"
    rows = [
        HEADER,
        row("t1", "p1", "pop", "dance pop"),
        row("t2", "p1", "pop", "dance pop", name="NA", artist="NA"),
        row("t1", "p1", "r&b", "hip pop"),
        row("t3", "p2", "rap", "trap", features=FEATURES[:3] + ["loud"] + FEATURES[4:]),
        row("t1", "p2", "rap", "trap", artist="Someone else"),
        ["t4", "too short"],
    ]
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    report = LoadReport()
    playlists, tracks = spotify_playlists.load(path, report=report)
    assert playlists[0] == spotify_playlists.Playlist(
        "p1", "List p1", ("pop", "r&b"), ("dance pop", "hip pop"), ("t1", "t2")
    )
    assert playlists[1].tracks == ("t1",)
    t1 = tracks["t1"]
    assert (t1.artist, t1.popularity, t1.musical_key, t1.mode, t1.loudness, t1.tempo, t1.duration_ms) == (
        "Maroon 5", 67, 6, 1, -2.634, 122.036, 194754)
    assert tracks["t2"].name == "" and tracks["t2"].artist == "" and set(tracks) == {"t1", "t2"}
    assert [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped] == ["5", "6", "7"]
    assert "bad audio feature" in report.skipped[0] and "first row kept" in report.skipped[1]


@needs_shared("spotify_playlists", "spotify_songs.csv.gz")
def test_real_spotify_counts():
    report = LoadReport()
    playlists, tracks = spotify_playlists.load(REAL, report=report)
    assert not report.skipped
    assert len(playlists) == 471 and len(tracks) == 28356
    assert len({g for p in playlists for g in p.genres}) == 6
    assert len({s for p in playlists for s in p.subgenres}) == 24
    # 32,833 rows = 32,251 (playlist, track) pairs + 582 rows repeating a pair
    # under a playlist's second or third (genre, subgenre).
    assert sum(len(p.tracks) for p in playlists) == 32251
    assert sum(1 for p in playlists if len(p.genres) > 1 or len(p.subgenres) > 1) == 8
    memberships = Counter(t for p in playlists for t in p.tracks)
    assert sum(1 for n in memberships.values() if n >= 2) == 2818
