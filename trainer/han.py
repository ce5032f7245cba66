"""``python -m trainer han``: review-driven multi-label styles (seed 000).

Data (``--data``):

- a folder of RMSC album JSON files (:mod:`trainer.datasets.rmsc`): the
  reviews are the album's short comments, ranked by votes;
- a JSONL file, one album per line: ``{"texts": [...], "labels": [...]}``
  (optional ``"votes": [...]`` beside ``texts``);
- the NetEase playlist CSV (:mod:`trainer.datasets.netease`): one text per
  playlist, mapped onto reviews as its title followed by the sentences of
  its description (``Config.review_unit = "sentence"``; docs/models/han.md).

Pipeline (appendix A.1 and A.2):

1. reviews: low-information ones dropped, the 40 most voted kept
   (:func:`tagcore.reviews.select_reviews`), albums with fewer than
   ``--min-reviews`` dropped; tokens by :func:`tagcore.text.tokenize`;
2. one fixed split (``--split-seed``, ``--split`` fractions) into
   training, validation and test; labels kept when at least
   ``--min-label-count`` training albums carry them and at most
   ``--max-label-share`` of them do (a tag every album has carries no
   information); albums left without a kept label are dropped;
3. skip-gram vectors (gensim, ``sg=1``) on the training reviews only; the
   vocabulary (training words seen ``--min-word-count`` times, at most
   ``--vocab-size``) initialises the embedding table with them;
4. per seed: the HAN ablation (HAN, + label graph, + soft training, + soft
   targets at temperature ``--temperature``, the literal regulariser),
   the CNN and hierarchical LSTM through the shared loop
   (:func:`trainer.loop.fit`, best validation micro-F1 kept), and BR, CC,
   LP, ML-KNN, MLP on album vectors; every model's decision threshold p
   tuned on validation; figures on the test split;
5. the variant with the best mean *validation* micro-F1 is written as a
   bundle (its seed ``--seeds[0]`` model), with its test figures, the
   label table and the label-graph heatmap (G - I, like Figure 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tagcore import reviews as R
from tagcore import text as T
from tagcore.families import han
from trainer import metrics, splits
from trainer.datasets import DatasetError, LoadReport

THRESHOLDS = tuple(round(v, 2) for v in np.arange(0.05, 0.951, 0.05))
#: Ablation rows: name -> Config changes (docs/models/han.md).
VARIANTS = {
    "HAN": dict(label_graph=False, soft_weight=0.0, identity_weight=0.0),
    "+label graph": dict(label_graph=True, soft_weight=0.0),
    "+soft training": dict(label_graph=True, soft_weight=1.0),
    "+soft targets (T)": dict(label_graph=True, soft_weight=1.0),  # temperature set from --temperature
    "literal regulariser": dict(label_graph=True, soft_weight=1.0),  # identity weight negated
}
BASELINES = ("ML-KNN", "Binary Relevance", "Classifier Chains", "Label Powerset", "MLP", "CNN", "LSTM")

#: NetEase Cloud Music's tags: Chinese -> English name and the task each
#: serves (NetEase files them under 语种 language, 风格 style, 场景 scene,
#: 情感 emotion and 主题 theme; emotions go to ``mood``, the rest stay
#: ``style``, as beets has no scene or theme field).
NETEASE_LABELS = {
    # 风格 style
    "流行": ("Pop", "style"), "摇滚": ("Rock", "style"), "民谣": ("Folk", "style"),
    "电子": ("Electronic", "style"), "舞曲": ("Dance", "style"), "说唱": ("Hip Hop", "style"),
    "轻音乐": ("Easy Listening", "style"), "爵士": ("Jazz", "style"), "乡村": ("Country", "style"),
    "R&B/Soul": ("R&B", "style"), "古典": ("Classical", "style"), "民族": ("Chinese Folk", "style"),
    "蓝调": ("Blues", "style"), "世界音乐": ("World", "style"), "古风": ("Gufeng", "style"),
    "后摇": ("Post-Rock", "style"), "Bossa Nova": ("Bossa Nova", "style"), "朋克": ("Punk", "style"),
    "另类/独立": ("Alternative", "style"), "器乐": ("Instrumental", "style"), "吉他": ("Guitar", "style"),
    # 情感 emotion -> mood
    "伤感": ("Sad", "mood"), "治愈": ("Soothing", "mood"), "浪漫": ("Romantic", "mood"),
    "怀旧": ("Nostalgic", "mood"), "放松": ("Relaxing", "mood"), "孤独": ("Lonely", "mood"),
    "思念": ("Longing", "mood"), "快乐": ("Happy", "mood"), "安静": ("Calm", "mood"),
    "感动": ("Touching", "mood"), "清新": ("Fresh", "mood"), "兴奋": ("Excited", "mood"),
    "性感": ("Sexy", "mood"),
    # 场景 scene and 主题 theme: kept as styles (tags beets users search for)
    "夜晚": ("Night", "style"), "翻唱": ("Cover", "style"), "经典": ("Classic", "style"),
    "网络歌曲": ("Internet Song", "style"), "影视原声": ("Soundtrack", "style"), "90后": ("1990s Kids", "style"),
    "00后": ("2000s Kids", "style"), "80后": ("1980s Kids", "style"), "70后": ("1970s Kids", "style"),
    "驾车": ("Driving", "style"), "旅行": ("Travel", "style"), "榜单": ("Chart", "style"),
    "学习": ("Study", "style"), "散步": ("Walking", "style"), "综艺": ("Variety Show", "style"),
    "KTV": ("Karaoke", "style"), "运动": ("Workout", "style"), "工作": ("Work", "style"),
    "下午茶": ("Afternoon Tea", "style"), "酒吧": ("Bar", "style"), "清晨": ("Morning", "style"),
    "校园": ("Campus", "style"), "游戏": ("Game", "style"), "地铁": ("Subway", "style"),
    "ACG": ("Anime", "style"),
    # 语种 language
    "华语": ("Mandarin", "style"), "粤语": ("Cantonese", "style"), "欧美": ("Western", "style"),
    "韩语": ("Korean", "style"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.loop import add_loop_arguments

    parser.add_argument("--data", help="RMSC album folder, JSONL file, or NetEase playlist CSV")
    parser.add_argument("--name", default="style-netease", help="bundle name")
    parser.add_argument("--version", default="1", help="bundle version")
    parser.add_argument("--out", help="bundle directory (default: user data dir/bundles/NAME)")
    parser.add_argument("--run-dir", help="report folder (default: runs/NAME)")
    parser.add_argument("--seeds", default="0,1,2", help="model seeds (the split stays fixed)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--split", default="0.7,0.15,0.15", help="train,validation,test fractions")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="ablation rows to train (comma-separated)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help="baselines to run ('' for none)")
    parser.add_argument("--min-reviews", type=int, help="drop albums with fewer kept reviews (RMSC: 5, else 1)")
    parser.add_argument("--min-tokens", type=int, default=R.MIN_TOKENS, help="tokens a review needs to be kept")
    parser.add_argument("--max-reviews", type=int, default=40)
    parser.add_argument("--max-words", type=int, default=100)
    parser.add_argument("--min-label-count", type=int, default=10, help="training albums a label needs")
    parser.add_argument("--max-label-share", type=float, default=0.95, help="drop labels on more training albums")
    parser.add_argument("--min-word-count", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=135_000)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--w2v-epochs", type=int, default=20, help="skip-gram passes over the training reviews")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=2.0, help="soft-target temperature of its ablation row")
    parser.add_argument("--identity-weight", type=float, default=1e-3, help="weight of ||G - I||^2")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--knn-k", type=int, default=10)
    parser.add_argument("--summarise", nargs="+", metavar="RUN_DIR",
                        help="only print the table of the runs.jsonl of these run folders (runs split over processes)")
    parser.add_argument("--figure", help="with --summarise and --ship: the heatmap of G - I (Figure 2) of the bundle "
                                         "with a label graph whose variant has the best mean validation micro-F1")
    parser.add_argument("--ship", nargs="+", metavar="BUNDLE",
                        help="with --summarise and --out: copy the bundle (of those given) whose variant has the best "
                             "mean validation micro-F1 in the combined table to --out, the table in its metrics")
    add_loop_arguments(parser)
    parser.set_defaults(batch_size=128, epochs=100, patience=15)


# --- data -------------------------------------------------------------------


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
    report = LoadReport()
    albums, layout = load_albums(args.data, min_tokens=args.min_tokens, max_reviews=args.max_reviews, report=report)
    for message in report.skipped[:20]:
        log(f"skipped {message}")
    if len(report.skipped) > 20:
        log(f"... {len(report.skipped) - 20} more rows skipped")
    min_reviews = args.min_reviews if args.min_reviews is not None else (5 if layout == "rmsc" else 1)
    few = [a for a in albums if len(a.reviews) < min_reviews]
    albums = [a for a in albums if len(a.reviews) >= min_reviews]
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
    remap = -np.ones(len(albums), dtype=int)
    remap[keep] = np.arange(int(keep.sum()))
    train, val, test = (remap[s][remap[s] >= 0] for s in (train, val, test))
    dropped = {"too_few_reviews": len(few), "no_kept_label": int((~keep).sum()), "skipped_rows": len(report.skipped)}
    albums = [a for a, k in zip(albums, keep) if k]
    y = y_all[keep]
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
    return Prepared(layout, albums, labels, train, val, test, y, vocabulary, matrix, coverage, ids,
                    album_vectors(albums, kept_vectors, dim=args.embed_dim), dropped)


# --- evaluation -------------------------------------------------------------


def scores_at(y: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Section 5.1's figures of probabilities (n, m) at one threshold."""
    decisions = probs >= threshold
    return {"micro_f1": metrics.micro_f1(y_true=y, y_pred=decisions),
            "macro_f1": metrics.macro_f1(y_true=y, y_pred=decisions),
            "one_error": metrics.one_error(y_true=y, scores=probs),
            "hamming_loss": metrics.hamming_loss(y_true=y, y_pred=decisions)}


