"""Tag items with genres, moods and styles heard in their audio by tagcore
model bundles.

The plugin adds the ``autotag-ml`` command and (with ``auto: yes``) an
import stage. Each configured task (``models: {genre: ..., mood: ...}``)
is served by one bundle; one run analyses every item with every task's
bundle in a single pass (one decode per file) and keeps what it found in a
store beside the library (:mod:`tagcore.store`), so later runs set fields
from the store without decoding. What goes on items is in
:mod:`beetsplug.autotagml.fields`; the run itself in
:mod:`beetsplug.autotagml.run`. This module only wires configuration,
commands, the import stage and library events.

Heavy imports (the decoding workers, torch) happen on the first analysis,
not when beets starts.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

import mediafile

from beets import ui, util
from beets.dbcore import types
from beets.library import Item
from beets.plugins import BeetsPlugin
from tagcore import onnx_runtime
from tagcore.bundle import BundleError, read_config
from tagcore.spelling import did_you_mean
from tagcore.store import Store, StoreError, file_key

from . import albums
from . import fields as F
from . import styles
from . import fusion as FU
from . import similar
from .fields import canonical_genre, choose, format_scores, is_known_genre, label_fields  # noqa: F401 (API)
from .run import PROGRESS_MIN_ITEMS, Run, TaskModel, has, run_lock  # noqa: F401

if TYPE_CHECKING:
    import optparse
    from collections.abc import Iterable

    from beets.importer import ImportSession, ImportTask
    from beets.library import Library

#: Name of the store file, in the library's directory.
STORE_NAME = "autotagml.sqlite"
#: The models used when the config names none (``models:`` replaces this
#: set as a whole; ``model:`` alone means ``models: {genre: ...}``). A
#: missing one is reported once and the other tasks run.
DEFAULT_MODELS = {
    "genre": "genre-musicnn",
    "mood": "mood-musicnn",
    "instrument": "instrument-mtt",
    "voice": "voice-mtt",
    "energy": "energy-mtt",
    "embedding": "musicnn-msd",
    # Styles from album reviews (text input: a reviews.txt/reviews.json
    # sidecar or the `reviews` attribute; albums without reviews skip it).
    "style": "style-netease",
    # Genre from the lyrics field (text input; items without lyrics skip it),
    # fused with the audio genres (fusion.py).
    "lyrics_genre": "lyrics-tfidf",
}
#: Styles heard in the audio written at most (``count.style`` overrides).
AUDIO_STYLE_COUNT = 2
#: threshold and count when neither the config nor the bundle says (a
#: bundle's config.json may carry "decision": {"threshold": ..., "count": ...}).
FALLBACK_DECISION = {"threshold": 0.3, "count": 2}
#: min_count when neither the config nor the bundle says, by the field the
#: task writes: every track gets its best genre; other tasks get a label
#: only when it reaches the threshold (a wrong mood is worse than none).
FALLBACK_MIN_COUNT = {"genres": 1}


#: The plugin's options and their defaults (``autotagml:`` in beets' config).
OPTIONS: dict[str, Any] = {
    "auto": True,
    # task -> bundle name or directory (empty: DEFAULT_MODELS);
    # ``model`` is the genre model of earlier versions.
    "models": {},
    "model": None,
    # A number, or a mapping task -> number; unset: what each
    # bundle recommends (its config.json "decision").
    "threshold": None,
    "count": None,
    # The best min_count labels are written even under the threshold
    # (then up to ``count`` reaching it); a number or task -> number;
    # unset: the bundle's "decision", else 1 for genres, 0 otherwise.
    "min_count": None,
    # As lastgenre: values of genres/mood/style that the plugin
    # did not write are kept unless ``force``; with ``force``,
    # ``keep_existing`` keeps them and adds the model's after them.
    "force": False,
    "keep_existing": False,
    # Tasks whose labels also go into files as a tag of their
    # own (INSTRUMENT, VOICE, ENERGY...); genre, mood and style
    # always do.
    "file_tags": [],
    # Where album reviews are read from and how styles are
    # named (styles.py): sources, names (english/original)...
    "reviews": dict(styles.DEFAULTS),
    "workers": 2,
    # Batches the models run side by side (each with its share of the
    # cores); auto: one per core on the CPU (at most 4), 1 on a GPU.
    "model_threads": "auto",
    # What runs the audio models on the CPU: auto (ONNX Runtime where a
    # bundle ships an export and onnxruntime is installed), torch, onnx.
    "runtime": "auto",
    "timeout": 30,
    # Torch device of the models: auto (CUDA when present), cpu, cuda, cuda:1...
    "device": "auto",
    "batch_size": 16,
    # Store file; empty: autotagml.sqlite beside the library.
    "store": "",
    # Weight of each genre source in the fused genres (fusion.py);
    # empty: audio 1.0, lyrics 0.5.
    "genre_weights": {},
    # Genres split on lastgenre's tree: broad genres in `genres`, the
    # specific ones heard (Indie Rock, House, Soul...) in `style`
    # (fusion.py, rule 4); no: `genres` mixes both as before.
    "audio_styles": True,
    # task -> the field its labels go to, instead of the task's own
    # (genres, mood, style, ml_<task>) or the field a head learned.
    "fields": {},
    # `beet similar` (similar.py): count, playlist_dir, relative_to,
    # artist_cooldown, ann_threshold, model, format.
    "similar": dict(similar.DEFAULTS),
}


class AutotagMLPlugin(BeetsPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.config.add({key: (dict(value) if isinstance(value, dict) else value) for key, value in OPTIONS.items()})
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
        for name, descriptor in F.media_fields(self.config["file_tags"].as_str_seq()).items():
            if name in vars(mediafile.MediaFile):
                # Registered by an earlier instance in this process.
                from beets.library import Item

                Item._media_fields.add(name)
            else:
                self.add_media_field(name, descriptor)
        # Related-tag proposals and `beet relatedtags` (related.py).
        from . import related as related_tags

        self.config.add({"related": dict(related_tags.DEFAULTS)})
        self.related = related_tags.RelatedTags(self.config["related"], self._log)
        self._loaded: dict[str, Any] = {}
        self._stores: dict[tuple[str, int], Store] = {}
        self._before_write: dict[bytes, tuple[int, int] | None] = {}
        self._before_move: dict[bytes, tuple[int, int] | None] = {}
        self._stage_errors: set[str] = set()
        self.register_listener("write", self._on_write)
        self.register_listener("after_write", self._on_after_write)
        self.register_listener("item_removed", self._on_item_removed)
        self.register_listener("before_item_moved", self._on_before_item_moved)
        self.register_listener("item_moved", self._on_item_moved)
        for event in ("item_copied", "item_linked", "item_hardlinked", "item_reflinked"):
            self.register_listener(event, self._on_item_copied)

    # --- Configuration ---------------------------------------------------

    def task_specs(self) -> dict[str, str]:
        """task -> configured bundle (name or directory), in config order:
        ``models`` (a task set to ``no`` or empty is off), else ``model`` as
        the genre model, else :data:`DEFAULT_MODELS`."""
        models = self.config["models"].get(dict) or {}
        legacy = self.config["model"].get()
        if models:
            specs = {str(task): str(spec) for task, spec in models.items() if spec}
            if legacy and "genre" not in models:
                specs = {"genre": str(legacy), **specs}
            return specs
        if legacy:
            return {"genre": str(legacy)}
        specs = dict(DEFAULT_MODELS)
        for name, (path, field) in learned_heads().items():
            # A head the user trained on their library joins the default
            # set, in place of the default task writing the same field.
            for task in [t for t in specs if F.tag_field(t) == field]:
                del specs[task]
            specs[name] = path
        return specs

    def _decision(self, key: str, task: str, config: dict, kind: type, fallback: Any = None) -> Any:
        """``threshold``, ``count`` or ``min_count`` for ``task``: the
        configured number, or the task's entry of a configured mapping,
        else what the bundle recommends, else ``fallback`` (default:
        :data:`FALLBACK_DECISION`)."""
        value = self.config[key].get()
        if isinstance(value, dict):
            value = value.get(task)
        if value is None:
            fallback = FALLBACK_DECISION[key] if fallback is None else fallback
            value = (config.get("decision") or {}).get(key, fallback)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ui.UserError(f"autotag-ml: {key} for {task} must be a number, not {value!r}") from None

    def task_models(self, tasks: list[str] | None = None) -> tuple[dict[str, TaskModel], dict[str, str]]:
        """The configured tasks whose bundle config.json reads, and the
        others with the reason (a missing or malformed bundle)."""
        models: dict[str, TaskModel] = {}
        errors: dict[str, str] = {}
        for task, spec in self.task_specs().items():
            if tasks is not None and task not in tasks:
                continue
            try:
                _, config = read_config(spec)
            except BundleError as exc:
                errors[task] = str(exc)
                continue
            models[task] = TaskModel(
                task=task, spec=spec, name=config["name"], version=str(config["version"]),
                labels=list(config.get("labels", [])),
                text_source=config["input"].get("source") if config["input"]["kind"] == "text" else None,
                names=dict(config.get("genre_names") or {}) if config.get("task") == "genre" else {},
                threshold=self._decision("threshold", task, config, float),
                # A head trained single-label (a softmax over classes that
                # exclude each other) writes its one best label.
                count=1 if _single_label(config) else self._decision("count", task, config, int),
                min_count=self._min_count(task, config),
                field=self.target_field(task, config),
            )
        names = [m.name for m in models.values()]
        for task, model in list(models.items()):
            if names.count(model.name) > 1:
                errors[task] = f"bundle {model.name} serves several tasks; give each task its own"
                del models[task]
        try:  # review readers and label names of the style bundles (styles.py)
            styles.attach(models, self.config["reviews"].get(dict), set(self.task_specs()), read_config)
        except ValueError as exc:
            raise ui.UserError(f"autotag-ml: {exc}") from None
        return models, errors

    def _min_count(self, task: str, config: dict) -> int:
        """``min_count`` for ``task`` (:meth:`_decision`); unset anywhere:
        :data:`FALLBACK_MIN_COUNT` of the field the task writes."""
        written = self.target_field(task, config) or F.tag_field(task)
        return self._decision("min_count", task, config, int, FALLBACK_MIN_COUNT.get(written, 0))

    def target_field(self, task: str, config: dict) -> str | None:
        """The field ``task``'s labels go to when not its own: the
        configured ``fields.<task>``, else the library field a head was
        trained on (``python -m trainer head --beets-library --field F``)."""
        configured = (self.config["fields"].get(dict) or {}).get(task)
        if configured:
            return str(configured)
        return learned_field(config)

    def _style_rule(self, decider: str, config: dict) -> FU.StyleRule:
        """Styles heard in the audio: at the genre task's threshold, at most
        ``count.style`` (else :data:`AUDIO_STYLE_COUNT`)."""
        count = self.config["count"].get()
        count = count.get("style") if isinstance(count, dict) else None
        return FU.StyleRule(threshold=self._decision("threshold", decider, config, float),
                            count=AUDIO_STYLE_COUNT if count is None else int(count))

    def genre_fusion(self, models: dict[str, TaskModel]) -> tuple[FU.GenreFusion | None, dict[str, TaskModel]]:
        """The rule fusing the configured genre models (fusion.py), or None
        when no genre model reading text is configured and ``audio_styles``
        is off (then the genre task alone decides ``genres``, as without
        lyrics); and the genre models
        among them that ``models`` leaves out (a run of one source or task),
        whose stored outputs still take part."""
        configured = models
        if not set(self.task_specs()) <= set(models):
            configured = {**self.task_models()[0], **models}
        genre_tasks: dict[str, dict] = {}
        for task, model in configured.items():
            try:
                config = read_config(model.spec)[1]
            except BundleError:
                continue
            if config.get("task") == "genre" and "scores" in config["outputs"]:
                genre_tasks[task] = config
        audio_styles = self.config["audio_styles"].get(bool)
        if not genre_tasks or not (audio_styles or any(c["input"]["kind"] == "text" for c in genre_tasks.values())):
            return None, {}
        weights = {**FU.DEFAULT_WEIGHTS, **(self.config["genre_weights"].get(dict) or {})}
        sources = []
        for task, model in configured.items():
            if task in genre_tasks:
                try:
                    weight = float(weights.get(model.source, 1.0))
                except (TypeError, ValueError):
                    raise ui.UserError(f"autotag-ml: genre_weights.{model.source} must be a number") from None
                sources.append(FU.GenreSource(task=task, source=model.source, weight=weight, names=model.names))
        if not sources:
            return None, {}
        decider = "genre" if "genre" in genre_tasks else next(iter(genre_tasks))
        config = genre_tasks[decider]
        fusion = FU.GenreFusion(sources, threshold=self._decision("threshold", decider, config, float),
                                count=self._decision("count", decider, config, int),
                                min_count=self._decision("min_count", decider, config, int,
                                                         FALLBACK_MIN_COUNT["genres"]),
                                styles=self._style_rule(decider, config) if audio_styles else None)
        context = {task: model for task, model in configured.items() if task in fusion.tasks and task not in models}
        return fusion, context

    @property
    def item_types(self) -> dict[str, types.Type]:
        """Types of the fields this plugin sets; label fields come from each
        bundle's config.json (weights are not loaded here)."""
        fields: dict[str, types.Type] = {"mood": F.LIST_TYPE}
        fields.update({F.written_field(tag): F.LIST_TYPE for tag in F.TAG_FIELDS.values()})
        fields[F.PENDING_FIELD] = types.BOOLEAN
        for task, spec in self.task_specs().items():
            fields[F.model_field(task)] = types.STRING
            fields[F.version_field(task)] = types.STRING
            try:
                config = read_config(spec)[1]
                labels = config.get("labels", [])
            except BundleError as exc:
                self._log.debug("no label types for {}: {}", task, exc)
                continue
            fields.update({name: F.SCORE_TYPE for name in F.label_fields(labels, task).values()})
            names = (self.config["reviews"].get(dict) or {}).get("names", "english")
            fields.update(dict.fromkeys(styles.view_field_names(config, task, names), F.SCORE_TYPE))
            target = self.target_field(task, config)
            if target is not None:
                if target not in Item._fields and target not in fields:
                    fields[target] = types.STRING
                fields[F.written_field(target)] = F.LIST_TYPE
            elif task not in F.TAG_FIELDS:
                fields[F.tag_field(task)] = types.STRING
        return fields

    # --- The store -------------------------------------------------------

    def store_path(self, lib: Library) -> str:
        """The configured store, else ``autotagml.sqlite`` beside the
        library file (beets' config directory for an in-memory library)."""
        configured = self.config["store"].as_str()
        if configured:
            return os.path.expanduser(configured)
        library = os.fsdecode(lib.path) if lib.path else ":memory:"
        if library == ":memory:":
            from beets import config

            return os.path.join(config.config_dir(), STORE_NAME)
        return os.path.join(os.path.dirname(os.path.abspath(library)), STORE_NAME)

    def store(self, lib: Library) -> Store:
        path = self.store_path(lib)
        # One connection per thread: beets' importer runs the plugin's stage
        # and its file operations (item_copied...) in different threads,
        # and an SQLite connection belongs to the thread that opened it.
        key = (path, threading.get_ident())
        if key not in self._stores:
            self._stores[key] = Store(path)
        return self._stores[key]

    def _item_store(self, item: Item) -> Store | None:
        lib = getattr(item, "_db", None)
        if lib is None:
            return None
        try:
            return self.store(lib)
        except StoreError as exc:
            self._log.warning("{}", exc)
            return None

    # Library events keep the store in step with files that beets changes.

    def _on_write(self, item: Item, path: bytes, tags: Any = None) -> None:
        if path == item.path:
            self._before_write[path] = file_key(util.syspath(path))

    def _on_after_write(self, item: Item, path: bytes) -> None:
        """beets wrote tags, not audio: the analysis still holds, and the
        file now holds the item's tags (no write pending)."""
        old = self._before_write.pop(path, None)
        new = file_key(util.syspath(path))
        if old is not None and new is not None and (store := self._item_store(item)) is not None:
            store.update_key(path, old, new)
        if path == item.path and has(item, F.PENDING_FIELD):
            del item[F.PENDING_FIELD]
            if getattr(item, "_db", None) is not None and item.id is not None:
                item.store()

    def _on_item_removed(self, item: Item) -> None:
        """An item left the library. Its analysis goes only when its file
        is gone too: beets removes and adds items of the same file when it
        re-imports them. (``beet rm -d`` deletes the file after this event:
        a full run prunes what is left.)"""
        if not os.path.exists(util.syspath(item.path)) and (store := self._item_store(item)) is not None:
            store.forget([item.path])

    def _on_before_item_moved(self, item: Item, source: bytes, destination: bytes) -> None:
        self._before_move[source] = file_key(util.syspath(source))

    def _on_item_moved(self, item: Item, source: bytes, destination: bytes) -> None:
        """A move or rename keeps the analysis (beets also sends this with
        the same source and destination after ``beet modify``)."""
        old = self._before_move.pop(source, None)
        if source != destination and (store := self._item_store(item)) is not None:
            store.move(source, destination, old=old, new=file_key(util.syspath(destination)))

    def _on_item_copied(self, item: Item, source: bytes, destination: bytes) -> None:
        """A copy or link (``beet import`` with ``copy: yes``...) gets the
        source's analysis, under its own size and mtime."""
        if (store := self._item_store(item)) is not None:
            store.copy(source, destination, old=file_key(util.syspath(source)),
                       new=file_key(util.syspath(destination)))

    # --- Command ---------------------------------------------------------

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("autotag-ml", help="tag genres, moods and styles heard in the audio by models")
        cmd.parser.add_option(
            "-p", "--pretend", action="store_true", default=False,
            help="show the fields that would be set, change nothing",
        )
        cmd.parser.add_option(
            "-f", "--force", action="store_true", default=None, dest="force",
            help="replace genres, moods and styles that the plugin did not write (as lastgenre's --force)",
        )
        cmd.parser.add_option(
            "-F", "--no-force", action="store_false", dest="force",
            help="keep values that the plugin did not write (the default)",
        )
        cmd.parser.add_option(
            "-k", "--keep-existing", action="store_true", default=None, dest="keep_existing",
            help="with --force: keep the values there and add the model's after them",
        )
        cmd.parser.add_option(
            "-K", "--no-keep-existing", action="store_false", dest="keep_existing",
            help="with --force: replace the values there",
        )
        cmd.parser.add_option(
            "-r", "--reanalyze", action="store_true", default=False,
            help="decode and analyse again, even items the store knows",
        )
        cmd.parser.add_option(
            "-t", "--task", action="append", default=None, dest="tasks",
            help="only these tasks (comma-separated: genre,mood)",
        )
        cmd.parser.add_option(
            "-s", "--source", action="append", default=None, dest="sources",
            help="only the models reading these sources: audio, lyrics, all (comma-separated; "
                 "--source lyrics decodes no audio)",
        )
        cmd.parser.add_option(
            "-w", "--write", action="store_true", default=None, dest="write",
            help="write new metadata to files' tags (default: import.write)",
        )
        cmd.parser.add_option(
            "-W", "--nowrite", action="store_false", dest="write",
            help="don't write metadata (opposite of -w)",
        )
        cmd.parser.add_option(
            "--learn", metavar="FIELD",
            help="train a head on FIELD of your library's items (the values you set) on the musicnn-msd "
                 "embedding, print its cross-validated accuracy beside the trivial baseline, and add it to "
                 "the default set (needs the train extra)",
        )
        cmd.parser.add_album_option()
        cmd.func = self.command
        from . import related as related_tags

        return [cmd, similar.command(self), related_tags.make_command(self)]

    def command(self, lib: Library, opts: optparse.Values, args: list[str]) -> None:
        """``beet autotag-ml``: run the chosen tasks over the matched items,
        show what changed (or would), and fail (exit status 1) when an item
        failed or a task could not run."""
        pretend = bool(opts.pretend)
        self.check_config()
        if opts.learn:
            self.learn(lib, opts.learn)
            return
        tasks = self._chosen_tasks(opts.tasks)
        models, errors = self.task_models(tasks)
        models, errors = self.only_sources(models, errors, opts.sources)
        _check_one_writer_per_field(models)
        if not models:
            raise ui.UserError("autotag-ml: " + "; ".join(f"{t}: {e}" for t, e in errors.items()) or "no model")
        try:
            store = self.store(lib)
        except StoreError as exc:
            raise ui.UserError(f"autotag-ml: {exc}") from None
        run = self._run(models, store, lib, write=ui.should_write(opts.write), pretend=pretend,
                        reanalyze=bool(opts.reanalyze), ownership=self._ownership(opts))
        report, album_report = _run_locked(run, store, lib, args, by_album=opts.album, pretend=pretend)
        report.unavailable = {**errors, **report.unavailable}
        if not args and not pretend and not tasks and not opts.sources:
            # A run over the whole library saw every item's path.
            report.pruned = store.prune(run.seen)
        if report.total == 0:
            what = "album" if opts.album else "item"
            ui.print_(f"autotag-ml: no {what} matches {' '.join(args)!r}" if args else "autotag-ml: the library is empty")
            return
        if all(task in report.unavailable for task in models):
            raise ui.UserError("autotag-ml: " + "; ".join(f"{t}: {e}" for t, e in report.unavailable.items()))
        self._show_run(run, report, album_report, models, lib, pretend=pretend)
        from . import related as related_tags

        related_tags.run_step(self, lib, args, report, pretend=pretend, write=ui.should_write(opts.write))
        _raise_problems(report, errors)

    def _chosen_tasks(self, values: list[str] | None) -> list[str] | None:
        """The tasks of ``-t`` (comma-separated, repeatable), or None for
        every configured task. Raises UserError for a task without a model."""
        if not values:
            return None
        tasks = [t.strip() for value in values for t in value.split(",") if t.strip()]
        unknown = [t for t in tasks if t not in self.task_specs()]
        if unknown:
            raise ui.UserError(
                f"autotag-ml: no model configured for task {', '.join(unknown)} "
                f"(configured: {', '.join(self.task_specs()) or 'none'})"
            )
        return tasks

    def _ownership(self, opts: optparse.Values) -> F.Ownership:
        """``force`` and ``keep_existing``: the command line's, else the configuration's."""
        force = self.config["force"].get(bool) if opts.force is None else opts.force
        keep = self.config["keep_existing"].get(bool) if opts.keep_existing is None else opts.keep_existing
        return F.Ownership(force=force, keep_existing=keep)

    def _show_run(self, run: Run, report, album_report, models: dict[str, TaskModel], lib: Library, *,
                  pretend: bool) -> None:
        """Print what a run did (or, with ``pretend``, would do): the
        proposed changes of items and albums, the lines about single items
        and albums' reviews, then the summary."""
        for item, changes, scores in report.proposals:
            ui.show_model_changes(_with(item, changes), fields=list(changes), always=True)
            for task, task_scores in scores.items():
                ui.print_(f"  {task} scores: {format_scores(task_scores)}")
        for album, changes in album_report.proposals:
            ui.show_model_changes(_with(album, {k: v for k, v in changes.items() if v is not None}),
                                  fields=[k for k, v in changes.items() if v is not None], always=True)
        self.log_item_lines(report)
        for line in styles.after_run(models, lib, pretend=pretend, log=self._log):  # one line per album
            self._log.warning("{}", line.strip())
        for line in report.summary(pretend=pretend):
            ui.print_(line)
        if run.album_ids:
            ui.print_(f"  {album_report.line(pretend=pretend)}")

    @property
    def album_types(self) -> dict[str, types.Type]:
        return {"mood": F.LIST_TYPE, **{F.written_field(tag): F.LIST_TYPE for tag in F.TAG_FIELDS.values()}}

    def log_item_lines(self, report) -> None:
        """The lines about single items, on beets' log with the plugin's
        prefix: a failed item once (whatever the number of tasks) at the
        default verbosity; items below a threshold, too short or without a
        readable text only with ``-v``."""
        for task, task_report in report.tasks.items():
            for item, message in task_report.below:
                self._log.debug("{} below threshold: {} ({})", task, util.displayable_path(item.path), message)
            for _, message in (*task_report.too_short, *task_report.skipped):
                self._log.debug("{} skipped: {}", task, message)
        for message in report.failed_items.values():
            self._log.warning("failed: {}", message)

    def learn(self, lib: Library, field: str) -> None:
        """Train a head on ``field`` of the library (trainer.head, on the
        values you set: the plugin's own are left out), write it to the
        user bundle folder, where it joins the default set, and print the
        cross-validated figures."""
        import argparse

        try:
            from trainer import head as trainer_head
            from trainer.datasets import DatasetError
        except ImportError as exc:
            raise ui.UserError(f"autotag-ml --learn needs the trainer and its extra "
                               f"(pip install 'beets-autotagml[train]'): {exc}") from None
        from beets import config

        from tagcore.bundle import user_bundle_dir

        name = f"library-{F.slugify(field)}"
        labelled = [(item, F.tag_values(item.get(field, with_album=False))) for item in lib.items()]
        labelled = [(item, values) for item, values in labelled if values]
        multilabel = any(len(values) > 1 for _, values in labelled)
        artists = {item.mb_artistid or item.artist for item, _ in labelled}
        folds = min(5, len(artists)) if len(artists) >= 2 else 0  # artist-disjoint folds
        parser = argparse.ArgumentParser(prog="beet autotag-ml --learn")
        trainer_head.add_arguments(parser)
        argv = ["--beets-library", os.fsdecode(lib.path), "--music-dir", os.fsdecode(lib.directory),
                "--field", field, "--name", name, "--out", str(user_bundle_dir() / name),
                "--report-dir", os.path.join(config.config_dir(), "autotagml-learn", name),
                "--workers", str(self.config["workers"].get(int)), "--folds", str(folds)]
        args = parser.parse_args(argv + (["--multilabel"] if multilabel else []))
        ui.print_(f"autotag-ml: learning {field} from {len(labelled)} item(s) with a value by {len(artists)} "
                  f"artist(s) ({'several labels per item' if multilabel else 'one label per item'}; "
                  + (f"{folds}-fold cross-validation by artist)" if folds else "too few artists to evaluate)"))
        try:
            result = trainer_head.run(args, log=self._learn_log)
        except (DatasetError, ValueError) as exc:
            raise ui.UserError(f"autotag-ml --learn {field}: {exc}") from None
        except ImportError as exc:
            raise ui.UserError(f"autotag-ml --learn needs the train extra (pip install 'beets-autotagml[train]'): "
                               f"{exc}") from None
        written = learned_field({"provenance": result["provenance"]})
        ui.print_(f"autotag-ml: {name} written to {result['bundle']}; from now on `beet autotag-ml` writes "
                  f"{written} with it (where the field is empty or the plugin's own)")

    def _learn_log(self, message: str) -> None:
        """The trainer's lines: what it left out at the default verbosity,
        its progress (folds, files) with -v."""
        if message.startswith(("skipped:", "dropped:")):
            self._log.info("{}", message)
        else:
            self._log.debug("{}", message)

    def check_config(self) -> None:
        """Refuse options that would fail later, before any work, in one
        line naming the option (with the closest known name for a
        misspelt one)."""
        known = set(OPTIONS) | {"related"}
        for key in self.config.keys():
            if key not in known:
                raise ui.UserError(f"autotag-ml: unknown option {key!r}{did_you_mean(key, known)}")
        tasks = set(self.task_specs())
        for key in ("threshold", "count", "min_count", "genre_weights", "fields"):
            value = self.config[key].get()
            names = tasks if key != "genre_weights" else {"audio", "lyrics"}
            for task in value if isinstance(value, dict) else ():
                if str(task) not in names:
                    raise ui.UserError(f"autotag-ml: {key}.{task}: no such {'task' if key != 'genre_weights' else 'source'}"
                                       f" (configured: {', '.join(sorted(names))}){did_you_mean(str(task), names)}")
        self._model_threads()
        self._check_runtime()
        for key, minimum in (("workers", 0), ("batch_size", 1)):
            value = self.config[key].get()
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ui.UserError(f"autotag-ml: {key} must be a whole number >= {minimum}, not {value!r}")
        timeout = self.config["timeout"].get()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ui.UserError(f"autotag-ml: timeout must be a number of seconds > 0, not {timeout!r}")
        for key, kind, low, high in (("threshold", float, 0.0, 1.0), ("count", int, 1, None),
                                     ("min_count", int, 0, None)):
            value = self.config[key].get()
            values = value.items() if isinstance(value, dict) else [(None, value)]
            for task, number in values:
                name = f"{key}.{task}" if task is not None else key
                if number is None:
                    continue
                if isinstance(number, bool) or not isinstance(number, (int, float)) or (
                        kind is int and number != int(number)):
                    raise ui.UserError(f"autotag-ml: {name} must be a {'whole ' if kind is int else ''}number, "
                                       f"not {number!r}")
                if number < low or (high is not None and number > high):
                    bound = f"between {low:g} and {high:g}" if high is not None else f">= {low}"
                    raise ui.UserError(f"autotag-ml: {name} must be {bound}, not {number!r}")

    def _check_runtime(self) -> None:
        """Refuse a ``runtime`` or ``device`` the engine does not know."""
        runtime = self.config["runtime"].get()
        if runtime not in onnx_runtime.RUNTIMES:
            raise ui.UserError(f"autotag-ml: runtime must be auto, torch or onnx, not {runtime!r}")
        device = self.config["device"].get()
        if not (isinstance(device, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device)):
            raise ui.UserError(f"autotag-ml: device must be auto, cpu, cuda, cuda:N or mps, not {device!r}")

    def _model_threads(self) -> int | None:
        """``model_threads`` as the engine takes it: None for ``auto``.
        Raises UserError for anything but ``auto`` or a whole number >= 1."""
        value = self.config["model_threads"].get()
        if value is None or value == "auto":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ui.UserError(f"autotag-ml: model_threads must be auto or a whole number >= 1, not {value!r}")
        return value

    def _run(self, models, store, lib, *, write: bool, pretend: bool, reanalyze: bool = False,
             ownership: F.Ownership | None = None) -> Run:
        options = {
            "device": self.config["device"].as_str(),
            "workers": self.config["workers"].get(int),
            "timeout": float(self.config["timeout"].as_number()),
            "batch_size": self.config["batch_size"].get(int),
            "model_threads": self._model_threads(),
            "runtime": self.config["runtime"].as_str(),
        }
        if ownership is None:
            ownership = F.Ownership(force=self.config["force"].get(bool),
                                    keep_existing=self.config["keep_existing"].get(bool))
        fusion, context = self.genre_fusion(models)
        return Run(models, store=store, log=self._log, analysis_options=options, loaded=self._loaded,
                   write=write, pretend=pretend, reanalyze=reanalyze, lib=lib, fusion=fusion,
                   ownership=ownership, context=context)

    def only_sources(self, models: dict[str, TaskModel], errors: dict[str, str], values: list[str] | None
                     ) -> tuple[dict[str, TaskModel], dict[str, str]]:
        """The models (and unavailable tasks) reading one of the sources of
        ``--source`` values ("audio", "lyrics", "all"; comma-separated)."""
        sources = {s.strip() for value in values or () for s in value.split(",") if s.strip()}
        if not sources or "all" in sources:
            return models, errors
        known = {"audio", "lyrics"} | {m.source for m in models.values()}
        unknown = sorted(sources - known)
        if unknown:
            raise ui.UserError(f"autotag-ml: unknown source {', '.join(unknown)} (known: all, {', '.join(sorted(known))})")
        kept = {task: model for task, model in models.items() if model.source in sources}
        if not kept:
            raise ui.UserError(f"autotag-ml: no configured model reads {', '.join(sorted(sources))}")
        return kept, {}

    # --- Import stage ----------------------------------------------------

    def imported(self, session: ImportSession, task: ImportTask) -> None:
        """Analyse the task's items and store their fields. Files are not
        written here: beets' importer writes them afterwards, when
        ``import.write`` is on and a match was applied (not for as-is
        imports). A file or model that fails is logged, never raised."""
        models, errors = self.task_models()
        for name, why in errors.items():
            if name not in self._stage_errors:
                self._stage_errors.add(name)
                self._log.error("autotag-ml: {} not run during this import: {}", name, why)
        if not models:
            return
        try:
            store = self.store(session.lib)
        except StoreError as exc:
            if "store" not in self._stage_errors:
                self._stage_errors.add("store")
                self._log.error("autotag-ml disabled for this import: {}", exc)
            return
        with run_lock(store.path, lambda message: self._log.warning("{}", message)):
            run = self._run(models, store, session.lib, write=False, pretend=False)
            report = run.run(task.imported_items())
            albums.update_albums(session.lib, run.album_ids, run.album_fields(), ownership=run.ownership,
                                 pretend=False)
        for name, why in report.unavailable.items():
            if name not in self._stage_errors:
                self._stage_errors.add(name)
                self._log.error("autotag-ml: {} not run during this import: {}", name, why)
        too_short: dict[str, None] = {}  # one line per file, whatever the number of tasks
        for name, task_report in report.tasks.items():
            for item, message in task_report.below:
                self._log.debug("{} unchanged for {}: {}", name, util.displayable_path(item.path), message)
            too_short.update(dict.fromkeys(message for _, message in task_report.too_short))
            for _, message in task_report.skipped:
                self._log.debug("{} skipped: {}", name, message)
        for message in too_short:
            self._log.warning("skipped: {}", message)
        for message in report.failed_items.values():
            self._log.warning("failed: {}", message)
        for line in styles.after_run(models, session.lib, pretend=False, log=self._log):
            self._log.warning("{}", line.strip())

    # --- For tests and scripts -------------------------------------------

    def tag_items(self, items: Iterable[Item], *, write: bool, pretend: bool = False, reanalyze: bool = False,
                  lib: Library | None = None, tasks: list[str] | None = None):
        """Run the configured tasks over ``items`` (the command without its
        output). Returns the run's Report."""
        models, errors = self.task_models(tasks)
        store = self.store(lib) if lib is not None else Store(":memory:")
        report = self._run(models, store, lib, write=write, pretend=pretend, reanalyze=reanalyze).run(items)
        report.unavailable = {**errors, **report.unavailable}
        return report


