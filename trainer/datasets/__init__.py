"""Dataset loaders, one module per dataset: pure functions that read a path
and return plain records (mirdata style): :class:`Record` for audio tracks,
:class:`Lyrics` for song texts, small frozen dataclasses of their own module
for other data. Rows that cannot be read are skipped and listed in a
:class:`LoadReport` as ``file:line: cause``; a missing file or layout raises
:class:`DatasetError` naming it. Shared readers: :func:`open_text`,
:func:`csv_rows`, :func:`column_index`."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


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

