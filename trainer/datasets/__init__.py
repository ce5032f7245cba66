"""Dataset loaders, one module per dataset (mirdata style).

Each module ``trainer/datasets/<name>.py`` declares, and the contract test
(tests/test_datasets.py) checks:

- its layout in the module docstring;
- ``REMOTES``: a tuple of :class:`Download`, what ``python -m trainer fetch``
  can get from the publisher (official URLs, the publisher's checksums
  only); ``()`` when there is no public direct download;
- ``check_layout(path) -> str | None``: None when ``path`` (a folder or a
  file, whatever ``load`` takes) holds this dataset, else what is missing,
  in one phrase; cheap (a directory listing, a header line);
- ``load(path, *, report=None)``: pure reading into plain records:
  :class:`Record` for audio tracks, :class:`Lyrics` for song texts, small
  frozen dataclasses of the module for other data. Rows that cannot be read
  are skipped and listed in a :class:`LoadReport` as ``file:line: cause``;
  a missing file or layout raises :class:`DatasetError` naming it.

:data:`NAMES` lists the modules; :func:`resolve` tells which dataset a path
holds, :func:`downloads` gathers every module's ``REMOTES`` for
``trainer.fetch``. Shared readers: :func:`open_text`, :func:`csv_rows`,
:func:`column_index`, :func:`csv_table`; for layout checks,
:func:`first_line` and :func:`header_problem`."""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TextIO

#: Every dataset module, in the order :func:`resolve` tries them: the most
#: specific layouts first (a 4Q folder is also a folder of audio folders,
#: so ``gtzan``, which accepts any such folder, comes last among folders).
NAMES = (
    "mood_4q",
    "mtg_jamendo",
    "vagalume",
    "lastfm_hetrec",
    "deezer_disambiguation",
    "rmsc",
    "gtzan",
    "magnatagatune",
    "fma",
    "beets_library",
    "m3u",
    "aotm2011",
    "genius",
    "spotify_playlists",
    "allmusic_msd",
    "netease",
)


@dataclass(frozen=True)
class Record:
    """One audio track of a dataset.

    key: identifier unique in the dataset; path: audio file; labels: its
    tags (dataset vocabulary); artist/album: grouping ids where known
    (empty otherwise); split: official split name where the dataset has one.
    """

    key: str
    path: str
    labels: tuple[str, ...]
    artist: str = ""
    album: str = ""
    split: str = ""


class DatasetError(Exception):
    """A dataset layout or row cannot be read; the message names the file
    (and line) and the cause."""


@dataclass
class LoadReport:
    """What a loader skipped, with reasons (file:line: cause)."""

    skipped: list[str] = field(default_factory=list)

    def skip(self, where: str, cause: str) -> None:
        self.skipped.append(f"{where}: {cause}")


@dataclass(frozen=True)
class Lyrics:
    """One song's lyrics (text datasets: Genius, Vagalume).

    key: identifier unique in the dataset; artists: credited artists, main
    artist first; title: song title; text: the lyrics, line breaks kept;
    labels: its genres (dataset vocabulary); language: as the dataset
    writes it (``en``, ``pt``, ``ENGLISH``...), empty where unknown.
    """

    key: str
    artists: tuple[str, ...]
    title: str
    text: str
    labels: tuple[str, ...]
    language: str = ""


GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def open_text(path: str | Path, *, encoding: str = "utf-8") -> TextIO:
    """Open ``path`` as text, decompressing by content rather than by name:
    gzip (magic bytes 1f 8b, whatever the suffix says), a zip archive holding
    exactly one file, or plain text. Opened with ``newline=""`` so that csv
    sees quoted line breaks. Raises DatasetError naming a missing file."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            magic = raw.read(4)
        if magic[:2] == GZIP_MAGIC:
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
        if magic == ZIP_MAGIC:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise DatasetError(f"{path}: zip archive holds {len(names)} files, expected 1")
                return io.StringIO(archive.read(names[0]).decode(encoding), newline="")
        return path.open(encoding=encoding, newline="")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def csv_rows(path: str | Path, *, delimiter: str = ",", encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of every CSV record of ``path``, header included;
    ``line`` is the 1-based line where the record starts (quoted fields may
    span lines). Blank lines are not yielded. Decompresses like
    :func:`open_text`; a CSV or decoding error raises DatasetError naming
    ``file:line``."""
    with open_text(path, encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        start = 1
        try:
            for fields in reader:
                if fields:
                    yield start, fields
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}:{start}: {exc}") from None