def learned_heads() -> dict[str, tuple[str, str]]:
    """name -> (bundle folder, field) of the heads trained on a beets
    library (``beet autotag-ml --learn FIELD``, or ``python -m trainer head
    --beets-library`` with its default ``--out``) in the user bundle
    folder: they join the default set."""
    from tagcore.bundle import user_bundle_dir

    base = user_bundle_dir()
    heads: dict[str, tuple[str, str]] = {}
    if not base.is_dir():
        return heads
    for path in sorted(base.iterdir()):
        try:
            config = read_config(path)[1]
        except BundleError:
            continue
        if field := learned_field(config):
            heads[config["name"]] = (str(path), field)
    return heads


def learned_field(config: dict) -> str | None:
    """The beets field a head bundle was trained on (``trainer head
    --beets-library --field F`` records it in its provenance), as the
    field to write: ``genres`` for the genres; None for other bundles."""
    provenance = config.get("provenance") or {}
    learned = provenance.get("labels_from") if provenance.get("layout") == "beets" else None
    if not learned:
        return None
    return "genres" if learned in ("genre", "genres") else str(learned)


def _single_label(config: dict) -> bool:
    """Whether a bundle is a head trained single-label."""
    return config.get("family") == "head" and (config.get("model") or {}).get("multilabel") is False


