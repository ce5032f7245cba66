"""4Q audio emotion dataset (Panda, Malheiro and Paiva, IEEE TAFFC 2018).

Layout::

    ROOT/Q1|Q2|Q3|Q4/<Song>.<audio extension>
    ROOT/panda_dataset_taffc_metadata.csv   latin-1 or UTF-8; Song, Artist, Title,
        Quadrant, ..., MoodsStrSplit ("; "-separated AllMusic moods),
        GenresStr ("; "-separated AllMusic genres)

Quadrants of Russell's plane: Q1 +valence +arousal (happy, excited), Q2
-valence +arousal (angry, tense), Q3 -valence -arousal (sad), Q4 +valence
-arousal (calm). Folds should keep each artist on one side.
"""

from __future__ import annotations

from pathlib import Path

from trainer.datasets import DatasetError, LoadReport, Record, csv_table

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
METADATA = "panda_dataset_taffc_metadata.csv"
#: What ``labels`` can be: the quadrant, the AllMusic genres or moods.
LABEL_COLUMNS = {"quadrant": "Quadrant", "genres": "GenresStr", "moods": "MoodsStrSplit"}


def metadata_encoding(path: Path) -> str:
    """``utf-8`` when the file decodes as UTF-8, else ``latin-1``: the
    release is described as latin-1, but copies re-saved as UTF-8 exist (the
    one in shared/datasets is), and reading those as latin-1 garbles names
    (Motörhead as MotÃ¶rhead)."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(root: str | Path) -> str | None:
    """None when ``root`` holds the metadata CSV and the four quadrant
    folders, else what is missing."""
    root = Path(root)
    missing = [name for name in QUADRANTS if not (root / name).is_dir()]
    if not (root / METADATA).is_file():
        missing.insert(0, METADATA)
    if missing:
        return f"no {', '.join(missing)} (4Q layout)"
    return None


def load(root: str | Path, *, labels: str = "quadrant", report: LoadReport | None = None) -> list[Record]:
    """Records of every clip: ``labels`` is ``"quadrant"`` (one label,
    Q1..Q4), ``"genres"`` or ``"moods"`` (several, AllMusic's names).
    Rows without audio, or whose folder disagrees with their quadrant, are
    skipped and reported."""
    root = Path(root)
    if labels not in LABEL_COLUMNS:
        raise ValueError(f"labels must be one of {sorted(LABEL_COLUMNS)}, not {labels!r}")
    problem = check_layout(root)
    if problem is not None:
        raise DatasetError(f"{root}: not a 4Q layout (needs {METADATA} and folders {', '.join(QUADRANTS)}): {problem}")
    report = report if report is not None else LoadReport()
    audio = {p.stem: p for q in QUADRANTS for p in (root / q).iterdir() if p.is_file()}
    records = []
    wanted = ["Song", "Artist", "Quadrant", LABEL_COLUMNS[labels]]
    _, column, rows = csv_table(root / METADATA, required=wanted, report=report, encoding=metadata_encoding(root / METADATA))
    for _, where, fields in rows:
        song, artist, quadrant, value = (fields[column[name]] for name in wanted)
        path = audio.get(song)
        if path is None:
            report.skip(where, f"no audio file for {song}")
            continue
        if path.parent.name != quadrant:
            report.skip(where, f"{song} is in {path.parent.name}/ but its row says {quadrant}")
            continue
        values = (quadrant,) if labels == "quadrant" else tuple(v.strip() for v in value.split(";") if v.strip())
        records.append(Record(key=song, path=str(path), labels=values, artist=artist))
    return records


#: What :func:`playlists` can group the clips by.
PLAYLIST_KEYS = ("artist", "genre")


def playlists(records: list[Record], *, by: str = "artist") -> dict[str, list[str]]:
    """Playlists built from 4Q's metadata (the set has none of its own):
    name -> clip paths, in ``records``' order, keeping lists of two or more
    clips. ``by="artist"``: one list per artist (``records`` of any
    ``labels``); ``by="genre"``: one list per AllMusic genre (``records``
    loaded with ``labels="genres"``; a clip of several genres is in each)."""
    if by not in PLAYLIST_KEYS:
        raise ValueError(f"by must be one of {PLAYLIST_KEYS}, not {by!r}")
    lists: dict[str, list[str]] = {}
    for record in records:
        for name in ((record.artist,) if by == "artist" else record.labels):
            if name:
                lists.setdefault(name, []).append(record.path)
    return {name: paths for name, paths in lists.items() if len(paths) >= 2}


def write_playlists(root: str | Path, folder: str | Path, *, by: str = "artist") -> list[Path]:
    """One ``.m3u`` per playlist of :func:`playlists` over the clips of
    ``root``, written to ``folder`` (absolute paths, one per line), for the
    trainer's ``--playlists``. Returns the files written."""
    records = load(root, labels="genres" if by == "genre" else "quadrant")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (name, paths) in enumerate(sorted(playlists(records, by=by).items()), start=1):
        path = folder / f"{number:04d}.m3u"
        path.write_text(f"#EXTM3U\n#PLAYLIST:{name}\n" + "".join(f"{Path(p).resolve()}\n" for p in paths),
                        encoding="utf-8")
        written.append(path)
    return written
