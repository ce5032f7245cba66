"""Dataset loaders, one module per dataset: pure functions that read a path
and return plain :class:`Record` lists (mirdata style)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
