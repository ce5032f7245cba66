"""GTZAN and any folder-of-genre-folders layout.

Layout::

    ROOT/<genre>/<anything>.<audio extension>

Each file gets the single label of its folder. GTZAN has no artist or album
metadata in its file names: ``artist`` and ``album`` are left empty.

Fault-filtered, artist-aware splits (Kereliuk, Sturm & Larsen 2015) are
plain lists, one relative path per line, in ``SPLIT_DIR``::

    train_filtered.txt  valid_filtered.txt  test_filtered.txt
        blues/blues.00012.wav
        blues/blues.00013.wav

Entries are matched to the audio under ROOT by ``<genre>/<stem>``, ignoring
the extension (a list written for ``.wav`` finds ``.flac`` copies).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

from trainer.datasets import DatasetError, Download, LoadReport, Record, RemoteFile

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .opus .m4a .aac .wma .aif .aiff .ape .wv .mpc .au".split()
)


REMOTES = (
    Download(
        name="gtzan",
        description="GTZAN genre collection (Tzanetakis & Cook 2002): 1,000 30-s clips (.au, 22,050 Hz mono), "
        "10 genres x 100, about 1.2 GB; extracts to genres/<genre>/*.au (train on DEST/genres)",
        licence="none stated by the publisher (distributed for research; audio copyright stays with its owners)",
        homepage="http://marsyas.info/downloads/datasets.html",
        # The publisher serves this file over plain http only, and states no checksum.
        files=(RemoteFile("http://opihi.cs.uvic.ca/sound/genres.tar.gz", "genres.tar.gz", extract=True),),
    ),
)


def check_layout(root: str | Path) -> str | None:
    """None when ``root`` holds sub-folders that contain audio files, else
    what is missing."""
    root = Path(root)
    if not root.is_dir():
        return "not a folder (expected <genre>/<audio file>)"
    if any(p.is_dir() and any(f.suffix.lower() in AUDIO_EXTENSIONS for f in p.iterdir()) for p in root.iterdir()):
        return None
    return "no <genre>/ folder holding audio files"


def load(root: str | Path, *, report: LoadReport | None = None) -> list[Record]:
    """Records of every audio file under ``root/<genre>/``, sorted by path.

    Files with other extensions are skipped and listed in ``report``.
    Raises DatasetError when ``root`` has no genre folder with audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    report = report if report is not None else LoadReport()
    records = []
    for genre_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(genre_dir.iterdir()):
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                report.skip(str(path), "not an audio file extension")
                continue
            key = f"{genre_dir.name}/{path.stem}"
            records.append(Record(key=key, path=str(path), labels=(genre_dir.name,)))
    if not records:
        raise DatasetError(f"{root}: no <genre>/<audio file> found (GTZAN layout)")
    return records


SPLIT_FILES = {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"}


def _entry_key(entry: str) -> str | None:
    """``genre/stem`` of a split-list entry (extension dropped when it is an
    audio one), or None when the entry is not ``<genre>/<file>``."""
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    if len(parts) < 2:
        return None
    name = PurePosixPath(parts[-1])
    stem = name.stem if name.suffix.lower() in AUDIO_EXTENSIONS else name.name
    return f"{parts[-2]}/{stem}"


def load_split(
    root: str | Path, split_file: str | Path, *, split: str = "", report: LoadReport | None = None
) -> list[Record]:
    """Records of the files listed in ``split_file``, in list order, with
    ``split`` set on each.

    Entries whose audio is missing under ``root``, malformed entries and
    repeated entries are skipped and listed in ``report`` as
    ``split_file:line: cause``. Raises DatasetError when ``split_file`` is
    missing or ``root`` is not a GTZAN-style tree.
    """
    split_file = Path(split_file)
    report = report if report is not None else LoadReport()
    try:
        lines = split_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{split_file}: cannot read split list ({exc})") from None
    available = {record.key: record for record in load(root)}
    records, seen = [], set()
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        key = _entry_key(entry)
        if key is None:
            report.skip(f"{split_file}:{number}", f"expected <genre>/<file>, got {entry!r}")
        elif key in seen:
            report.skip(f"{split_file}:{number}", f"{entry} listed twice")
        elif key not in available:
            report.skip(f"{split_file}:{number}", f"{entry}: no audio file {key}.* under {root}")
        else:
            seen.add(key)
            records.append(replace(available[key], split=split))
    return records


def load_splits(
    root: str | Path, split_dir: str | Path, *, report: LoadReport | None = None
) -> list[Record]:
    """Records of the three fault-filtered lists in ``split_dir`` with
    ``split`` set to train, validation and test. A track listed in two
    splits is kept in the first and reported for the second. Raises
    DatasetError naming a missing list."""
    report = report if report is not None else LoadReport()
    records: list[Record] = []
    for split, name in SPLIT_FILES.items():
        path = Path(split_dir) / name
        if not path.is_file():
            raise DatasetError(f"{path}: missing (GTZAN fault-filtered {split} list)")
        taken = {record.key for record in records}
        for record in load_split(root, path, split=split, report=report):
            if record.key in taken:
                report.skip(str(path), f"{record.key} is already in an earlier split")
            else:
                records.append(record)
    return records
