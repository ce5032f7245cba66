"""Genre from lyrics, LSTM with attention over GloVe (the lyrics paper).

Chawla and Ginkala, "Classification of Music Genre with Long Short-Term
Memory (LSTM)". Section V.A lists the primary model: input, GloVe
embedding, LSTM, attention, global average pooling, dropout 0.2, linear.
The model is flat, as V.A lists it: one LSTM over the song's word sequence
(the abstract speaks of learning the importance of "words, lines, and
segments", which would be a hierarchical model; V.A describes none).

Shapes, for a batch of ``B`` songs of ``T`` token ids (0 = padding):

- embedding: (B, T, embedding_dim), initialised from GloVe 6B 50-d for the
  vocabulary's words (trainable; ``freeze_embeddings`` keeps it fixed);
- LSTM (one layer, unidirectional): (B, T, hidden);
- attention (Bahdanau-style additive scoring, :class:`Attention`): weights
  a_t = softmax_t(v . tanh(W h_t + b)) over the real tokens, and the
  *weighted sequence* (B, T, hidden) with step t = n a_t h_t, n the song's
  token count, so that the weights average 1 over its real tokens;
- global average pooling over the real tokens: (B, hidden), which equals
  the attention context sum_t a_t h_t;
- dropout 0.2, linear: (B, n_labels) logits.

Ablations of section V.C (``Config.attention``, ``Config.pooling``,
``Config.hidden``): Model 1 drops the pooling, so the weighted sequence is
flattened to (B, max_tokens * hidden) (what a Keras Sequential needs once
GlobalAveragePooling1D goes; songs are padded to ``max_tokens``); Model 2
drops attention and pooling, so the LSTM's output at each song's last real
token, (B, hidden), feeds the dropout; Model 3 is the primary model with
hidden size 64 instead of 128.

Reading a whole song (``Config.windows``): the model sees windows of
``max_tokens`` tokens. A song's first ``windows * max_tokens`` tokens are
cut into consecutive windows (:func:`song_windows`; the last one ends at the
song's last token), the model runs on each and the song's probabilities
are the mean over its windows. The trainer feeds one random window per
song and epoch. ``windows = 1`` reads the first ``max_tokens`` tokens only,
as bundles made before windows did.

Inference from raw lyrics (:func:`predict_texts`, :func:`prepare_texts`)
cleans and tokenizes as the trainer did (:mod:`tagcore.lyrics`), reads at
most ``max_chars`` characters and ``windows * max_tokens`` tokens, and
skips, with the reason, lyrics without words (instrumental markers),
lyrics whose stopword profile says they are not in the model's language,
and lyrics whose words the vocabulary covers less than ``min_coverage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import as_trained, check_texts, config_from_dict, config_to_dict, frozen_tuple, texts_checked

FAMILY = "lyrics"
INPUT = "text"  # a song's lyrics
OUTPUTS = ("scores",)

#: The ablation variants of section V.C, as Config overrides.
VARIANTS = {
    "primary": {},
    "no_pooling": {"pooling": False},
    "no_attention_no_pooling": {"attention": False, "pooling": False},
    "hidden64": {"hidden": 64},
}


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; the paper's where it gives them (V.A: dropout 0.2,
    hidden 128 per V.C; batch 100 and 15 epochs are training options).

    Attributes
    ----------
    vocabulary : tuple of str
        Token of each embedding row; rows 0 and 1 are padding and unknown
        (:class:`tagcore.text.Vocabulary`). Stored in the bundle config.
    n_labels : int
    embedding_dim : int
        50: GloVe 6B 50-d.
    hidden : int
        LSTM units (128; 64 in ablation Model 3).
    attention, pooling : bool
        The layers of V.A; False for the ablations of V.C.
    dropout : float
    multilabel : bool
        A sigmoid per label (songs with several genres) instead of a softmax.
    freeze_embeddings : bool
        Keep the GloVe-initialised embedding fixed in training.
    max_tokens : int
        Tokens per window (the model's input length).
    windows : int
        Windows read per song at inference: its first ``windows *
        max_tokens`` tokens (after cleaning), probabilities averaged over
        the windows (:func:`song_windows`); 1 = the first window only.
    max_chars : int
        Characters of the raw lyrics read before cleaning.
    remove_stopwords : bool
        Section III.B removes English stopwords.
    language : str
        ISO 639-1 code of the training lyrics; other languages are skipped
        at inference ("" = no check).
    min_coverage : float
        Lyrics whose tokens the vocabulary covers less than this are skipped.
    """

    vocabulary: tuple[str, ...] = ("<pad>", "<unk>")
    n_labels: int = 5
    embedding_dim: int = 50
    hidden: int = 128
    attention: bool = True
    pooling: bool = True
    dropout: float = 0.2
    multilabel: bool = False
    freeze_embeddings: bool = False
    max_tokens: int = 128
    windows: int = 1
    max_chars: int = 4000
    remove_stopwords: bool = True
    language: str = "en"
    min_coverage: float = 0.3

    def __post_init__(self):
        frozen_tuple(self, "vocabulary", str)

    @property
    def input_length(self) -> int | None:
        """``max_tokens`` when every window must be padded to it (attention
        without pooling: the flattened sequence feeds a linear layer of
        fixed width), else None (a batch is padded to its longest window)."""
        return self.max_tokens if self.attention and not self.pooling else None

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class Attention(nn.Module):
    """Additive attention over a sequence: (B, T, H) and a (B, T) mask of
    real steps -> the weighted sequence (B, T, H) (step t scaled by
    n * a_t, n the number of real steps, padding steps zero) and the
    weights a (B, T), which sum to 1 over the real steps."""

    def __init__(self, hidden: int):
        super().__init__()
        self.project = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.project(h))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        n = mask.sum(dim=1, keepdim=True).to(h.dtype)
        return h * (weights * n).unsqueeze(-1), weights


