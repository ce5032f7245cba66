"""Spotify genre playlists (``spotify_songs.csv.gz``, the 2020 TidyTuesday
scrape of spotifyr; no audio).

One gzipped CSV row per (track, playlist, genre label), comma separated::

    track_id,track_name,track_artist,track_popularity,track_album_id,
    track_album_name,track_album_release_date,playlist_name,playlist_id,
    playlist_genre,playlist_subgenre,danceability,energy,key,loudness,mode,
    speechiness,acousticness,instrumentalness,liveness,valence,tempo,duration_ms

A playlist can be filed under several (genre, subgenre) pairs; it then
repeats its tracks once per pair. The loader merges those rows: a
:class:`Playlist` holds each track once and all of its genre labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from trainer.datasets import LoadReport, csv_table, header_problem


@dataclass(frozen=True)
class Track:
    """One track and its Spotify audio features.

    popularity 0-100; danceability, energy, speechiness, acousticness,
    instrumentalness, liveness, valence in [0, 1]; musical_key the pitch
    class 0-11 (C=0; -1 unknown), the file's ``key`` column; loudness in dB (negative); mode 1 major, 0 minor; tempo in
    beats per minute; duration_ms in milliseconds. Text fields the file
    marks missing with R's ``NA`` are empty.
    """

    track_id: str
    name: str
    artist: str
    album_id: str
    album_name: str
    release_date: str
    popularity: int
    danceability: float
    energy: float
    musical_key: int
    loudness: float
    mode: int
    speechiness: float
    acousticness: float
    instrumentalness: float
    liveness: float
    valence: float
    tempo: float
    duration_ms: int


@dataclass(frozen=True)
class Playlist:
    """One playlist: ``key`` the Spotify playlist id, ``genres`` and
    ``subgenres`` its labels in file order (one each for all but a few),
    ``tracks`` the track ids in file order, each once."""

    key: str
    name: str
    genres: tuple[str, ...]
    subgenres: tuple[str, ...]
    tracks: tuple[str, ...]


_SOURCE = {"name": "track_name", "artist": "track_artist", "album_id": "track_album_id",
           "album_name": "track_album_name", "release_date": "track_album_release_date",
           "popularity": "track_popularity", "musical_key": "key"}
_PLAYLIST = ("playlist_id", "playlist_name", "playlist_genre", "playlist_subgenre")


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(path: str | Path) -> str | None:
    """None when ``path`` is a CSV file (gzipped or not) whose header holds
    the track and playlist ids and genres, else what is wrong."""
    return header_problem(Path(path), columns=("track_id", "playlist_id", "playlist_genre", "playlist_subgenre"),
                          what="spotify_songs.csv.gz")


def _track(row: dict[str, str]) -> Track:
    values = {}
    for field in fields(Track):
        text = row[_SOURCE.get(field.name, field.name)]
        if field.type == "int":
            values[field.name] = int(float(text))
        elif field.type == "float":
            values[field.name] = float(text)
        else:
            values[field.name] = "" if text == "NA" else text
    return Track(**values)


def load(path: str | Path, *, report: LoadReport | None = None) -> tuple[list[Playlist], dict[str, Track]]:
    """Playlists (in order of first appearance) and tracks by id.

    Rows with a wrong field count, an empty id or unparsable features are
    skipped; a row repeating a track with other metadata still counts for
    its playlist, but the track keeps the metadata of its first row. Both
    are listed in ``report`` as ``file:line: cause``.
    """
    report = report if report is not None else LoadReport()
    required = [_SOURCE.get(f.name, f.name) for f in fields(Track)] + list(_PLAYLIST)
    _, column, rows = csv_table(path, required=required, report=report)
    tracks: dict[str, Track] = {}
    playlists: dict[str, dict] = {}
    for _, where, values in rows:
        row = {name: values[i].strip() for name, i in column.items()}
        if not row["track_id"] or not row["playlist_id"]:
            report.skip(where, "empty track_id or playlist_id")
            continue
        try:
            track = _track(row)
        except ValueError as exc:
            report.skip(where, f"bad audio feature ({exc})")
            continue
        known = tracks.setdefault(track.track_id, track)
        if known != track:
            report.skip(where, f"track {track.track_id} repeats with other metadata; first row kept")
        entry = playlists.setdefault(
            row["playlist_id"], {"name": row["playlist_name"], "genres": {}, "subgenres": {}, "tracks": {}}
        )
        entry["genres"][row["playlist_genre"]] = None
        entry["subgenres"][row["playlist_subgenre"]] = None
        entry["tracks"][track.track_id] = None
    result = [
        Playlist(key, e["name"], *(tuple(filter(None, e[name])) for name in ("genres", "subgenres", "tracks")))
        for key, e in playlists.items()
    ]
    return result, tracks
