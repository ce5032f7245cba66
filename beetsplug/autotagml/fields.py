"""What the plugin writes on items: field names and values per task.

Pure functions of scores and configuration, no I/O. For a task ``T`` served
by a bundle with label scores, an analysed item gets:

- the task's tag field (:data:`TAG_FIELDS`): ``genres`` (a list, named the
  way beets' lastgenre plugin names genres: "Hip Hop", "R&B"), ``mood``
  (a list, written to files as MOOD) or ``style`` (written as STYLE); for
  other tasks, ``ml_<task>`` (the chosen labels joined by ", "). The best
  ``min_count`` labels whatever their score (1 for genres, 0 for the other
  tasks by default: every track gets its best genre, but a wrong mood is
  worse than none), then those whose score reaches ``threshold``, at most
  ``count`` in all, best first (:func:`pick`); left alone when none is
  chosen;
- ``ml_<T>_<label>``: the confidence of every label (float, queryable:
  ``beet ls ml_genre_jazz:0.5..``);
- ``ml_<T>_model`` / ``ml_<T>_version``: the bundle that produced them.

An embedding task gets only its model and version fields; the vectors live
in the store.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import mediafile

from beets.dbcore import types
from tagcore import lastgenre as L

#: Fields of older versions (genre model and version), removed when an
#: item's genre fields are set again.
LEGACY_FIELDS = ("ml_model", "ml_model_version")
#: Type of the confidences: beets' float type, shown with three decimals
#: (``types.FLOAT`` shows one, so 0.976 would read "1.0").
SCORE_TYPE = types.Float(3)
#: Multi-valued flexible attribute, stored as beets stores ``genres``.
LIST_TYPE = types.MULTI_VALUE_DSV
#: The beets field each task's chosen labels go to.
TAG_FIELDS = {"genre": "genres", "mood": "mood", "style": "style"}
#: Tasks whose output is a vector, not labels.
EMBEDDING_TASKS = ("embedding",)


def score_prefix(task: str) -> str:
    return f"ml_{task}_"


def model_field(task: str) -> str:
    return f"ml_{task}_model"


def version_field(task: str) -> str:
    return f"ml_{task}_version"


def tag_field(task: str) -> str:
    """``genres``, ``mood``, ``style``, else ``ml_<task>``."""
    return TAG_FIELDS.get(task, f"ml_{task}")


# --- Genre names ----------------------------------------------------------


# lastgenre's genre list and aliases: tagcore.lastgenre, shared with the trainer.
known_genres = L.known_genres
normalize_label = L.normalize_label


@functools.lru_cache(maxsize=4096)
def canonical_genre(label: str) -> str:
    """The beets genre for a model label: normalised (:func:`normalize_label`)
    then title-cased as lastgenre's ``title_case`` option does (``str.title``):
    "hiphop" -> "Hip Hop", "r&b" -> "R&B". Labels that beets' genre list
    does not know are title-cased all the same."""
    return normalize_label(label).title()


def is_known_genre(label: str) -> bool:
    """Whether the normalised label is in lastgenre's ``genres.txt``."""
    return normalize_label(label) in known_genres()


def slugify(label: str) -> str:
    """``label`` reduced to ``[a-z0-9_]``: "R&B" -> "r_b", "Hip-Hop" -> "hip_hop"."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def label_fields(labels: Sequence[str], task: str = "genre") -> dict[str, str]:
    """Flexible attribute name for each label: ``ml_<task>_<slug>``. Labels
    whose slugs collide (with each other, the task's model and version
    fields, or are empty) get a numeric suffix, so every label keeps its
    own field."""
    return dict(_label_fields(tuple(labels), task))


@functools.lru_cache(maxsize=256)
def _label_fields(labels: tuple[str, ...], task: str) -> tuple[tuple[str, str], ...]:
    fields: dict[str, str] = {}
    taken: set[str] = {model_field(task), version_field(task)}
    for position, label in enumerate(labels):
        base = f"{score_prefix(task)}{slugify(label) or f'label_{position}'}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        fields[label] = name
    return tuple(fields.items())


def pick(ranked: Sequence[tuple[str, float]], *, threshold: float, count: int, min_count: int = 0) -> list[str]:
    """The values to write out of ``ranked`` ((value, score) pairs, best
    first): the first ``min_count`` whatever their score, then those whose
    score reaches ``threshold``, at most ``count`` in all. A value is taken
    once; a NaN score never counts.

    >>> pick([("Jazz", 0.4), ("Blues", 0.2)], threshold=0.5, count=2, min_count=1)
    ['Jazz']
    >>> pick([("Jazz", 0.4), ("Blues", 0.2)], threshold=0.5, count=2)
    []
    """
    chosen: list[str] = []
    for value, score in ranked:
        if len(chosen) >= max(count, 0):
            break
        if value in chosen or score != score:  # repeated, or NaN
            continue
        if len(chosen) < min_count or score >= threshold:
            chosen.append(value)
        else:
            break  # ranked best first: no later score reaches the threshold
    return chosen


def _ranked_names(scores: Mapping[str, float], name) -> list[tuple[str, float]]:
    """(name(label), score) pairs best first, ties broken by label."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1] if kv[1] == kv[1] else float("inf"), kv[0]))
    return [(name(label), float(score)) for label, score in ranked]


