"""``python -m trainer triplet``: LSI-guided triplet embeddings (the triplet paper).

Tag sets (genre, style, mood, theme...) of a dataset or a beets library are
turned into LSI vectors (:mod:`tagcore.lsi`); a DPNN on the paper's 6 s
log-mel segment (:mod:`tagcore.families.triplet`) is trained with online
triplet selection in each mini-batch so that tracks with related tags lie
close. Evaluation is section VI's: precision at k of retrieving tracks that
share each tag set, the artist and the album, among held-out tracks, on
artist-stratified folds, beside a random ranking, the MFCC-statistics
embedding and the musicnn penultimate embedding in the same run.

Data (``--data``):

- a folder of label folders (GTZAN layout): one tag set, ``genre``;
- the 4Q layout (:mod:`trainer.datasets.mood_4q`): ``genre`` (AllMusic
  genres) and ``mood`` (AllMusic moods), artists from the metadata;
- an MTG-Jamendo folder (``autotagging_genre.tsv``,
  ``autotagging_moodtheme.tsv``... with an ``audio/`` tree): ``genre``,
  ``mood`` (mood/theme) and ``instrument``; artist and album ids;
- a CSV file with a header ``path,<set>,<set>...[,artist][,album]`` (tags
  ``;``-separated, paths relative to the CSV's folder);
- ``--beets-library DB``: genres (``genres``), ``style`` (a column) and
  ``mood`` (a flexible attribute) of the user's items: the embedding learns
  the user's notion of similar.

Steps: features are decoded once per track (``--segments`` 6 s DPNN
segments at 3, 9, 15... s and a centred 30 s mel for the MFCC statistics)
and cached as one ``.npz``; folds keep each artist on one side; in every
fold the LSI model is fitted on the training tracks only, the models are
trained with early stopping on a validation part of the training tracks
(mean P@10 over the tag sets used), and every method is scored on the
fold's held-out tracks. With ``--name``, a DPNN trained on every track
(early stopping on an artist-disjoint tenth) is written as a bundle with
the figures in its config.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore import lsi
from trainer.cache import file_identity
from trainer.datasets import DatasetError, LoadReport, csv_rows

#: Tag sets the paper uses, in its order; any other name works too.
PAPER_SETS = ("genre", "style", "mood", "theme")
VARIANTS = ("dpnn", "projection", "projection-both", "mfcc-projection")
BASELINES = ("random", "mfcc", "musicnn-msd")


# --- data --------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """One track: ``tags`` maps a tag set name to its tags; ``artist`` and
    ``album`` are grouping ids (empty when unknown)."""

    key: str
    path: str
    tags: dict = field(hash=False)
    artist: str = ""
    album: str = ""


def load_gtzan(root: str | Path, *, report: LoadReport) -> list[Track]:
    from trainer.datasets import gtzan

    return [Track(r.key, r.path, {"genre": r.labels}) for r in gtzan.load(root, report=report)]


def load_4q(root: str | Path, *, report: LoadReport) -> list[Track]:
    """4Q clips with their AllMusic genres and moods (lower-cased)."""
    from trainer.datasets import mood_4q

    genres = {r.key: r for r in mood_4q.load(root, labels="genres", report=report)}
    moods = {r.key: r for r in mood_4q.load(root, labels="moods", report=LoadReport())}
    tracks = []
    for key, record in genres.items():
        tags = {"genre": tuple(t.lower() for t in record.labels),
                "mood": tuple(t.lower() for t in moods[key].labels) if key in moods else ()}
        tracks.append(Track(key, record.path, tags, artist=record.artist))
    return tracks


def load_jamendo(root: str | Path, *, report: LoadReport, audio_dir: str | None = None) -> list[Track]:
    """MTG-Jamendo full autotagging files of the genre, mood/theme and
    instrument categories found in ``root``, joined by track id."""
    from trainer.datasets import mtg_jamendo

    root = Path(root)
    merged: dict[str, Track] = {}
    for category, name in (("genre", "genre"), ("moodtheme", "mood"), ("instrument", "instrument")):
        tsv = root / f"autotagging_{category}.tsv"
        if not tsv.is_file():
            continue
        for record in mtg_jamendo.load_full(tsv, audio_dir, category=category, report=report):
            track = merged.get(record.key) or Track(record.key, record.path, {}, record.artist, record.album)
            track.tags[name] = record.labels
            merged[record.key] = track
    if not merged:
        raise DatasetError(f"{root}: no autotagging_genre/moodtheme/instrument.tsv (MTG-Jamendo layout)")
    missing = [t for t in merged.values() if not os.path.isfile(t.path)]
    for track in missing:
        report.skip(track.key, f"no audio file {track.path}")
    return [t for t in merged.values() if os.path.isfile(t.path)]


def load_csv_tracks(path: str | Path, *, report: LoadReport) -> list[Track]:
    """Tracks of a CSV with a header ``path,<set>,...[,artist][,album]``:
    every column other than path, artist and album is a tag set (tags
    ``;``-separated). Rows naming a missing file are skipped with
    ``file:line: cause``."""
    path = Path(path)
    rows = list(csv_rows(path))
    if not rows:
        raise DatasetError(f"{path}: empty")
    header = [name.strip().lower() for name in rows[0][1]]
    if not header or header[0] != "path":
        raise DatasetError(f"{path}:1: the header must start with 'path' and name the tag sets (path,genre,mood,...)")
    sets = [name for name in header[1:] if name not in ("artist", "album")]
    if not sets:
        raise DatasetError(f"{path}:1: the header names no tag set column")
    tracks, seen = [], set()
    for line, fields in rows[1:]:
        where = f"{path}:{line}"
        if len(fields) < len(header):
            fields = fields + [""] * (len(header) - len(fields))
        row = dict(zip(header, fields))
        name = row["path"].strip()
        audio = Path(name) if os.path.isabs(name) else path.parent / name
        if not name:
            report.skip(where, "no path")
        elif not audio.is_file():
            report.skip(where, f"no audio file {name}")
        elif str(audio) in seen:
            report.skip(where, f"{name} listed twice")
        else:
            seen.add(str(audio))
            tags = {s: tuple(dict.fromkeys(t.strip() for t in row[s].split(";") if t.strip())) for s in sets}
            tracks.append(Track(str(audio), str(audio), tags, row.get("artist", "").strip(), row.get("album", "").strip()))
    if not tracks:
        raise DatasetError(f"{path}: no row names an existing audio file")
    return tracks


def load_beets_tracks(db_path: str | Path, *, music_dir: str | None, report: LoadReport) -> list[Track]:
    """The library's genres (``genre``), ``style`` (column) and ``mood``
    (flexible attribute) as tag sets; artist: MusicBrainz artist id, else
    the artist name; album: the album id."""
    from trainer.datasets import beets_library

    db_path = Path(db_path)
    items = beets_library.load(db_path, music_dir=music_dir, report=report)
    styles = beets_library.column_values(db_path, column="style") or {}
    tracks = []
    for item in items:
        if not os.path.isfile(item.path):
            report.skip(f"{db_path}: item {item.id}", f"no audio file {item.path}")
            continue
        tags = {
            "genre": tuple(dict.fromkeys(item.genres)),
            "style": beets_library.split_genres(styles.get(item.id, "") or item.attributes.get("style", "")),
            "mood": beets_library.split_genres(item.attributes.get("mood", "")),
        }
        album = str(item.album_id) if item.album_id is not None else ""
        tracks.append(Track(str(item.id), item.path, tags, item.mb_artistid or item.artist, album))
    return tracks


def load_tracks(args: argparse.Namespace, report: LoadReport) -> list[Track]:
    """The tracks named by ``--data`` or ``--beets-library``."""
    from trainer.datasets import resolve

    if args.beets_library:
        return load_beets_tracks(args.beets_library, music_dir=args.music_dir, report=report)
    data = Path(args.data)
    if data.is_file():
        return load_csv_tracks(data, report=report)
    loaders = {"mood_4q": load_4q, "mtg_jamendo": load_jamendo, "gtzan": load_gtzan}
    name, _ = resolve(data, among=loaders)
    return loaders[name](data, report=report)


# --- features ----------------------------------------------------------------


def segment_params(segments: int):
    """The DPNN feature at offsets 3, 9, 15... s (``segments`` of them);
    the first is the paper's (and the bundle's) segment."""
    from tagcore.families.triplet import FEATURE

    step = FEATURE.excerpt_seconds
    return [dataclasses.replace(FEATURE, offset=FEATURE.offset + i * round(step)) for i in range(segments)]


def _decode(path, *, features, min_duration):
    from tagcore.analysis import decode_features

    return decode_features(path, features=features, min_duration=min_duration)


def compute_features(paths: Sequence[str], *, segments: int, workers: int, cache_dir: Path | None,
                     progress: bool = True) -> dict:
    """DPNN segments and MFCC statistics of every path, decoded once and
    cached in one ``.npz`` (keyed by the files' content, :func:`trainer.cache.file_identity`, and parameters).

    Returns ``{"mel": (n, segments, 130, 80) float16, "valid": (n,
    segments) bool, "mfcc": (n, 80) float32, "errors": {index: message}}``;
    a failed file has no valid segment and NaN MFCCs.
    """
    from tagcore.audio import AudioError
    from tagcore.features import MelParams, feature_key, feature_spec
    from tagcore.workers import map_files
    from trainer.baseline import mfcc_statistics_from_logmel

    params = segment_params(segments)
    mfcc_params = MelParams()  # centred 30 s, 96 bands: the MFCC baseline's input
    specs = [feature_spec(p) for p in params] + [feature_spec(mfcc_params)]
    digest = hashlib.sha256(json.dumps(specs, sort_keys=True).encode())
    for path in paths:
        digest.update(f"{file_identity(path)}\n".encode())
    cache = cache_dir or _cache_root()
    cache_file = cache / f"triplet-{digest.hexdigest()[:24]}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as data:
            return {"mel": data["mel"], "valid": data["valid"], "mfcc": data["mfcc"],
                    "errors": {int(k): v for k, v in json.loads(str(data["errors"])).items()}}
    first = params[0]
    n = len(paths)
    mel = np.zeros((n, segments, first.excerpt_frames, first.n_mels), np.float16)
    valid = np.zeros((n, segments), bool)
    mfcc = np.full((n, 80), np.nan, np.float32)
    errors: dict[int, str] = {}
    keys = [feature_key(p) for p in params]
    features = tuple(zip(keys, params)) + ((feature_key(mfcc_params), mfcc_params),)
    job = functools.partial(_decode, features=features, min_duration=1.0)
    done = 0
    for index, path, result in map_files(list(paths), job=job, workers=workers, timeout=120.0):
        done += 1
        if isinstance(result, AudioError):
            errors[index] = str(result)
            continue
        for s, key in enumerate(keys):
            value = result.features[key]
            if isinstance(value, AudioError) or len(value) == 0 or value.shape[1] < 2:
                continue
            frames = min(value.shape[1], first.excerpt_frames)
            mel[index, s, :frames] = value[0, :frames]
            valid[index, s] = True
        value = result.features[feature_key(mfcc_params)]
        if not isinstance(value, AudioError):
            mfcc[index] = mfcc_statistics_from_logmel(value[0], log_c=mfcc_params.log_c)
        if not valid[index].any():
            errors[index] = f"{path}: shorter than the 3 s offset of the DPNN segment"
        if progress and (done % 100 == 0 or done == n):
            print(f"  features: {done}/{n} files", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache_file.with_suffix(".partial.npz")
    np.savez(staging, mel=mel, valid=valid, mfcc=mfcc, errors=np.array(json.dumps(errors)))
    os.replace(staging, cache_file)
    return {"mel": mel, "valid": valid, "mfcc": mfcc, "errors": errors}


def _cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("beets-autotagml")) / "triplet-features"


# --- splits and relevance ----------------------------------------------------


def group_ids(tracks: Sequence[Track]) -> np.ndarray:
    """Artist-stratification groups: the artist, else the album, else the
    track itself. Returns int ids, shape (n,)."""
    names = [t.artist or (f"album:{t.album}" if t.album else f"track:{t.key}") for t in tracks]
    index = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return np.array([index[name] for name in names], np.int64)


def folds_description(tracks: Sequence[Track]) -> str:
    """How :func:`artist_folds` groups ``tracks``, in words for a bundle's
    metrics: artist-disjoint only when every track names its artist (a
    GTZAN folder names none, so its folds are split by track)."""
    if all(t.artist for t in tracks):
        return "artist-disjoint folds"
    if not any(t.artist or t.album for t in tracks):
        return "folds split by track (the data names no artists, so they are not artist-disjoint)"
    return "folds grouped by artist where the data names one, else by album or track"


def album_ids(tracks: Sequence[Track], *, fallback_artist: bool) -> np.ndarray:
    """Album ids for the album filter, -1 where unknown. With
    ``fallback_artist``, tracks without an album use their artist (a
    stricter filter: no pair of one artist)."""
    names = [t.album or (f"artist:{t.artist}" if fallback_artist and t.artist else "") for t in tracks]
    index = {name: i for i, name in enumerate(dict.fromkeys(n for n in names if n))}
    return np.array([index[name] if name else -1 for name in names], np.int64)


def artist_folds(tracks: Sequence[Track], *, folds: int, seed: int, stratify: str) -> np.ndarray:
    """Fold of each track (0..folds-1), from :func:`trainer.splits.group_folds`:
    an artist's tracks (:func:`group_ids`) stay in one fold, stratified by
    each track's first tag of ``stratify`` (none: a class of its own)."""
    from trainer import splits

    first = [(track.tags.get(stratify) or ("",))[0] for track in tracks]
    test = splits.group_folds(y=first, groups=group_ids(tracks), k=folds, seed=seed)
    return splits.fold_numbers(folds=test, n=len(tracks))


def artist_hold_out(tracks: Sequence[Track], *, share: float, seed: int, stratify: str) -> tuple[np.ndarray, np.ndarray]:
    """(validation, train) indices of ``tracks``: about ``share`` of them
    held out by whole artists, stratified as :func:`artist_folds` (a
    stratified :func:`trainer.splits.group_split`)."""
    from trainer import splits

    first = [(track.tags.get(stratify) or ("",))[0] for track in tracks]
    train, val = splits.group_split(y=first, groups=group_ids(tracks), shares=(1 - share, share), seed=seed)
    return val, train


def relevance(tracks: Sequence[Track], *, kinds: Sequence[str]) -> dict[str, np.ndarray]:
    """(n, n) bool matrices: ``relevant[i, j]`` when tracks i and j share a
    tag of the set (or the artist / album, for ``"artist"`` / ``"album"``);
    the diagonal is False. Rows of tracks without the tag set are all
    False (they are not queries)."""
    out = {}
    n = len(tracks)
    for kind in kinds:
        if kind in ("artist", "album"):
            values = [getattr(t, kind) for t in tracks]
            matrix = np.array([[bool(a) and a == b for b in values] for a in values], bool).reshape(n, n)
        else:
            sets = [set(t.tags.get(kind, ())) for t in tracks]
            matrix = np.array([[bool(a & b) for b in sets] for a in sets], bool).reshape(n, n)
        np.fill_diagonal(matrix, False)
        out[kind] = matrix
    return out


def precision_at_k(embeddings: np.ndarray, relevant: np.ndarray, *, k: int) -> tuple[float, int]:
    """Mean precision at ``k`` of cosine retrieval among the rows of
    ``embeddings`` (the query itself excluded), over the queries with at
    least one relevant track; ``k`` is clipped to n - 1. Returns (P@k,
    number of queries)."""
    x = lsi.l2_normalise(np.asarray(embeddings, np.float32))
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    queries = np.flatnonzero(relevant.any(axis=1))
    if len(queries) == 0:
        return float("nan"), 0
    k = max(1, min(k, len(x) - 1))
    top = np.argsort(-scores[queries], axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant[queries], top, axis=1)
    return float(hits.mean()), int(len(queries))


def lsi_similarity(tracks: Sequence[Track], *, sets: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, (kept, kept) LSI cosine relatedness) of the tracks with
    a tag in every set of ``sets`` (section IV-B-1), LSI fitted on them."""
    kept = np.array(lsi.tracks_with_every_set([t.tags for t in tracks], sets=sets), np.int64)
    if len(kept) < 3:
        raise DatasetError(f"only {len(kept)} track(s) have a tag in every set of {', '.join(sets)}")
    matrix, _ = lsi.tag_track_matrix([tracks[i].tags for i in kept], sets=sets)
    model = lsi.fit_lsi(matrix, k=k)
    return kept, lsi.relatedness(model.track_vectors)


# --- training ----------------------------------------------------------------


@dataclass
class TrainOptions:
    epochs: int = 60
    patience: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 600
    seed: int = 0


def _inputs(data, indices: np.ndarray, segments: np.ndarray | None):
    """Model inputs of ``indices``: the chosen segment's mel (DPNN) or the
    backbone embedding (projection)."""
    import torch

    if data.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(data[indices], np.float32))
    seg = np.zeros(len(indices), np.int64) if segments is None else segments
    return torch.from_numpy(data[indices, seg].astype(np.float32))


def embed_all(model, data: np.ndarray, indices: np.ndarray, *, chunk: int = 128,
              valid: np.ndarray | None = None) -> np.ndarray:
    """Embeddings of ``indices``, (n, 256). Mel data: the first segment (the
    paper's, at 3 s), or with ``valid`` ((tracks, segments) bool) the
    l2-normalised mean over each track's valid segments."""
    from tagcore.families import triplet

    if valid is not None and data.ndim == 4:
        total = np.zeros((len(indices), model.config.embedding_dim), np.float32)
        for s in range(data.shape[1]):
            part = np.concatenate([
                triplet.embed(model, _inputs(data, indices[i:i + chunk], np.full(len(indices[i:i + chunk]), s))).numpy()
                for i in range(0, len(indices), chunk)
            ])
            total += part * valid[indices, s][:, None]
        return lsi.l2_normalise(total)
    out = []
    for start in range(0, len(indices), chunk):
        out.append(triplet.embed(model, _inputs(data, indices[start:start + chunk], None)).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.embedding_dim), np.float32)


def train_embedder(config, data: np.ndarray, valid: np.ndarray | None, train: np.ndarray, similarity: np.ndarray,
                   albums: np.ndarray, *, val: np.ndarray, val_relevant: dict[str, np.ndarray],
                   options: TrainOptions, log=print):
    """Train a :class:`tagcore.families.triplet.Model` with online triplet
    selection, on the shared loop (:func:`trainer.loop.fit`, on the CPU).

    ``train``: indices of the training tracks into ``data``; ``similarity``:
    their (len(train), len(train)) LSI relatedness; ``albums``: album ids of
    the training tracks (-1 unknown). Adam; each epoch a permutation of the
    training tracks and, per track, one of its valid segments (``valid``,
    DPNN only), both from one numpy stream seeded by ``options.seed``; the
    triplets are mined in each batch (:func:`trainer.triplet_mining.loss`).
    Early stopping on the mean P@10 over ``val_relevant`` ((len(val),
    len(val)) bool matrices over the pool ``val``, whose rows without a
    relevant track are not queries: a few validation tracks query the pool
    of validation and training tracks), best weights kept; without a
    validation signal, every epoch is trained and the last one kept.
    Returns (model, history list of dicts, best epoch); each history row
    has ``loss`` (the mean over batches), ``triplets``, ``skipped_anchors``
    and ``val_p10``.
    """
    import torch

    from tagcore.families import triplet
    from trainer import triplet_mining
    from trainer.loop import Identity, LoopConfig, StreamBatches, fit

    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    model = triplet.Model(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sim = torch.from_numpy(np.asarray(similarity, np.float32))
    album_t = torch.from_numpy(np.asarray(albums, np.int64))
    batch = max(2, min(options.batch_size, len(train)))
    # A validation signal exists when some pool track has a relevant one
    # (precision_at_k has queries): it does not depend on the model.
    signal = len(val) > 1 and any(np.asarray(rel).any() for rel in val_relevant.values())
    epoch_stats = {"losses": [], "triplets": 0, "skipped": 0}

    def collate(items) -> tuple[torch.Tensor, torch.Tensor]:
        local = np.asarray(items)  # positions in ``train``
        segments = None
        if valid is not None:
            choices = [np.flatnonzero(valid[train[i]]) for i in local]
            segments = np.array([rng.choice(c) if len(c) else 0 for c in choices], np.int64)
        return _inputs(data, train[local], segments), torch.from_numpy(local)

    def loss_fn(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        value, chosen = triplet_mining.loss(
            z, sim[idx][:, idx], margin=config.margin, groups=album_t[idx],
            positive_threshold=config.positive_threshold, negative_threshold=config.negative_threshold,
            mining=config.mining,
        )
        epoch_stats["losses"].append(float(value.detach()))
        epoch_stats["triplets"] += len(chosen)
        epoch_stats["skipped"] += chosen.skipped
        return value

    def evaluate(m) -> dict[str, float]:
        if not signal:
            return {"val_p10": float("nan")}
        z = embed_all(m, data, val)
        scores = [p for p in (precision_at_k(z, rel, k=10)[0] for rel in val_relevant.values()) if np.isfinite(p)]
        return {"val_p10": float(np.mean(scores)) if scores else float("nan")}

    def on_epoch(optimizer, history: list[dict]) -> None:
        row = history[-1]
        losses = epoch_stats["losses"]
        row.update(loss=float(np.mean(losses)) if losses else 0.0, triplets=epoch_stats["triplets"],
                   skipped_anchors=epoch_stats["skipped"])
        epoch_stats.update(losses=[], triplets=0, skipped=0)
        if log:
            log(f"    epoch {row['epoch']}: loss {row['loss']:.4f}, {row['triplets']} triplets, "
                f"{row['skipped_anchors']} anchors skipped, val P@10 {row['val_p10']:.3f}")

    loop = LoopConfig(epochs=options.epochs, batch_size=batch, monitor="val_p10", mode="max", seed=options.seed,
                      patience=options.patience if signal else options.epochs + 1, device="cpu", precision="fp32",
                      log_every=0, label="triplet", progress=False)
    result = fit(model, optimizer=optimiser, train_set=Identity(len(train)), collate=collate, loss_fn=loss_fn,
                 evaluate=evaluate, config=loop, on_epoch=on_epoch,
                 batch_sampler=StreamBatches(np.arange(len(train)), batch_size=batch, rng=rng))
    model.eval()
    return model, result.history, result.best_epoch if signal else len(result.history)


def train_selected(config, data, segments, train, similarity, albums, *, val, val_relevant, options,
                   batch_sizes: Sequence[int]):
    """:func:`train_embedder` once per batch size, keeping the model whose
    best validation P@10 is highest (the first listed on a tie; a single
    size is simply trained). Returns (model, history, best epoch, batch
    size, {batch size: best validation P@10})."""
    best = None
    val_scores: dict[int, float] = {}
    for size in batch_sizes:
        model, history, best_epoch = train_embedder(
            config, data, segments, train, similarity, albums, val=val, val_relevant=val_relevant,
            options=dataclasses.replace(options, batch_size=size), log=None,
        )
        finite = [h["val_p10"] for h in history if np.isfinite(h["val_p10"])]
        val_scores[size] = max(finite) if finite else float("nan")
        ranking = max(finite) if finite else -1.0  # a size without a validation score ranks last
        if best is None or ranking > best[0]:
            best = (ranking, model, history, best_epoch, size)
    _, model, history, best_epoch, size = best
    return model, history, best_epoch, size, val_scores


def _batch_sizes(text) -> list[int]:
    sizes = [int(b) for b in str(text).split(",") if b.strip()]
    if not sizes or min(sizes) < 2:
        raise DatasetError(f"--batch-size wants sizes of at least 2 tracks, got {text!r}")
    return sizes


# --- the experiment ----------------------------------------------------------


def _combos(sets: Sequence[str]) -> list[tuple[str, ...]]:
    return [c for r in range(1, len(sets) + 1) for c in itertools.combinations(sets, r)]


def _ks(text: str) -> list[int]:
    if ":" in text:  # start:stop:step
        start, stop, step = (int(v) for v in text.split(":"))
        return list(range(start, stop + 1, step))
    return [int(v) for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="GTZAN-layout folder, 4Q folder, MTG-Jamendo folder, or a CSV path,<set>,...")
    source.add_argument("--beets-library", help="a beets library database: genres, style and mood as tag sets")
    parser.add_argument("--music-dir", help="with --beets-library: the library directory, for relative paths")
    parser.add_argument("--sets", help="tag sets for the LSI, comma-separated (default: every set the data has)")
    parser.add_argument("--combos", action="store_true", help="train on every combination of --sets (section VI)")
    parser.add_argument("--k", default="40", help="LSI topics: N, a list N,M or a sweep START:STOP:STEP (e.g. 10:200:10)")
    parser.add_argument("--variants", default="dpnn",
                        help="models to train: dpnn (the paper's, on log-mel), projection (on musicnn-msd's "
                             "embedding), projection-both (on musicnn-msd's and musicnn-mtt's, each l2-normalised, "
                             "side by side), mfcc-projection (on the MFCC statistics; cheap, for sweeps)")
    parser.add_argument("--mining", default="hard", help="hard, paper or both (see docs/models/triplet.md)")
    parser.add_argument("--margin", type=float, default=0.2, help="alpha of equation 2 (on l2-normalised embeddings)")
    parser.add_argument("--channels", default="8,16,32,128", help="DPNN conv widths per stack (last: half the 256)")
    parser.add_argument("--segments", type=int, default=4, help="6 s training segments per track (3, 9, 15, 21 s...)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", default="600",
                        help="tracks per mini-batch (the paper: 600); a list (16,600) trains each and keeps, per fold "
                             "and for the bundle, the one with the best validation P@10 (never the test tracks)")
    parser.add_argument("--folds", type=int, default=5, help="artist-disjoint folds (0: no evaluation)")
    parser.add_argument("--runs", type=int, help="evaluate on this many of the folds (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--musicnn-patches", type=int, default=2,
                        help="3 s patches averaged into the musicnn-msd embedding (2: what autotag-ml stores)")
    parser.add_argument("--no-musicnn", action="store_true", help="skip the musicnn-msd baseline and projection")
    parser.add_argument("--name", help="write a DPNN bundle of this name trained on every track")
    parser.add_argument("--version", default="1")
    parser.add_argument("--bundle-patches", type=int, default=4,
                        help="6 s patches of the bundle's centred excerpt, embeddings averaged (1: the paper's "
                             "single segment at 3 s)")
    parser.add_argument("--out", help="bundle directory (default: user data dir/bundles/NAME)")
    parser.add_argument("--report-dir", help="report folder (default: runs/triplet-<data name>)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--cache-dir", help="feature cache folder (default: the user cache dir)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def _table(rows: list[dict], kinds: list[str], ks: list[int]) -> str:
    head = "| method | tag sets | k | mining | " + " | ".join(f"{kind} P@{k}" for kind in kinds for k in ks) + " |"
    lines = [head, "|" + " --- |" * (4 + len(kinds) * len(ks))]
    for row in rows:
        cells = []
        for kind in kinds:
            for k in ks:
                mean = row["scores"].get(f"{kind}@{k}")
                std = row["scores"].get(f"{kind}@{k}_std")
                cells.append("" if mean is None or np.isnan(mean) else f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {row['method']} | {row.get('sets', '')} | {row.get('k', '')} | {row.get('mining', '')} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class _Inputs:
    """The decoded tracks and their inputs: ``mel`` (tracks, segments, ...)
    and ``valid`` (tracks, segments) bool for the DPNN, ``mfcc`` (tracks,
    dims) statistics, ``musicnn`` patches -> (tracks, dims) embeddings, or
    None without the musicnn baseline; ``musicnn_both`` the same for both
    backbones (:func:`both_backbones`)."""

    tracks: list[Track]
    mel: np.ndarray
    valid: np.ndarray
    mfcc: np.ndarray
    musicnn: dict[int, np.ndarray] | None
    musicnn_both: dict[int, np.ndarray] | None = None


def both_backbones(msd: np.ndarray, mtt: np.ndarray) -> np.ndarray:
    """musicnn-msd's and musicnn-mtt's track embeddings, (tracks, d1) and
    (tracks, d2), each l2-normalised and set side by side: (tracks, d1 + d2).
    The cosine of two such rows is the mean of the two backbones' cosines,
    so neither backbone outweighs the other by its scale."""
    return np.concatenate([lsi.l2_normalise(msd), lsi.l2_normalise(mtt)], axis=1) / np.sqrt(2.0)


@dataclass
class _Plan:
    """What the command runs: the tag ``sets`` (the first stratifies the
    folds), the set ``combos`` with the LSI ranks of each, the mining
    strategies and model variants, the relevance ``kinds`` and the k of
    P@k scored, and the training options."""

    sets: list[str]
    ks_lsi: list[int]
    combos: list[tuple[str, ...]]
    combo_ks: dict[tuple[str, ...], list[int]]
    minings: list[str]
    variants: list[str]
    kinds: list[str]
    eval_ks: list[int]
    albums: np.ndarray
    channels: tuple[int, ...]
    batch_sizes: list[int]
    options: TrainOptions

    def trainings(self):
        """(combo, k, mining, variant) of every model trained in a fold, in order."""
        return [(c, k, m, v) for c in self.combos for k in self.combo_ks[c] for m in self.minings for v in self.variants]


@dataclass
class _Tally:
    """The scores of every method, fold after fold, and what the learned
    ones chose (best epoch, batch size)."""

    fold_scores: dict[str, list[dict]] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    best_epochs: dict[str, list[int]] = field(default_factory=dict)
    chosen_batches: dict[str, list[dict]] = field(default_factory=dict)

    def record(self, method_key: str, info: dict, scores: dict) -> None:
        self.meta.setdefault(method_key, info)
        self.fold_scores.setdefault(method_key, []).append(scores)

    def results(self) -> dict[str, dict]:
        """Per method: its description, the mean and standard deviation of
        each score over the folds (NaN where no fold has a finite one), the
        folds, the best epochs and the chosen batch sizes."""
        results = {}
        for key, runs_scores in self.fold_scores.items():
            summary = {}
            for metric in runs_scores[0]:
                values = np.array([r[metric] for r in runs_scores], float)
                summary[metric] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
                summary[f"{metric}_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
            results[key] = {**self.meta[key], "scores": summary, "folds": len(runs_scores),
                            "best_epochs": self.best_epochs.get(key)}
            base = key.removesuffix("|segments")
            if base in self.chosen_batches:
                results[key]["batch_sizes"] = self.chosen_batches[base]
        return results


def _tagged_tracks(args: argparse.Namespace) -> tuple[list[Track], list[str]]:
    """The tracks with tags of the chosen sets (``--sets``, default every
    set in the data) and those sets; the skipped ones are printed."""
    report = LoadReport()
    tracks = load_tracks(args, report)
    for line in report.skipped[:20]:
        print(f"skipped {line}", file=sys.stderr)
    if len(report.skipped) > 20:
        print(f"... and {len(report.skipped) - 20} more skipped", file=sys.stderr)
    available = [s for s in dict.fromkeys(s for t in tracks for s, v in t.tags.items() if v)]
    sets = [s.strip() for s in args.sets.split(",")] if args.sets else available
    unknown = [s for s in sets if s not in available]
    if unknown:
        raise DatasetError(f"no track has tags of set(s) {', '.join(unknown)} (the data has {', '.join(available)})")
    tracks = [t for t in tracks if any(t.tags.get(s) for s in sets)]
    print(f"{len(tracks)} tracks with tags of {', '.join(sets)}")
    return tracks, sets


def _decoded_inputs(args: argparse.Namespace, tracks: list[Track]) -> _Inputs:
    """The features (and the musicnn embeddings unless ``--no-musicnn``) of
    ``tracks``; tracks that fail to decode are left out."""
    paths = [t.path for t in tracks]
    features = compute_features(paths, segments=args.segments, workers=args.workers,
                                cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    for _index, message in sorted(features["errors"].items())[:20]:
        print(f"skipped {message}", file=sys.stderr)
    ok = np.array([i not in features["errors"] for i in range(len(tracks))])
    musicnn = both = None
    if not args.no_musicnn:
        from trainer.embeddings import backbone_outputs

        outputs = backbone_outputs(paths, bundles=["musicnn-msd", "musicnn-mtt"], patches=10, workers=args.workers)
        msd, mtt = outputs["musicnn-msd"], outputs["musicnn-mtt"]
        patch_counts = sorted({args.musicnn_patches, 10})
        musicnn = {p: msd.track_embeddings(patches=p) for p in patch_counts}
        both = {p: both_backbones(musicnn[p], mtt.track_embeddings(patches=p)) for p in patch_counts}
        ok &= msd.ok & mtt.ok
    keep = np.flatnonzero(ok)
    if musicnn:
        musicnn = {p: e[keep] for p, e in musicnn.items()}
        both = {p: e[keep] for p, e in both.items()}
    inputs = _Inputs(tracks=[tracks[i] for i in keep], mel=features["mel"][keep], valid=features["valid"][keep],
                     mfcc=features["mfcc"][keep], musicnn=musicnn, musicnn_both=both)
    print(f"{len(inputs.tracks)} tracks decoded")
    return inputs


def _make_plan(args: argparse.Namespace, inputs: _Inputs, sets: list[str]) -> _Plan:
    """The plan of the command from its options; DatasetError on an unknown
    variant (or ``projection`` without the musicnn baseline)."""
    tracks = inputs.tracks
    ks_lsi = _ks(args.k)
    combos = _combos(sets) if args.combos else [tuple(sets)]
    # k beyond a combination's vocabulary is that vocabulary (fit_lsi clips it): run it once.
    combo_ks = {}
    for combo in combos:
        vocabulary = len({(s, tag) for t in tracks for s in combo for tag in t.tags.get(s, ())})
        combo_ks[combo] = sorted({min(k, vocabulary) for k in ks_lsi})
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or ({"projection", "projection-both"} & set(variants) and inputs.musicnn is None):
        raise DatasetError(f"variants must be among {VARIANTS} (projection needs the musicnn baseline): {bad or variants}")
    kinds = list(sets) + [kind for kind in ("artist", "album") if any(getattr(t, kind) for t in tracks)]
    has_album = any(t.album for t in tracks)
    batch_sizes = _batch_sizes(args.batch_size)
    return _Plan(
        sets=sets, ks_lsi=ks_lsi, combos=combos, combo_ks=combo_ks, minings=list(MINING_CHOICES[args.mining]),
        variants=variants, kinds=kinds, eval_ks=[5, 10, 100], albums=album_ids(tracks, fallback_artist=not has_album),
        channels=tuple(int(c) for c in args.channels.split(",")), batch_sizes=batch_sizes,
        options=TrainOptions(epochs=args.epochs, patience=args.patience, lr=args.lr, batch_size=batch_sizes[0],
                             seed=args.seed),
    )


def _scorer(test_relevant: dict[str, np.ndarray], eval_ks: Sequence[int], n_test: int):
    """score(z) -> {"<kind>@<k>": P@k} of test embeddings z (n_test, dims).
    P@k with k at or above the candidates (n_test - 1) is the base rate for
    every method: left out (NaN)."""

    def score(z: np.ndarray) -> dict:
        out = {}
        for kind, rel in test_relevant.items():
            for k in eval_ks:
                out[f"{kind}@{k}"] = precision_at_k(z, rel, k=k)[0] if k < n_test - 1 else float("nan")
        return out

    return score


def _score_baselines(args, inputs: _Inputs, fold: int, train: np.ndarray, test: np.ndarray, score, tally: _Tally) -> None:
    """A random embedding, the z-scored MFCC statistics and the musicnn
    embeddings, scored on the fold's test tracks."""
    rng = np.random.default_rng(args.seed + fold)
    tally.record("random", {"method": "random"}, score(rng.standard_normal((len(test), 256))))
    mfcc = inputs.mfcc
    mean, std = np.nanmean(mfcc[train], axis=0), np.nanstd(mfcc[train], axis=0) + 1e-6
    tally.record("mfcc", {"method": "MFCC statistics (z-scored)"}, score((mfcc[test] - mean) / std))
    if inputs.musicnn:
        for p, e in inputs.musicnn.items():
            tally.record(f"musicnn-msd-{p}", {"method": f"musicnn-msd penultimate ({p} patches)"}, score(e[test]))
        for p, e in (inputs.musicnn_both or {}).items():
            tally.record(f"musicnn-both-{p}", {"method": f"musicnn-msd + musicnn-mtt penultimate ({p} patches)"},
                         score(e[test]))


def _train_and_score(args, inputs: _Inputs, plan: _Plan, split: tuple[np.ndarray, np.ndarray, np.ndarray],
                     training: tuple, *, fold: int, score, tally: _Tally) -> None:
    """Train one model (``training``: combo, k, mining, variant) on the
    fold's (train, val, test) ``split`` with LSI relatedness fitted on its
    training tracks, and score it on the test tracks."""
    from tagcore.families import triplet

    train, val, test = split
    combo, k, mining, variant = training
    tracks = inputs.tracks
    kept_local, similarity = lsi_similarity([tracks[i] for i in train], sets=combo, k=k)
    train_kept = train[kept_local]
    # Validation queries retrieve among validation + training tracks.
    pool = np.concatenate([val, train_kept])
    val_rel = relevance([tracks[i] for i in pool], kinds=list(combo))
    for matrix in val_rel.values():
        matrix[len(val):] = False
    if variant == "dpnn":
        config = triplet.Config(channels=plan.channels, margin=args.margin, mining=mining)
        data, segs = inputs.mel, inputs.valid
    else:
        emb = {"projection": (inputs.musicnn or {}).get(args.musicnn_patches),
               "projection-both": (inputs.musicnn_both or {}).get(args.musicnn_patches)}.get(variant)
        emb = np.nan_to_num(inputs.mfcc) if emb is None else emb
        config = triplet.Config(input_dim=emb.shape[1], margin=args.margin, mining=mining)
        data, segs = emb, None
    started = time.perf_counter()
    model, history, best_epoch, batch_size, val_scores = train_selected(
        config, data, segs, train_kept, similarity, plan.albums[train_kept], val=pool,
        val_relevant=val_rel, options=dataclasses.replace(plan.options, seed=args.seed + fold),
        batch_sizes=plan.batch_sizes,
    )
    key = f"{variant}|{'+'.join(combo)}|{k}|{mining}"
    tally.chosen_batches.setdefault(key, []).append({"chosen": batch_size, "validation_p10": val_scores})
    label = {"dpnn": "DPNN (from scratch)", "projection": "projection of musicnn-msd",
             "projection-both": "projection of musicnn-msd + musicnn-mtt",
             "mfcc-projection": "projection of MFCC statistics"}[variant]
    scores = score(embed_all(model, data, test))
    tally.record(key, {"method": label, "sets": "+".join(combo), "k": k, "mining": mining}, scores)
    if variant == "dpnn" and args.segments > 1:
        # The mean over the track's 6 s segments (what a patched bundle gives).
        tally.record(key + "|segments", {"method": f"DPNN, mean of {args.segments} segments",
                                         "sets": "+".join(combo), "k": k, "mining": mining},
                     score(embed_all(model, data, test, valid=inputs.valid)))
    tally.best_epochs.setdefault(key, []).append(best_epoch)
    first = plan.sets[0]
    print(f"  {key}: batch {batch_size} (validation P@10 "
          + ", ".join(f"{b}: {v:.3f}" for b, v in val_scores.items())
          + f"), best epoch {best_epoch}, {time.perf_counter() - started:.0f} s, "
          f"test {first} P@5 {scores.get(f'{first}@5', float('nan')):.3f}, "
          f"skipped anchors/epoch {history[0]['skipped_anchors']}", flush=True)


def _cross_validate(args, inputs: _Inputs, plan: _Plan) -> dict[str, dict]:
    """Every method on artist-stratified folds (``--folds``, the first
    ``--runs`` of them); returns the results per method (_Tally.results)."""
    tracks = inputs.tracks
    tally = _Tally()
    folds = artist_folds(tracks, folds=args.folds, seed=args.seed, stratify=plan.sets[0])
    runs = args.runs or args.folds
    for fold in range(runs):
        test = np.flatnonzero(folds == fold)
        rest = np.flatnonzero(folds != fold)
        # A validation tenth of the training artists, for early stopping only.
        val, train = artist_hold_out([tracks[i] for i in rest], share=0.1, seed=args.seed + 1 + fold,
                                     stratify=plan.sets[0])
        val, train = rest[val], rest[train]
        print(f"fold {fold + 1}/{runs}: {len(train)} train, {len(val)} validation, {len(test)} test tracks")
        score = _scorer(relevance([tracks[i] for i in test], kinds=plan.kinds), plan.eval_ks, len(test))
        _score_baselines(args, inputs, fold, train, test, score, tally)
        for training in plan.trainings():
            _train_and_score(args, inputs, plan, (train, val, test), training, fold=fold, score=score, tally=tally)
    return tally.results()


def _write_report(args, report_dir: Path, results: dict[str, dict], plan: _Plan, *, name: str, tracks: int) -> None:
    """results.json (the command, the data, the folds, the versions, every
    method's figures) and table.md in ``report_dir``; the table is printed."""
    import torch

    table = _table(list(results.values()), plan.kinds, plan.eval_ks)
    print(table)
    command = "python -m trainer triplet " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["triplet"] else sys.argv[1:])
    summary = {"command": command, "data": name, "tracks": tracks, "sets": plan.sets, "kinds": plan.kinds,
               "folds": args.folds, "runs": args.runs or args.folds, "eval_ks": plan.eval_ks,
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "python": platform.python_version(), "torch": torch.__version__, "results": results}
    (report_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (report_dir / "table.md").write_text(f"`{command}`\n\n{table}\n", encoding="utf-8")
    print(f"report: {report_dir}")


def run(args: argparse.Namespace) -> dict:
    """The command: load and decode the tracks, cross-validate every method
    (``--folds``; report in ``--report-dir``), then with ``--name`` write a
    bundle trained on every track. Returns the results per method."""
    import torch

    torch.set_num_threads(max(1, args.threads))
    tracks, sets = _tagged_tracks(args)
    inputs = _decoded_inputs(args, tracks)
    plan = _make_plan(args, inputs, sets)
    name = Path(args.data).name if args.data else "beets"
    report_dir = Path(args.report_dir or Path("runs") / f"triplet-{name}")
    report_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    if args.folds:
        results = _cross_validate(args, inputs, plan)
        _write_report(args, report_dir, results, plan, name=name, tracks=len(inputs.tracks))
    if args.name:
        _write_bundle(args, inputs.tracks, sets, plan.ks_lsi[0], plan.minings[0], inputs.mel, inputs.valid,
                      plan.albums, plan.channels, plan.options, results)
    return results


MINING_CHOICES = {"hard": ("hard",), "paper": ("paper",), "both": ("hard", "paper")}


def _write_bundle(args, tracks, sets, k, mining, mel, valid, albums, channels, options, results) -> Path:
    """A DPNN on every track (early stopping on an artist-disjoint tenth),
    saved as a bundle with the cross-validated figures in config.json."""

    from tagcore.bundle import save_bundle, user_bundle_dir
    from tagcore.families import triplet
    from tagcore.features import feature_spec

    val, train = artist_hold_out(tracks, share=0.1, seed=args.seed + 99, stratify=sets[0])
    kept_local, similarity = lsi_similarity([tracks[i] for i in train], sets=sets, k=k)
    train = train[kept_local]
    config = triplet.Config(channels=channels, margin=args.margin, mining=mining)
    print(f"final DPNN: {len(train)} train, {len(val)} validation tracks")
    pool = np.concatenate([val, train])
    val_rel = relevance([tracks[i] for i in pool], kinds=list(sets))
    for matrix in val_rel.values():
        matrix[len(val):] = False
    model, history, best_epoch, batch_size, val_scores = train_selected(
        config, mel, valid, train, similarity, albums[train], val=pool, val_relevant=val_rel, options=options,
        batch_sizes=_batch_sizes(args.batch_size),
    )
    print(f"final DPNN: batch {batch_size} (validation P@10 {val_scores}), best epoch {best_epoch}")
    out = Path(args.out) if args.out else user_bundle_dir() / args.name
    command = "python -m trainer triplet " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["triplet"] else sys.argv[1:])
    wanted = results
    patches = max(1, args.bundle_patches)
    feature = triplet.FEATURE if patches == 1 else dataclasses.replace(
        triplet.FEATURE, excerpt_frames=patches * triplet.FEATURE.excerpt_frames,
        patch_frames=triplet.FEATURE.excerpt_frames, offset=None)
    save_bundle(
        out, model=model, family="triplet", name=args.name, version=args.version, labels=None,
        model_config=config.to_dict(), task="embedding",
        input={"kind": "audio", "feature": feature_spec(feature)}, outputs=["embedding"],
        embedding_dim=config.embedding_dim,
        provenance={"patches": patches, "excerpt": "the paper's 6 s segment at 3 s" if patches == 1 else
                    f"{patches} x 6 s patches of a centred excerpt, embeddings averaged","data": Path(args.data).name if args.data else "beets library", "tracks": len(tracks),
                    "tag_sets": list(sets), "lsi_topics": k, "mining": mining, "command": command,
                    "best_epoch": best_epoch, "batch_size": batch_size,
                    "batch_size_validation_p10": {str(b): round(v, 4) for b, v in val_scores.items()},
                    "trained": dt.date.today().isoformat(),
                    "paper": "Schindler & Knees 2019, Multi-Task Music Representation Learning from Multi-Label Embeddings"},
        metrics={"held_out_retrieval": {key: {"method": r["method"], "folds": r["folds"],
                                              "scores": {m: round(v, 4) for m, v in r["scores"].items()
                                                         if np.isfinite(v)}}
                                        for key, r in wanted.items()},
                 "how": f"P@k among held-out tracks of {folds_description(tracks)} (trainer/triplet.py)"},
    )
    print(f"bundle: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer.triplet`` (the same as ``python -m trainer triplet``)."""
    parser = argparse.ArgumentParser(prog="python -m trainer triplet", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
