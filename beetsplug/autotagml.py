"""Tag items with genres predicted from their audio by a tagcore model bundle.

The plugin adds the ``autotag-ml`` command and (with ``auto: yes``) an
import stage. For each analysed item it sets:

- ``genres``: at most ``count`` genres whose score reaches ``threshold``,
  best first, named the way beets' lastgenre plugin names them ("Hip Hop",
  "R&B"); left alone when no genre reaches the threshold;
- ``ml_genre_<label>``: the model's confidence for every label (float);
- ``ml_model`` / ``ml_model_version``: the bundle that produced them, so a
  later run skips items already analysed by the same model (unless forced).

The maths and the name mapping are plain module-level functions; the plugin
class only wires configuration, the command and the import stage. Heavy
imports (the decoding workers, torch) happen on the first analysis, not when
beets starts.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from beets import ui, util
from beets.dbcore import types
from beets.library import FileOperationError
from beets.plugins import BeetsPlugin
from tagcore.bundle import DEFAULT_BUNDLE, BundleError, load_bundle, read_config

if TYPE_CHECKING:
    import optparse
    from collections.abc import Iterable, Sequence

    from beets.importer import ImportSession, ImportTask
    from beets.library import Item, Library
    from tagcore.bundle import Bundle

FIELD_PREFIX = "ml_genre_"
MODEL_FIELD = "ml_model"
VERSION_FIELD = "ml_model_version"
#: A progress bar is shown when more items than this are analysed.
PROGRESS_MIN_ITEMS = 5
#: Type of the ``ml_genre_*`` confidences: beets' float type, shown with
#: three decimals (``types.FLOAT`` shows one, so 0.976 would read "1.0").
SCORE_TYPE = types.Float(3)

# --- Genre names ----------------------------------------------------------


def _lastgenre_dir() -> Path | None:
    """Directory of beets' lastgenre plugin data, found without importing
    the plugin (its ``__init__`` needs pylast, which beets does not require)."""
    try:
        spec = importlib.util.find_spec("beetsplug.lastgenre")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if (Path(location) / "aliases.yaml").is_file():
            return Path(location)
    return None


@functools.cache
def genre_aliases() -> tuple[tuple[re.Pattern[str], str], ...]:
    """lastgenre's alias table (``aliases.yaml``) as (pattern, template)
    pairs, in file order; patterns match case-insensitively and whole
    strings, templates may use back-references (``\\1``). Loaded once."""
    base = _lastgenre_dir()
    if base is None:
        return ()
    with (base / "aliases.yaml").open(encoding="utf-8") as f:
        table = yaml.safe_load(f) or {}
    return tuple(
        (re.compile(pattern, re.IGNORECASE), str(canonical).lower())
        for canonical, patterns in table.items()
        for pattern in patterns or ()
    )


@functools.cache
def known_genres() -> frozenset[str]:
    """Lower-case genre names of lastgenre's ``genres.txt``. Loaded once."""
    base = _lastgenre_dir()
    if base is None:
        return frozenset()
    text = (base / "genres.txt").read_text(encoding="utf-8")
    return frozenset(
        line for line in (raw.strip().lower() for raw in text.splitlines()) if line and not line.startswith("#")
    )


def normalize_label(label: str) -> str:
    """A model label as a lower-case genre name: underscores and runs of
    spaces become one space, then the first lastgenre alias that matches the
    whole name rewrites it ("hiphop" -> "hip hop", "rnb" -> "r&b")."""
    name = " ".join(label.replace("_", " ").lower().split())
    for pattern, template in genre_aliases():
        if match := pattern.fullmatch(name):
            try:
                return match.expand(template)
            except (re.error, IndexError):
                continue
    return name


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


def label_fields(labels: Sequence[str]) -> dict[str, str]:
    """Flexible attribute name for each label: ``ml_genre_<slug>``. Labels
    whose slugs collide (or are empty) get a numeric suffix, so every label
    keeps its own field."""
    fields: dict[str, str] = {}
    taken: set[str] = set()
    for position, label in enumerate(labels):
        base = f"{FIELD_PREFIX}{slugify(label) or f'label_{position}'}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        fields[label] = name
    return fields


def choose_genres(scores: dict[str, float], *, threshold: float, count: int) -> list[str]:
    """At most ``count`` distinct canonical genres whose score is at least
    ``threshold``, best first (two labels naming the same genre count once)."""
    from tagcore.tagger import top_labels

    chosen: list[str] = []
    for label, _ in top_labels(scores, threshold=threshold, count=len(scores)):
        genre = canonical_genre(label)
        if genre not in chosen:
            chosen.append(genre)
    return chosen[: max(count, 0)]


