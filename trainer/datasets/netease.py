"""NetEase Cloud Music playlists: Chinese playlist text with multi-label tags.

Layout: one CSV file (UTF-8, no header row), seven columns per row::

    title, tags joined by '-', description, favourites, plays, track count, comment count

e.g. ``[听·莫文蔚] 慢慢喜欢你，从这首歌起,华语-流行,介绍：你说她性感…,5149,1254916,50,5``.
Counts may be written with the Chinese ten-thousand unit (``373万`` =
3,730,000). Descriptions usually start with ``介绍：`` ("introduction:"),
which :func:`load` strips. There is one text per playlist, not a set of
user reviews: how the review-styles trainer maps it onto reviews is its
business (``trainer.han``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import DatasetError, LoadReport, csv_rows

COLUMNS = ("title", "tags", "description", "favourites", "plays", "tracks", "comments")
INTRO_PREFIXES = ("介绍：", "介绍:")


@dataclass(frozen=True)
class Playlist:
    """One playlist: ``key`` is ``line N`` of the file, ``labels`` the
    tags in file order (duplicates dropped); counts are None where the
    cell is not a number."""

    key: str
    title: str
    labels: tuple[str, ...]
    description: str
    favourites: int | None = None
    plays: int | None = None
    tracks: int | None = None
    comments: int | None = None


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def parse_count(value: str) -> int | None:
    """``"5739"`` -> 5739, ``"373万"`` -> 3730000, ``"1.2亿"`` -> 120000000;
    None for anything else."""
    value = value.strip().replace(",", "")
    scale = 1
    if value.endswith("万"):
        value, scale = value[:-1], 10_000
    elif value.endswith("亿"):
        value, scale = value[:-1], 100_000_000
    try:
        return int(round(float(value) * scale))
    except ValueError:
        return None


def check_layout(path: str | Path) -> str | None:
    """None when the first record of the CSV file ``path`` has seven fields
    ending in four counts, else what is wrong."""
    try:
        _, fields = next(csv_rows(path), (0, []))
    except DatasetError:
        return "not a readable CSV file (expected the NetEase playlists CSV)"
    if len(fields) != len(COLUMNS) or any(parse_count(value) is None for value in fields[3:]):
        return "its first row is not title, tags, description and four counts (NetEase playlists CSV)"
    return None


def load(path: str | Path, *, report: LoadReport | None = None) -> list[Playlist]:
    """Playlists of the CSV at ``path``. Rows without seven columns, or
    without a tag or any text, are skipped into ``report`` as ``file:line:
    cause``. Raises DatasetError when the file is missing or holds no
    usable row."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (NetEase playlists: music_message.csv)")
    report = report if report is not None else LoadReport()
    playlists = []
    for line, fields in csv_rows(path):
        where = f"{path}:{line}"
        if len(fields) != len(COLUMNS):
            report.skip(where, f"expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(fields)}")
            continue
        title, tags, description = (f.strip() for f in fields[:3])
        for prefix in INTRO_PREFIXES:
            if description.startswith(prefix):
                description = description[len(prefix):].strip()
        labels = tuple(dict.fromkeys(t.strip() for t in tags.split("-") if t.strip()))
        if not labels:
            report.skip(where, "no tag")
        elif not (title or description):
            report.skip(where, "neither title nor description")
        else:
            playlists.append(Playlist(f"line {line}", title, labels, description,
                                      *(parse_count(v) for v in fields[3:])))
    if not playlists:
        raise DatasetError(f"{path}: no usable playlist row")
    return playlists
