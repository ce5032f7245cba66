"""GTZAN and any folder-of-genre-folders layout.

Layout::

    ROOT/<genre>/<anything>.<audio extension>

Each file gets the single label of its folder. GTZAN has no artist or album
metadata in its file names: ``artist`` and ``album`` are left empty.
"""

from __future__ import annotations

from pathlib import Path

from trainer.datasets import DatasetError, LoadReport, Record

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .opus .m4a .aac .wma .aif .aiff .ape .wv .mpc .au".split()
)


def is_layout(root: str | Path) -> bool:
    """True if ``root`` holds sub-folders that contain audio files."""
    root = Path(root)
    return root.is_dir() and any(
        p.is_dir() and any(f.suffix.lower() in AUDIO_EXTENSIONS for f in p.iterdir()) for p in root.iterdir()
    )


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
