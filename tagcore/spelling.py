"""Spellings of tag names: one key for the ways people write one tag.

:func:`fold` lower-cases, removes accents and turns punctuation into spaces;
:func:`spelling_key` also drops the spaces, so "Hip-Hop", "hip hop" and
"HipHop" share ``hiphop``; :func:`closest_spellings` suggests names for a
misspelt one; :func:`did_you_mean` is the hint of every message about an
unknown name. Standard library only.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Iterable


@functools.lru_cache(maxsize=65536)
def fold(name: str) -> str:
    """``name`` lower-cased, accents removed (NFKD, combining marks
    dropped), ``& + /`` kept, other punctuation and ``_ -`` made spaces,
    runs of spaces collapsed: "Hip-Hop" -> "hip hop", "Musique Concrète" ->
    "musique concrete", "R&B" -> "r&b"."""
    text = unicodedata.normalize("NFKD", str(name)).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w&+/]+|_", " ", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=65536)
def spelling_key(name: str) -> str:
    """:func:`fold` without spaces: the key two spellings of one tag share
    ("Bossa Nova", "Bossanova" -> ``bossanova``; "Hip-Hop", "hip hop",
    "hiphop" -> ``hiphop``). Empty for a name of punctuation only."""
    return fold(name).replace(" ", "")


def closest_spellings(name: str, candidates: Iterable[str], *, n: int = 5, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``candidates`` whose folded spelling is closest to
    ``name``'s (difflib ratio >= ``cutoff``), best first; ties keep the
    candidates' order."""
    by_fold: dict[str, str] = {}
    for candidate in candidates:
        by_fold.setdefault(fold(candidate), candidate)
    matches = difflib.get_close_matches(fold(name), list(by_fold), n=n, cutoff=cutoff)
    return [by_fold[m] for m in matches]


def did_you_mean(name: str, known) -> str:
    """"; did you mean 'x'?" for the name of ``known`` closest to ``name``
    (difflib ratio >= 0.6), or "": the hint of every message about an
    unknown name (bundles, options, tasks, trainer commands)."""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""
