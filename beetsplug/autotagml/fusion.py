"""Genres from several sources of evidence: the audio and the lyrics.

The ``genre`` task reads the audio; a second genre model reads the lyrics
(task ``lyrics_genre``: a text bundle of task ``genre`` whose input source
is ``lyrics``, such as the shipped ``lyrics-genius``). Each keeps its own
confidences (``ml_genre_*``, ``ml_lyrics_genre_*``); the item's ``genres``
come from both by this rule:

1. each source's labels are named as beets names genres: the bundle's
   ``genre_names`` table first (``rap`` -> ``Hip Hop``, ``r-b`` -> ``R&B``),
   then lastgenre's aliases and title case
   (:func:`beetsplug.autotagml.fields.canonical_genre`: ``hiphop`` -> ``Hip
   Hop``), so the audio model's "hip hop" and the lyrics model's "rap" are
   one genre; labels of one source naming the same genre add up (capped at 1);
2. a genre's fused score is the weighted mean of its scores over the
   sources that produced an output for the item *and have the genre in
   their vocabulary* (weights: ``genre_weights``, default audio 1.0,
   lyrics 0.5): a source is silent on genres it cannot name, so the five
   genres of the lyrics model neither dilute nor block the audio model's
   jazz or classical;
3. the best ``min_count`` fused genres whatever their score (default 1:
   every item with an output gets its best genre), then those whose fused
   score reaches ``threshold``, at most ``count`` in all (the genre task's
   three numbers; :func:`beetsplug.autotagml.fields.pick`), best first,
   become ``genres``; ``ml_genre_sources`` records the sources that had a
   say in them (``audio``, ``lyrics`` or ``audio, lyrics``). When none is
   chosen (``min_count`` 0 and none reaches the threshold), ``genres`` is
   left as it was.

4. with ``audio_styles`` on (the default), the fused scores are split on
   lastgenre's tree first (:mod:`tagcore.genre_levels`): ``genres`` gets
   broad genres only (Rock, Electronic, R&B...; a broad genre scores the
   best of its own name and its styles), chosen by rule 3, and ``style``
   the specific names (Indie Rock, House, Soul...) whose fused score
   reaches the genre threshold and whose broad genre was written, at most
   the style count (:class:`StyleRule`). Styles from album reviews come
   first; these fill the slots left (:func:`merge_styles`). With
   ``audio_styles: no`` ``genres`` mixes both levels as rule 3 ranks them.

A source with weight 0 still gets its confidence fields but decides
nothing. Items without lyrics (or whose lyrics were skipped: another
language, instrumental) get their genres from the audio alone, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from tagcore import genre_levels

from .fields import canonical_genre, pick

#: Weights of the sources when the config gives none.
DEFAULT_WEIGHTS = {"audio": 1.0, "lyrics": 0.5}
#: Field naming the sources that decided an item's genres.
SOURCES_FIELD = "ml_genre_sources"


@dataclass
class GenreSource:
    """One configured genre model: the plugin task that runs it, the
    source it reads (``audio``, ``lyrics``), its weight and the beets genre
    name of each of its labels."""

    task: str
    source: str
    weight: float
    names: Mapping[str, str] = field(default_factory=dict)

    def genre_scores(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Scores by beets genre name (labels naming one genre added, at most 1)."""
        out: dict[str, float] = {}
        for label, score in scores.items():
            genre = canonical_genre(self.names.get(label, label))
            out[genre] = min(1.0, out.get(genre, 0.0) + float(score))
        return out


def fuse(sources: Sequence[GenreSource], scores: Mapping[str, Mapping[str, float]]
         ) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Fused score per genre and, per genre, the sources that scored it.

    ``scores``: task -> label scores, for the sources that produced an
    output for this item. Sources of weight 0 (or without output) take no
    part."""
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    voters: dict[str, list[str]] = {}
    for source in sources:
        if source.weight <= 0 or source.task not in scores:
            continue
        for genre, value in source.genre_scores(scores[source.task]).items():
            totals[genre] = totals.get(genre, 0.0) + source.weight * value
            weights[genre] = weights.get(genre, 0.0) + source.weight
            voters.setdefault(genre, []).append(source.source)
    return {genre: totals[genre] / weights[genre] for genre in totals}, voters


@dataclass(frozen=True)
class StyleRule:
    """How styles are taken from the genre scores (rule 4): those scoring
    at least ``threshold`` (the genre task's), at most ``count``."""

    threshold: float
    count: int


@dataclass
class Decision:
    """One item's genres, styles heard in the audio (empty without a
    :class:`StyleRule`) and the sources that had a say in them."""

    genres: list[str]
    styles: list[str]
    sources: list[str]


@dataclass
class GenreFusion:
    """The fusion rule of a run: its sources, threshold, count and
    min_count (the best ``min_count`` genres are written whatever their
    score; the plugin passes its option, 1 by default), and the style
    rule (None: ``genres`` mixes broad genres and styles)."""

    sources: list[GenreSource]
    threshold: float
    count: int
    min_count: int = 0
    styles: StyleRule | None = None

    @property
    def tasks(self) -> set[str]:
        return {s.task for s in self.sources}

    def choose(self, scores: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[str]]:
        """(genres, sources that had a say in them) for one item."""
        decision = self.decide(scores)
        return decision.genres, decision.sources

    def decide(self, scores: Mapping[str, Mapping[str, float]]) -> Decision:
        """Genres, styles and their sources for one item (rules 2 to 4)."""
        fused, voters = fuse(self.sources, scores)
        styles: list[str] = []
        if self.styles is None:
            chosen = pick(_ranked(fused), threshold=self.threshold, count=self.count, min_count=self.min_count)
            behind = {genre: [genre] for genre in chosen}
        else:
            broad, specific = genre_levels.split_levels(fused)
            names = {canonical_genre(name): name for name in broad}
            chosen = pick(_ranked({canonical_genre(g): v for g, v in broad.items()}), threshold=self.threshold,
                          count=self.count, min_count=self.min_count)
            styles = [canonical_genre(s) for s in genre_levels.choose_styles(
                specific, chosen, threshold=self.styles.threshold, count=self.styles.count)]
            behind = {genre: [g for g in fused if genre_levels.broad_genre(g) == names[genre]] for genre in chosen}
        used = {source for genre in chosen for label in behind[genre] for source in voters[label]}
        order = [s.source for s in self.sources]
        return Decision(chosen, styles, sorted(used, key=order.index))

    def fields(self, scores: Mapping[str, Mapping[str, float]]) -> dict[str, object]:
        """``genres`` and ``ml_genre_sources`` for one item, or {} when no
        source had an output or no genre is chosen."""
        chosen, used = self.choose(scores)
        if not chosen:
            return {}
        return {"genres": chosen, SOURCES_FIELD: ", ".join(used)}


def merge_styles(from_reviews: Sequence[str], from_audio: Sequence[str], *, count: int) -> list[str]:
    """The styles written (rule 4): those read in album reviews first, then
    those heard in the audio, each once (compared without case), at most
    ``count``; ``count`` at least the number of review styles, so a
    review model's own count is never cut."""
    merged: list[str] = []
    for style in [*from_reviews, *from_audio]:
        if style.lower() not in {m.lower() for m in merged}:
            merged.append(style)
    return merged[: max(count, len(from_reviews))]


def _ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
