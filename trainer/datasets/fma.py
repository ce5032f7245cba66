"""FMA (Free Music Archive): ``fma_metadata/tracks.csv`` and ``genres.csv``
plus an audio tree.

Layout::

    fma_metadata/tracks.csv
    fma_metadata/genres.csv
    fma_<size>/<first 3 digits>/<6-digit track id>.mp3   (fma_small/000/000002.mp3)

``tracks.csv`` has a three-row header: row 1 the column group (``album``,
``artist``, ``set``, ``track``), row 2 the column name inside the group
(``id``, ``title``, ``genre_top``, ``genres``, ``genres_all``, ``split``,
``subset``...), row 3 ``track_id`` then empty cells. Data rows start with the
track id; ``genres``/``genres_all`` are lists of genre ids written like
``[21, 45]``; ``set/split`` is training, validation or test; ``set/subset``
is the smallest subset holding the track (small within medium within large).

``genres.csv``: ``genre_id,#tracks,parent,title,top_level`` (parent 0: a
root genre).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import (
    DatasetError,
    Download,
    LoadReport,
    Record,
    RemoteFile,
    column_index,
    csv_rows,
    header_problem,
)

SUBSETS = ("small", "medium", "large")
SPLITS = {"training": "train", "validation": "validation", "test": "test"}
LABELS = ("top", "genres", "genres_all")
_COLUMNS = {
    "artist": ("artist", "id"),
    "album": ("album", "id"),
    "split": ("set", "split"),
    "subset": ("set", "subset"),
    "top": ("track", "genre_top"),
    "genres": ("track", "genres"),
    "genres_all": ("track", "genres_all"),
}


@dataclass(frozen=True)
class Genre:
    """One FMA genre: ``parent`` is the parent genre id (0 for a root),
    ``top_level`` the id of its root genre, ``tracks`` its track count."""

    id: int
    title: str
    parent: int
    top_level: int
    tracks: int


_FMA = "https://os.unil.cloud.switch.ch/fma/"
REMOTES = (
    Download(
        name="fma-metadata",
        description="FMA metadata and features (Defferrard et al. 2017): tracks.csv, genres.csv, features.csv, "
        "echonest.csv for 106,574 tracks, 342 MiB; extracts to fma_metadata/ (give fma-small the same --dest to get "
        "the fma_metadata/ + fma_small/ layout trainer.datasets.fma reads)",
        licence="CC BY 4.0 (metadata)",
        homepage="https://github.com/mdeff/fma",
        files=(
            RemoteFile(_FMA + "fma_metadata.zip", "fma_metadata.zip",
                       checksum="sha1:f0df49ffe5f2a6008d7dc83c6915b31835dfe733", extract=True),
        ),
    ),
    Download(
        name="fma-small",
        description="FMA small: 8,000 30-s MP3 clips, 8 balanced genres, 7.2 GiB; extracts to fma_small/ "
        "(labels are in fma-metadata: fetch both into one --dest)",
        licence="each track under the Creative Commons licence its artist chose (see tracks.csv); research use",
        homepage="https://github.com/mdeff/fma",
        files=(
            RemoteFile(_FMA + "fma_small.zip", "fma_small.zip",
                       checksum="sha1:ade154f733639d52e35e32f5593efe5be76c6d70", extract=True),
        ),
    ),
)


def check_layout(tracks_csv: str | Path) -> str | None:
    """None when ``tracks_csv`` is a file whose first header row names the
    column groups album, artist, set and track, else what is wrong."""
    return header_problem(Path(tracks_csv), columns=("album", "artist", "set", "track"),
                          what="FMA's fma_metadata/tracks.csv")


def load_genres(genres_csv: str | Path) -> dict[int, Genre]:
    """The genre tree of ``genres.csv``, by genre id. A malformed row raises
    DatasetError naming ``file:line`` (a tree with holes is no tree)."""
    rows = csv_rows(genres_csv)
    header = next(rows, (1, []))[1]
    column = column_index(genres_csv, header, ("genre_id", "#tracks", "parent", "title", "top_level"))
    genres = {}
    for number, fields in rows:
        try:
            genre = Genre(
                id=int(fields[column["genre_id"]]),
                title=fields[column["title"]],
                parent=int(fields[column["parent"]]),
                top_level=int(fields[column["top_level"]]),
                tracks=int(fields[column["#tracks"]]),
            )
        except (ValueError, IndexError) as exc:
            raise DatasetError(f"{genres_csv}:{number}: bad genre row ({exc})") from None
        genres[genre.id] = genre
    return genres


def audio_path(audio_dir: str | Path, track_id: int) -> Path:
    """``audio_dir/<first 3 digits>/<6-digit id>.mp3``."""
    name = f"{track_id:06d}"
    return Path(audio_dir) / name[:3] / f"{name}.mp3"


def _header(tracks_csv: Path, rows) -> tuple[dict[str, int], int]:
    """Column positions of ``_COLUMNS`` from the three header rows, and the
    row width."""
    try:
        (_, groups), (_, names), (_, third) = next(rows), next(rows), next(rows)
    except StopIteration:
        raise DatasetError(f"{tracks_csv}: expected a 3-row header (group, column, track_id)") from None
    if not third or third[0] != "track_id":
        raise DatasetError(f"{tracks_csv}:3: expected the header row 'track_id', got {third[:1]}")
    pairs = [f"{group}/{name}" for group, name in zip(groups, names)]
    wanted = {key: "/".join(pair) for key, pair in _COLUMNS.items()}
    found = column_index(tracks_csv, pairs, wanted.values())
    return {key: found[name] for key, name in wanted.items()}, len(names)


def _genre_ids(text: str) -> list[int]:
    value = ast.literal_eval(text) if text.strip() else []
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise ValueError(f"not a list of genre ids: {text!r}")
    return value


def load(
    tracks_csv: str | Path,
    *,
    audio_dir: str | Path | None = None,
    subset: str | None = None,
    labels: str = "top",
    genres_csv: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Record]:
    """Records of ``tracks.csv``: key the track id, labels genre titles,
    artist and album ids, split train/validation/test.

    subset : small, medium or large keeps the tracks of that subset (the
        smaller subsets included); None keeps every track.
    labels : ``top`` (the single ``genre_top``), ``genres`` (the track's own
        genres) or ``genres_all`` (those plus their ancestors), the last two
        named through ``genres_csv`` (default: genres.csv next to tracks.csv).
    audio_dir : default ``fma_<subset>`` (``fma_large`` without a subset)
        beside the metadata folder.
    Rows that cannot be parsed, name an unknown genre or have no label are
    skipped and listed in ``report`` as ``file:line: cause``.
    """
    if subset is not None and subset not in SUBSETS:
        raise DatasetError(f"unknown FMA subset {subset!r}; known: {', '.join(SUBSETS)}")
    if labels not in LABELS:
        raise DatasetError(f"unknown FMA label choice {labels!r}; known: {', '.join(LABELS)}")
    tracks_csv = Path(tracks_csv)
    report = report if report is not None else LoadReport()
    audio_dir = Path(audio_dir) if audio_dir else tracks_csv.parent.parent / f"fma_{subset or 'large'}"
    genres = None
    if labels != "top":
        genres = load_genres(Path(genres_csv) if genres_csv else tracks_csv.parent / "genres.csv")
    rows = csv_rows(tracks_csv)
    column, width = _header(tracks_csv, rows)
    wanted = set(SUBSETS[: SUBSETS.index(subset) + 1]) if subset else None
    records = []
    for number, fields in rows:
        where = f"{tracks_csv}:{number}"
        if len(fields) != width or not fields[0].isdigit():
            report.skip(where, f"expected a track id and {width} fields, got {len(fields)} fields from {fields[0]!r}")
            continue
        track_id = int(fields[0])
        row = {key: fields[i].strip() for key, i in column.items()}
        if wanted is not None and row["subset"] not in wanted:
            continue
        if row["split"] not in SPLITS:
            report.skip(where, f"unknown split {row['split']!r}")
            continue
        if genres is None:
            titles = [row["top"]] if row["top"] else []
        else:
            try:
                ids = _genre_ids(row[labels])
                titles = [genres[i].title for i in ids]
            except (ValueError, SyntaxError, KeyError) as exc:
                report.skip(where, f"bad {labels} {row[labels]!r} ({exc!r})")
                continue
        if not titles:
            report.skip(where, f"track {track_id} has no {labels} genre")
            continue
        records.append(
            Record(
                key=str(track_id),
                path=str(audio_path(audio_dir, track_id)),
                labels=tuple(dict.fromkeys(titles)),
                artist=row["artist"],
                album=row["album"],
                split=SPLITS[row["split"]],
            )
        )
    return records
