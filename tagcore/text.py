"""Text into token ids: the shared front of the text families.

Used by the review-styles family (the han paper, Chinese reviews segmented with
jieba as the paper) and the lyrics family (the lyrics paper, English lyrics). Each
text is tokenized by its own script: text that is mostly CJK goes through
jieba's word segmentation, anything else through a Unicode-aware word
tokenizer (letters and digits of any script, apostrophes inside words kept,
lower-cased with ``str.casefold``). A :class:`Vocabulary` maps tokens to ids
with a padding id 0 and an unknown-word id 1, and serialises to plain JSON
so a bundle's ``config.json`` can carry it (inference needs neither jieba's
training data nor gensim nor GloVe beyond what the bundle holds).

Reading is bounded: :func:`read_text` never reads more than ``max_bytes``
of a file, so a 10 MB sidecar costs no more memory than the cap.

Example::

    >>> tokenize("I can't stop, won't stop!")
    ['i', "can't", 'stop', "won't", 'stop']
    >>> vocab = Vocabulary.build([["a", "b", "a"], ["a", "c"]], min_count=1)
    >>> vocab.encode(["a", "zzz"])
    [2, 1]
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

#: Word: letters/digits of any script (``\w`` is Unicode-aware in Python 3),
#: with inner apostrophes (can't, rock'n'roll) kept; underscores dropped.
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_LETTER = re.compile(r"[^\W\d_]")


def cjk_fraction(text: str) -> float:
    """Fraction of the letters of ``text`` that are CJK ideographs, kana or
    hangul (0.0 for text without letters)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _CJK.match(ch)) / len(letters)


def script_of(text: str, *, threshold: float = 0.3) -> str:
    """``"cjk"`` when at least ``threshold`` of the letters are CJK, else
    ``"latin"`` (meaning: any space-separated script)."""
    return "cjk" if cjk_fraction(text) >= threshold else "latin"


#: Share of a vocabulary's words in one script for :meth:`Vocabulary.script`
#: to name it.
SCRIPT_SHARE = 0.8

SCRIPT_NAMES = {"cjk": "Chinese/Japanese/Korean", "latin": "space-separated (Latin, Cyrillic...)"}


def script_problem(text: str, vocabulary: "Vocabulary") -> str | None:
    """Why a model with ``vocabulary`` cannot read ``text`` because of its
    script (a model built from Chinese text shown English, or the reverse),
    else None. Word coverage alone does not catch this: a Chinese
    vocabulary holds enough common English words ("love", "the", band
    names) to cover a fifth of an English review."""
    expected = vocabulary.script()
    if expected is None or not text.strip():
        return None
    found = script_of(text)
    if found == expected:
        return None
    return f"the text is in {SCRIPT_NAMES[found]} script; the model was trained on {SCRIPT_NAMES[expected]} text"


def normalise(text: str) -> str:
    """NFKC-normalised text (full-width forms folded, compatibility
    characters unified) with control characters other than newline and
    tab replaced by spaces."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)


def word_tokens(text: str) -> list[str]:
    """Unicode words of ``text``, case-folded. Punctuation, symbols and
    whitespace separate words and are dropped."""
    return [match.group(0).replace("’", "'").casefold() for match in _WORD.finditer(text)]


_jieba = None


def _segmenter():
    """jieba, imported and initialised once (its dictionary loads in about
    a second), with its start-up chatter silenced."""
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def chinese_tokens(text: str) -> list[str]:
    """jieba's word segmentation of ``text`` (accurate mode with its HMM for
    unseen words, jieba's defaults), keeping the segments that hold a letter
    or digit; Latin words inside Chinese text are case-folded."""
    tokens = []
    for segment in _segmenter().lcut(text):
        segment = segment.strip()
        if segment and any(ch.isalnum() for ch in segment):
            tokens.append(segment.casefold())
    return tokens


def tokenize(text: str, *, script: str | None = None) -> list[str]:
    """Tokens of ``text``: jieba words for CJK text, Unicode words
    otherwise; ``script`` (``"cjk"`` or ``"latin"``) overrides the per-text
    choice of :func:`script_of`."""
    text = normalise(text)
    script = script or script_of(text)
    if script == "cjk":
        return chinese_tokens(text)
    if script == "latin":
        return word_tokens(text)
    raise ValueError(f"unknown script {script!r}: expected 'cjk' or 'latin'")


def read_text(path: str | Path, *, max_bytes: int = 1_000_000) -> tuple[str, bool]:
    """At most ``max_bytes`` of the file at ``path``, decoded as UTF-8 (an
    incomplete trailing character is dropped; invalid bytes raise).

    Returns ``(text, truncated)``. Raises ``UnicodeDecodeError`` for
    non-text bytes and ``OSError`` for unreadable files; callers name the
    file in their message.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    truncated = len(data) > max_bytes
    data = data[:max_bytes]
    if b"\x00" in data:
        raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte: not text")
    text = data.decode("utf-8", errors="strict") if not truncated else _decode_prefix(data)
    return text, truncated


