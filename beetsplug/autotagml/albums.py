"""Album fields from their tracks: ``genres``, ``mood`` and ``style``.

After every run, each album whose tracks the run went through gets the
values its tracks carry, by one rule (:func:`album_values`):

- a value carried by at least half of the album's tracks that have any
  value in the field is the album's, most carried first, at most the
  task's ``count``;
- when no value reaches half (a compilation, a mixed album), the album
  gets the one value most tracks carry (ties: the first track's order);
- an album none of whose tracks has a value gets none.

The album's own values follow the same ownership rule as an item's
(:func:`fields.merge_tag`): values someone else set on the album are kept
unless ``force``; what the plugin wrote is recorded in
``ml_written_<field>`` on the album. Album fields are stored without
passing them down to the tracks (``store(inherit=False)``), so every track
keeps its own values, and files are not touched (beets writes tracks'
tags, not albums').
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from . import fields as F

if TYPE_CHECKING:
    from beets.library import Album, Library


def album_values(track_values: Sequence[Sequence[str]], *, count: int) -> list[str]:
    """The album's values from its tracks' (one list per track), by the
    rule of this module.

    >>> album_values([["Rock"], ["Rock", "Pop"], ["Jazz"]], count=2)
    ['Rock']
    >>> album_values([["Rock"], ["Pop"], ["Jazz"]], count=2)
    ['Rock']
    """
    tagged = [list(dict.fromkeys(values)) for values in track_values if values]
    if not tagged or count < 1:
        return []
    votes: Counter[str] = Counter(value for values in tagged for value in values)
    order = {value: i for i, value in enumerate(dict.fromkeys(v for values in tagged for v in values))}
    ranked = sorted(votes, key=lambda value: (-votes[value], order[value]))
    chosen = [value for value in ranked if 2 * votes[value] >= len(tagged)]
    return (chosen or ranked[:1])[:count]


@dataclass
class AlbumReport:
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    proposals: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def line(self, *, pretend: bool = False) -> str:
        kept = f", {self.kept} kept as set by you or another tool" if self.kept else ""
        verb = "to update" if pretend else "updated"
        return f"albums: {self.updated} {verb}, {self.unchanged} unchanged{kept}"


def update_albums(lib: Library, album_ids: Iterable[int], fields: Mapping[str, int], *,
                  ownership: F.Ownership, pretend: bool) -> AlbumReport:
    """Set the tag fields of the albums ``album_ids`` from their tracks.
    ``fields``: tag field (``genres``, ``mood``, ``style``) -> most values."""
    report = AlbumReport()
    for album_id in sorted(set(album_ids)):
        album = lib.get_album(album_id)
        if album is None:
            continue
        changes = album_changes(album, fields, ownership, report)
        if not changes:
            report.unchanged += 1
            continue
        report.updated += 1
        if pretend:
            report.proposals.append((album, changes))
            continue
        for key, value in changes.items():
            if value is None:
                if key in album:
                    del album[key]
            else:
                album[key] = value
        album.store(inherit=False)
    return report


def album_changes(album: Album, fields: Mapping[str, int], ownership: F.Ownership,
                  report: AlbumReport | None = None) -> dict[str, Any]:
    """The fields of ``album`` that change (None: removed)."""
    items = list(album.items())
    changes: dict[str, Any] = {}
    for tag, count in fields.items():
        chosen = album_values([F.tag_values(item.get(tag, with_album=False)) for item in items], count=count)
        current = F.tag_values(album.get(tag))
        record = F.written_field(tag)
        written = F.tag_values(album.get(record))
        value, mine, kept = F.merge_tag(current, written, chosen, ownership)
        if kept and report is not None:
            report.kept += 1
        if value != current:
            changes[tag] = F.tag_value_for(tag, value)
        if mine != written:
            changes[record] = mine if mine else None
    return {k: v for k, v in changes.items() if not (v is None and k not in album)}
