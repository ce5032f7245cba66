"""Styles from album reviews: the ``reviews`` text source of the plugin.

A style bundle (family ``han``, ``"input": {"kind": "text", "source":
"reviews"}``) reads an album's reviews. This module gathers them once per
album and hands the same text to each of the album's items
(:class:`ReviewReader`), names the labels the way the user chose
(:func:`label_view`: the bundle's ``label_names`` table, English by
default, and labels its ``label_tasks`` route to ``mood``), and after the
run names the albums whose reviews could not be used (:func:`after_run`).
The album's own ``style`` comes from its tracks, as its genres and moods
do (albums.py).

Configuration (``autotagml: reviews:``), see :data:`DEFAULTS`:

- ``sources``: where reviews are looked for, in order; the first that
  gives any review is used: ``sidecar`` (``reviews.txt``, one review per
  paragraph, or ``reviews.json`` in the item's folder), ``attribute`` (the
  flexible attribute named by ``attribute``, on the item or its album,
  paragraphs as reviews), ``comments`` (the comments tags of the album's
  items; off by default, as comments often hold rip notes);
- ``names``: ``english`` (the bundle's label table) or ``original`` (the
  labels as the bundle has them, e.g. Chinese);
- ``max_bytes``: the most read of a sidecar; a larger file is refused;
- ``top``, ``min_tokens``: section 3.2's top-voted reviews and the
  low-information rule (:mod:`tagcore.reviews`);
- ``min_coverage``: the share of the reviews' words the model must know;
  below it the album is not tagged (reviews in a language it never saw).

Only reviews in the script of the model's vocabulary are read (the shipped
NetEase model reads Chinese: English reviews are left out, and an album
with English reviews only is not tagged, with a message saying so); word
coverage alone does not catch English shown to a Chinese model, whose
vocabulary holds common English words.

An album whose reviews cannot be used gets one line saying why (the
reader's :attr:`ReviewReader.messages`) and nothing is written for its
style; its other tasks run as usual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from beets import util
from tagcore import reviews as R
from tagcore import text as T

from . import fields as F

if TYPE_CHECKING:
    from beets.library import Item, Library

SOURCE = "reviews"
SOURCES = ("sidecar", "attribute", "comments")
DEFAULTS: dict[str, Any] = {
    "sources": ["sidecar", "attribute"],
    "attribute": "reviews",
    "sidecar_names": list(R.SIDECAR_NAMES),
    "names": "english",
    "max_bytes": R.MAX_BYTES,
    "top": R.TOP_REVIEWS,
    "min_tokens": R.MIN_TOKENS,
    "min_coverage": 0.2,
}


@dataclass
class Options:
    """The ``reviews`` configuration, checked."""

    sources: tuple[str, ...] = tuple(DEFAULTS["sources"])
    attribute: str = DEFAULTS["attribute"]
    sidecar_names: tuple[str, ...] = R.SIDECAR_NAMES
    names: str = "english"
    max_bytes: int = R.MAX_BYTES
    top: int = R.TOP_REVIEWS
    min_tokens: int = R.MIN_TOKENS
    min_coverage: float = 0.2

    @classmethod
    def from_config(cls, values: Mapping | None) -> "Options":
        """From the plugin's ``reviews`` configuration (a mapping; missing
        keys take :data:`DEFAULTS`); raises ValueError naming a bad value."""
        data = {**DEFAULTS, **(values or {})}
        sources = data["sources"]
        sources = [sources] if isinstance(sources, str) else list(sources or [])
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"reviews.sources: unknown {', '.join(map(str, unknown))} (known: {', '.join(SOURCES)})")
        if data["names"] not in ("english", "original"):
            raise ValueError(f"reviews.names must be english or original, not {data['names']!r}")
        try:
            return cls(tuple(sources), str(data["attribute"]), tuple(str(n) for n in data["sidecar_names"]),
                       data["names"], int(data["max_bytes"]), int(data["top"]), int(data["min_tokens"]),
                       float(data["min_coverage"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"reviews: {exc}") from None


# --- Label names and routing ------------------------------------------------


def written_name(config: Mapping, label: str, names: str = "english") -> str:
    """The name written for ``label``: the bundle's ``label_names`` entry
    when ``names`` is english and it has one, else the label itself."""
    if names == "english":
        return str((config.get("label_names") or {}).get(label, label))
    return label


def routed_task(config: Mapping, label: str, task: str) -> str:
    """The task ``label`` serves: the bundle's ``label_tasks`` entry, else ``task``."""
    return str((config.get("label_tasks") or {}).get(label, task))


def written_labels(config: Mapping, names: str = "english") -> list[str]:
    """The bundle's labels by the names written (for the plugin's field types)."""
    return list(dict.fromkeys(written_name(config, l, names) for l in config.get("labels", [])))