class Model(nn.Module):
    """Embedding -> LSTM -> [attention] -> [global average pooling] ->
    dropout -> linear. ``forward`` takes (B, T) int64 ids, right-padded
    with 0, and returns (B, n_labels) logits."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(len(config.vocabulary), config.embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden, batch_first=True)
        self.attention = Attention(config.hidden) if config.attention else None
        width = config.hidden
        if config.attention and not config.pooling:
            width = config.hidden * config.max_tokens
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(width, config.n_labels)

    def set_embeddings(self, matrix: np.ndarray) -> None:
        """Copy a (len(vocabulary), embedding_dim) matrix (GloVe rows) in."""
        with torch.no_grad():
            self.embedding.weight.copy_(torch.as_tensor(matrix, dtype=torch.float32))

    def features(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The vector fed to the dropout (B, width) and the attention
        weights (B, T) (None without attention)."""
        mask = ids != 0
        # A song without a single token still gets one (padding) step, so
        # softmax and the last-step index stay defined.
        mask[:, 0] |= ~mask.any(dim=1)
        n = mask.sum(dim=1)
        h, _ = self.lstm(self.embedding(ids))
        if self.attention is None:
            return h[torch.arange(len(h), device=h.device), n - 1], None
        sequence, weights = self.attention(h, mask)
        if self.config.pooling:
            pooled = (sequence * mask.unsqueeze(-1)).sum(dim=1) / n.unsqueeze(-1).to(h.dtype)
            return pooled, weights
        if sequence.shape[1] < self.config.max_tokens:
            sequence = F.pad(sequence, (0, 0, 0, self.config.max_tokens - sequence.shape[1]))
        return sequence[:, : self.config.max_tokens].flatten(1), weights

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.features(ids)[0]))


def song_windows(ids: list[int], *, length: int, windows: int) -> list[list[int]]:
    """Consecutive windows of ``length`` token ids covering the first
    ``windows * length`` ids of a song: starts 0, length, 2 * length...; a
    last partial window is moved back to end at the last id (so it overlaps
    its neighbour) unless it is the song's only one. A song of at most
    ``length`` ids (or ``windows = 1``) is one window of its first
    ``length`` ids; an empty song is one window ``[0]`` (padding).

    >>> song_windows(list(range(1, 8)), length=3, windows=4)
    [[1, 2, 3], [4, 5, 6], [5, 6, 7]]
    """
    ids = list(ids[: length * max(1, windows)]) or [0]
    if len(ids) <= length:
        return [ids]
    starts = list(range(0, len(ids) - length + 1, length))
    if starts[-1] + length < len(ids):
        starts.append(len(ids) - length)
    return [ids[start : start + length] for start in starts]