def choose_genres(scores: Mapping[str, float], *, threshold: float, count: int, min_count: int = 0) -> list[str]:
    """Distinct canonical genres as :func:`pick` chooses them: the best
    ``min_count`` always, then those scoring at least ``threshold``, at most
    ``count``, best first (two labels naming the same genre count once)."""
    return pick(_ranked_names(scores, canonical_genre), threshold=threshold, count=count, min_count=min_count)


def display_name(task: str, label: str) -> str:
    """A label as the value written for ``task``: a lastgenre genre name
    for genres, title case for moods and styles ("dream pop" -> "Dream
    Pop"), the label as it is for other tasks."""
    if task == "genre":
        return canonical_genre(label)
    if task in ("mood", "style"):
        return " ".join(label.replace("_", " ").split()).title()
    return label


def choose(task: str, scores: Mapping[str, float], *, threshold: float, count: int,
           min_count: int = 0) -> list[str]:
    """Distinct display names (:func:`display_name`) of labels as
    :func:`pick` chooses them: the best ``min_count`` always, then those
    scoring at least ``threshold``, at most ``count``, best first; two
    labels naming the same value count once."""
    ranked = _ranked_names(scores, functools.partial(display_name, task))
    return pick(ranked, threshold=threshold, count=count, min_count=min_count)


def tag_value(task: str, chosen: list[str]) -> Any:
    """The value of ``task``'s own tag field (:func:`tag_value_for`): a
    list for genres and mood, "A; B" for ``style``, "a, b" for ``ml_<task>``."""
    return tag_value_for(tag_field(task), chosen)


def task_fields(
    task: str,
    *,
    scores: Mapping[str, float] | None,
    labels: Sequence[str],
    model: str,
    version: str,
    threshold: float,
    count: int,
    min_count: int = 0,
) -> tuple[dict[str, Any], list[str]]:
    """The fields a task sets, and the chosen labels' names (:func:`choose`;
    empty when ``min_count`` is 0 and no label reaches ``threshold``: the
    tag field is then left out)."""
    fields: dict[str, Any] = {model_field(task): model, version_field(task): str(version)}
    if scores is None:
        return fields, []
    for label, name in label_fields(labels, task).items():
        fields[name] = round(float(scores.get(label, 0.0)), 4)
    chosen = choose(task, scores, threshold=threshold, count=count, min_count=min_count)
    if chosen:
        fields[tag_field(task)] = tag_value(task, chosen)
    return fields, chosen


# --- Whose values a tag field holds ---------------------------------------------

#: Set on an item whose file tags the plugin changed in the library without
#: writing the file (``-W``, the import stage, ``import.write: no``):
#: the next run with ``-w`` writes the file even if no tag changes then;
#: beets' own write of the file clears it.
PENDING_FIELD = "ml_file_pending"

#: Prefix of the fields recording what the plugin itself wrote into a tag
#: field: ``ml_written_genres``, ``ml_written_mood``, ``ml_written_style``.
WRITTEN_PREFIX = "ml_written_"


def written_field(tag: str) -> str:
    """The field recording the values the plugin wrote into ``tag``."""
    return f"{WRITTEN_PREFIX}{tag}"


def tag_values(value: Any) -> list[str]:
    """A tag field's value as a list: lists as they are, ``style``'s text
    split on ";" ("A; B" -> ["A", "B"]), nothing -> []."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(";") if part.strip()]


@dataclass(frozen=True)
class Ownership:
    """How a run treats values that the plugin did not write itself, as
    lastgenre does: ``force`` off keeps them untouched; ``force`` on
    replaces them, or with ``keep_existing`` keeps them and adds the
    model's values after them."""

    force: bool = False
    keep_existing: bool = False