def label_view(config: Mapping, task: str, *, names: str, configured: set[str]) -> Callable | None:
    """For a bundle with a label table: a function ``scores -> (scores,
    labels, extra fields)`` giving the task's own labels by their written
    names; labels routed to another task (``mood``) keep a confidence
    field of this task and, when that task has no model of its own in
    ``configured``, fill its tag field. None for bundles without a table."""
    if not config.get("label_names") and not config.get("label_tasks"):
        return None
    labels = list(config.get("labels", []))
    own = [l for l in labels if routed_task(config, l, task) == task]
    others: dict[str, list[str]] = {}
    for label in labels:
        target = routed_task(config, label, task)
        if target != task:
            others.setdefault(target, []).append(label)
    own_names = list(dict.fromkeys(written_name(config, l, names) for l in own))

    def view(scores: Mapping[str, float], *, threshold: float, count: int):
        renamed: dict[str, float] = {}
        for label in own:
            name = written_name(config, label, names)
            renamed[name] = max(renamed.get(name, 0.0), float(scores.get(label, 0.0)))
        extra: dict[str, Any] = {}
        taken = set(F.label_fields(own_names, task).values())
        for target, routed in others.items():
            routed_scores = {written_name(config, l, names): float(scores.get(l, 0.0)) for l in routed}
            for name, value in routed_scores.items():
                field_name = f"{F.score_prefix(task)}{F.slugify(name) or 'label'}"
                while field_name in taken:
                    field_name += "_"
                taken.add(field_name)
                extra[field_name] = round(value, 4)
            if target not in configured:
                chosen = F.choose(target, routed_scores, threshold=threshold, count=count)
                if chosen:
                    extra[F.tag_field(target)] = F.tag_value(target, chosen)
        return renamed, own_names, extra

    return view


def view_field_names(config: Mapping, task: str, names: str) -> list[str]:
    """Every confidence field a view of ``config`` sets (for item types)."""
    view = label_view(config, task, names=names, configured=set())
    if view is None:
        return list(F.label_fields(written_labels(config, names), task).values())
    scores = {l: 0.0 for l in config.get("labels", [])}
    renamed, own, extra = view(scores, threshold=2.0, count=0)
    return [*F.label_fields(own, task).values(), *(k for k in extra if k.startswith(F.score_prefix(task)))]


# --- Reading reviews once per album ---------------------------------------------


@dataclass
class AlbumReviews:
    """The text of one album's reviews (empty when none could be used),
    where it came from, and why not when it could not be used."""

    text: str = ""
    origin: str = ""
    problem: str | None = None
    absent: bool = False