def encode_windows(config: Config, songs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The windows of encoded songs (:func:`song_windows` with the config's
    ``max_tokens`` and ``windows``), right-padded: ids (n_windows, T), T =
    ``config.input_length`` or the longest window; and owners (n_windows,),
    the index of each window's song."""
    from tagcore.text import pad_ids

    windows, owners = [], []
    for song, ids in enumerate(songs):
        for window in song_windows(ids, length=config.max_tokens, windows=config.windows):
            windows.append(window)
            owners.append(song)
    length = config.input_length or max((len(w) for w in windows), default=1)
    return pad_ids(windows, length=length), np.asarray(owners, dtype=int)


def mean_by_owner(probs: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """(n, n_labels) mean of the rows of ``probs`` (n_windows, n_labels)
    that belong to each of ``n`` songs (``owners[i]`` is window i's song)."""
    owners = np.asarray(owners, dtype=int)
    sums = np.zeros((n, probs.shape[1]), dtype=np.float64)
    np.add.at(sums, owners, probs)
    counts = np.bincount(owners, minlength=n).reshape(-1, 1)
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def loss(logits: torch.Tensor, targets: torch.Tensor, *, multilabel: bool) -> torch.Tensor:
    """Multi-label: binary cross-entropy against (B, n_labels) 0/1 targets.
    Single-label: cross-entropy against (B, n_labels) target
    distributions (a song listed under k genres has 1/k on each)."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


@torch.inference_mode()
def predict(model: Model, ids: torch.Tensor) -> torch.Tensor:
    """Label probabilities (B, n_labels): softmax rows summing to 1, or a
    sigmoid per label for a multi-label model."""
    model.eval()
    logits = model(ids)
    return torch.sigmoid(logits) if model.config.multilabel else torch.softmax(logits, dim=-1)


@dataclass
class Prepared:
    """Texts made ready for the model: ``ids`` (n_windows, T), the windows
    of the texts that can be read; ``rows`` the input positions of those
    texts; ``owners`` (n_windows,) the index into ``rows`` of each window's
    text; and for each input text None or the reason it is skipped."""

    ids: np.ndarray
    rows: list[int]
    problems: list[str | None]
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def prepare_texts(config: Config, texts: list[str], *, vocabulary=None) -> Prepared:
    """Clean, tokenize, check and encode raw lyrics as the trainer did.

    A text is skipped (``problems[i]`` says why) when it has no words after
    cleaning (empty, or only an instrumental marker), when its stopword
    profile names another language than ``config.language``, or when the
    vocabulary covers less than ``config.min_coverage`` of its tokens.
    """
    from tagcore.lyrics import read_lyrics
    from tagcore.text import Vocabulary

    vocabulary = vocabulary or Vocabulary(list(config.vocabulary))
    encoded, rows, problems = [], [], []
    for i, text in enumerate(texts):
        tokens, problem = read_lyrics(text, max_chars=config.max_chars, max_tokens=config.max_tokens * max(1, config.windows),
                                      language=config.language, remove_stopwords=config.remove_stopwords)
        if problem is None:
            coverage = vocabulary.coverage(tokens)
            if coverage < config.min_coverage:
                problem = f"only {coverage:.0%} of the lyrics' words are known to the model (< {config.min_coverage:.0%})"
            else:
                encoded.append(vocabulary.encode(tokens))
                rows.append(i)
        problems.append(problem)
    ids, owners = encode_windows(config, encoded)
    return Prepared(ids=ids, rows=rows, problems=problems, owners=owners)


#: Texts per forward pass in :func:`predict_texts`.
TEXT_BATCH = 64


@torch.inference_mode()
def predict_texts_checked(model: Model, texts: list[str]) -> tuple[np.ndarray, list[str | None]]:
    """Probabilities (n, n_labels) for raw lyrics and, per text, None or why
    it was skipped (:func:`prepare_texts`). The rows of skipped texts are
    NaN, "no prediction" (:func:`tagcore.families.texts_checked`)."""
    config = model.config
    prepared = prepare_texts(config, check_texts(texts, what=FAMILY), vocabulary=_vocabulary(model))
    probs = np.zeros((0, config.n_labels), dtype=np.float32)
    if prepared.rows:
        probs = mean_by_owner(predict_windows(model, prepared.ids), prepared.owners, len(prepared.rows))
    return texts_checked(prepared.rows, probs, prepared.problems, n_labels=config.n_labels)


@torch.inference_mode()
def predict_windows(model: Model, ids: np.ndarray, *, batch: int = TEXT_BATCH) -> np.ndarray:
    """(n_windows, n_labels) probabilities of right-padded windows
    ``ids`` (n_windows, T), ``batch`` windows per forward pass."""
    config = model.config
    out = np.zeros((len(ids), config.n_labels), dtype=np.float32)
    device = next(model.parameters()).device
    lengths = (ids != 0).sum(axis=1)
    # Windows of similar length share a pass: less padding to run through the LSTM.
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        part = ids[chunk]
        if config.input_length is None:
            part = part[:, : max(1, int(lengths[chunk].max()))]
        out[chunk] = predict(model, torch.from_numpy(np.ascontiguousarray(part)).to(device)).float().cpu().numpy()
    return out


def predict_texts(model: Model, texts: list[str]) -> np.ndarray:
    """Label probabilities (n, n_labels) for raw lyrics; rows of texts that
    cannot be read (see :func:`prepare_texts`) are NaN."""
    return predict_texts_checked(model, texts)[0]


def _vocabulary(model: Model):
    """The model's Vocabulary, built once per model."""
    from tagcore.text import Vocabulary

    cached = getattr(model, "_vocabulary", None)
    if cached is None:
        cached = Vocabulary(list(model.config.vocabulary))
        model._vocabulary = cached
    return cached


prepare_for_inference = as_trained
