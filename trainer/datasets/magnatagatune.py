"""MagnaTagATune: ``annotations_final.csv`` plus the clip tree.

Layout::

    annotations_final.csv
    <hex dir 0-f>/<artist>-<album>-<track>-<title>-<start>-<end>.mp3

``annotations_final.csv`` is tab separated, every field in double quotes:
a header ``"clip_id"`` then the 188 tag names (``"no voice"``, ``"singer"``,
...) then ``"mp3_path"``; one row per 29 s clip with 0/1 per tag and the clip
path (``"f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"``)
relative to the clip tree.

The conventional split (used since Dieleman & Schrauwen 2014) goes by the
first hex folder: 0-b train, c validation, d-f test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path, PurePosixPath

from trainer.datasets import (
    DatasetError,
    Download,
    JoinedArchive,
    LoadReport,
    Record,
    RemoteFile,
    csv_rows,
    header_problem,
)

_MTT = "https://mirg.city.ac.uk/datasets/magnatagatune/"
REMOTES = (
    Download(
        name="magnatagatune",
        description="MagnaTagATune (Law et al. 2009): 25,863 29-s clips (16 kHz mono MP3) with 188 TagATune tags; "
        "annotations_final.csv, clip_info_final.csv and mp3.zip.001-003, joined into mp3.zip and extracted "
        "(folders 0-f)",
        licence="CC BY-NC-SA 3.0 Unported",
        homepage="https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset",
        files=(
            RemoteFile(_MTT + "annotations_final.csv", "annotations_final.csv"),
            RemoteFile(_MTT + "clip_info_final.csv", "clip_info_final.csv"),
            RemoteFile(_MTT + "mp3.zip.001", "mp3.zip.001"),
            RemoteFile(_MTT + "mp3.zip.002", "mp3.zip.002"),
            RemoteFile(_MTT + "mp3.zip.003", "mp3.zip.003"),
        ),
        joins=(JoinedArchive("mp3.zip", ("mp3.zip.001", "mp3.zip.002", "mp3.zip.003")),),
    ),
)


def check_layout(annotations: str | Path) -> str | None:
    """None when ``annotations`` is a tab-separated file whose header holds
    clip_id and mp3_path, else what is wrong."""
    return header_problem(Path(annotations), columns=("clip_id", "mp3_path"), delimiter="\t",
                          what="MagnaTagATune's annotations_final.csv")


def folder_split(mp3_path: str) -> str:
    """Conventional split of a clip from its first hex folder: 0-b train,
    c validation, d-f test; empty for another folder name."""
    folder = mp3_path.split("/", 1)[0].lower()
    if len(folder) != 1 or folder not in "0123456789abcdef":
        return ""
    return "validation" if folder == "c" else "test" if folder in "def" else "train"


def load(
    annotations: str | Path,
    *,
    audio_dir: str | Path | None = None,
    split_by_folder: bool = False,
    keep_untagged: bool = False,
    report: LoadReport | None = None,
) -> list[Record]:
    """Records of ``annotations_final.csv``: key the clip id, labels the tags
    set to 1, artist and album the slugs at the start of the file name.

    audio_dir : the clip tree (default: the folder of the CSV).
    split_by_folder : set ``split`` by :func:`folder_split`.
    keep_untagged : keep clips with no tag set (labels ``()``) instead of
        reporting them as skipped.
    Rows with the wrong field count or a value other than 0/1 are skipped and
    listed in ``report`` as ``file:line: cause``.
    """
    annotations = Path(annotations)
    report = report if report is not None else LoadReport()
    audio_dir = Path(audio_dir) if audio_dir else annotations.parent
    rows = csv_rows(annotations, delimiter="\t")
    _, header = next(rows, (1, []))
    if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
        raise DatasetError(f"{annotations}:1: expected the header clip_id, <tags>..., mp3_path")
    tags = header[1:-1]
    records = []
    for number, fields in rows:
        where = f"{annotations}:{number}"
        if len(fields) != len(header):
            report.skip(where, f"expected {len(header)} tab-separated fields, got {len(fields)}")
            continue
        clip_id, *values, mp3_path = fields
        bad = sorted({v for v in values if v not in ("0", "1")})
        if bad:
            report.skip(where, f"tag values must be 0 or 1, got {', '.join(map(repr, bad[:3]))}")
            continue
        labels = tuple(tag for tag, value in zip(tags, values) if value == "1")
        if not labels and not keep_untagged:
            report.skip(where, f"clip {clip_id} has no tag")
            continue
        artist, album, *_ = PurePosixPath(mp3_path).stem.split("-") + ["", ""]
        records.append(
            Record(
                key=clip_id,
                path=str(audio_dir / mp3_path),
                labels=labels,
                artist=artist,
                album=album,
                split=folder_split(mp3_path) if split_by_folder else "",
            )
        )
    return records


def top_tags(records: Iterable[Record], n: int = 50) -> list[str]:
    """The ``n`` most frequent tags, most frequent first (ties by name)."""
    counts = Counter(tag for record in records for tag in record.labels)
    return [tag for tag, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]]


def keep_tags(records: Iterable[Record], tags: Iterable[str]) -> list[Record]:
    """Records restricted to ``tags`` (e.g. :func:`top_tags`); records left
    with no tag are dropped, as in the usual top-50 setup."""
    keep = set(tags)
    kept = []
    for record in records:
        labels = tuple(tag for tag in record.labels if tag in keep)
        if labels:
            kept.append(replace(record, labels=labels))
    return kept
