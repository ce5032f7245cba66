"""A beets library database (SQLite), read directly and read-only, so a
running beets can keep the file open. beets' configuration (through
confuse, which beets installs) gives the library directory that relative
paths are under, unless ``music_dir`` is given.

Layout (the tables used)::

    items(id, path BLOB, artist, album, title, genres, album_id,
          mb_trackid, mb_artistid, mb_albumid, ...)
    item_attributes(id, entity_id -> items.id, key, value)   flexible attributes

Paths are bytes (decoded with :func:`os.fsdecode`); beets 2.x stores paths
under the library directory relative to it (``Artist/Album/01 x.mp3``) and
other paths absolute, so relative ones need ``music_dir``. beets 2.x stores
the list field ``genres`` as one string joined by ``\\␀`` (backslash, U+2400);
a library from before that migration has a single ``genre`` column instead.
Flexible attribute values are stored as text.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from trainer.datasets import DatasetError, LoadReport

MULTI_VALUE_DELIMITER = "\\␀"
_COLUMNS = ("id", "path", "artist", "album", "title", "album_id", "mb_trackid", "mb_artistid", "mb_albumid")


@dataclass(frozen=True)
class Item:
    """One library item: ``path`` the audio file (relative when stored
    relative and no ``music_dir`` was given), ``genres`` in stored order,
    MusicBrainz ids empty when unknown, ``album_id`` None for singletons,
    ``attributes`` the flexible attributes (text values)."""

    id: int
    path: str
    artist: str
    album: str
    title: str
    genres: tuple[str, ...]
    album_id: int | None = None
    mb_trackid: str = ""
    mb_artistid: str = ""
    mb_albumid: str = ""
    attributes: dict[str, str] = field(default_factory=dict, hash=False)


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_layout(path: str | Path) -> str | None:
    """None when ``path`` is an SQLite database file (a beets library is
    one), else what is wrong."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except OSError:
        return "not a readable file (expected a beets library database, library.db)"
    if magic != SQLITE_MAGIC:
        return "not an SQLite database (expected a beets library database, library.db)"
    return None


def split_genres(value: str | None) -> tuple[str, ...]:
    """A stored ``genres`` value as a tuple: split on ``\\␀``, or on ``; `` for
    a value written without it (as beets does when parsing)."""
    if not value:
        return ()
    delimiter = MULTI_VALUE_DELIMITER if MULTI_VALUE_DELIMITER in value else "; "
    return tuple(part.strip() for part in value.split(delimiter) if part.strip())


def configured_directory() -> str | None:
    """The ``directory`` of the user's beets configuration (``$BEETSDIR``
    or beets' own config folder, then beets' defaults), absolute; None
    when beets is not installed or its configuration cannot be read. A
    fresh configuration object: the running process's beets config is not
    touched."""
    try:
        import beets  # noqa: F401 (its config_default.yaml gives the defaults)
        import confuse
    except ImportError:
        return None
    config = confuse.Configuration("beets", "beets", read=False)
    try:
        config.read(user=True, defaults=True)
        return os.path.abspath(config["directory"].as_filename())
    except (confuse.ConfigError, OSError):
        return None


def column_values(db_path: str | Path, *, column: str) -> dict[int, str] | None:
    """Values of an ``items`` column of a library database by item id (None
    as ""), or None when there is no such column; DatasetError when the
    database cannot be read."""
    db_path = Path(db_path)
    connection = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if column not in {row[1] for row in connection.execute("PRAGMA table_info(items)")}:
            return None
        quoted = '"' + column.replace('"', '""') + '"'
        return {i: "" if v is None else str(v) for i, v in connection.execute(f"SELECT id, {quoted} FROM items")}
    except sqlite3.Error as exc:
        raise DatasetError(f"{db_path}: cannot read column {column!r} ({exc})") from None
    finally:
        connection.close()


def _path(value, music_dir: str | None) -> str | None:
    if isinstance(value, (bytes, memoryview)):
        value = os.fsdecode(bytes(value))
    if not isinstance(value, str) or not value:
        return None
    if music_dir and not os.path.isabs(value):
        value = os.path.normpath(os.path.join(music_dir, value.replace("/", os.sep)))
    return value


def load(
    db_path: str | Path, *, music_dir: str | Path | None = None, report: LoadReport | None = None
) -> list[Item]:
    """Items of the library at ``db_path``, by id, with their flexible
    attributes. ``music_dir``: the library ``directory`` that relative
    paths are under (default: the one beets is configured with,
    :func:`configured_directory`). Items without a path are skipped and
    listed in ``report`` as ``file: item N: cause``. Raises DatasetError
    when the file is missing or is not a beets library."""
    db_path = Path(db_path)
    report = report if report is not None else LoadReport()
    if not db_path.is_file():
        raise DatasetError(f"{db_path}: missing (beets library database)")
    music_dir = music_dir or configured_directory()
    music_dir = os.fsdecode(os.path.abspath(music_dir)) if music_dir else None
    try:
        connection = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatasetError(f"{db_path}: cannot open ({exc})") from None
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(items)")}
        if "path" not in columns:
            raise DatasetError(f"{db_path}: no items table with a path column (not a beets library)")
        genre_column = "genres" if "genres" in columns else "genre" if "genre" in columns else "NULL"
        selected = ", ".join(name if name in columns else "NULL" for name in _COLUMNS)
        attributes: dict[int, dict[str, str]] = {}
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'item_attributes'").fetchone():
            for entity, key, value in connection.execute("SELECT entity_id, key, value FROM item_attributes"):
                attributes.setdefault(entity, {})[key] = "" if value is None else str(value)
        rows = connection.execute(f"SELECT {selected}, {genre_column} FROM items ORDER BY id").fetchall()
    except sqlite3.Error as exc:
        raise DatasetError(f"{db_path}: cannot read ({exc})") from None
    finally:
        connection.close()
    items = []
    for item_id, path, artist, album, title, album_id, trackid, artistid, albumid, genres in rows:
        decoded = _path(path, music_dir)
        if decoded is None:
            report.skip(f"{db_path}: item {item_id}", "no path")
            continue
        items.append(
            Item(
                id=item_id,
                path=decoded,
                artist=artist or "",
                album=album or "",
                title=title or "",
                genres=split_genres(genres),
                album_id=album_id,
                mb_trackid=trackid or "",
                mb_artistid=artistid or "",
                mb_albumid=albumid or "",
                attributes=attributes.get(item_id, {}),
            )
        )
    return items