def format_scores(scores: dict[str, float], *, limit: int = 5) -> str:
    """The best ``limit`` scores as "hiphop 0.98, rock 0.01"."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{label} {score:.2f}" for label, score in ranked)


def already_tagged(item: Item, name: str, version: str) -> bool:
    """Whether ``item`` was analysed by bundle ``name`` at ``version``."""
    return item.get(MODEL_FIELD) == name and str(item.get(VERSION_FIELD, "")) == version


def set_fields(
    item: Item,
    scores: dict[str, float],
    genres: list[str],
    *,
    fields: dict[str, str],
    name: str,
    version: str,
) -> None:
    """Put the analysis on ``item`` (in memory only): confidences, model
    name and version, and ``genres`` when there are any. ``ml_genre_*``
    fields of labels the model does not have (an earlier model) are dropped."""
    current = set(fields.values())
    for key in [k for k in item.keys() if k.startswith(FIELD_PREFIX) and k not in current]:
        del item[key]
    for label, field_name in fields.items():
        item[field_name] = round(float(scores.get(label, 0.0)), 4)
    item[MODEL_FIELD] = name
    item[VERSION_FIELD] = version
    if genres:
        item.genres = genres


# --- Outcome of a run -----------------------------------------------------


@dataclass
class Report:
    """What a run did; ``failures`` and ``below`` keep (item, message)."""

    model: str
    version: str
    tagged: int = 0
    skipped: int = 0
    failures: list[tuple[Any, str]] = field(default_factory=list)
    below: list[tuple[Any, str]] = field(default_factory=list)
    proposals: list[tuple[Any, dict[str, float]]] = field(default_factory=list)

    def summary(self, *, pretend: bool = False) -> str:
        verb = "to tag" if pretend else "tagged"
        line = (
            f"{self.tagged} {verb}, {self.skipped} skipped (already tagged by "
            f"{self.model} {self.version}), {len(self.failures)} failed, "
            f"{len(self.below)} below threshold"
        )
        return f"autotag-ml (pretend, nothing changed): {line}" if pretend else f"autotag-ml: {line}"


@contextmanager
def _batched_commits(lib: Library | None, every: int = 32) -> Iterator[Any]:
    """Group ``item.store()`` calls into one SQLite commit per ``every``
    items (a commit costs ~20 ms); yields a function to call after each
    store. Without a library, stores commit one by one as usual."""
    if lib is None:
        yield lambda: None
        return
    state = {"tx": None, "count": 0}

    def stored() -> None:
        state["count"] += 1
        if state["count"] % every == 0:
            state["tx"].__exit__(None, None, None)
            state["tx"] = lib.transaction()
            state["tx"].__enter__()

    state["tx"] = lib.transaction()
    state["tx"].__enter__()
    try:
        yield stored
    finally:
        state["tx"].__exit__(None, None, None)


class _NoProgress:
    def update(self, n: int) -> None:
        pass


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    """A click progress bar on stderr when ``enabled`` and more than
    :data:`PROGRESS_MIN_ITEMS` items, else a silent stand-in."""
    if not enabled or total <= PROGRESS_MIN_ITEMS:
        yield _NoProgress()
        return
    import click

    with click.progressbar(length=total, label="autotag-ml", file=sys.stderr, show_pos=True) as bar:
        yield bar


# --- Plugin ---------------------------------------------------------------


class AutotagMLPlugin(BeetsPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.config.add(
            {
                "auto": True,
                "model": DEFAULT_BUNDLE,
                "threshold": 0.3,
                "count": 2,
                "workers": 2,
                "timeout": 30,
                "batch_size": 16,
            }
        )
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
        self._bundles: dict[str, Bundle] = {}
        self._stage_error: str | None = None

    # Configuration and bundle.

    @property
    def model_spec(self) -> str:
        return self.config["model"].as_str()

    @property
    def item_types(self) -> dict[str, types.Type]:
        """Types of the fields this plugin sets; the label fields come from
        the bundle's config.json (its weights are not loaded here)."""
        fields: dict[str, types.Type] = {MODEL_FIELD: types.STRING, VERSION_FIELD: types.STRING}
        try:
            labels = read_config(self.model_spec)[1]["labels"]
        except BundleError as exc:
            self._log.debug("no label types: {}", exc)
            return fields
        fields.update({name: SCORE_TYPE for name in label_fields(labels).values()})
        return fields

    def bundle(self) -> Bundle:
        """The configured bundle, loaded (weights included) once. Raises BundleError."""
        spec = self.model_spec
        if spec not in self._bundles:
            self._log.debug("loading model bundle {}", spec)
            self._bundles[spec] = load_bundle(spec)
            if unknown := [label for label in self._bundles[spec].labels if not is_known_genre(label)]:
                self._log.debug("labels not in beets' genre list (title-cased as they are): {}", unknown)
        return self._bundles[spec]

    # Command.

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("autotag-ml", help="tag genres predicted from the audio by a model")
        cmd.parser.add_option(
            "-p", "--pretend", action="store_true", default=False,
            help="show the genres that would be set, change nothing",
        )
        cmd.parser.add_option(
            "-f", "--force", action="store_true", default=False,
            help="re-analyse items already tagged by the same model version",
        )
        cmd.parser.add_option(
            "-w", "--write", action="store_true", default=None, dest="write",
            help="write new metadata to files' tags (default: import.write)",
        )
        cmd.parser.add_option(
            "-W", "--nowrite", action="store_false", dest="write",
            help="don't write metadata (opposite of -w)",
        )
        cmd.func = self.command
        return [cmd]

    def command(self, lib: Library, opts: optparse.Values, args: list[str]) -> None:
        pretend = bool(opts.pretend)
        try:
            report = self.tag_items(
                lib.items(args),
                write=ui.should_write(opts.write) and not pretend,
                pretend=pretend,
                force=bool(opts.force),
                progress=True,
                lib=lib,
            )
        except BundleError as exc:
            raise ui.UserError(f"autotag-ml: {exc}") from None

        for item, scores in report.proposals:
            ui.show_model_changes(item, fields=["genres"], always=True)
            ui.print_(f"  scores: {format_scores(scores)}")
        ui.print_(report.summary(pretend=pretend))
        for item, message in report.below:
            ui.print_(f"  below threshold: {util.displayable_path(item.path)} ({message})")
        for _, message in report.failures:
            ui.print_(f"  failed: {message}")

    # Import stage.

    def imported(self, session: ImportSession, task: ImportTask) -> None:
        """Analyse the task's items and store their fields. Files are not
        written here: beets' importer writes them afterwards, when
        ``import.write`` is on and a match was applied (not for as-is
        imports). A file that fails is logged, never raised."""
        if self._stage_error is not None:
            return
        try:
            report = self.tag_items(task.imported_items(), write=False, pretend=False, force=False)
        except BundleError as exc:
            self._stage_error = str(exc)
            self._log.error("autotag-ml disabled for this import: {}", exc)
            return
        for item, message in report.below:
            self._log.info("genres unchanged for {}: {}", util.displayable_path(item.path), message)
        for _, message in report.failures:
            self._log.warning("autotag-ml failed: {}", message)

    # The work.

    def tag_items(
        self,
        items: Iterable[Item],
        *,
        write: bool,
        pretend: bool,
        force: bool,
        progress: bool = False,
        lib: Library | None = None,
    ) -> Report:
        """Analyse ``items`` in one batch and update them. Raises BundleError
        when the configured bundle is missing or broken."""
        _, meta = read_config(self.model_spec)
        report = Report(model=meta["name"], version=str(meta["version"]))
        # With a library, keep only ids and paths and fetch each item again
        # when its result arrives: memory does not grow with the library.
        todo: list[Item | int] = []
        paths: list[str] = []
        for item in items:
            if not force and already_tagged(item, report.model, report.version):
                report.skipped += 1
            else:
                todo.append(item.id if lib is not None and item.id is not None else item)
                paths.append(util.syspath(item.path))
        if not todo:
            return report

        from tagcore.features import MelParams
        from tagcore.tagger import Tagger

        # The weights load in the tagger's model thread while the decoding
        # workers start; names and labels come from config.json meanwhile.
        tagger = Tagger(
            self.bundle,
            features=MelParams.from_dict(meta["features"]),
            batch_size=self.config["batch_size"].get(int),
            workers=self.config["workers"].get(int),
            timeout=float(self.config["timeout"].as_number()),
        )
        threshold = float(self.config["threshold"].as_number())
        count = self.config["count"].get(int)
        fields = label_fields(meta["labels"])
        proposals: dict[int, tuple[Item, dict[str, float]]] = {}

        position: dict[int, int] = {}  # id(item) -> input position, to report in input order
        with _progress(len(todo), progress) as bar, _batched_commits(lib) as stored:
            for result in tagger.analyse(paths):
                bar.update(1)
                entry = todo[result.index]
                item = lib.get_item(entry) if isinstance(entry, int) else entry
                if item is None:  # removed from the library meanwhile
                    continue
                position[id(item)] = result.index
                if not result.ok:
                    report.failures.append((item, result.error or f"{item.filepath}: unknown error"))
                    continue
                scores = result.scores or {}
                genres = choose_genres(scores, threshold=threshold, count=count)
                set_fields(item, scores, genres, fields=fields, name=report.model, version=report.version)
                if pretend:
                    proposals[result.index] = (item, scores)
                elif (error := self._save(item, write)) is not None:
                    report.failures.append((item, error))
                    continue
                else:
                    stored()
                if genres:
                    report.tagged += 1
                    self._log.debug("{}: {} ({})", item.filepath, "; ".join(genres), format_scores(scores))
                else:
                    report.below.append((item, f"no score >= {threshold:g}; best {format_scores(scores, limit=1)}"))
        report.proposals = [proposals[i] for i in sorted(proposals)]
        report.failures.sort(key=lambda entry: position[id(entry[0])])
        report.below.sort(key=lambda entry: position[id(entry[0])])
        return report

    def _save(self, item: Item, write: bool) -> str | None:
        """Write the file's tags (if ``write``), then store the row. Returns
        an error message, with nothing stored, when the write fails."""
        if write:
            # Item.write is what Item.try_write runs; calling it directly
            # keeps the reason for the summary instead of only logging it.
            try:
                item.write()
            except FileOperationError as exc:
                return str(exc)
        item.store()
        return None

