"""Review-driven multi-label style classification (the han paper).

Zhao, Li, Ma, Sun et al., "Review-Driven Multi-Label Music Style
Classification by Exploiting Style Correlations", NAACL 2019. Section 4,
appendix A.1.

An album is a list of reviews, a review a list of words. A hierarchical
attention network (Yang et al. 2016) reads each review's words into a
review vector and the reviews into an album vector; a linear layer gives
the raw label scores ``z`` (logits), and the label-graph layer gives the
label probabilities ``e = sigmoid(z G)`` (eq. 1) with ``G`` an
(n_labels, n_labels) matrix initialised to the identity and learned.

Training (:func:`loss`): ``H(y, e) + H(y', e)`` (eq. 4), each ``H`` a
binary cross-entropy with the target first, ``y' = clip(y G, 0, 1)``
(eq. 3), optionally softened by a temperature (the "soft target
mechanism" of A.1, read as Hinton et al.'s temperature on Bernoulli
targets), plus ``identity_weight * ||G - I||^2`` (the regulariser of A.1;
a negative weight is the literal reading of the sentence). See
docs/models/han.md for every reading and choice.

Shapes: ids (batch, reviews, words) int64, 0 = padding; a review of only
padding is absent. ``forward`` returns the logits ``z G`` (batch,
n_labels); :func:`predict` and :func:`predict_texts` return ``e``.

The vocabulary travels in the Config (``vocabulary``, a token list
starting with ``<pad>``, ``<unk>``), so a bundle needs neither gensim nor
the training text: :func:`predict_texts` tokenizes (jieba for Chinese,
Unicode words otherwise: :mod:`tagcore.text`) and encodes on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tagcore import text as T
from tagcore.families import as_trained, check_texts, config_from_dict, config_to_dict, frozen_tuple, texts_checked

FAMILY = "han"
INPUT = "text"  # an album's reviews, blank-line separated
OUTPUTS = ("scores",)
#: Inference: albums per forward pass.
INFERENCE_BATCH = 64


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; defaults are appendix A.1's where it gives them.

    Attributes
    ----------
    vocabulary : tuple of str
        Tokens by id (``<pad>``, ``<unk>`` first). Its length is the
        embedding table's.
    n_labels : int
    embed_dim, hidden : int
        A.1: 128 and 128. ``hidden`` is the size of the review and album
        vectors: each bidirectional GRU has ``hidden // 2`` units per
        direction.
    attention_dim : int
        Size of the attention's hidden projection (Yang et al.'s ``u``).
    label_graph : bool
        ``e = sigmoid(z G)`` (eq. 1) when True, ``sigmoid(z)`` (plain HAN)
        when False.
    soft_weight : float
        Weight of ``H(y', e)`` (eq. 4): 1 = soft training, 0 = off.
    temperature : float
        Temperature ``T`` of the soft targets: the soft term is
        ``T^2 * H(sigmoid(logit(y') / T), sigmoid(z G / T))``; 1 = eq. 4.
    soft_target_grad : bool
        Whether gradients reach ``G`` through ``y'`` (default: no, ``y'`` is
        a constant target in each step).
    identity_weight : float
        ``identity_weight * sum((G - I)^2)`` is added to the loss: > 0
        keeps G near the identity, < 0 is A.1's literal "negative of the l2
        loss" (pushes G away from it).
    dropout : float
        Dropout on the album vector in training.
    max_reviews, max_words : int
        Reviews per album (section 3.2: the top 40) and words per review
        kept (the paper gives no bound; longer reviews are cut).
    review_unit : str
        How :func:`predict_texts` splits an album's text into reviews:
        ``"paragraph"`` (blank lines separate reviews) or ``"sentence"``
        (each paragraph further cut at sentence ends, as the NetEase
        bundle was trained).
    threshold : float
        The decision threshold p (A.1: 0.2), tuned on validation.
    """

    vocabulary: tuple[str, ...] = (T.PAD, T.UNK)
    n_labels: int = 22
    embed_dim: int = 128
    hidden: int = 128
    attention_dim: int = 128
    label_graph: bool = True
    soft_weight: float = 1.0
    temperature: float = 1.0
    soft_target_grad: bool = False
    identity_weight: float = 1e-3
    dropout: float = 0.0
    max_reviews: int = 40
    max_words: int = 100
    review_unit: str = "paragraph"
    threshold: float = 0.2

    def __post_init__(self):
        frozen_tuple(self, "vocabulary", str)
        if self.vocabulary[:2] != (T.PAD, T.UNK):
            raise ValueError("vocabulary must start with <pad>, <unk>")
        if self.hidden % 2:
            raise ValueError("hidden must be even (two GRU directions)")
        if self.review_unit not in ("paragraph", "sentence"):
            raise ValueError(f"review_unit must be 'paragraph' or 'sentence', not {self.review_unit!r}")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class Attention(nn.Module):
    """Yang et al.'s additive attention: ``u = tanh(W h + b)``, weights
    ``softmax(u . c)`` over the unmasked steps, output ``sum(a h)``."""

    def __init__(self, size: int, attention_dim: int):
        super().__init__()
        self.project = nn.Linear(size, attention_dim)
        self.context = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (batch, steps, size), mask (batch, steps) bool -> (batch,
        size) and the weights (batch, steps); a row without any step gives
        zeros."""
        scores = self.context(torch.tanh(self.project(h))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # rows with no step at all
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights


class Encoder(nn.Module):
    """A bidirectional GRU over padded steps followed by attention."""

    def __init__(self, size_in: int, hidden: int, attention_dim: int):
        super().__init__()
        self.gru = nn.GRU(size_in, hidden // 2, batch_first=True, bidirectional=True)
        self.attention = Attention(hidden, attention_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (n, steps, size_in), lengths (n,) >= 1 -> (n, hidden), weights."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        return self.attention(out, mask)


class Model(nn.Module):
    """HAN (words -> review vector -> album vector) -> z -> z G (logits).

    ``forward(ids)`` with ids (batch, reviews, words) returns the logits of
    ``e`` (batch, n_labels); :meth:`raw_scores` returns ``z``;
    :meth:`album_vectors` the album vectors (batch, hidden).
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(len(config.vocabulary), config.embed_dim, padding_idx=T.PAD_ID)
        self.words = Encoder(config.embed_dim, config.hidden, config.attention_dim)
        self.reviews = Encoder(config.hidden, config.hidden, config.attention_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden, config.n_labels)
        # Always present (so one weights layout serves every ablation);
        # the plain HAN keeps it at the identity and never uses it.
        self.graph = nn.Parameter(torch.eye(config.n_labels), requires_grad=config.label_graph)

    def album_vectors(self, ids: torch.Tensor, *, weights: bool = False):
        """Album vectors (batch, hidden); with ``weights`` also the word
        attention (batch, reviews, words) and review attention (batch,
        reviews)."""
        batch, n_reviews, n_words = ids.shape
        word_lengths = (ids != T.PAD_ID).sum(-1)  # (batch, reviews)
        present = word_lengths > 0
        flat = ids.reshape(batch * n_reviews, n_words)
        flat_lengths = word_lengths.reshape(-1)
        keep = flat_lengths > 0
        review_vectors = ids.new_zeros((batch * n_reviews, self.config.hidden), dtype=self.embedding.weight.dtype)
        word_weights = ids.new_zeros((batch * n_reviews, n_words), dtype=self.embedding.weight.dtype)
        if keep.any():
            vectors, attn = self.words(self.embedding(flat[keep]), flat_lengths[keep])
            review_vectors = review_vectors.index_put((keep.nonzero().squeeze(1),), vectors.to(review_vectors.dtype))
            word_weights = word_weights.index_put((keep.nonzero().squeeze(1),), attn.to(word_weights.dtype))
        review_vectors = review_vectors.reshape(batch, n_reviews, -1)
        # Reviews are compacted to the front by the encoder (present ones
        # first), so the review count is a length.
        review_counts = present.sum(-1).clamp_min(1)
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)
        compact = torch.gather(review_vectors, 1, order[..., None].expand_as(review_vectors))
        album, review_weights_compact = self.reviews(compact, review_counts)
        review_weights = torch.zeros_like(review_weights_compact).scatter(1, order, review_weights_compact)
        review_weights = review_weights * present
        if weights:
            return album, word_weights.reshape(batch, n_reviews, n_words), review_weights
        return album

    def raw_scores(self, ids: torch.Tensor) -> torch.Tensor:
        """z: (batch, n_labels), the HAN's logits before the label graph."""
        return self.output(self.dropout(self.album_vectors(ids)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        z = self.raw_scores(ids)
        return graph_logits(z, self.graph) if self.config.label_graph else z


# --- Label graph and soft training (pure functions) -------------------------


def graph_logits(z: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """``z G``: (batch, m) @ (m, m) -> (batch, m); ``sigmoid`` of it is e (eq. 1)."""
    return z @ graph


def label_graph_layer(z: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """e = sigmoid(z G) (eq. 1), shape (batch, m)."""
    return torch.sigmoid(graph_logits(z, graph))


def soft_targets(y: torch.Tensor, graph: torch.Tensor, *, temperature: float = 1.0,
                 grad: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """y' = clip(y G, 0, 1) (eq. 3), softened by ``temperature`` as
    ``sigmoid(logit(y') / T)`` when T != 1; (batch, m). With ``grad``
    False, G receives no gradient through y'."""
    g = graph if grad else graph.detach()
    soft = (y.to(g.dtype) @ g).clamp(0.0, 1.0)
    if temperature != 1.0:
        soft = torch.sigmoid(torch.logit(soft.clamp(eps, 1 - eps)) / temperature)
    return soft


def identity_penalty(graph: torch.Tensor) -> torch.Tensor:
    """sum((G - I)^2), a scalar."""
    eye = torch.eye(graph.shape[0], dtype=graph.dtype, device=graph.device)
    return ((graph - eye) ** 2).sum()


def loss(logits: torch.Tensor, y: torch.Tensor, *, graph: torch.Tensor | None = None, soft_weight: float = 0.0,
         temperature: float = 1.0, soft_target_grad: bool = False, identity_weight: float = 0.0) -> torch.Tensor:
    """Training loss for logits of e (``z G``, or ``z`` without a graph),
    (batch, m), and 0/1 targets y (batch, m).

    ``H(y, e)`` (binary cross-entropy with the target first, mean over the
    batch and labels) ``+ soft_weight * T^2 * H(y'_T, e_T)`` with
    ``y'_T = soft_targets(y, G, T)``, ``e_T = sigmoid(logits / T)``
    ``+ identity_weight * ||G - I||^2``. The soft and identity terms need
    ``graph``.
    """
    y = y.to(logits.dtype)
    total = F.binary_cross_entropy_with_logits(logits, y)
    if graph is not None and soft_weight:
        target = soft_targets(y, graph, temperature=temperature, grad=soft_target_grad).to(logits.dtype)
        total = total + soft_weight * temperature**2 * F.binary_cross_entropy_with_logits(logits / temperature, target)
    if graph is not None and identity_weight:
        total = total + identity_weight * identity_penalty(graph).to(logits.dtype)
    return total


def model_loss(model: Model):
    """The loss of ``model``'s config as a function (logits, y) -> scalar,
    for :func:`trainer.loop.fit` (it reads the model's current G)."""
    c = model.config

    def compute(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not c.label_graph:
            # Soft training on the plain HAN: y' = y I = y (the graph is fixed).
            return loss(logits, y, graph=model.graph if c.soft_weight else None, soft_weight=c.soft_weight,
                        temperature=c.temperature)
        return loss(logits, y, graph=model.graph, soft_weight=c.soft_weight, temperature=c.temperature,
                    soft_target_grad=c.soft_target_grad, identity_weight=c.identity_weight)

    return compute


# --- Inference ----------------------------------------------------------------

#: Sentence ends: Chinese and Western full stops, ! ? ; ~ and ellipses.
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;~～…])\s*|(?<=\.)\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")


def split_reviews(album_text: str, *, unit: str = "paragraph") -> list[str]:
    """An album's text as reviews: blank-line separated paragraphs, each
    cut at sentence ends too when ``unit == "sentence"``; empty pieces
    dropped."""
    paragraphs = [p.strip() for p in _PARAGRAPH.split(album_text) if p.strip()]
    if unit == "paragraph":
        return paragraphs
    return [s.strip() for p in paragraphs for s in _SENTENCE_END.split(p) if s and s.strip()]


def encode_album(reviews: Sequence[str], vocabulary: T.Vocabulary, *, max_reviews: int, max_words: int) -> np.ndarray:
    """Token ids of an album, (reviews, words) int64: at most
    ``max_reviews`` non-empty reviews, each cut to ``max_words`` tokens
    and right-padded to the longest kept review. An album without tokens
    gives shape (1, 1) of padding."""
    rows = []
    for review in reviews:
        ids = vocabulary.encode(T.tokenize(review))[:max_words]
        if ids:
            rows.append(ids)
        if len(rows) >= max_reviews:
            break
    if not rows:
        return np.zeros((1, 1), dtype=np.int64)
    return T.pad_ids(rows, length=max(len(r) for r in rows))


def collate_albums(albums: Sequence[np.ndarray]) -> torch.Tensor:
    """Pad albums of shape (reviews_i, words_i) to (batch, max reviews, max words)."""
    n_reviews = max(a.shape[0] for a in albums)
    n_words = max(a.shape[1] for a in albums)
    out = np.zeros((len(albums), n_reviews, n_words), dtype=np.int64)
    for i, a in enumerate(albums):
        out[i, : a.shape[0], : a.shape[1]] = a
    return torch.from_numpy(out)


@torch.inference_mode()
def predict(model: Model, ids: torch.Tensor) -> torch.Tensor:
    """e: label probabilities (batch, n_labels) of ids (batch, reviews, words)."""
    model.eval()
    return torch.sigmoid(model(ids))


def vocabulary_of(model: Model) -> T.Vocabulary:
    """The model's :class:`tagcore.text.Vocabulary` (built once per model)."""
    vocabulary = getattr(model, "_vocabulary", None)
    if vocabulary is None:
        vocabulary = model._vocabulary = T.Vocabulary(list(model.config.vocabulary))
    return vocabulary


@torch.inference_mode()
def predict_albums(model: Model, texts: Sequence[str]) -> np.ndarray:
    """Label probabilities (len(texts), n_labels), float32, for album
    texts, unchecked: each text is an album's reviews separated by blank
    lines (see :func:`split_reviews` and ``Config.review_unit``). Equal texts
    (an album's tracks) are computed once. A text without any known token
    still gets a prediction (from the unknown-word id): the trainer's view;
    :func:`predict_texts` checks the texts first."""
    c = model.config
    vocabulary = vocabulary_of(model)
    device = next(model.parameters()).device
    # The tracks of an album share its text: each distinct text runs once.
    distinct = list(dict.fromkeys(texts))
    albums = [encode_album(split_reviews(t, unit=c.review_unit), vocabulary, max_reviews=c.max_reviews,
                           max_words=c.max_words) for t in distinct]
    out = []
    for start in range(0, len(albums), INFERENCE_BATCH):
        ids = collate_albums(albums[start : start + INFERENCE_BATCH]).to(device)
        out.append(predict(model, ids).float().cpu().numpy())
    if not out:
        return np.zeros((0, c.n_labels), dtype=np.float32)
    rows = np.concatenate(out)
    position = {text: i for i, text in enumerate(distinct)}
    return rows[[position[t] for t in texts]]


#: Below this share of known words a text is not read (predict_texts_checked);
#: the plugin asks more by default (reviews.min_coverage, 0.2).
MIN_COVERAGE = 0.05


def text_problem(model: Model, text: str, *, min_coverage: float = MIN_COVERAGE) -> str | None:
    """Why the model cannot read an album text (no words; a script other
    than its vocabulary's, :func:`tagcore.text.script_problem`; or less than
    ``min_coverage`` of its words in the vocabulary: another language),
    else None."""
    reviews = split_reviews(text, unit=model.config.review_unit)
    tokens = [token for review in reviews for token in T.tokenize(review)]
    if not tokens:
        return "no words in the reviews"
    if problem := T.script_problem(text, vocabulary_of(model)):
        return problem + " (another language)"
    coverage = vocabulary_of(model).coverage(tokens)
    if coverage < min_coverage:
        return f"{coverage:.0%} of the review words are known to the model (another language?)"
    return None


def predict_texts_checked(model: Model, texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
    """Label probabilities (len(texts), n_labels) of album texts and, per
    text, why it was not read (None when it was, :func:`text_problem`). The
    rows of unread texts are NaN, "no prediction"
    (:func:`tagcore.families.texts_checked`); the analysis pass turns a
    reason into a ``skipped`` output."""
    texts = check_texts(texts, what=FAMILY)
    problems = [text_problem(model, text) for text in texts]
    readable = [i for i, problem in enumerate(problems) if problem is None]
    probs = predict_albums(model, [texts[i] for i in readable])
    return texts_checked(readable, probs, problems, n_labels=model.config.n_labels)


def predict_texts(model: Model, texts: Sequence[str]) -> np.ndarray:
    """The probabilities of :func:`predict_texts_checked` alone (NaN rows
    for the texts the model cannot read)."""
    return predict_texts_checked(model, texts)[0]


prepare_for_inference = as_trained
