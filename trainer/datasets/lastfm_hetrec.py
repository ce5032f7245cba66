"""HetRec 2011 Last.fm-2k (``lastfm_hetrec2k``): free tags users gave
artists. Only the tag files are read here::

    tags.dat                 tagID \\t tagValue           (Latin-1)
    user_taggedartists.dat   userID \\t artistID \\t tagID \\t day \\t month \\t year

The files are Latin-1 ("tropicália"), not UTF-8, and start with a header.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from trainer.datasets import DatasetError, Download, LoadReport, RemoteFile

REMOTES = (
    Download(
        name="hetrec-lastfm-2k",
        description="HetRec 2011 Last.fm 2K (GroupLens): 1,892 users' artist play counts, tag assignments and "
        "friend relations (user_artists.dat, artists.dat, tags.dat, user_taggedartists*.dat, user_friends.dat)",
        licence="non-commercial use (per the dataset's readme); cite the HetRec 2011 workshop",
        homepage="https://grouplens.org/datasets/hetrec-2011/",
        files=(
            RemoteFile(
                "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
                "hetrec2011-lastfm-2k.zip",
                extract=True,
            ),
        ),
    ),
)
FILES = ("tags.dat", "user_taggedartists.dat")


def check_layout(root: str | Path) -> str | None:
    """None when ``root`` holds tags.dat and user_taggedartists.dat, else
    which are missing."""
    missing = [name for name in FILES if not (Path(root) / name).is_file()]
    return f"no {' or '.join(missing)} (HetRec Last.fm-2k layout)" if missing else None


def _rows(path: Path, *, encoding: str):
    if not path.is_file():
        raise DatasetError(f"{path}: missing (HetRec Last.fm-2k layout)")
    with path.open(encoding=encoding, newline="") as handle:
        next(handle, None)  # header
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if line:
                yield number, line.split("\t")


def load_tags(root: str | Path, *, report: LoadReport | None = None) -> dict[int, str]:
    """tagID -> tag name from ``tags.dat``; malformed rows skipped and
    listed in ``report``."""
    report = report if report is not None else LoadReport()
    path = Path(root) / "tags.dat"
    tags: dict[int, str] = {}
    for number, cells in _rows(path, encoding="latin-1"):
        try:
            tags[int(cells[0])] = cells[1].strip()
        except (ValueError, IndexError):
            report.skip(f"{path}:{number}", "expected 'tagID<TAB>tagValue'")
    return tags


def artist_tags(root: str | Path, *, report: LoadReport | None = None) -> dict[int, dict[str, int]]:
    """artistID -> {tag name: number of users who gave it}, from
    ``user_taggedartists.dat``. Rows naming an unknown tag or not made of
    integers are skipped and listed in ``report``."""
    report = report if report is not None else LoadReport()
    names = load_tags(root, report=report)
    path = Path(root) / "user_taggedartists.dat"
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for number, cells in _rows(path, encoding="latin-1"):
        if len(cells) < 3:
            report.skip(f"{path}:{number}", "fewer than 3 fields")
            continue
        try:
            _, artist, tag = (int(c) for c in cells[:3])
        except ValueError:
            report.skip(f"{path}:{number}", "userID, artistID and tagID must be integers")
            continue
        if tag not in names:
            report.skip(f"{path}:{number}", f"unknown tagID {tag}")
            continue
        out[artist][names[tag]] += 1
    return {a: dict(t) for a, t in out.items()}


#: The contract's ``load`` (trainer.datasets): what the dataset is read for.
load = artist_tags
