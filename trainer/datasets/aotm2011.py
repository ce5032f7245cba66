"""Art of the Mix 2011 playlists (McFee & Lanckriet 2012; no audio).

``aotm2011_playlists.json`` (distributed gzipped as ``.json.gz``; either is
read) is one JSON list of playlist objects::

    [{"mix_id": 7,
      "category": "Road Trip",
      "timestamp": "...",
      "user": {"name": "...", ...},
      "playlist": [[["Weezer", "Buddy Holly"], "TRAOQIC128F4262F89"],
                   [["Unmatched Band", "Some Song"], null], ...],
      "filtered_lists": [["TRAOQIC128F4262F89", ...], ...]}, ...]

Each ``playlist`` entry is ``[[artist, title], MSD track id or null]``
(null where the song was not matched to the Million Song Dataset).
``category`` (about 40 values) is the playlist's only label; ``tags`` or
``categories``, where an object has them, are added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import (
    DatasetError,
    Download,
    LoadReport,
    RemoteFile,
    first_line,
    open_text,
)


@dataclass(frozen=True)
class TrackRef:
    """A playlist entry: artist and title as the user typed them, the
    matched MSD track id or None."""

    artist: str
    title: str
    msd_id: str | None


@dataclass(frozen=True)
class Playlist:
    """One mix: ``key`` the mix id, ``name`` its title (empty when the data
    has none), ``tracks`` in playlist order, ``tags`` its category (and tags),
    ``user`` the author's name."""

    key: str
    name: str
    tracks: tuple[TrackRef, ...]
    tags: tuple[str, ...]
    user: str = ""


REMOTES = (
    Download(
        name="aotm2011",
        description="AotM-2011 (McFee & Lanckriet 2012): Art of the Mix playlists matched to the Million Song "
        "Dataset, one gzipped JSON file (read it with gzip.open)",
        licence="none stated by the publisher (research use)",
        homepage="https://bmcfee.github.io/data/aotm2011.html",
        files=(RemoteFile("https://bmcfee.github.io/data/aotm2011_playlists.json.gz", "aotm2011_playlists.json.gz"),),
    ),
)


def check_layout(path: str | Path) -> str | None:
    """None when the file ``path`` starts a JSON list of playlists (``[``,
    then ``"mix_id"`` within its first 64 KiB), else what is wrong."""
    line = first_line(Path(path))
    if line is None:
        return "not a readable file (expected aotm2011_playlists.json[.gz])"
    if not line.lstrip().startswith("[") or '"mix_id"' not in line:
        return "does not start a JSON list of playlists with a mix_id (AotM-2011 JSON)"
    return None


def _track(entry) -> TrackRef:
    (artist, title), msd_id = entry
    if not isinstance(artist, str) or not isinstance(title, str):
        raise ValueError("artist and title must be strings")
    if msd_id is not None and not isinstance(msd_id, str):
        raise ValueError("MSD id must be a string or null")
    return TrackRef(artist, title, msd_id)


def _tags(item: dict) -> tuple[str, ...]:
    values = []
    for key in ("category", "categories", "tags"):
        value = item.get(key)
        values += [value] if isinstance(value, str) else list(value or [])
    return tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))


def load(path: str | Path, *, report: LoadReport | None = None) -> list[Playlist]:
    """Playlists of the JSON file, in file order. Playlists without a
    ``mix_id`` or ``playlist`` list, or with a repeated mix id, are skipped;
    malformed track entries are dropped from their playlist. Both are listed
    in ``report`` as ``file: playlist N: cause`` (N counts from 0). Raises
    DatasetError when the file is not a JSON list."""
    report = report if report is not None else LoadReport()
    try:
        with open_text(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of playlists, got {type(data).__name__}")
    playlists, seen = [], set()
    for number, item in enumerate(data):
        where = f"{path}: playlist {number}"
        if not isinstance(item, dict) or "mix_id" not in item or not isinstance(item.get("playlist"), list):
            report.skip(where, "no mix_id or playlist list")
            continue
        key = str(item["mix_id"])
        if key in seen:
            report.skip(where, f"mix_id {key} repeated")
            continue
        seen.add(key)
        tracks = []
        for position, entry in enumerate(item["playlist"]):
            try:
                tracks.append(_track(entry))
            except (TypeError, ValueError) as exc:
                report.skip(where, f"mix {key} entry {position} dropped: {exc}")
        user = item.get("user")
        playlists.append(
            Playlist(
                key=key,
                name=str(item.get("title") or item.get("name") or ""),
                tracks=tuple(tracks),
                tags=_tags(item),
                user=str(user.get("name", "")) if isinstance(user, dict) else "",
            )
        )
    return playlists
