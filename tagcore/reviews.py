"""Album reviews: where they come from and which ones a model reads.

Section 3.2 of the han paper: reviews with too little information are deleted
by rules, then the top 40 voted reviews are kept; albums with too few
reviews are dropped. :func:`select_reviews` does the first two (the rules
are :func:`is_informative`); the caller decides what "too few" means.

Sources the plugin reads (``beetsplug.autotagml.styles``), all bounded:

- a sidecar file in the album's folder: ``reviews.txt`` (UTF-8, one review
  per paragraph, paragraphs separated by blank lines) or ``reviews.json``
  (a list of strings, or of objects with ``text``/``comment`` and an
  optional ``votes``/``vote`` count, or an object with such a list under
  ``reviews``), read with :func:`read_sidecar`;
- a text of several reviews (a flexible attribute, the comments tag),
  split with :func:`split_paragraphs`.

No file is ever read past ``max_bytes``: a 10 MB ``reviews.txt`` costs the
cap, its last (cut) paragraph dropped; a ``reviews.json`` over the cap
cannot be parsed and is an error.

An album's reviews reach a text model as one text, the reviews separated
by blank lines (:func:`album_text`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tagcore import text as T

#: Sidecar names looked for, in this order.
SIDECAR_NAMES = ("reviews.txt", "reviews.json")
#: Section 3.2: the top 40 voted reviews.
TOP_REVIEWS = 40
#: Bytes read from a sidecar at most.
MAX_BYTES = 1_000_000
#: A review needs at least this many tokens and two distinct ones.
MIN_TOKENS = 2

_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")


class ReviewError(Exception):
    """Reviews that cannot be read; the message names the file and the cause."""


@dataclass(frozen=True)
class Review:
    """One review: its text and how many users voted it useful (None: unknown)."""

    text: str
    votes: int | None = None


def is_informative(text: str, *, min_tokens: int = MIN_TOKENS) -> bool:
    """The rules for "too little information" (section 3.2 names none):
    a review is kept when it has at least ``min_tokens`` tokens
    (:func:`tagcore.text.tokenize`: jieba words for Chinese, Unicode words
    otherwise) and at least two distinct ones, so "好听", "5 stars", "!!!!"
    and "哈哈哈哈" go."""
    tokens = T.tokenize(text)
    return len(tokens) >= min_tokens and len(set(tokens)) >= min(2, min_tokens)


def select_reviews(reviews: Iterable[Review], *, top: int = TOP_REVIEWS, min_tokens: int = MIN_TOKENS) -> list[Review]:
    """The ``top`` most voted informative reviews, most votes first (ties
    and unknown votes keep their order, unknown after known): reviews
    that are empty, whitespace, repeated verbatim or not
    :func:`is_informative` are dropped first."""
    seen: set[str] = set()
    kept: list[Review] = []
    for review in reviews:
        body = " ".join(review.text.split())
        if not body or body in seen or not is_informative(body, min_tokens=min_tokens):
            continue
        seen.add(body)
        kept.append(review)
    kept.sort(key=lambda r: -(r.votes if r.votes is not None else -1))
    return kept[: max(0, top)]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of ``text`` (separated by blank lines), stripped, empty
    ones dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def album_text(reviews: Sequence[Review | str]) -> str:
    """The reviews as one text for a text model: each review on its own
    paragraph (blank lines inside a review become line breaks)."""
    parts = []
    for review in reviews:
        body = review.text if isinstance(review, Review) else review
        body = _BLANK_LINES.sub("\n", body.replace("\r\n", "\n").replace("\r", "\n")).strip()
        if body:
            parts.append(body)
    return "\n\n".join(parts)


def _votes(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_json_reviews(data, *, where: str) -> list[Review]:
    """Reviews of a parsed ``reviews.json``: a list of strings or of
    objects with ``text`` (or ``comment``) and optional ``votes`` (or
    ``vote``), or an object holding such a list under ``reviews``. Raises
    ReviewError naming ``where`` and the first bad entry."""
    if isinstance(data, dict) and "reviews" in data:
        data = data["reviews"]
    if not isinstance(data, list):
        raise ReviewError(f"{where}: expected a list of reviews (or {{\"reviews\": [...]}})")
    reviews = []
    for number, entry in enumerate(data):
        if isinstance(entry, str):
            reviews.append(Review(entry))
        elif isinstance(entry, dict) and isinstance(entry.get("text", entry.get("comment")), str):
            reviews.append(Review(entry.get("text", entry.get("comment")), _votes(entry.get("votes", entry.get("vote")))))
        else:
            raise ReviewError(f"{where}: review {number} is neither a string nor an object with a 'text' string")
    return reviews


@dataclass
class SidecarReviews:
    """What :func:`read_sidecar` found: the reviews, the file, and whether
    the file was cut at ``max_bytes``."""

    reviews: list[Review]
    path: Path
    truncated: bool = False


def read_sidecar(directory: str | Path, *, names: Sequence[str] = SIDECAR_NAMES,
                 max_bytes: int = MAX_BYTES) -> SidecarReviews | None:
    """The reviews of the first of ``names`` that exists in ``directory``,
    read up to ``max_bytes`` (None when there is none).

    Raises ReviewError for a file that is not UTF-8 text (binary bytes, a
    NUL byte), a ``reviews.json`` that is not valid JSON or larger than the
    cap, or a file that cannot be read; the message names the file."""
    directory = Path(directory)
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        try:
            content, truncated = T.read_text(path, max_bytes=max_bytes)
        except UnicodeDecodeError as exc:
            raise ReviewError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        except OSError as exc:
            raise ReviewError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if path.suffix.lower() == ".json":
            if truncated:
                raise ReviewError(f"{path}: larger than {max_bytes:,} bytes, the most read; not parsed")
            try:
                data = json.loads(content)
            except json.JSONDecodeError as exc:
                raise ReviewError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
            return SidecarReviews(parse_json_reviews(data, where=str(path)), path)
        paragraphs = split_paragraphs(content)
        if truncated and paragraphs:
            paragraphs = paragraphs[:-1]  # the last one was cut mid-way
        return SidecarReviews([Review(p) for p in paragraphs], path, truncated)
    return None
