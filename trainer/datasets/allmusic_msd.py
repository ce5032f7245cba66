"""AllMusic expert tags of Million Song Dataset tracks
(``track_names_all.txt``, no audio).

One line per track, ``;`` between fields, ``,`` inside them, empty fields
allowed::

    TRBOEFO128F92FC62E;Pop/Rock;Album Rock, Hard Rock;Aggressive, Brash;
    TRWMHMP128EF34293F;Pop/Rock;;;

A field holding quotes is CSV-quoted with doubled quotes, and a few values
carry residue of a serialised list (``"[""Childrens"", Pop/Rock"`` stands for
the genres Childrens and Pop/Rock): the loader unquotes the field and strips
``[ ] "`` from each value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import LoadReport, csv_rows, first_line

FIELDS = ("genres", "styles", "moods", "themes")
TRACK_ID = re.compile(r"TR[0-9A-Z]{16}")


@dataclass(frozen=True)
class AllMusicTrack:
    """AllMusic tags of one MSD track (``TR`` + 16 characters); each field a
    tuple of names in file order, possibly empty."""

    track_id: str
    genres: tuple[str, ...]
    styles: tuple[str, ...]
    moods: tuple[str, ...]
    themes: tuple[str, ...]


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(path: str | Path) -> str | None:
    """None when the first line of the file ``path`` starts with an MSD
    track id and a ``;``, else what is wrong."""
    line = first_line(Path(path))
    if line is None:
        return "not a readable file (expected track_names_all.txt)"
    if not TRACK_ID.fullmatch(line.split(";", 1)[0].strip()) or ";" not in line:
        return "its first line is not 'TR<16 characters>;genres;styles;moods;themes' (AllMusic MSD tags)"
    return None


def split_values(field: str) -> tuple[str, ...]:
    """``"Album Rock, Hard Rock"`` -> ``("Album Rock", "Hard Rock")``, list
    residue (``[ ] "``) stripped, empty values and repeats dropped."""
    values = (value.strip().strip('[]"').strip() for value in field.split(","))
    return tuple(dict.fromkeys(value for value in values if value))


def load(path: str | Path, *, report: LoadReport | None = None) -> list[AllMusicTrack]:
    """Tracks of ``track_names_all.txt`` in file order. Lines without 5
    fields, with a malformed track id or repeating a track id are skipped
    and listed in ``report`` as ``file:line: cause``."""
    report = report if report is not None else LoadReport()
    tracks, seen = [], set()
    for number, fields in csv_rows(path, delimiter=";"):
        where = f"{path}:{number}"
        if len(fields) != 1 + len(FIELDS):
            report.skip(where, f"expected 5 ';'-separated fields, got {len(fields)}")
            continue
        track_id = fields[0].strip()
        if not TRACK_ID.fullmatch(track_id):
            report.skip(where, f"not an MSD track id: {track_id!r}")
            continue
        if track_id in seen:
            report.skip(where, f"{track_id} repeated")
            continue
        seen.add(track_id)
        tracks.append(AllMusicTrack(track_id, *(split_values(field) for field in fields[1:])))
    return tracks


def vocabulary(tracks: list[AllMusicTrack], field: str) -> set[str]:
    """Distinct values of ``field`` (genres, styles, moods or themes)."""
    return {value for track in tracks for value in getattr(track, field)}
