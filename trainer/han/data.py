"""The HAN trainer's data: albums (or playlists) with their selected,
tokenized reviews, the fixed split, the kept labels, the skip-gram vectors
and the vocabulary (appendix A.1, steps 1 to 3 of :mod:`trainer.han`)."""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore import reviews as R
from tagcore import text as T
from tagcore.families import han
from trainer import splits
from trainer.datasets import DatasetError, LoadReport


@dataclass
class Album:
    """One album (or playlist): its kept reviews, their tokens, its labels."""

    key: str
    reviews: list[str]
    tokens: list[list[str]]
    labels: tuple[str, ...]


def load_albums(path: str | Path, *, min_tokens: int, max_reviews: int, report: LoadReport) -> tuple[list[Album], str]:
    """Albums of an RMSC folder, a JSONL file or the NetEase CSV, with
    their reviews selected (:func:`tagcore.reviews.select_reviews`) and
    tokenized. Returns the albums and the layout name."""
    path = Path(path)
    raw: list[tuple[str, list[R.Review], tuple[str, ...]]] = []
    if path.is_file() and (path.suffix.lower() in (".jsonl", ".json") or path.name.endswith(".jsonl.gz")):
        layout = "jsonl"
        raw = read_jsonl(path, report=report)
    else:
        from trainer.datasets import resolve

        try:
            layout, dataset = resolve(path, among=("rmsc", "netease"))
        except DatasetError as exc:
            raise DatasetError(f"{exc}, nor a .jsonl file") from None
        for entry in dataset.load(path, report=report):
            if layout == "rmsc":
                raw.append((entry.key, [R.Review(c.text, c.votes) for c in entry.comments], entry.labels))
            else:
                texts = [entry.title, *han.split_reviews(entry.description, unit="sentence")]
                raw.append((entry.key, [R.Review(t) for t in texts if t.strip()], entry.labels))
    albums = []
    for key, reviews, labels in raw:
        kept = R.select_reviews(reviews, top=max_reviews, min_tokens=min_tokens)
        albums.append(Album(key, [r.text for r in kept], [T.tokenize(r.text) for r in kept], labels))
    return albums, layout


def read_jsonl(path: Path, *, report: LoadReport) -> list[tuple[str, list[R.Review], tuple[str, ...]]]:
    """``{"texts": [...], "labels": [...]}`` per line (optional ``votes``,
    ``key``); bad lines are skipped into ``report``."""
    from trainer.datasets import open_text

    out = []
    with open_text(path) as handle:
        for line, row in enumerate(handle, start=1):
            if not row.strip():
                continue
            where = f"{path}:{line}"
            try:
                data = json.loads(row)
            except json.JSONDecodeError as exc:
                report.skip(where, f"invalid JSON ({exc.msg})")
                continue
            texts, labels = (data.get("texts"), data.get("labels")) if isinstance(data, dict) else (None, None)
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                report.skip(where, "'texts' must be a list of strings")
                continue
            if not isinstance(labels, list) or not labels or not all(isinstance(l, str) and l.strip() for l in labels):
                report.skip(where, "'labels' must be a non-empty list of strings")
                continue
            votes = data.get("votes") or [None] * len(texts)
            if not isinstance(votes, list) or len(votes) != len(texts):
                report.skip(where, "'votes' must be a list as long as 'texts'")
                continue
            reviews = [R.Review(t, v if isinstance(v, int) else None) for t, v in zip(texts, votes)]
            out.append((str(data.get("key", f"line {line}")), reviews, tuple(dict.fromkeys(l.strip() for l in labels))))
    if not out:
        raise DatasetError(f"{path}: no usable line (each: {{\"texts\": [...], \"labels\": [...]}})")
    return out


def choose_labels(albums: Sequence[Album], *, min_count: int, max_share: float) -> list[str]:
    """Labels of at least ``min_count`` and at most ``max_share`` of the
    (training) albums, most frequent first."""
    counts = Counter(label for album in albums for label in set(album.labels))
    n = max(1, len(albums))
    return [l for l, c in counts.most_common() if c >= min_count and c / n <= max_share]