def _check_one_writer_per_field(models: dict[str, TaskModel]) -> None:
    """Raise UserError when two tasks would write one shared tag field."""
    writers: dict[str, str] = {}
    for task, model in models.items():
        if model.shared_field and not model.is_embedding:
            if model.tag_field in writers:
                raise ui.UserError(f"autotag-ml: tasks {writers[model.tag_field]} and {task} both write "
                                   f"{model.tag_field}: name another field for one of them "
                                   f"(fields: {{{task}: ...}})")
            writers[model.tag_field] = task


def _run_locked(run: Run, store, lib: Library, args: list[str], *, by_album: bool, pretend: bool) -> tuple[Any, Any]:
    """Run over the matched items, then update their albums, holding the
    store's run lock. Returns (the run's report, the albums' report).
    Ctrl-C ends it with a UserError saying how far it went."""
    with run_lock(store.path, lambda message: ui.print_(f"autotag-ml: {message} (Ctrl-C to stop)")):
        try:
            # Read after the lock: a run that waited sees what the other one
            # stored. Not kept in a variable: beets' results hold every item
            # they gave out, and the run needs them only one chunk at a time.
            report = run.run(_matched_items(lib, args, albums=by_album), progress=True)
        except KeyboardInterrupt:
            raise ui.UserError(
                f"autotag-ml: interrupted after {run.report.done} of {run.report.total} items; what was "
                "analysed and saved is kept, and the next run goes on from there") from None
        album_report = albums.update_albums(lib, run.album_ids, run.album_fields(), ownership=run.ownership,
                                            pretend=pretend)
    return report, album_report


def _raise_problems(report, errors: dict[str, str]) -> None:
    """Raise UserError (exit status 1) naming how many items failed and
    how many tasks did not run, when any did."""
    problems = []
    if report.failed_items:
        count = len(report.failed_items)
        problems.append(f"{count} item{'s' if count != 1 else ''} failed")
    if errors:
        problems.append(f"{len(errors)} task{'s' if len(errors) != 1 else ''} not run")
    if problems:
        raise ui.UserError(f"autotag-ml: {' and '.join(problems)} (listed above)")


def _matched_items(lib: Library, query: list[str], *, albums: bool) -> Iterable[Item]:
    """The items of ``query``, or of the albums it matches (``-a``)."""
    if albums:
        return (item for album in lib.albums(query) for item in album.items())
    return lib.items(query)


def _with(item: Item, changes: dict[str, Any]) -> Item:
    """A copy of ``item`` with ``changes`` applied, for showing a diff."""
    proposed = item.copy()
    proposed.update(changes)
    return proposed