def _decode_prefix(data: bytes) -> str:
    """UTF-8 text of ``data`` cut at an arbitrary byte: up to three trailing
    bytes of a split character are dropped, any other invalid byte raises."""
    for cut in range(0, 4):
        try:
            return data[: len(data) - cut].decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            if error.start < len(data) - 4:
                raise
    return data.decode("utf-8", errors="strict")


@dataclass
class Vocabulary:
    """Token <-> id map. Id 0 is padding, id 1 the unknown word, then the
    kept tokens by decreasing training frequency (ties by first sight)."""

    tokens: list[str] = field(default_factory=lambda: [PAD, UNK])

    def __post_init__(self):
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with the padding and unknown tokens")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @classmethod
    def build(cls, documents: Iterable[Sequence[str]], *, min_count: int = 2,
              max_size: int | None = None) -> "Vocabulary":
        """Vocabulary of the tokens seen at least ``min_count`` times in
        ``documents`` (token lists), the ``max_size`` most frequent kept
        (counting the two reserved ids). Build it on training text only."""
        counts = Counter(token for document in documents for token in document)
        kept = [token for token, n in counts.most_common() if n >= min_count and token not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept])

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``UNK_ID``."""
        return [self.index.get(token, UNK_ID) for token in tokens]

    def coverage(self, tokens: Sequence[str]) -> float:
        """Fraction of ``tokens`` in the vocabulary (1.0 for no tokens):
        low coverage flags text in a language the model never saw."""
        if not tokens:
            return 1.0
        return sum(1 for token in tokens if token in self.index) / len(tokens)

    def script(self) -> str | None:
        """The script the vocabulary was built from: ``"cjk"`` or
        ``"latin"`` when at least :data:`SCRIPT_SHARE` of its words are in
        it (a word is CJK when most of its letters are), None for a mixed
        or empty vocabulary. Computed once."""
        return self._script

    @cached_property
    def _script(self) -> str | None:
        words = self.tokens[2:]
        cjk = sum(1 for w in words if cjk_fraction(w) > 0.5) / len(words) if words else 0.5
        return "cjk" if cjk >= SCRIPT_SHARE else "latin" if 1 - cjk >= SCRIPT_SHARE else None

    def to_dict(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Vocabulary":
        return cls(list(data["tokens"]))


def pad_ids(sequences: Sequence[Sequence[int]], *, length: int) -> np.ndarray:
    """Id sequences cut or right-padded with ``PAD_ID`` to ``length``:
    shape (n, length), int64."""
    out = np.full((len(sequences), length), PAD_ID, dtype=np.int64)
    for row, ids in enumerate(sequences):
        ids = list(ids)[:length]
        out[row, : len(ids)] = ids
    return out


def embedding_matrix(vocabulary: Vocabulary, vectors: Mapping[str, np.ndarray], *, dim: int,
                     seed: int = 0, scale: float = 0.1) -> tuple[np.ndarray, float]:
    """Initial embedding matrix for ``vocabulary`` from pretrained
    ``vectors`` (token -> (dim,) array), shape (len(vocabulary), dim),
    float32: the padding row is zero, tokens without a vector get small
    uniform random values in [-scale, scale]. Returns the matrix and the
    fraction of the vocabulary (reserved ids excluded) found in ``vectors``."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-scale, scale, size=(len(vocabulary), dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    found = 0
    for i, token in enumerate(vocabulary.tokens[2:], start=2):
        vector = vectors.get(token)
        if vector is not None:
            matrix[i] = np.asarray(vector, dtype=np.float32)
            found += 1
    return matrix, found / max(1, len(vocabulary) - 2)