def label_matrix(albums: Sequence[Album], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    y = np.zeros((len(albums), len(labels)), dtype=np.float32)
    for row, album in enumerate(albums):
        for label in album.labels:
            if label in index:
                y[row, index[label]] = 1.0
    return y


def _stable_hash(text: str) -> int:
    """gensim's word-vector seeding hash, stable across processes (Python's
    own ``hash`` of a string changes with PYTHONHASHSEED)."""
    return zlib.crc32(text.encode("utf-8"))


def skipgram_vectors(documents: Sequence[Sequence[str]], *, dim: int, epochs: int, seed: int) -> dict[str, np.ndarray]:
    """Skip-gram (word2vec ``sg=1``, window 5, 5 negative samples, every
    word) vectors trained on ``documents`` (token lists), one worker so
    the result depends on ``seed`` only."""
    from gensim.models import Word2Vec

    model = Word2Vec(sentences=[list(d) for d in documents if d], vector_size=dim, sg=1, window=5, min_count=1,
                     negative=5, workers=1, seed=seed, epochs=epochs, hashfxn=_stable_hash)
    return {word: model.wv[word] for word in model.wv.index_to_key}


def encode(album: Album, vocabulary: T.Vocabulary, *, max_words: int) -> np.ndarray:
    rows = [ids for ids in (vocabulary.encode(tokens)[:max_words] for tokens in album.tokens) if ids]
    if not rows:
        return np.zeros((1, 1), dtype=np.int64)
    return T.pad_ids(rows, length=max(len(r) for r in rows))


def album_vectors(albums: Sequence[Album], vectors: dict[str, np.ndarray], *, dim: int) -> np.ndarray:
    """A.2's music representation: the mean of the review vectors, each the
    mean of its words' vectors (words without a vector skipped; zeros when
    none has one). Shape (n_albums, dim)."""
    out = np.zeros((len(albums), dim), dtype=np.float32)
    for i, album in enumerate(albums):
        reviews = [np.mean([vectors[t] for t in toks if t in vectors], axis=0) for toks in album.tokens
                   if any(t in vectors for t in toks)]
        if reviews:
            out[i] = np.mean(reviews, axis=0)
    return out


@dataclass
class Prepared:
    """Everything the models share: the split, labels, vocabulary, vectors."""

    layout: str
    albums: list[Album]
    labels: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    y: np.ndarray
    vocabulary: T.Vocabulary
    embeddings: np.ndarray
    coverage: float
    ids: list[np.ndarray]
    vectors: np.ndarray  # album vectors for the A.2 baselines
    dropped: dict



def prepare(args, *, log=print) -> Prepared:
    """Everything the models of a run share, from the command's options:
    albums loaded and filtered, one fixed split (``--split-seed``), the
    kept labels, albums left without one dropped, the skip-gram vectors,
    the vocabulary and every album's word ids."""
    albums, layout, too_few, skipped = _load_selected(args, log=log)
    shares = [float(v) for v in args.split.split(",")]
    if len(shares) != 3:
        raise ValueError("--split needs three fractions summing to 1")
    # A fixed random split of the albums into train, validation, test.
    train, val, test = splits.group_split(n=len(albums), shares=shares, seed=args.split_seed)
    labels = choose_labels([albums[i] for i in train], min_count=args.min_label_count, max_share=args.max_label_share)
    if not labels:
        raise DatasetError(f"{args.data}: no label is on at least {args.min_label_count} training albums")
    y_all = label_matrix(albums, labels)
    keep = y_all.any(1)
    train, val, test = _renumber(keep, (train, val, test))
    dropped = {"too_few_reviews": too_few, "no_kept_label": int((~keep).sum()), "skipped_rows": skipped}
    albums = [a for a, k in zip(albums, keep) if k]
    log(f"{layout}: {len(albums)} albums ({len(train)} train / {len(val)} validation / {len(test)} test), "
        f"{len(labels)} labels; dropped {dropped}")
    train_docs = [tokens for i in train for tokens in albums[i].tokens]
    vocabulary = T.Vocabulary.build(train_docs, min_count=args.min_word_count, max_size=args.vocab_size)
    started = time.monotonic()
    vectors = skipgram_vectors(train_docs, dim=args.embed_dim, epochs=args.w2v_epochs, seed=args.split_seed)
    matrix, coverage = T.embedding_matrix(vocabulary, vectors, dim=args.embed_dim, seed=args.split_seed)
    log(f"skip-gram on {len(train_docs)} training reviews: {len(vectors)} words in {time.monotonic() - started:.1f} s; "
        f"vocabulary {len(vocabulary)} ({coverage:.0%} with a vector)")
    ids = [encode(a, vocabulary, max_words=args.max_words) for a in albums]
    kept_vectors = {t: vectors[t] for t in vocabulary.tokens[2:] if t in vectors}
    return Prepared(layout, albums, labels, train, val, test, y_all[keep], vocabulary, matrix, coverage, ids,
                    album_vectors(albums, kept_vectors, dim=args.embed_dim), dropped)


def _load_selected(args, *, log=print) -> tuple[list[Album], str, int, int]:
    """The albums of ``--data`` with at least ``--min-reviews`` kept reviews
    (default: 5 for RMSC, else 1), their layout, how many had fewer and how
    many rows were skipped (the first 20 logged)."""
    report = LoadReport()
    albums, layout = load_albums(args.data, min_tokens=args.min_tokens, max_reviews=args.max_reviews, report=report)
    for message in report.skipped[:20]:
        log(f"skipped {message}")
    if len(report.skipped) > 20:
        log(f"... {len(report.skipped) - 20} more rows skipped")
    min_reviews = args.min_reviews if args.min_reviews is not None else (5 if layout == "rmsc" else 1)
    kept = [a for a in albums if len(a.reviews) >= min_reviews]
    return kept, layout, len(albums) - len(kept), len(report.skipped)


def _renumber(keep: np.ndarray, parts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Index arrays into all albums -> into the albums ``keep`` (bool, one
    per album) keeps; dropped albums leave their part."""
    remap = -np.ones(len(keep), dtype=int)
    remap[keep] = np.arange(int(keep.sum()))
    return tuple(remap[s][remap[s] >= 0] for s in parts)
