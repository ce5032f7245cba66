"""M3U / M3U8 playlists.

Layout::

    #EXTM3U
    #PLAYLIST:Road trip
    #EXTINF:245,Weezer - Buddy Holly
    Weezer/Blue Album/04 Buddy Holly.mp3
    #EXTINF:-1,Radio stream
    http://example.org/stream.mp3
    /music/plain entry without EXTINF.flac

``.m3u8`` files are UTF-8; ``.m3u`` files are read as UTF-8 when they decode,
else as Latin-1. Relative paths are resolved against the playlist's folder,
URLs (``scheme://``) and absolute paths are kept as written. ``#EXTINF``
gives the duration in seconds (-1: unknown) and ``artist - title`` for the
next entry; other ``#`` lines are comments. ``#PLAYLIST:`` names the list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import DatasetError, LoadReport

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
EXTENSIONS = (".m3u", ".m3u8")


@dataclass(frozen=True)
class Entry:
    """One playlist entry: ``path`` (absolute, or a URL), ``duration`` in
    seconds (None when unknown or no #EXTINF), ``artist``/``title`` from
    #EXTINF (empty when absent)."""

    path: str
    duration: float | None = None
    artist: str = ""
    title: str = ""


@dataclass(frozen=True)
class Playlist:
    """``key`` the playlist file's path, ``name`` its #PLAYLIST name or
    file stem, ``entries`` in order."""

    key: str
    name: str
    entries: tuple[Entry, ...]


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(path: str | Path) -> str | None:
    """None when ``path`` is a file named .m3u or .m3u8, else what is wrong."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in EXTENSIONS:
        return "not a .m3u or .m3u8 file"
    return None


def _read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if path.suffix.lower() == ".m3u8":
            raise DatasetError(f"{path}: .m3u8 file is not UTF-8") from None
        return data.decode("latin-1")


def _extinf(value: str) -> tuple[float | None, str, str]:
    """``245,Artist - Title`` -> (245.0, Artist, Title); raises ValueError."""
    head, comma, text = value.partition(",")
    if not comma:
        raise ValueError("no comma after the duration")
    duration = float(head.split()[0]) if head.split() else -1.0  # attributes may follow
    artist, dash, title = text.partition(" - ")
    artist, title = (artist.strip(), title.strip()) if dash else ("", text.strip())
    return (None if duration < 0 else duration), artist, title


def load(path: str | Path, *, report: LoadReport | None = None) -> Playlist:
    """The playlist of one .m3u/.m3u8 file. A malformed #EXTINF, or one with
    no entry after it, is listed in ``report`` as ``file:line: cause`` (the
    entry itself is kept without its #EXTINF data). Raises DatasetError when
    the file cannot be read."""
    path = Path(path)
    report = report if report is not None else LoadReport()
    try:
        text = _read(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    folder = os.path.abspath(path.parent)
    name, entries, info, info_line = path.stem, [], None, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.upper().startswith("#EXTINF:"):
                if info is not None:
                    report.skip(f"{path}:{info_line}", "#EXTINF without an entry after it")
                    info = None
                try:
                    info, info_line = _extinf(line[len("#EXTINF:"):]), number
                except ValueError as exc:
                    report.skip(f"{path}:{number}", f"bad #EXTINF ({exc})")
            elif line.upper().startswith("#PLAYLIST:"):
                name = line[len("#PLAYLIST:"):].strip() or name
            continue
        location = line if URL.match(line) or os.path.isabs(line) else os.path.normpath(os.path.join(folder, line))
        duration, artist, title = info or (None, "", "")
        entries.append(Entry(location, duration, artist, title))
        info = None
    if info is not None:
        report.skip(f"{path}:{info_line}", "#EXTINF without an entry after it")
    return Playlist(key=str(path), name=name, entries=tuple(entries))


def load_folder(folder: str | Path, *, report: LoadReport | None = None) -> list[Playlist]:
    """Every .m3u/.m3u8 playlist directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    return [load(p, report=report) for p in paths]