def merge_tag(current: Sequence[str], written: Sequence[str], chosen: Sequence[str], ownership: Ownership
              ) -> tuple[list[str], list[str], bool]:
    """The new values of a tag field, the values of them the plugin owns
    (to record), and whether values of someone else were kept untouched.

    ``current``: the field's values now; ``written``: what the plugin wrote
    there last (its record); ``chosen``: what the model decides now (empty
    when no label reaches the threshold). Values in ``current`` that the
    plugin did not write are the user's (or another plugin's):

    - none (an empty field, or only the plugin's own values): the field
      becomes ``chosen``, so a stricter threshold or count takes back what
      an earlier run wrote, down to an empty field;
    - some, ``force`` off: the field is left as it is;
    - some, ``force`` on, ``keep_existing`` on: theirs first, then the
      chosen values they lack;
    - some, ``force`` on, ``keep_existing`` off: ``chosen`` replaces them
      (when nothing is chosen, their values stay).

    >>> merge_tag(["Metal"], [], ["Rock"], Ownership())
    (['Metal'], [], True)
    >>> merge_tag(["Rock", "Pop"], ["Rock", "Pop"], ["Rock"], Ownership())
    (['Rock'], ['Rock'], False)
    """
    current, written, chosen = list(current), list(written), list(chosen)
    others = [v for v in current if v not in written]
    if not others:
        return chosen, chosen, False
    if not ownership.force:
        return current, [v for v in written if v in current], True
    if ownership.keep_existing:
        added = [v for v in chosen if v not in others]
        return others + added, added, False
    if not chosen:
        return current, [v for v in written if v in current], True
    return chosen, chosen, False


def tag_value_for(field: str, values: Sequence[str]) -> Any:
    """The value of tag field ``field`` holding ``values``: a list for
    ``genres`` and ``mood``, "a, b" for the plugin's ``ml_<task>``
    fields, else "a; b" (``style``, a field a head learned)."""
    if field in ("genres", "mood"):
        return list(values)
    if field.startswith("ml_"):
        return ", ".join(values)
    return "; ".join(values)


def stale_fields(task: str, keys: Sequence[str], fields: Mapping[str, Any]) -> list[str]:
    """Confidence fields of ``task`` among ``keys`` that ``fields`` does
    not set (labels of an earlier model), plus the legacy genre fields."""
    prefix = score_prefix(task)
    stale = [k for k in keys if k.startswith(prefix) and k not in fields]
    if task == "genre":
        stale += [k for k in LEGACY_FIELDS if k in keys]
    return stale


def format_scores(scores: Mapping[str, float], *, limit: int = 5) -> str:
    """The best ``limit`` scores as "hiphop 0.98, rock 0.01"."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{label} {score:.2f}" for label, score in ranked)


# --- Media fields ---------------------------------------------------------


class _ListField(mediafile.ListMediaField):
    """A multi-valued tag that is removed from the file when it has no
    value (mediafile would write an empty frame or atom)."""

    def __set__(self, mf, values):
        values = [v for v in values or () if str(v).strip()]
        if values:
            super().__set__(mf, values)
        else:
            self.__delete__(mf)


class _JoinedListField(_ListField):
    """A multi-valued tag that beets sees as one text ("A; B"): beets'
    ``style`` is a text field, but players read one STYLE tag per value."""

    def __init__(self, *styles, separator: str = "; "):
        super().__init__(*styles)
        self.separator = separator

    def __get__(self, mf, owner=None):
        values = super().__get__(mf, owner)
        return self.separator.join(values) if mf is not None and values is not None else values

    def __set__(self, mf, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(self.separator.strip()) if part.strip()]
        super().__set__(mf, value)


def _tag_storage(key: str) -> list:
    """Where Kodi, Emby and Navidrome read a MOOD/STYLE tag: TXXX:KEY in
    ID3, ----:com.apple.iTunes:KEY in MP4, KEY in Vorbis comments (FLAC,
    Ogg, Opus) and APE, WM/Key in ASF."""
    return [
        mediafile.MP3ListDescStorageStyle(desc=key),
        mediafile.MP4ListStorageStyle(f"----:com.apple.iTunes:{key}"),
        mediafile.ListStorageStyle(key),
        mediafile.ASFStorageStyle(f"WM/{key.title()}"),
    ]


def media_fields(extra_tasks: Sequence[str] = ()) -> dict[str, mediafile.MediaField]:
    """The media fields mediafile lacks: ``mood`` (a list) and ``style``,
    and for each of ``extra_tasks`` its ``ml_<task>`` field as a tag named
    after the task in capitals (INSTRUMENT, VOICE...), one value per label."""
    fields = {
        # ID3v2.4's own mood frame (TMOO, read by Picard and many players)
        # beside TXXX:MOOD; read back from TXXX:MOOD first.
        "mood": _ListField(*_tag_storage("MOOD"), mediafile.MP3ListStorageStyle("TMOO")),
        "style": _JoinedListField(*_tag_storage("STYLE")),
    }
    for task in extra_tasks:
        if task not in TAG_FIELDS and task not in EMBEDDING_TASKS:
            fields[tag_field(task)] = _JoinedListField(*_tag_storage(task.upper()), separator=", ")
    return fields