def tune_threshold(y_val: np.ndarray, probs_val: np.ndarray, *, grid: Sequence[float] = THRESHOLDS) -> float:
    """The p of ``grid`` with the best validation micro-F1 (the lowest on ties)."""
    values = [metrics.micro_f1(y_true=y_val, y_pred=probs_val >= p) for p in grid]
    return float(grid[int(np.argmax(values))])


def evaluate_probs(p: Prepared, probs: np.ndarray) -> dict:
    """Threshold tuned on validation, figures on test (and validation)."""
    threshold = tune_threshold(p.y[p.val], probs[p.val])
    out = {"threshold": threshold, **scores_at(p.y[p.test], probs[p.test], threshold)}
    out["val_micro_f1"] = metrics.micro_f1(y_true=p.y[p.val], y_pred=probs[p.val] >= threshold)
    return out


# --- models trained by the shared loop --------------------------------------


class AlbumSet(torch.utils.data.Dataset):
    def __init__(self, ids: Sequence[np.ndarray], y: np.ndarray):
        self.ids, self.y = ids, y

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.y[i]


def collate(batch):
    return han.collate_albums([b[0] for b in batch]), torch.from_numpy(np.stack([b[1] for b in batch]))


def _compact(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, reviews, words) -> every album's words in one row, padding
    moved to the end: (batch, reviews * words) and the lengths (batch,)."""
    flat = ids.reshape(ids.shape[0], -1)
    order = torch.argsort((flat == T.PAD_ID).to(torch.int8), dim=1, stable=True)
    return torch.gather(flat, 1, order), (flat != T.PAD_ID).sum(1)


class CNN(nn.Module):
    """A.2's CNN: an album's words in one sequence (the first
    ``max_tokens``), two convolution layers each with kernels of widths 2,
    3 and 4 (ReLU, ``hidden`` channels per width), max over time, linear to
    the labels (sigmoid in the loss)."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, hidden: int, kernels=(2, 3, 4), max_tokens: int = 400):
        super().__init__()
        self.max_tokens = max_tokens
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(embeddings), freeze=False, padding_idx=0)
        dim = embeddings.shape[1]
        self.first = nn.ModuleList(nn.Conv1d(dim, hidden, k, padding=k // 2) for k in kernels)
        self.second = nn.ModuleList(nn.Conv1d(hidden * len(kernels), hidden, k, padding=k // 2) for k in kernels)
        self.output = nn.Linear(hidden * len(kernels), n_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        words, lengths = _compact(ids)
        lengths = lengths.clamp_max(self.max_tokens)
        words = words[:, : max(1, int(lengths.max()))]
        x = self.embedding(words).transpose(1, 2)
        steps = x.shape[2]
        x = torch.cat([F.relu(conv(x))[..., :steps] for conv in self.first], dim=1)
        x = torch.cat([F.relu(conv(x))[..., :steps] for conv in self.second], dim=1)
        mask = torch.arange(steps, device=x.device)[None, None, :] < lengths.clamp_min(1)[:, None, None]
        return self.output(x.masked_fill(~mask, float("-inf")).amax(dim=2))


class HierarchicalLSTM(nn.Module):
    """A.2's LSTM: a word-level LSTM's last state per review, a
    review-level LSTM's last state per album, linear to the labels."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(embeddings), freeze=False, padding_idx=0)
        self.words = nn.LSTM(embeddings.shape[1], hidden, batch_first=True)
        self.reviews = nn.LSTM(hidden, hidden, batch_first=True)
        self.output = nn.Linear(hidden, n_labels)
        self.hidden = hidden

    @staticmethod
    def _last(lstm, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = lstm(packed)
        return h[-1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        batch, n_reviews, n_words = ids.shape
        lengths = (ids != 0).sum(-1)
        present = lengths > 0
        flat = ids.reshape(-1, n_words)[present.reshape(-1)]
        vectors = self._last(self.words, self.embedding(flat), lengths.reshape(-1)[present.reshape(-1)])
        reviews = vectors.new_zeros(batch * n_reviews, self.hidden)
        reviews[present.reshape(-1)] = vectors
        reviews = reviews.reshape(batch, n_reviews, -1)
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)
        reviews = torch.gather(reviews, 1, order[..., None].expand_as(reviews))
        return self.output(self._last(self.reviews, reviews, present.sum(1).clamp_min(1)))


@torch.inference_mode()
def predict_ids(model: nn.Module, ids: Sequence[np.ndarray], *, batch: int = 256) -> np.ndarray:
    """Sigmoid of the model's logits for every album, (n, n_labels)."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(han.collate_albums(ids[s : s + batch]).to(device))).float().cpu().numpy()
           for s in range(0, len(ids), batch)]
    return np.concatenate(out)


def train_network(p: Prepared, model: nn.Module, loss_fn: Callable, args, *, seed: int, name: str, log=print):
    """Train ``model`` on the training albums through :func:`trainer.loop.fit`,
    keeping the epoch of the best validation micro-F1 (A.1), p tuned on
    validation at each epoch; returns the FitResult."""
    from trainer.loop import fit, loop_config

    val_ids, val_y = [p.ids[i] for i in p.val], p.y[p.val]

    def evaluate(m):
        # Micro-F1 at the best p of the grid: at a fixed p = 0.2 it stays
        # flat while every label but the commonest is below p, and early
        # stopping would end the run before the ranking is used.
        probs = predict_ids(m, val_ids)
        p_best = tune_threshold(val_y, probs)
        return {"val_micro_f1": metrics.micro_f1(y_true=val_y, y_pred=probs >= p_best), "val_p": p_best,
                "val_micro_f1_at_0.2": metrics.micro_f1(y_true=val_y, y_pred=probs >= 0.2)}

    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    config = replace(loop_config(args, seed=seed, name=slug), monitor="val_micro_f1", mode="max", log_every=0,
                     label=name)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr)
    result = fit(model, optimizer=optimizer, train_set=AlbumSet([p.ids[i] for i in p.train], p.y[p.train]),
                 collate=collate, loss_fn=loss_fn, evaluate=evaluate, config=config)
    model.to("cpu")
    log(f"{name}: best epoch {result.best_epoch} (validation micro-F1 {result.best_value:.3f}), "
        f"{len(result.history)} epochs in {result.seconds:.0f} s")
    return result


def han_config(p: Prepared, args, variant: str) -> han.Config:
    changes = dict(VARIANTS[variant])
    extra = {"identity_weight": args.identity_weight}
    if variant == "+soft targets (T)":
        extra["temperature"] = args.temperature
    if variant == "literal regulariser":
        extra["identity_weight"] = -abs(args.identity_weight)
    extra.update(changes)
    return han.Config(vocabulary=list(p.vocabulary.tokens), n_labels=len(p.labels), embed_dim=args.embed_dim,
                      hidden=args.hidden, attention_dim=args.hidden, max_reviews=args.max_reviews,
                      max_words=args.max_words, review_unit="sentence" if p.layout == "netease" else "paragraph",
                      **extra)


def prior_bias(y_train: np.ndarray) -> torch.Tensor:
    """log-odds of each label's training frequency, (m,): the output bias
    that makes an untrained network predict the base rates."""
    share = np.clip(np.asarray(y_train, dtype=np.float64).mean(0), 1e-3, 1 - 1e-3)
    return torch.from_numpy(np.log(share / (1 - share))).float()


def new_han(p: Prepared, config: han.Config, seed: int) -> han.Model:
    """A HAN with the skip-gram vectors in its embedding table and the
    output bias at the training labels' log-odds."""
    torch.manual_seed(seed)
    model = han.Model(config)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(p.embeddings))
        model.output.bias.copy_(prior_bias(p.y[p.train]))
    return model


# --- the A.2 baselines on album vectors ----------------------------------------


def ml_knn(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, k: int = 10, s: float = 1.0) -> np.ndarray:
    """ML-KNN (Zhang & Zhou 2007) with Euclidean neighbours and Laplace
    smoothing ``s``: the posterior P(label | number of the k neighbours
    carrying it) for every test item, shape (n_test, m)."""
    y_train = np.asarray(y_train, dtype=bool)
    n, m = y_train.shape
    k = min(k, n - 1)

    def neighbours(a: np.ndarray, b: np.ndarray, exclude_self: bool) -> np.ndarray:
        d = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
        if exclude_self:
            np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    prior = (s + y_train.sum(0)) / (2 * s + n)
    counts = y_train[neighbours(x_train, x_train, True)].sum(1)  # (n, m): neighbours with each label
    with_label = np.zeros((k + 1, m))
    without = np.zeros((k + 1, m))
    for j in range(k + 1):
        hit = counts == j
        with_label[j] = (hit & y_train).sum(0)
        without[j] = (hit & ~y_train).sum(0)
    p_with = (s + with_label) / (s * (k + 1) + with_label.sum(0))
    p_without = (s + without) / (s * (k + 1) + without.sum(0))
    test_counts = y_train[neighbours(x_test, x_train, False)].sum(1)
    cols = np.arange(m)[None, :]
    a = prior * p_with[test_counts, cols]
    b = (1 - prior) * p_without[test_counts, cols]
    return a / (a + b)


def label_powerset(x_train, y_train, x_test, *, seed: int) -> np.ndarray:
    """Label powerset: one multinomial logistic regression over the label
    sets seen in training; a label's score is the summed probability of
    the sets holding it, (n_test, m)."""
    from trainer.linear import logistic_regression

    sets, classes = np.unique(np.asarray(y_train, dtype=np.int8), axis=0, return_inverse=True)
    # x_train comes standardised (vector_baseline): no second scaling.
    clf = logistic_regression(x=x_train, y=classes.ravel(), scale=False, seed=seed, max_iter=2000)
    return clf.predict_proba(x_test) @ sets[clf.classes_].astype(float)


def vector_baseline(name: str, p: Prepared, *, seed: int, k: int) -> np.ndarray:
    """Probabilities (n_albums, m) of an A.2 baseline fitted on the training
    album vectors (standardised with the training mean and deviation)."""
    from sklearn.multioutput import ClassifierChain, MultiOutputClassifier
    from sklearn.neural_network import MLPClassifier

    from trainer.linear import logistic_regression_model

    mean, std = p.vectors[p.train].mean(0), p.vectors[p.train].std(0) + 1e-6
    x = (p.vectors - mean) / std
    xt, yt = x[p.train], p.y[p.train].astype(int)
    if name == "ML-KNN":
        return ml_knn(xt, yt, x, k=k)
    if name == "Binary Relevance":
        clf = MultiOutputClassifier(logistic_regression_model(scale=False, max_iter=2000)).fit(xt, yt)
        return np.stack([est.predict_proba(x)[:, 1] for est in clf.estimators_], axis=1)
    if name == "Classifier Chains":
        chain = logistic_regression_model(scale=False, max_iter=2000)
        clf = ClassifierChain(chain, order="random", random_state=seed).fit(xt, yt)
        return clf.predict_proba(x)
    if name == "Label Powerset":
        return label_powerset(xt, yt, x, seed=seed)
    if name == "MLP":
        clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, early_stopping=True, random_state=seed).fit(xt, yt)
        return clf.predict_proba(x)
    raise ValueError(f"unknown baseline {name!r}")


# --- the run ----------------------------------------------------------------


def summarise(runs: Sequence[dict]) -> dict:
    """mean and std (ddof 1) of each numeric figure over seeds, plus the runs."""
    out: dict = {"seeds": len(runs), "runs": list(runs)}
    for key in ("micro_f1", "macro_f1", "one_error", "hamming_loss", "threshold", "val_micro_f1", "epochs", "seconds"):
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return out


def summarise_dirs(run_dirs: Sequence[str | Path]) -> dict:
    """The table (:func:`summarise` per model) of the ``runs.jsonl`` files
    of several run folders: one experiment split over processes."""
    runs: dict[str, list[dict]] = {}
    for directory in run_dirs:
        path = Path(directory) / "runs.jsonl"
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                runs.setdefault(row.pop("model"), []).append(row)
    order = [*VARIANTS, *BASELINES]
    return {name: summarise(runs[name]) for name in sorted(runs, key=lambda n: order.index(n) if n in order else 99)}


def ship(bundles: Sequence[str | Path], table: dict, out: Path, *, runs: Sequence[str]) -> str:
    """Copy to ``out`` the bundle among ``bundles`` whose variant has the
    best mean validation micro-F1 in ``table`` (never a test figure), with
    the combined table in its ``metrics``. Returns the variant."""
    import shutil
    import tempfile

    from tagcore.bundle import CONFIG_FILE, read_config

    candidates = []
    for bundle in bundles:
        path, config = read_config(bundle)
        variant = config.get("metrics", {}).get("variant")
        if variant not in table:
            raise DatasetError(f"{path}: its variant {variant!r} is not in the runs' table")
        candidates.append((table[variant]["val_micro_f1"]["mean"], variant, path, config))
    _, variant, path, config = max(candidates, key=lambda c: c[0])
    config["metrics"]["ablation_mean_std"] = {name: {k: v for k, v in row.items() if k != "runs"}
                                              for name, row in table.items()}
    config["metrics"]["ablation_runs"] = [Path(r).name for r in runs]
    config["provenance"]["shipped_by"] = command_line()
    config["provenance"]["command"] = portable(config["provenance"].get("command", ""))
    out = Path(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copy2(path / "weights.safetensors", staging / "weights.safetensors")
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        for name in ("weights.safetensors", CONFIG_FILE):
            (staging / name).chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return variant


def graph_figure(bundles: Sequence[str | Path], table: dict, path: Path) -> str:
    """Figure 2 for the best (mean validation micro-F1) of ``bundles``
    that learned a label graph: G - I, labels by their English names (or
    Chinese and English with a CJK font). Returns the PNG path or why none."""
    from safetensors.torch import load_file

    from tagcore.bundle import read_config

    graphs = []
    for bundle in bundles:
        directory, config = read_config(bundle)
        variant = config.get("metrics", {}).get("variant")
        if config["model"].get("label_graph") and variant in table:
            graphs.append((table[variant]["val_micro_f1"]["mean"], variant, directory, config))
    if not graphs:
        return "skipped: no bundle with a label graph"
    _, variant, directory, config = max(graphs, key=lambda g: g[0])
    graph = load_file(str(directory / "weights.safetensors"))["graph"].numpy()
    names = config.get("label_names") or {}
    shown = [f"{l} {names.get(l, l)}" if cjk_font() else names.get(l, l) for l in config["labels"]]
    seed = config.get("metrics", {}).get("seed", 0)
    return label_graph_png(path, graph, shown, title=f"Learned label graph G - I ({variant}, seed {seed})")


def portable(command: str) -> str:
    """``command`` with absolute paths cut to their last two parts, so no
    path of the training machine lands in a bundle."""
    parts = []
    for word in shlex.split(command):
        if word.startswith("/"):
            word = "/".join(Path(word).parts[-2:])
        parts.append(shlex.quote(word))
    return " ".join(parts)


def command_line() -> str:
    """This run's command line, absolute paths cut (:func:`portable`)."""
    return portable("python -m trainer han " + " ".join(shlex.quote(a) for a in sys.argv[2:]))


def english_table(labels: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(label -> English name, label -> task) for the labels the NetEase
    table knows; others keep their name and the style task."""
    names = {l: NETEASE_LABELS.get(l, (l, "style"))[0] for l in labels}
    tasks = {l: NETEASE_LABELS.get(l, (l, "style"))[1] for l in labels}
    return names, tasks


def run(args, *, log=print) -> dict:  # noqa: C901 (split pending: issue 21)
    if args.summarise:
        table = summarise_dirs(args.summarise)
        log(format_table(table))
        if args.ship:
            if not args.out:
                raise DatasetError("--ship needs --out (where the chosen bundle goes)")
            chosen = ship(args.ship, table, Path(args.out), runs=args.summarise)
            log(f"shipped {chosen} to {args.out}")
        if args.ship and args.figure:
            log(f"label graph: {graph_figure(args.ship, table, Path(args.figure))}")
        return table
    if not args.data:
        raise DatasetError("--data is required (an RMSC folder, a JSONL file or the NetEase CSV)")
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir or Path("runs") / args.name)
    args.run_dir = str(run_dir)
    p = prepare(args, log=log)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    for name in variants:
        if name not in VARIANTS:
            raise DatasetError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    for name in baselines:
        if name not in BASELINES:
            raise DatasetError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    results: dict[str, list[dict]] = {}
    kept: dict[str, tuple[han.Model, object, dict]] = {}
    extremes: dict[str, list[dict]] = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    runs_log = run_dir / "runs.jsonl"
    runs_log.unlink(missing_ok=True)

    def record(name: str, seed: int, figures: dict) -> None:
        results.setdefault(name, []).append(figures)
        with runs_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"model": name, "seed": seed, **figures}) + "\n")
        log(f"  {name} seed {seed}: " + _figures_line(figures))

    outcome: dict = {}
    for seed in seeds:
        for variant in variants:
            config = han_config(p, args, variant)
            model = new_han(p, config, seed)
            fitted = train_network(p, model, han.model_loss(model), args, seed=seed, name=f"{variant} seed {seed}",
                                   log=log)
            probs = predict_ids(model, p.ids)
            figures = evaluate_probs(p, probs)
            figures.update(epochs=len(fitted.history), best_epoch=fitted.best_epoch, seconds=round(fitted.seconds, 1))
            extremes.setdefault(variant, []).append(metrics.frequency_extremes_f1(
                y_train=p.y[p.train], y_true=p.y[p.test], y_pred=probs[p.test] >= figures["threshold"],
                labels=p.labels))
            record(variant, seed, figures)
            if seed == seeds[0]:
                kept[variant] = (model, fitted, figures)
        for name in baselines:
            started = time.monotonic()
            if name in ("CNN", "LSTM"):
                torch.manual_seed(seed)
                net = (CNN(p.embeddings, len(p.labels), args.hidden // 2) if name == "CNN"
                       else HierarchicalLSTM(p.embeddings, len(p.labels), args.hidden))
                with torch.no_grad():
                    net.output.bias.copy_(prior_bias(p.y[p.train]))
                fitted = train_network(p, net, lambda logits, y: F.binary_cross_entropy_with_logits(logits, y),
                                       args, seed=seed, name=f"{name} seed {seed}", log=log)
                probs = predict_ids(net, p.ids)
                extra = {"epochs": len(fitted.history), "best_epoch": fitted.best_epoch}
            else:
                probs = vector_baseline(name, p, seed=seed, k=args.knn_k)
                extra = {}
            record(name, seed, {**evaluate_probs(p, probs), **extra, "seconds": round(time.monotonic() - started, 1)})
        # Written after every seed: a run stopped early keeps what it did.
        outcome = finish(p, args, seeds=seeds[: seeds.index(seed) + 1], results=results, kept=kept,
                         extremes=extremes, run_dir=run_dir, log=log)
    return outcome


def finish(p: Prepared, args, *, seeds, results, kept, extremes, run_dir: Path, log=print) -> dict:
    """Write metrics.json, the report and (when HAN variants ran) the
    bundle of the variant with the best mean validation micro-F1."""
    from trainer.report import write_json, write_report

    table = {name: summarise(runs) for name, runs in results.items()}
    evaluation = {
        "protocol": (f"{p.layout}: one fixed split (seed {args.split_seed}, {args.split} train/validation/test: "
                     f"{len(p.train)}/{len(p.val)}/{len(p.test)} albums), {len(p.labels)} labels on >= "
                     f"{args.min_label_count} training albums and <= {args.max_label_share:.0%} of them; "
                     f"seeds {list(seeds)}; threshold p tuned on validation micro-F1 over "
                     f"{THRESHOLDS[0]}..{THRESHOLDS[-1]}; figures on the test split"),
        "labels": p.labels,
        "table": table,
        "table4": extremes,
        "dropped": p.dropped,
        "vocabulary": len(p.vocabulary),
        "vector_coverage": p.coverage,
    }
    log(format_table(table))
    if not kept:
        write_json(run_dir / "metrics.json", evaluation)
        return evaluation
    # The shipped variant: the best mean validation micro-F1 (never test).
    chosen = max(kept, key=lambda v: table[v]["val_micro_f1"]["mean"])
    model, fitted, figures = kept[chosen]
    names, tasks = english_table(p.labels)
    bundle_metrics = {
        "variant": chosen, "seed": seeds[0],
        "test": {k: figures[k] for k in ("micro_f1", "macro_f1", "one_error", "hamming_loss")},
        "threshold": figures["threshold"], "best_epoch": fitted.best_epoch,
        "ablation_mean_std": {name: {k: v for k, v in row.items() if k != "runs"} for name, row in table.items()},
        "protocol": evaluation["protocol"], "table4": extremes[chosen][0],
    }
    provenance = {
        "data": f"{Path(args.data).name} ({p.layout})", "command": command_line(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), "python": platform.python_version(),
        "torch": torch.__version__, "paper": "seed 000: Zhao et al., review-driven multi-label music style "
                                             "classification (NAACL 2019)",
        "review_mapping": ("NetEase: one text per playlist; its reviews are the title and the sentences of the "
                           "description") if p.layout == "netease" else "reviews as published",
    }
    out = Path(args.out) if args.out else None
    if out is None:
        from tagcore.bundle import user_bundle_dir

        out = user_bundle_dir() / args.name
    save_style_bundle(out, model=model, name=args.name, version=args.version, labels=p.labels, names=names,
                      tasks=tasks, threshold=figures["threshold"], provenance=provenance, metrics=bundle_metrics)
    log(f"bundle ({chosen}, seed {seeds[0]}) written to {out}")
    shown = names if not cjk_font() else {l: f"{l} {n}" for l, n in names.items()}
    written = write_report(run_dir, run_config={k: v for k, v in vars(args).items() if k != "func"},
                           metrics={**evaluation, "shipped": bundle_metrics}, history=fitted.history)
    with_graph = [v for v in kept if kept[v][0].config.label_graph]
    if with_graph:
        drawn = max(with_graph, key=lambda v: table[v]["val_micro_f1"]["mean"])
        figure = label_graph_png(run_dir / "label_graph.png", kept[drawn][0].graph.detach().numpy(),
                                 [shown[l] for l in p.labels], title=f"Learned label graph G - I ({drawn}, seed {seeds[0]})")
    else:
        figure = "skipped: no variant with a label graph"
    log(f"report in {run_dir} ({figure})")
    return {"metrics": evaluation, "bundle": str(out), "written": written, "label_graph": figure}


def _figures_line(f: dict) -> str:
    return (f"micro-F1 {f['micro_f1']:.3f} macro-F1 {f['macro_f1']:.3f} one-error {f['one_error']:.3f} "
            f"hamming {f['hamming_loss']:.4f} (p {f['threshold']:.2f}, validation micro-F1 {f['val_micro_f1']:.3f})")


def format_table(table: dict) -> str:
    """The Table-2 rows as Markdown, mean ± std over seeds (percent for
    F1 and one-error, as the paper)."""
    lines = ["| model | OE (-) | HL (-) | macro-F1 (+) | micro-F1 (+) | p | validation micro-F1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in table.items():
        def cell(key, scale=100.0, digits=1):
            return f"{row[key]['mean'] * scale:.{digits}f} ± {row[key]['std'] * scale:.{digits}f}"  # noqa: B023 (used in this iteration)
        lines.append(f"| {name} | {cell('one_error')} | {cell('hamming_loss', 1.0, 3)} | {cell('macro_f1')} | "
                     f"{cell('micro_f1')} | {cell('threshold', 1.0, 2)} | {cell('val_micro_f1')} |")
    return "\n".join(lines)


def cjk_font() -> str | None:
    """A font matplotlib can draw Chinese with, or None."""
    try:
        from matplotlib import font_manager
    except ImportError:
        return None
    for name in ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
                 "Microsoft YaHei", "PingFang SC", "Source Han Sans SC", "AR PL UMing CN"):
        try:
            font_manager.findfont(name, fallback_to_default=False)
            return name
        except ValueError:
            continue
    return None


def label_graph_png(path: Path, graph: np.ndarray, names: Sequence[str], *, title: str) -> str:
    """Figure 2: heatmap of G - I, labels named (a CJK font when one is
    installed, else the English names). Returns the path or why not."""
    try:
        from trainer.report import _save_png, label_graph_figure
    except ImportError as exc:  # pragma: no cover
        return f"skipped: {exc}"
    try:
        font = cjk_font()
        if font:
            import matplotlib

            matplotlib.rcParams["font.sans-serif"] = [font, *matplotlib.rcParams["font.sans-serif"]]
        delta = np.asarray(graph, dtype=float) - np.eye(len(graph))
        bound = float(np.abs(delta).max()) or 1.0
        figure = label_graph_figure(np.clip(delta / bound, -1, 1), list(names), title=f"{title}, scaled by 1/{bound:.3g}")
        _save_png(figure, path)
    except Exception as exc:  # a figure never stops a run
        return f"failed: {type(exc).__name__}: {exc}"
    return str(path)


def save_style_bundle(directory: Path, *, model: han.Model, name: str, version: str, labels: list[str],
                      names: dict[str, str], tasks: dict[str, str], threshold: float, provenance: dict,
                      metrics: dict) -> Path:
    """A text bundle of the style task reading the ``reviews`` source, with
    the label table (``label_names``: label -> English name;
    ``label_tasks``: label -> the task it serves) and the decision
    (``threshold`` tuned on validation, at most 3 styles)."""
    from tagcore.bundle import CONFIG_FILE, save_bundle

    model.config = replace(model.config, threshold=float(threshold))  # Config is frozen
    save_bundle(directory, model=model, family="han", name=name, version=version, labels=labels,
                model_config=model.config.to_dict(), task="style", input={"kind": "text", "source": "reviews"},
                outputs=("scores",), provenance=provenance, metrics=metrics)
    path = Path(directory) / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    config["label_names"] = {l: names[l] for l in labels}
    config["label_tasks"] = {l: tasks[l] for l in labels}
    config["decision"] = {"threshold": float(threshold), "count": 3}
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.chmod(0o644)
    os.replace(temporary, path)
    return Path(directory)