@dataclass
class ReviewReader:
    """Gathers an album's reviews once and gives the same text to each of
    its items (``reader(item) -> text``, empty when the album has none it
    can use). ``vocabulary``: the model's, for the coverage check."""

    options: Options
    vocabulary: T.Vocabulary | None = None
    model_name: str = "the model"
    albums: dict[Any, AlbumReviews] = field(default_factory=dict)
    #: Where each album's items are (album id or folder -> a display name).
    where: dict[Any, str] = field(default_factory=dict)

    def key(self, item: Item) -> Any:
        album_id = item.get("album_id", with_album=False)
        return ("album", album_id) if album_id else ("folder", os.path.dirname(util.syspath(item.path)))

    def __call__(self, item: Item) -> str:
        key = self.key(item)
        if key not in self.albums:
            self.where[key] = self._display(item)
            try:
                self.albums[key] = self._gather(item)
            except Exception as exc:  # one album never stops the run
                self.albums[key] = AlbumReviews(problem=f"cannot read its reviews ({type(exc).__name__}: {exc})")
        return self.albums[key].text

    @staticmethod
    def _display(item: Item) -> str:
        album = item.get("album") or ""
        artist = item.get("albumartist") or item.get("artist") or ""
        folder = util.displayable_path(os.path.dirname(util.syspath(item.path)))
        name = f"{artist} - {album}" if album else folder
        return f"{name} ({folder})" if album else name

    def _gather(self, item: Item) -> AlbumReviews:
        """The album's reviews from the first of ``options.sources`` that
        holds any, if the model can read them; else why not."""
        for source in self.options.sources:
            found = self._find(source, item)
            if found is None:
                continue
            if isinstance(found, AlbumReviews):
                return found
            return self._readable(*found)
        return AlbumReviews(problem=f"no reviews ({', '.join(self.options.sources)})", absent=True)

    def _find(self, source: str, item: Item) -> tuple[list[R.Review], str] | AlbumReviews | None:
        """(the reviews of ``source``, where they came from) for the item's
        album; an AlbumReviews with the problem when the source has
        something unusable; None when it has nothing (the next source is
        tried)."""
        if source == "sidecar":
            return self._from_sidecar(item)
        if source == "attribute":
            return self._from_attribute(item)
        if source == "comments":
            found = [R.Review(p) for text in self._album_comments(item) for p in R.split_paragraphs(text)]
            return (found, "the comments tags") if found else None
        raise ValueError(f"unknown review source {source!r} (known: {', '.join(SOURCES)})")

    def _from_sidecar(self, item: Item) -> tuple[list[R.Review], str] | AlbumReviews | None:
        o = self.options
        try:
            sidecar = R.read_sidecar(os.path.dirname(util.syspath(item.path)), names=o.sidecar_names,
                                     max_bytes=o.max_bytes)
        except R.ReviewError as exc:
            return AlbumReviews(problem=str(exc))
        if sidecar is None:
            return None
        if sidecar.truncated:
            return AlbumReviews(problem=f"{sidecar.path}: larger than {o.max_bytes:,} bytes (the most read); not used")
        if not sidecar.reviews:
            return AlbumReviews(problem=f"{sidecar.path}: no review in it (empty or whitespace)")
        return sidecar.reviews, sidecar.path.name

    def _from_attribute(self, item: Item) -> tuple[list[R.Review], str] | AlbumReviews | None:
        name = self.options.attribute
        value = item.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return AlbumReviews(problem=f"the {name} attribute is not text ({type(value).__name__})")
        found = [R.Review(p) for p in R.split_paragraphs(value)]
        if not found:
            return AlbumReviews(problem=f"the {name} attribute holds only whitespace")
        return found, f"the {name} attribute"

    def _readable(self, found: list[R.Review], origin: str) -> AlbumReviews:
        """The album's text from the best of ``found`` (``top``, enough
        words), in the model's script and with enough words it knows; else
        the problem."""
        o = self.options
        kept = R.select_reviews(found, top=o.top, min_tokens=o.min_tokens)
        if not kept:
            return AlbumReviews(problem=f"{origin}: {len(found)} review(s), none with enough words "
                                        f"(at least {o.min_tokens} tokens, two distinct)")
        if self.vocabulary is not None and (script := self.vocabulary.script()):
            # Mixed languages: read the reviews in the model's script only.
            readable = [r for r in kept if T.script_of(r.text) == script]
            if not readable:
                problem = T.script_problem(R.album_text(kept), self.vocabulary) or "no review in its script"
                return AlbumReviews(problem=f"{origin}: not read by {self.model_name}: {problem}")
            kept = readable
        if self.vocabulary is not None and o.min_coverage > 0:
            tokens = [t for r in kept for t in T.tokenize(r.text)]
            coverage = self.vocabulary.coverage(tokens)
            if coverage < o.min_coverage:
                return AlbumReviews(problem=f"{origin}: {coverage:.0%} of the words are known to {self.model_name} "
                                            f"(at least {o.min_coverage:.0%} needed: another language?)")
        return AlbumReviews(text=R.album_text(kept), origin=origin)

    def _album_comments(self, item: Item) -> list[str]:
        album = item.get_album() if item.get("album_id", with_album=False) else None
        items = list(album.items()) if album is not None else [item]
        return list(dict.fromkeys(str(i.get("comments") or "").strip() for i in items if str(i.get("comments") or "").strip()))

    def messages(self, *, include_absent: bool = False) -> list[str]:
        """One line per album whose reviews were not used, and why."""
        return [f"{self.where[key]}: {album.problem}" for key, album in self.albums.items()
                if album.problem and (include_absent or not album.absent)]

    def tagged_albums(self) -> list[int]:
        """Ids of the albums whose reviews were used."""
        return [key[1] for key, album in self.albums.items() if key[0] == "album" and album.text]


def attach(models: Mapping[str, Any], values: Mapping | None, configured: set[str], read_config: Callable) -> None:
    """Give every task model reading ``reviews`` its reader and label view
    (``models``: task -> TaskModel; ``values``: the ``reviews`` config;
    ``configured``: every task with a model). Raises ValueError for a bad
    configuration."""
    options = None
    for task, model in models.items():
        if model.text_source != SOURCE:
            continue
        options = options or Options.from_config(values)
        _, config = read_config(model.spec)
        vocabulary = config.get("model", {}).get("vocabulary")
        model.reader = ReviewReader(options, T.Vocabulary(list(vocabulary)) if vocabulary else None, model.name)
        model.view = label_view(config, task, names=options.names, configured=set(configured) - {task})


def after_run(models: Mapping[str, Any], lib: Library | None, *, pretend: bool, log=None) -> list[str]:
    """After a run: one line per album whose reviews were not used (albums
    without any review only with -v, through ``log``). (The albums' own
    style comes from their tracks: albums.py.)"""
    lines: list[str] = []
    for task, model in models.items():
        reader = getattr(model, "reader", None)
        if reader is None:
            continue
        lines += [f"{task} skipped: {message}" for message in reader.messages()]
        if log is not None:
            for message in reader.messages(include_absent=True):
                if message not in reader.messages():
                    log.debug("{} skipped: {}", task, message)
    return lines
