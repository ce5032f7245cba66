"""Genius lyrics (``lyrics.csv.gz``, no audio).

A gzipped CSV (comma separated, double-quoted fields, lyrics spanning many
lines) with an unnamed index column first::

    ,artist,title,lyrics,genre
    0,['Lil Nas X'],Old Town Road (Remix),"Oh, oh-oh
    ...",country

``artist`` is a Python list literal (``['Drake', 'Future']``), read with
:func:`ast.literal_eval`; ``genre`` is one of rock, rap, r-b, pop, country.
The same song can appear under several genres, once per genre.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from trainer.datasets import LoadReport, Lyrics, csv_table, header_problem

#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(path: str | Path) -> str | None:
    """None when ``path`` is a CSV file (gzipped or not) whose header holds
    artist, title, lyrics and genre, else what is wrong."""
    return header_problem(Path(path), columns=("artist", "title", "lyrics", "genre"), what="Genius lyrics.csv.gz")


def parse_artists(text: str) -> tuple[str, ...]:
    """``"['Drake', 'Future']"`` -> ``("Drake", "Future")``; raises
    ValueError unless the text is a non-empty list of strings."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"not a Python list literal: {text[:60]!r}") from None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a non-empty list of artist names: {text[:60]!r}")
    return tuple(value)


def load(path: str | Path, *, report: LoadReport | None = None) -> list[Lyrics]:
    """Lyrics of ``lyrics.csv.gz`` (or the plain CSV): key the index column,
    labels the single genre. Rows with a wrong field count, an unreadable
    artist list, or an empty title, text or genre are skipped and listed in
    ``report`` as ``file:line: cause``."""
    report = report if report is not None else LoadReport()
    header, column, rows = csv_table(path, required=("artist", "title", "lyrics", "genre"), report=report)
    records = []
    for number, where, fields in rows:
        try:
            artists = parse_artists(fields[column["artist"]])
        except ValueError as exc:
            report.skip(where, str(exc))
            continue
        title, genre, text = fields[column["title"]].strip(), fields[column["genre"]].strip(), fields[column["lyrics"]]
        empty = [name for name, value in (("title", title), ("lyrics", text.strip()), ("genre", genre)) if not value]
        if empty:
            report.skip(where, f"empty {', '.join(empty)}")
            continue
        key = fields[0] if header[0] == "" else str(number)
        records.append(Lyrics(key=key, artists=artists, title=title, text=text, labels=(genre,)))
    return records


def multi_genre(records: Iterable[Lyrics]) -> dict[tuple[str, tuple[str, ...]], tuple[str, ...]]:
    """The (title, artists) pairs listed under more than one genre, with
    their genres sorted: the songs a lyrics-only genre classifier cannot get
    right for every row (split them by song, not by row)."""
    genres: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for record in records:
        genres[(record.title, record.artists)].update(record.labels)
    return {pair: tuple(sorted(labels)) for pair, labels in genres.items() if len(labels) > 1}
