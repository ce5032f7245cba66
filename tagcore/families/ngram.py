"""Bag of n-grams with TF-IDF weights and a linear softmax: a text family.

A song's lyrics (or any text whose tokenizer the config names) become
the counts of its terms: its tokens and, up to ``ngram``, runs of
consecutive tokens joined by a space ("old town", "town road"). Each term
of the vocabulary (``Config.vocabulary``, fitted on training text) has an
inverse document frequency; a text's vector is

    x_j = (1 + ln count_j) * idf_j   (sublinear tf; count_j otherwise),
    x  <- x / ||x||_2,

and its label probabilities are softmax((W x + b) / temperature). The
temperature is fitted after training on out-of-fold predictions
(calibration); 1 leaves the fitted model's probabilities as they are.

The weights (``idf`` (V,), ``weight`` (n_labels, V), ``bias``
(n_labels,)) are tensors of a ``torch.nn.Module`` so that bundles save and
load them as every family does (safetensors); scoring is a gather and a
small matrix product in numpy, as a text touches a few hundred of the
vocabulary's terms. Nothing of the library that fitted the model is
needed at run time.

Tokenizers (``Config.tokenizer``): ``"lyrics"``, the lyrics family's
cleaning and tokens (:func:`tagcore.lyrics.read_lyrics`: markers and page
furniture removed, English stopwords dropped, texts in another language
than ``Config.language`` refused with the reason). A text whose tokens the
vocabulary covers less than ``min_coverage`` is refused too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tagcore.families import as_trained, check_texts, config_from_dict, config_to_dict, frozen_tuple, texts_checked

FAMILY = "ngram"
INPUT = "text"
OUTPUTS = ("scores",)

#: The tokenizers a bundle may name.
TOKENIZERS = ("lyrics",)


@dataclass(frozen=True)
class Config:
    """What a bundle of this family reads and how.

    Attributes
    ----------
    vocabulary : tuple of str
        The terms, one per column of ``weight``: single tokens and runs of
        up to ``ngram`` tokens joined by one space.
    n_labels : int
    ngram : int
        Longest run of consecutive tokens counted as a term (2: words and
        word pairs).
    sublinear_tf : bool
        Term frequency 1 + ln(count) instead of the count.
    temperature : float
        Logits are divided by it before the softmax (calibration, > 0).
    tokenizer : str
        One of :data:`TOKENIZERS`.
    max_chars : int
        Characters of the raw text read before cleaning.
    max_tokens : int
        Tokens read after cleaning (the text's first).
    remove_stopwords : bool
    language : str
        ISO 639-1 code of the training text; others are refused ("" = any).
    min_coverage : float
        Texts whose tokens the vocabulary covers less than this are refused.
    """

    vocabulary: tuple[str, ...] = ()
    n_labels: int = 5
    ngram: int = 2
    sublinear_tf: bool = True
    temperature: float = 1.0
    tokenizer: str = "lyrics"
    max_chars: int = 4000
    max_tokens: int = 1024
    remove_stopwords: bool = True
    language: str = "en"
    min_coverage: float = 0.3

    def __post_init__(self):
        frozen_tuple(self, "vocabulary", str)
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown {FAMILY} tokenizer {self.tokenizer!r}; known: {', '.join(TOKENIZERS)}")
        if not self.temperature > 0 or self.ngram < 1:
            raise ValueError(f"{FAMILY}: temperature must be > 0 and ngram >= 1")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class Model(nn.Module):
    """The weights: ``idf`` (V,), ``weight`` (n_labels, V), ``bias``
    (n_labels,). Built small and random (a trainer copies fitted values in
    with :meth:`set_weights`)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        size = len(config.vocabulary)
        self.idf = nn.Parameter(torch.ones(size), requires_grad=False)
        self.weight = nn.Parameter(0.1 * torch.randn(config.n_labels, size), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(config.n_labels), requires_grad=False)

    def set_weights(self, *, idf: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> None:
        """Copy fitted values in (shapes as the attributes)."""
        with torch.no_grad():
            for name, value in (("idf", idf), ("weight", weight), ("bias", bias)):
                target = getattr(self, name)
                value = torch.as_tensor(np.asarray(value), dtype=torch.float32)
                if value.shape != target.shape:
                    raise ValueError(f"{FAMILY}: {name} of shape {tuple(value.shape)}, expected {tuple(target.shape)}")
                target.copy_(value)
        self._tables = None


def terms(tokens: list[str], *, ngram: int) -> list[str]:
    """The tokens and every run of 2 .. ``ngram`` consecutive tokens,
    joined by a space, in order of length then position.

    >>> terms(["old", "town", "road"], ngram=2)
    ['old', 'town', 'road', 'old town', 'town road']
    """
    out = list(tokens)
    for n in range(2, ngram + 1):
        out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return out


def text_vector(tokens: list[str], *, index: dict[str, int], idf: np.ndarray, ngram: int,
                sublinear_tf: bool) -> tuple[np.ndarray, np.ndarray]:
    """The L2-normalised TF-IDF vector of ``tokens`` as (term columns,
    values), terms outside ``index`` ignored; empty arrays when none is
    known."""
    counts = Counter(index[t] for t in terms(tokens, ngram=ngram) if t in index)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    if sublinear_tf:
        tf = 1.0 + np.log(tf)
    values = tf * idf[columns]
    norm = np.linalg.norm(values)
    return columns, (values / norm if norm > 0 else values).astype(np.float32)


def _tables(model: Model) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    """(term -> column, idf, weight transposed (V, n_labels), bias) as
    numpy, built once per model."""
    cached = getattr(model, "_tables", None)
    if cached is None:
        cached = ({term: i for i, term in enumerate(model.config.vocabulary)},
                  model.idf.detach().cpu().double().numpy(),
                  np.ascontiguousarray(model.weight.detach().cpu().numpy().T),
                  model.bias.detach().cpu().numpy())
        model._tables = cached
    return cached


def logits_of(model: Model, token_lists: list[list[str]]) -> np.ndarray:
    """(n, n_labels) logits W x + b of tokenized texts (before the
    temperature)."""
    index, idf, weight_t, bias = _tables(model)
    out = np.tile(bias.astype(np.float32), (len(token_lists), 1))
    for row, tokens in enumerate(token_lists):
        columns, values = text_vector(tokens, index=index, idf=idf, ngram=model.config.ngram,
                                      sublinear_tf=model.config.sublinear_tf)
        if len(columns):
            out[row] += values @ weight_t[columns]
    return out


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, float32."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def read_texts(config: Config, texts: list[str], *, known=None) -> tuple[list[list[str]], list[int], list[str | None]]:
    """(tokens of each readable text, their positions, per text None or
    why it is refused): the tokenizer's own refusals, then a vocabulary
    coverage of single tokens under ``min_coverage``. ``known``: the set of
    vocabulary terms (built from the config when not given)."""
    from tagcore.lyrics import read_lyrics

    known = set(config.vocabulary) if known is None else known
    token_lists, rows, problems = [], [], []
    for i, text in enumerate(texts):
        tokens, problem = read_lyrics(text, max_chars=config.max_chars, max_tokens=config.max_tokens,
                                      language=config.language, remove_stopwords=config.remove_stopwords)
        if problem is None:
            coverage = sum(1 for t in tokens if t in known) / len(tokens)
            if coverage < config.min_coverage:
                problem = f"only {coverage:.0%} of the text's words are known to the model (< {config.min_coverage:.0%})"
            else:
                token_lists.append(tokens)
                rows.append(i)
        problems.append(problem)
    return token_lists, rows, problems


def predict_texts_checked(model: Model, texts: list[str]) -> tuple[np.ndarray, list[str | None]]:
    """Probabilities (n, n_labels) of raw texts and, per text, None or why
    it was refused (:func:`read_texts`); refused rows are NaN."""
    config = model.config
    index = _tables(model)[0]
    token_lists, rows, problems = read_texts(config, check_texts(texts, what=FAMILY), known=index)
    probs = softmax(logits_of(model, token_lists), temperature=config.temperature) if rows else None
    return texts_checked(rows, probs, problems, n_labels=config.n_labels)


def predict_texts(model: Model, texts: list[str]) -> np.ndarray:
    """The probabilities of :func:`predict_texts_checked` alone."""
    return predict_texts_checked(model, texts)[0]


prepare_for_inference = as_trained
