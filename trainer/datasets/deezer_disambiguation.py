"""Supporting data of Hennequin, Royo-Letelier & Moussallam (2018), "Audio
based disambiguation of music genre tags" (Deezer; no audio).

Layout, one folder per task (taxonomy_learning, deduplication,
mumu_discogs_translation), files present vary by task::

    TASK/f{w,c,m,dist}_tag_similarity.csv   square tag x tag similarity
        ,aor,abstract,...            (fm files write "tag" in the corner)
        aor,1.0,0.31,...
    TASK/f{w,m}_tag_embedding.csv           one column per tag, one row per dimension
        aor,abstract,...
        -0.10,0.11,...
    TASK/fdist_tag_embedding.csv.zip        the same, gzip-compressed despite the name
    TASK/dataset/{test,validation}.csv      audio segments of Deezer songs
        sng_id,label,seg_start,seg_duration
        4770452,Prog Rock,87.6722,30

Matrix tags are lower case (``aor``); segment labels keep their case (``AOR``):
:func:`tag_name` maps one to the other. Files of one task list the same tags
in different orders (fm sorts them case-insensitively): align them with
:func:`reorder`. Empty similarity cells are NaN.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from trainer.datasets import DatasetError, LoadReport, column_index, csv_rows, open_text


class TagMatrix(NamedTuple):
    """``values[i]`` belongs to ``labels[i]``: a similarity row (square
    matrix, float64) or a tag's embedding vector (float32)."""

    labels: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True)
class Segment:
    """An audio segment of a Deezer song: ``start`` and ``duration`` in
    seconds, ``label`` the tag it illustrates (segment spelling)."""

    sng_id: int
    label: str
    start: float
    duration: float


@dataclass(frozen=True, eq=False)
class Task:
    """One task folder: similarity and embedding matrices by method (fw, fc,
    fm, fdist), segment lists by split (test, validation)."""

    name: str
    similarities: dict[str, TagMatrix]
    segments: dict[str, list[Segment]]
    embeddings: dict[str, TagMatrix] = field(default_factory=dict)


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(task_dir: str | Path) -> str | None:
    """None when ``task_dir`` holds a similarity matrix or a segment list,
    else what is missing."""
    task_dir = Path(task_dir)
    if any(task_dir.glob("f*_tag_similarity.csv")) or any(task_dir.glob("dataset/*.csv")):
        return None
    return "no f*_tag_similarity.csv or dataset/*.csv (Deezer disambiguation task folder)"


def tag_name(label: str) -> str:
    """Matrix spelling of a segment label (``Prog Rock`` -> ``prog rock``)."""
    return label.lower()


def reorder(matrix: TagMatrix, labels: tuple[str, ...] | list[str], *, columns: bool) -> TagMatrix:
    """``matrix`` with its rows in the order of ``labels``, and its columns
    too when ``columns`` (similarities: True; embeddings: False, even when
    they happen to be square). Raises DatasetError naming labels it lacks."""
    position = {label: i for i, label in enumerate(matrix.labels)}
    missing = [label for label in labels if label not in position]
    if missing:
        raise DatasetError(f"labels not in the matrix: {', '.join(missing[:5])}")
    order = [position[label] for label in labels]
    values = matrix.values[order]
    return TagMatrix(tuple(labels), values[:, order] if columns else values)


def _floats(path: Path, rows: list[tuple[int, list[str]]], width: int, dtype) -> np.ndarray:
    values = np.empty((len(rows), width), dtype=dtype)
    for i, (number, cells) in enumerate(rows):
        if len(cells) != width:
            raise DatasetError(f"{path}:{number}: expected {width} values, got {len(cells)}")
        try:
            values[i] = [float(cell) if cell.strip() else np.nan for cell in cells]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from None
    return values


def load_similarity(path: str | Path) -> TagMatrix:
    """A square similarity CSV (tags as header and index). Raises
    DatasetError naming the file when it is not square, the header differs
    from the index, or a cell is not a number."""
    path = Path(path)
    rows = list(csv_rows(path))
    if not rows:
        raise DatasetError(f"{path}: empty")
    header = tuple(rows[0][1][1:])
    index = tuple(cells[0] for _, cells in rows[1:])
    if len(index) != len(header):
        raise DatasetError(f"{path}: not square: {len(index)} rows, {len(header)} columns")
    if index != header:
        i = next(i for i, (a, b) in enumerate(zip(index, header)) if a != b)
        raise DatasetError(f"{path}:{i + 2}: row label {index[i]!r} differs from column label {header[i]!r}")
    values = _floats(path, [(number, cells[1:]) for number, cells in rows[1:]], len(header), np.float64)
    return TagMatrix(header, values)


def load_embedding(path: str | Path) -> TagMatrix:
    """An embedding CSV (header: tags; one row per dimension), gzip or
    plain whatever its name. Returns one float32 row per tag."""
    path = Path(path)
    with open_text(path) as handle:
        header = tuple(next(csv.reader([handle.readline()]), []))
        try:
            values = np.loadtxt(handle, delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError:
            values = None  # ragged or empty cells: re-read slowly to name the line
    if not header:
        raise DatasetError(f"{path}: empty")
    if values is None or values.shape[1] != len(header):
        values = _floats(path, list(csv_rows(path))[1:], len(header), np.float32)
    return TagMatrix(header, np.ascontiguousarray(values.T))


def load_segments(path: str | Path, *, report: LoadReport | None = None) -> list[Segment]:
    """Segments of a ``dataset/*.csv`` file; malformed rows are skipped and
    listed in ``report`` as ``file:line: cause``."""
    report = report if report is not None else LoadReport()
    rows = csv_rows(path)
    _, header = next(rows, (1, []))
    column = column_index(path, header, ("sng_id", "label", "seg_start", "seg_duration"))
    segments = []
    for number, cells in rows:
        try:
            segments.append(
                Segment(
                    sng_id=int(cells[column["sng_id"]]),
                    label=cells[column["label"]].strip(),
                    start=float(cells[column["seg_start"]]),
                    duration=float(cells[column["seg_duration"]]),
                )
            )
        except (ValueError, IndexError) as exc:
            report.skip(f"{path}:{number}", f"bad segment row ({exc})")
    return segments


def load(task_dir: str | Path, *, embeddings: bool = False, report: LoadReport | None = None) -> Task:
    """Every similarity matrix and segment list of one task folder (and its
    embeddings with ``embeddings=True``: the fdist one is 250 x 82,304).
    Raises DatasetError when the folder holds neither."""
    task_dir = Path(task_dir)
    similarities = {
        p.name.split("_tag_")[0]: load_similarity(p) for p in sorted(task_dir.glob("f*_tag_similarity.csv"))
    }
    segments = {p.stem: load_segments(p, report=report) for p in sorted(task_dir.glob("dataset/*.csv"))}
    if not similarities and not segments:
        raise DatasetError(f"{task_dir}: no f*_tag_similarity.csv or dataset/*.csv (Deezer disambiguation task)")
    found = {}
    if embeddings:
        found = {p.name.split("_tag_")[0]: load_embedding(p) for p in sorted(task_dir.glob("f*_tag_embedding.csv*"))}
    return Task(task_dir.name, similarities, segments, found)
