"""MTG-Jamendo: autotagging TSV files plus an audio tree.

TSV rows (tab separated, one header row)::

    TRACK_ID  ARTIST_ID  ALBUM_ID  PATH  DURATION  TAGS...

where TAGS are one or more fields like ``genre---rock`` or
``mood/theme---happy``, and PATH (``41/241.mp3``) is relative to the audio
directory. Split files are ``split-N/autotagging_<category>-<split>.tsv``
(N = 0..4, category genre, moodtheme, instrument or top50tags); the full
files of each category, without a split, are ``autotagging_<category>.tsv``
(``autotagging.tsv`` for all tags)::

    autotagging_moodtheme.tsv
    split-0/autotagging_moodtheme-train.tsv
    split-0/autotagging_moodtheme-validation.tsv
    split-0/autotagging_moodtheme-test.tsv

top50tags mixes categories, so its tags keep their full ``genre---rock``
form; the other categories drop their prefix (``rock``).
"""

from __future__ import annotations

from pathlib import Path

from trainer.datasets import DatasetError, Download, LoadReport, Record, RemoteFile

CATEGORIES = {"genre": "genre", "moodtheme": "mood/theme", "instrument": "instrument", "top50tags": None}
SPLITS = ("train", "validation", "test")

_RAW = "https://raw.githubusercontent.com/MTG/mtg-jamendo-dataset/master/data/"
_SUBSETS = ("autotagging_genre", "autotagging_instrument", "autotagging_moodtheme", "autotagging_top50tags")
REMOTES = (
    Download(
        name="mtg-jamendo-metadata",
        description="MTG-Jamendo autotagging metadata (Bogdanov et al. 2019), raw files of the repository's data/ "
        "folder: autotagging*.tsv (autotagging.tsv is a git symlink, fetched from its target "
        "raw_30s_cleantags_50artists.tsv) and the 5 official splits as split-N/<subset>-<split>.tsv, the layout "
        "trainer.datasets.mtg_jamendo reads; audio not included (use the repository's download script)",
        licence="CC BY-NC-SA 4.0 (metadata); audio under per-track Creative Commons licences",
        homepage="https://github.com/MTG/mtg-jamendo-dataset",
        files=(
            RemoteFile(_RAW + "raw_30s_cleantags_50artists.tsv", "autotagging.tsv"),
            *(RemoteFile(_RAW + f"{s}.tsv", f"{s}.tsv") for s in _SUBSETS),
            *(
                RemoteFile(_RAW + f"splits/split-{n}/{s}-{part}.tsv", f"split-{n}/{s}-{part}.tsv")
                for n in range(5)
                for s in ("autotagging", *_SUBSETS)
                for part in SPLITS
            ),
        ),
    ),
)


def read_tsv(
    tsv: str | Path,
    *,
    audio_dir: str | Path,
    prefix: str | None = None,
    split: str = "",
    report: LoadReport | None = None,
) -> list[Record]:
    """Records of one autotagging TSV.

    prefix : keep only tags of this category (``"genre"`` keeps
        ``genre---rock`` as ``rock``); None keeps every tag as written.
    Rows with fewer than 6 fields, or no tag left after filtering, are
    skipped and listed in ``report`` as ``file:line: cause``.
    """
    tsv = Path(tsv)
    report = report if report is not None else LoadReport()
    try:
        lines = tsv.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{tsv}: cannot read ({exc})") from None
    if not lines or not lines[0].startswith("TRACK_ID"):
        raise DatasetError(f"{tsv}:1: expected a header starting with TRACK_ID")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 6:
            report.skip(f"{tsv}:{number}", f"expected at least 6 tab-separated fields, got {len(fields)}")
            continue
        track, artist, album, rel_path, _duration, *tags = fields
        if prefix is not None:
            tags = [t.split("---", 1)[1] for t in tags if t.startswith(prefix + "---")]
        tags = [t.strip() for t in tags if t.strip()]
        if not tags:
            report.skip(f"{tsv}:{number}", f"no {prefix or ''} tag")
            continue
        records.append(
            Record(
                key=track,
                path=str(Path(audio_dir) / rel_path),
                labels=tuple(dict.fromkeys(tags)),
                artist=artist,
                album=album,
                split=split,
            )
        )
    return records


def check_layout(root: str | Path) -> str | None:
    """None when ``root`` holds autotagging TSV files (directly or in
    split-N/), else what is missing."""
    root = Path(root)
    if any(root.glob("autotagging*.tsv")) or any(root.glob("split-*/autotagging*.tsv")):
        return None
    return "no autotagging*.tsv, directly or in split-N/ (MTG-Jamendo layout)"


def load(
    root: str | Path,
    *,
    category: str = "genre",
    split_number: int = 0,
    audio_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Record]:
    """Records of the official train/validation/test split ``split_number``
    of ``category`` (genre, moodtheme, instrument, top50tags).

    Audio paths are resolved against ``audio_dir`` (default ``root/audio``).
    Raises DatasetError if the split files are missing.
    """
    if category not in CATEGORIES:
        raise DatasetError(f"unknown MTG-Jamendo category {category!r}; known: {', '.join(CATEGORIES)}")
    root = Path(root)
    audio_dir = Path(audio_dir) if audio_dir else root / "audio"
    prefix = CATEGORIES[category]
    records = []
    for split in SPLITS:
        tsv = root / f"split-{split_number}" / f"autotagging_{category}-{split}.tsv"
        if not tsv.is_file():
            raise DatasetError(f"{tsv}: missing (MTG-Jamendo split {split_number}, {category})")
        records += read_tsv(tsv, audio_dir=audio_dir, prefix=prefix, split=split, report=report)
    return records


def load_full(
    tsv: str | Path,
    audio_dir: str | Path | None = None,
    *,
    category: str | None = None,
    report: LoadReport | None = None,
) -> list[Record]:
    """Records of a full ``autotagging*.tsv`` file (no split: ``split`` is
    empty).

    category : genre, moodtheme, instrument (keep only that category's tags,
        prefix dropped) or top50tags/None (every tag as written).
    Audio paths are resolved against ``audio_dir`` (default: ``audio`` next
    to the TSV). Raises DatasetError for an unknown category or a missing
    file.
    """
    if category is not None and category not in CATEGORIES:
        raise DatasetError(f"unknown MTG-Jamendo category {category!r}; known: {', '.join(CATEGORIES)}")
    tsv = Path(tsv)
    if not tsv.is_file():
        raise DatasetError(f"{tsv}: missing (MTG-Jamendo autotagging TSV)")
    audio_dir = Path(audio_dir) if audio_dir else tsv.parent / "audio"
    prefix = CATEGORIES[category] if category else None
    return read_tsv(tsv, audio_dir=audio_dir, prefix=prefix, report=report)