def column_index(where: str | Path, header: list[str], required: Iterable[str]) -> dict[str, int]:
    """Position of each column of ``header`` by name; raises DatasetError
    naming ``where`` and the missing ``required`` columns."""
    index = {name.strip(): i for i, name in reversed(list(enumerate(header)))}
    missing = [name for name in required if name not in index]
    if missing:
        raise DatasetError(f"{where}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    return index


def csv_table(
    path: str | Path,
    *,
    required: Iterable[str],
    report: LoadReport,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> tuple[list[str], dict[str, int], Iterator[tuple[int, str, list[str]]]]:
    """A CSV file with a header row: ``(header, column, rows)`` where
    ``column`` maps names to positions (DatasetError naming missing
    ``required`` columns) and ``rows`` yields ``(line, where, fields)`` with
    ``where`` = ``file:line``; records with a field count other than the
    header's are skipped into ``report``."""
    rows = csv_rows(path, delimiter=delimiter, encoding=encoding)
    _, header = next(rows, (1, []))
    column = column_index(path, header, required)

    def complete() -> Iterator[tuple[int, str, list[str]]]:
        for number, fields in rows:
            where = f"{path}:{number}"
            if len(fields) != len(header):
                report.skip(where, f"expected {len(header)} fields, got {len(fields)}")
                continue
            yield number, where, fields

    return header, column, complete()



# --- what a dataset module declares for downloading ---------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    url: official location; name: path relative to the destination folder
    (``/``-separated, may contain sub-folders); size: bytes, ``None`` when
    the publisher states no exact size; checksum: ``"<algo>:<hex>"`` as
    stated by the publisher, ``None`` when none is published; extract: unpack
    this archive (zip, tar, tar.gz...) into the destination once verified.
    """

    url: str
    name: str
    size: int | None = None
    checksum: str | None = None
    extract: bool = False


@dataclass(frozen=True)
class JoinedArchive:
    """An archive published as byte-split parts (``cat parts > name``):
    once every part is downloaded they are concatenated (to a temporary
    file, removed afterwards) and extracted into the destination."""

    name: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Download:
    """What ``python -m trainer fetch NAME`` downloads into one folder:
    ``name`` the command's NAME, ``files`` fetched in order, then ``joins``
    assembled. A dataset module may declare several (FMA: the metadata and
    each audio subset)."""

    name: str
    description: str
    licence: str
    homepage: str
    files: tuple[RemoteFile, ...]
    joins: tuple[JoinedArchive, ...] = ()


# --- the registry -------------------------------------------------------------


def module(name: str) -> ModuleType:
    """The dataset module ``trainer.datasets.<name>``; ValueError for a
    name not in :data:`NAMES`."""
    if name not in NAMES:
        raise ValueError(f"unknown dataset module {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def downloads() -> dict[str, Download]:
    """Every :class:`Download` the dataset modules declare, by fetch name
    (sorted); ValueError when two modules declare the same name."""
    found: dict[str, Download] = {}
    for name in NAMES:
        for remote in module(name).REMOTES:
            if remote.name in found:
                raise ValueError(f"download {remote.name!r} declared twice (second time by {name})")
            found[remote.name] = remote
    return dict(sorted(found.items()))


def resolve(path: str | Path, *, among: Iterable[str] = NAMES) -> tuple[str, ModuleType]:
    """``(name, module)`` of the first dataset of :data:`NAMES` (restricted
    to ``among``) whose ``check_layout`` accepts ``path``. Raises
    DatasetError naming ``path`` and, for each candidate, what it lacks."""
    path = Path(path)
    wanted = set(among)
    unknown = wanted - set(NAMES)
    if unknown:
        raise ValueError(f"unknown dataset module(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    problems = []
    for name in (n for n in NAMES if n in wanted):
        found = module(name)
        problem = found.check_layout(path)
        if problem is None:
            return name, found
        problems.append(f"{name}: {problem}")
    raise DatasetError(f"{path}: not a dataset layout read here ({'; '.join(problems)})")


def first_line(path: Path, *, encoding: str = "utf-8") -> str | None:
    """The first line of the file ``path`` (decompressed like
    :func:`open_text`, line end stripped), or None when it is not a readable
    file."""
    if not path.is_file():
        return None
    try:
        with open_text(path, encoding=encoding) as handle:
            return handle.readline(1 << 16).rstrip("\r\n")
    except (DatasetError, OSError, UnicodeDecodeError, EOFError):
        return None


def header_problem(path: Path, *, columns: Iterable[str], delimiter: str = ",", what: str) -> str | None:
    """None when ``path`` is a file whose CSV header holds ``columns``, else
    a phrase naming ``what`` was expected (a layout check's answer)."""
    line = first_line(path)
    columns = tuple(columns)
    if line is None:
        return f"not a readable file (expected {what})"
    header = {name.strip() for name in next(csv.reader([line], delimiter=delimiter), [])}
    missing = [name for name in columns if name not in header]
    if missing:
        return f"no column(s) {', '.join(missing)} in its first line (expected {what})"
    return None
