"""One ``autotag-ml`` run: ask the store, analyse what it lacks, set fields.

For every item and configured task the store is asked first: an unchanged
file (same path, size and mtime) already analysed by the task's bundle
version is never decoded again, and its fields are set from the store
(so a changed ``threshold`` or ``count`` is applied without decoding).
Files that need a bundle are analysed in one pass
(:class:`tagcore.analysis.Analysis`, one decode per file), their outputs
committed to the store (also with ``--pretend``: the store is a cache of
analysis, not a tag), then their fields set.

What may change on an item, and when (:func:`fields.merge_tag`): the tag
fields (``genres``, ``mood``, ``style``) only where they are empty or hold
what the plugin wrote there before (recorded in ``ml_written_<field>``),
unless ``force`` says otherwise; the plugin's own ``ml_*`` fields always.

The order of work keeps a library safe: analysis committed to the store,
then the file written in place by beets (``item.write()``: mediafile
keeps the inode, owner, permissions and links), then the library row
stored. A file is written only when one of its tags changes; a file that
cannot be written leaves its row as it was, is reported in one line, and
the run goes on.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from beets import util
from beets.library import FileOperationError
from tagcore.store import Store, file_key

from . import fields as F
from . import fusion as FU

if TYPE_CHECKING:
    from beets.library import Item, Library

#: A progress bar is shown when more items than this are analysed.
PROGRESS_MIN_ITEMS = 5
#: Items read from the library and the store per round: bounds memory.
CHUNK = 500


@dataclass
class TaskModel:
    """A configured task and its bundle's metadata (from config.json)."""

    task: str
    spec: str  # what the user configured: a name or a directory
    name: str
    version: str
    labels: list[str]
    threshold: float
    count: int
    #: The best ``min_count`` labels are written whatever their score
    #: (fields.pick): 1 for genres by default, 0 for the other tasks.
    min_count: int = 0
    #: For a text bundle, the text it reads ("lyrics"...): the item field
    #: of that name is handed to it.
    text_source: str | None = None
    #: Beets genre name of labels (a genre bundle's "genre_names"), for fusion.
    names: dict[str, str] = field(default_factory=dict)
    #: item -> its text, when the text is not an item field (album
    #: reviews: styles.ReviewReader); None: the field ``text_source``.
    reader: Callable[[Any], str] | None = None
    #: scores -> (scores, labels, extra fields) by the names written (a
    #: bundle's label table: styles.label_view); None: labels as they are.
    view: Callable[..., tuple] | None = None
    #: The field the chosen labels go to when not the task's own (a head
    #: trained on a library field writes that field; ``fields:`` in the
    #: config names another).
    field: str | None = None

    @property
    def tag_field(self) -> str:
        """Where the chosen labels go: ``field``, else ``genres``, ``mood``,
        ``style`` or ``ml_<task>``."""
        return self.field or F.tag_field(self.task)

    @property
    def shared_field(self) -> bool:
        """Whether the chosen labels go to a field the user and other
        plugins write too (merged by :func:`fields.merge_tag`), rather than
        to one of the plugin's own ``ml_*`` fields."""
        return not self.tag_field.startswith("ml_")

    @property
    def is_embedding(self) -> bool:
        return self.task in F.EMBEDDING_TASKS

    @property
    def source(self) -> str:
        """What the bundle reads: its text source (``lyrics``...), else ``audio``."""
        return self.text_source or "audio"


@dataclass(eq=False)
class TaskReport:
    """Per-task counts of a run; ``below``/``failures`` keep (item, message).
    Compared (and hashed) by identity."""

    model: TaskModel
    tagged: int = 0
    unchanged: int = 0
    no_input: int = 0
    #: Items whose tag field holds values the plugin did not write, left
    #: as they are (``force`` off).
    kept: int = 0
    too_short: list[tuple[Any, str]] = field(default_factory=list)
    failures: list[tuple[Any, str]] = field(default_factory=list)
    below: list[tuple[Any, str]] = field(default_factory=list)
    #: Texts the model could not read (another language, no words), with why.
    skipped: list[tuple[Any, str]] = field(default_factory=list)

    def line(self, *, pretend: bool = False) -> str:
        if self.model.is_embedding:
            return (f"{self.model.task} ({self.model.name} {self.model.version}): {self.unchanged} with an embedding, "
                    f"{len(self.too_short)} skipped as too short, {len(self.failures)} failed")
        verb = "to tag" if pretend else "tagged"
        skipped = f"{self.unchanged} unchanged, {len(self.too_short)} skipped as too short"
        if self.no_input:
            skipped += f", {self.no_input} skipped without input"
        if self.skipped:
            skipped += f", {len(self.skipped)} skipped as unreadable {self.model.source}"
        kept = f", {self.kept} kept as set by you or another tool (--force replaces)" if self.kept else ""
        return (
            f"{self.model.task} ({self.model.name} {self.model.version}): {self.tagged} {verb}, "
            f"{skipped}, {len(self.failures)} failed, {len(self.below)} below threshold{kept}"
        )


@dataclass
class Report:
    """What a run did, per task, and for the whole."""

    tasks: dict[str, TaskReport]
    unavailable: dict[str, str] = field(default_factory=dict)  # task -> why
    analysed: int = 0  # files that went through the analysis pass
    decoded: int = 0  # reads of audio files
    from_store: int = 0  # items whose every task came from the store
    pruned: int = 0
    #: Files whose tags were written (in place).
    files_written: int = 0
    #: Items the run went through completely, and how many it was given.
    done: int = 0
    total: int = 0
    #: Items that failed (a file not written, not found, not decoded...),
    #: by path, with the first reason: one line each.
    failed_items: dict[bytes, str] = field(default_factory=dict)
    proposals: list[tuple[Any, dict[str, Any], dict[str, dict[str, float]]]] = field(default_factory=list)

    def summary(self, *, pretend: bool = False) -> list[str]:
        head = "autotag-ml (pretend, nothing changed)" if pretend else "autotag-ml"
        written = "" if pretend else f"; {self.files_written} file{'s' if self.files_written != 1 else ''} written"
        lines = [
            f"{head}: {self.analysed} analysed ({self.decoded} decoded), {self.from_store} from the store"
            + (f", {self.pruned} pruned from the store" if self.pruned else "") + written
        ]
        lines += [f"  {report.line(pretend=pretend)}" for report in self.tasks.values()]
        lines += [f"  {task}: not run: {why}" for task, why in self.unavailable.items()]
        return lines

    def fail(self, item: Item, message: str) -> None:
        self.failed_items.setdefault(item.path, message)


# --- Writing --------------------------------------------------------------


def write_item(item: Item) -> None:
    """Write ``item``'s tags into its file the way beets does
    (``item.write()``: mediafile rewrites the tags in place, so the file
    keeps its inode, hard links, owner, permissions and extended
    attributes). Raises FileOperationError."""
    item.write()


def write_error(item: Item, error: Exception) -> str:
    """One line for a file that could not be written or read: "error
    writing PATH: Operation not permitted", naming the path once (beets'
    own text repeats it inside the reason)."""
    from beets.library import ReadError

    cause: BaseException | None = getattr(error, "reason", None) or error
    seen = set()
    while cause is not None and id(cause) not in seen:  # the innermost OSError says it best
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror
            break
        inner = [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        cause = inner[0] if inner else cause.__cause__ or cause.__context__
    else:
        reason = str(getattr(error, "reason", error))
    verb = "reading" if isinstance(error, ReadError) else "writing"
    return f"error {verb} {util.displayable_path(item.path)}: {reason}"


def own(item: Item, key: str) -> Any:
    """The item's own value of ``key`` (beets' ``item.get`` falls back to
    the album's fields, which are not the item's). Read from the model's
    fixed and flexible values directly: ``item.get`` gathers every
    plugin's template fields on each call, which cost a third of an
    unchanged run over 10,000 items."""
    try:
        if key in item._fields:
            return item._values_fixed[key] if key in item._values_fixed else item._type(key).null
        return item._values_flex[key] if key in item._values_flex else None
    except AttributeError:  # not a beets model
        return item.get(key, with_album=False)


def has(item: Item, key: str) -> bool:
    """Whether the item itself has a value for ``key`` (not its album)."""
    try:
        return key in item._values_flex or (key in item._fields and key in item._values_fixed)
    except AttributeError:
        return key in item.keys(with_album=False)


def own_keys(item: Item) -> list[str]:
    """The item's own flexible attributes (where the plugin's fields are)."""
    try:
        return list(item._values_flex.keys())
    except AttributeError:
        return list(item.keys(with_album=False))


def file_tags_change(item: Item, changes: Mapping[str, Any], removals: Iterable[str] = ()) -> bool:
    """Whether ``changes`` (new values) or ``removals`` touch a field that
    goes into the file (beets' media fields, with those plugins add)."""
    media = type(item)._media_fields
    return any(k in media and own(item, k) != v for k, v in changes.items()) or any(
        k in media for k in removals if has(item, k))


class DeferredSaves:
    """Item saves (field changes, file writes, ``item.store()``) queued and
    carried out in one library transaction per ``every`` items or
    ``seconds``: a commit costs ~20 ms, and the library's lock is taken
    only for the moment of a flush, never while files decode. Used as a
    context manager, it flushes on leaving. What is queued and not yet
    flushed when a run is killed is already in the store: the next run
    applies it without decoding. Without a library, saves run one by one."""

    def __init__(self, lib: Library | None, every: int = 64, seconds: float = 0.5):
        self.lib, self.every, self.seconds = lib, every, seconds
        self.queue: list[Callable[[], None]] = []
        self.since = 0.0

    def add(self, save: Callable[[], None]) -> None:
        if not self.queue:
            self.since = time.monotonic()
        self.queue.append(save)
        if len(self.queue) >= self.every or time.monotonic() - self.since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        queue, self.queue = self.queue, []
        if not queue:
            return
        with self.lib.transaction() if self.lib is not None else contextlib.nullcontext():
            for save in queue:
                save()

    def __enter__(self) -> "DeferredSaves":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


@contextmanager
def run_lock(store_path: str, notify: Callable[[str], None]) -> Iterator[None]:
    """Hold the store's run lock (``<store>.lock``, an advisory ``flock``)
    for one run: a second ``autotag-ml`` (or an import with ``auto: yes``)
    on the same library calls ``notify`` once, then waits for the first to
    finish instead of analysing the same files beside it. Without
    ``fcntl`` (Windows) or a writable folder for the lock file, runs are
    not serialised (the store and the library still take one writer at a
    time)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is None or store_path == ":memory:":
        yield
        return
    try:
        handle = open(f"{store_path}.lock", "a+b")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notify(f"another autotag-ml run is using {store_path}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _NoProgress:
    def update(self, n: int) -> None:
        pass


class _LazyBar:
    """A click progress bar started at the first item done, so that its
    ETA counts from there, not from the loading of the models."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def update(self, n: int) -> None:
        if self.bar is None:
            import click

            self.bar = click.progressbar(length=self.total, label="autotag-ml", file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    """A click progress bar on stderr when ``enabled`` and more than
    :data:`PROGRESS_MIN_ITEMS` items, else a silent stand-in."""
    if not enabled or total <= PROGRESS_MIN_ITEMS:
        yield _NoProgress()
        return
    bar = _LazyBar(total)
    try:
        yield bar
    finally:
        bar.close()


@dataclass
class _Plan:
    """What :meth:`Run._apply` decides for one item before saving it."""

    changes: dict[str, Any] = field(default_factory=dict)  # field -> new value
    removals: list[str] = field(default_factory=list)  # fields to delete
    #: Reports of the tasks any field of which changes.
    touched: list[TaskReport] = field(default_factory=list)
    #: Reports of the tasks a tag field of which changes.
    tagged: list[TaskReport] = field(default_factory=list)
    #: Reports of the tasks with a label chosen and no tag field changed.
    unchanged: list[TaskReport] = field(default_factory=list)
    #: Tag field -> (task, its report, the labels chosen now), for merge_tag.
    decisions: dict[str, tuple[str, TaskReport, list[str]]] = field(default_factory=dict)

    def count(self, report: TaskReport, changed: bool, chosen: list[str]) -> None:
        """Note a task whose tag field ``changed``, or that chose labels
        that were already there."""
        if changed:
            self.tagged.append(report)
        elif chosen:
            self.unchanged.append(report)

    def tally(self) -> tuple[set[TaskReport], dict[TaskReport, None]]:
        """Count each task once in its report, tagged or unchanged; returns
        (the tagged tasks, every task touched: ordered, for failures)."""
        tagged = set(self.tagged)
        touched = dict.fromkeys([*self.touched, *self.tagged])
        for report in dict.fromkeys(self.unchanged):
            if report not in tagged:
                report.unchanged += 1
        for report in tagged:
            report.tagged += 1
        return tagged, touched


# --- The run --------------------------------------------------------------


class Run:
    """One run over some items with some tasks.

    Parameters
    ----------
    models : dict
        task -> TaskModel, the tasks whose bundles' config.json could be read.
    store : Store
    log : beets logger
    analysis_options : dict
        workers, timeout, batch_size for :class:`tagcore.analysis.Analysis`.
    loaded : dict
        Cache of loaded bundles shared across runs of one beets process.
    write, pretend : bool
        Write files' tags; change nothing (the store still keeps what was analysed).
    reanalyze : bool
        Decode and analyse every item again, whatever the store holds.
    ownership : fields.Ownership
        How values the plugin did not write are treated (``force``, ``keep_existing``).
    fusion : fusion.GenreFusion or None
        The rule deciding ``genres`` from several genre sources.
    context : dict
        task -> TaskModel of genre sources not run now (``--source lyrics``,
        ``-t genre``): their stored outputs take part in the fusion, they
        are never analysed.
    """

    def __init__(self, models: Mapping[str, TaskModel], *, store: Store, log, analysis_options: dict,
                 loaded: dict, write: bool, pretend: bool, reanalyze: bool = False, lib: Library | None,
                 fusion=None, ownership: F.Ownership | None = None, context: Mapping[str, TaskModel] | None = None):
        self.models = dict(models)
        #: GenreFusion (fusion.py) deciding ``genres`` from several sources, or None.
        self.fusion = fusion
        self.context = {t: m for t, m in (context or {}).items() if t not in self.models}
        self.store = store
        self.log = log
        self.analysis_options = analysis_options
        self.loaded = loaded
        self.write = write and not pretend
        self.pretend = pretend
        self.reanalyze = reanalyze
        self.ownership = ownership or F.Ownership()
        self.lib = lib
        self.report = Report(tasks={task: TaskReport(model) for task, model in self.models.items()})
        self.bundles = {m.name: m.version for m in self.models.values()}
        #: Bundles whose stored outputs are read: the run's and the context's.
        self.read_bundles = {**{m.name: m.version for m in self.context.values()}, **self.bundles}
        #: Paths of every item the run went through, and their albums.
        self.seen: set[bytes] = set()
        self.album_ids: set[int] = set()

    def run(self, items: Iterable[Item], *, progress: bool = False) -> Report:
        """Set every item's fields, from the store or from a new analysis.
        A KeyboardInterrupt stops it at once; what was done is kept (see
        ``report.done``)."""
        todo: list[tuple[Any, bytes, tuple[str, ...], dict]] = []  # (id or item, path, bundle names, texts)
        with DeferredSaves(self.lib) as saving:
            for chunk in _chunks(items, CHUNK):
                self.report.total += len(chunk)
                paths = [item.path for item in chunk]
                self.seen.update(paths)
                self.album_ids.update(album_id for item in chunk if (album_id := own(item, "album_id")))
                keys = {p: file_key(util.syspath(p)) for p in paths}
                known = self.store.get(paths, self.read_bundles, keys=keys)
                for item in chunk:
                    have = known.get(item.path, {})
                    missing = tuple(m.name for m in self.models.values() if self.reanalyze or m.name not in have)
                    if keys[item.path] is None:
                        self._fail_all(item, f"{util.displayable_path(item.path)}: file not found")
                        self.report.done += 1
                    elif missing:
                        entry = item.id if self.lib is not None and item.id is not None else item
                        texts = {m.text_source: (m.reader(item) if m.reader else item.get(m.text_source)) or ""
                                 for m in self.models.values() if m.text_source and m.name in missing}
                        if _only_idle_readers(self.models.values(), missing, texts):
                            # Nothing to analyse (e.g. an album without reviews): no pass, no_input.
                            self.report.from_store += 1
                            saving.add(functools.partial(self._apply, item, {**have, **_no_input(missing)}))
                            continue
                        todo.append((entry, item.path, missing, texts))
                    else:
                        self.report.from_store += 1
                        saving.add(functools.partial(self._apply, item, have))
            self._analyse(todo, saving, progress)
        for report in self.report.tasks.values():
            for entries in (report.failures, report.below, report.too_short, report.skipped):
                entries.sort(key=lambda entry: util.displayable_path(entry[0].path))
        return self.report

    def _analyse(self, todo, saving: DeferredSaves, progress: bool) -> None:
        """Analyse the items of ``todo`` in one pass per set of missing
        bundles; their saves go to ``saving`` (never made while the library
        is locked by a pending transaction)."""
        if not todo:
            return
        from tagcore.analysis import UNAVAILABLE, Analysis, Input

        groups: dict[tuple[str, ...], list[int]] = {}
        for position, (_, _, missing, _) in enumerate(todo):
            groups.setdefault(missing, []).append(position)
        specs = {m.name: m.spec for m in self.models.values()}
        with progress_bar(len(todo), progress) as bar:
            for names, positions in groups.items():
                analysis = Analysis([specs[n] for n in names], loaded=self.loaded, **self.analysis_options)
                reported: set[str] = set()
                inputs = (Input(util.syspath(todo[p][1]), todo[p][3]) for p in positions)
                for result in analysis.analyse(inputs):
                    bar.update(1)
                    entry, path, _, _ = todo[positions[result.index]]
                    self._note_unavailable(analysis.broken, reported)
                    item = self.lib.get_item(entry) if isinstance(entry, int) else entry
                    if item is None:  # removed from the library meanwhile
                        continue
                    self.report.analysed += 1
                    self.report.decoded += result.decodes
                    key = file_key(util.syspath(path))
                    outputs = {
                        name: (self.bundles[name], self._labels(name), output)
                        for name, output in result.outputs.items()
                        if output.status != UNAVAILABLE
                    }
                    if key is not None:
                        # Committed before the item or its file change (also
                        # with --pretend: the store caches analysis).
                        self.store.put(path, key, outputs)
                    have = self.store.get([path], self.read_bundles, keys={path: key}).get(path, {})
                    have.update({name: output for name, (_, _, output) in outputs.items()})
                    saving.add(functools.partial(self._apply, item, have))

    def _note_unavailable(self, broken: Mapping[str, str], reported: set[str]) -> None:
        """Record each bundle of ``broken`` (name -> why) not in ``reported``
        yet: its tasks are not run (``report.unavailable``)."""
        for name, why in broken.items():
            if name not in reported:
                reported.add(name)
                for model in self.models.values():
                    if model.name == name:
                        self.report.unavailable[model.task] = why

    def album_fields(self) -> dict[str, int]:
        """Field -> most values, for the album fields this run's tracks may
        have changed (albums.py): the genres, mood and style its tasks (or
        its genre fusion) decide."""
        fields = {m.tag_field: m.count for m in self.models.values()
                  if not m.is_embedding and m.tag_field in F.TAG_FIELDS.values()}
        if self._fused():
            fields[F.tag_field("genre")] = self.fusion.count
        return fields

    def _labels(self, name: str) -> list[str]:
        return next(m.labels for m in self.models.values() if m.name == name)

    def _fail_all(self, item: Item, message: str) -> None:
        self.report.fail(item, message)
        for report in self.report.tasks.values():
            report.failures.append((item, message))

    def _apply(self, item: Item, outputs: Mapping[str, Any]) -> None:
        """Set the fields of every task whose output is here; save once
        (see the module's docstring for what may change, and when)."""
        self.report.done += 1
        plan = _Plan()
        keys = own_keys(item)
        fused = self._fused()
        for task, model in self.models.items():
            output = self._usable_output(item, task, model, outputs)
            if output is not None:
                self._plan_task(item, task, model, output, plan, keys=keys, fused=fused)
        if fused:
            self._fuse(item, outputs, plan.changes, plan.removals, plan.decisions)
        for tag, (task, report, chosen) in plan.decisions.items():
            plan.count(report, self._decide(item, tag, task, chosen, plan.changes, plan.removals, report), chosen)
        tagged, touched = plan.tally()
        tags_change = file_tags_change(item, plan.changes, plan.removals)
        pending = has(item, F.PENDING_FIELD)
        if self.write and pending:
            plan.removals.append(F.PENDING_FIELD)  # written now
        elif not self.write and tags_change and not pending:
            plan.changes[F.PENDING_FIELD] = True  # a later -w run (or beets' write) puts them in the file
        if not plan.changes and not plan.removals:
            return
        if self.pretend:
            self._propose(item, plan.changes, outputs)
            return
        error = self._change(item, plan.changes, plan.removals, write_file=self.write and (tags_change or pending))
        if error is not None:
            self.report.fail(item, error)
            for report in touched:
                report.failures.append((item, error))
                if report in tagged:
                    report.tagged -= 1

    def _fused(self) -> bool:
        """Whether a genre fusion decides ``genres`` in this run (one of its sources runs)."""
        return self.fusion is not None and any(t in self.models for t in self.fusion.tasks)

    def _usable_output(self, item: Item, task: str, model: TaskModel, outputs: Mapping[str, Any]) -> Any:
        """The task's output when it is ``ok``, else None, after counting
        why not in the task's report (too short, no input, skipped, failed).
        None too for a task not run (unavailable) or without an output here."""
        if task in self.report.unavailable:
            return None
        report = self.report.tasks[task]
        output = outputs.get(model.name)
        if output is None:
            return None
        where = util.displayable_path(item.path)
        if output.status == "too_short":
            report.too_short.append((item, output.message or f"{where}: too short"))
        elif output.status == "no_input":
            report.no_input += 1
        elif output.status == "skipped":
            report.skipped.append((item, output.message or f"{where}: skipped"))
        elif output.status != "ok":
            message = output.message or f"{where}: failed"
            report.failures.append((item, message))
            self.report.fail(item, message)
        else:
            return output
        return None

    def _plan_task(self, item: Item, task: str, model: TaskModel, output: Any, plan: _Plan, *,
                   keys: list[str], fused: bool) -> None:
        """Add to ``plan`` what one task's ``ok`` output changes: its own
        ``ml_*`` fields now, its tag field (``genres``...) as a decision
        for :meth:`_decide` when the field is shared."""
        report = self.report.tasks[task]
        scores, labels, extra = output.scores, model.labels, {}
        if model.view is not None and not model.is_embedding:
            scores, labels, extra = model.view(output.scores or {}, threshold=model.threshold, count=model.count)
        new, chosen = F.task_fields(
            task, scores=None if model.is_embedding else scores, labels=labels,
            model=model.name, version=model.version, threshold=model.threshold, count=model.count,
            min_count=model.min_count,
        )
        new.update(extra)
        new.pop(F.tag_field(task), None)
        for other_task, other_tag in F.TAG_FIELDS.items():
            if other_tag in new:  # labels a view routes to another task's field (mood)
                plan.decisions.setdefault(other_tag, (other_task, report, F.tag_values(new.pop(other_tag))))
        stale = F.stale_fields(task, keys, new)
        if fused and task == "genre":
            stale = [k for k in stale if k != FU.SOURCES_FIELD]  # the fusion's own field
        differ = {k: v for k, v in new.items() if own(item, k) != v}
        plan.changes.update(differ)
        plan.removals += stale
        if differ or stale:
            plan.touched.append(report)
        if model.is_embedding:
            plan.unchanged.append(report)
            return
        if not chosen:
            best = F.format_scores(scores or {}, limit=1)
            report.below.append((item, f"no score >= {model.threshold:g}; best {best}"))
        if not model.shared_field:
            changed = _set_own_field(item, model.tag_field, F.tag_value(task, chosen), plan.changes, plan.removals)
            plan.count(report, changed, chosen)
        elif not (fused and task in self.fusion.tasks):
            plan.decisions[model.tag_field] = (task, report, chosen)

    def _propose(self, item: Item, changes: dict[str, Any], outputs: Mapping[str, Any]) -> None:
        """With ``--pretend``: keep the changes (but the pending mark) and
        the scores behind them, to be shown after the run."""
        changes.pop(F.PENDING_FIELD, None)
        if changes:
            self.report.proposals.append((item, changes, {
                task: outputs[m.name].scores for task, m in self.models.items()
                if m.name in outputs and outputs[m.name].scores is not None and not m.is_embedding
            }))

    def _change(self, item: Item, changes: dict[str, Any], removals: list[str], *, write_file: bool) -> str | None:
        """Set ``changes`` and delete ``removals`` on the item, then save it
        (:meth:`_save`). Returns the error of a failed save, after putting
        the item back as it was in memory too (nothing was stored)."""
        before = {k: own(item, k) for k in (*changes, *removals) if has(item, k)}
        item.update(changes)
        for key in dict.fromkeys(removals):
            if has(item, key):
                del item[key]
        error = self._save(item, write_file)
        if error is not None:
            for key in (*changes, *removals):
                if key in before:
                    item[key] = before[key]
                elif has(item, key):
                    del item[key]
        return error

    def _decide(self, item: Item, tag: str, task: str, chosen: list[str], changes: dict[str, Any],
                removals: list[str], report: TaskReport) -> bool:
        """Put the new value of tag field ``tag`` (and of its record of what
        the plugin wrote) in ``changes``, as :func:`fields.merge_tag`
        decides. Returns whether the tag field itself changes."""
        current = F.tag_values(own(item, tag))
        record = F.written_field(tag)
        written = F.tag_values(own(item, record))
        value, mine, kept = F.merge_tag(current, written, chosen, self.ownership)
        if kept:
            report.kept += 1
        if mine != written:
            if mine:
                changes[record] = mine
            elif has(item, record):
                removals.append(record)
        if value == current:
            return False
        changes[tag] = F.tag_value_for(tag, value)
        return True

    def _fuse(self, item: Item, outputs: Mapping[str, Any], changes: dict[str, Any], removals: list[str],
              decisions: dict[str, tuple[str, TaskReport, list[str]]]) -> None:
        """Decide ``genres`` from every genre source with an output now or
        in the store (fusion.py) and record the sources that had a say in
        ``ml_genre_sources``."""
        scores = {}
        for task, model in {**self.context, **self.models}.items():
            output = outputs.get(model.name)
            if task in self.fusion.tasks and output is not None and output.status == "ok" and output.scores:
                scores[task] = output.scores
        decider = next((t for t in ("genre", *sorted(self.fusion.tasks)) if t in self.models), None)
        if decider is None or not scores:
            return
        decision = self.fusion.decide(scores)
        chosen, used = decision.genres, decision.sources
        decisions[F.tag_field("genre")] = (decider, self.report.tasks[decider], chosen)
        if self.fusion.styles is not None:
            self._add_audio_styles(decisions, decision.styles, decider)
        sources = ", ".join(used)
        if chosen and own(item, FU.SOURCES_FIELD) != sources:
            changes[FU.SOURCES_FIELD] = sources
        elif not chosen and has(item, FU.SOURCES_FIELD):
            removals.append(FU.SOURCES_FIELD)

    def _add_audio_styles(self, decisions: dict[str, tuple[str, TaskReport, list[str]]], heard: list[str],
                          decider: str) -> None:
        """``style`` from the album reviews' styles (when the review model
        chose some) and then those heard in the audio (fusion.merge_styles),
        counted in the style task's report when it runs, else the genre's."""
        tag = F.tag_field("style")
        task, report, from_reviews = decisions.get(tag) or (
            ("style", self.report.tasks["style"], []) if "style" in self.models
            else (decider, self.report.tasks[decider], []))
        # Always decided: styles the plugin heard before and no longer
        # hears are taken back (merge_tag), the user's are kept.
        decisions[tag] = (task, report, FU.merge_styles(from_reviews, heard, count=self.fusion.styles.count))

    def _save(self, item: Item, write_file: bool) -> str | None:
        """Write the file's tags in place when one of them changes, then
        store the row. Returns an error message, with nothing stored, when
        the write or the store fails."""
        if write_file:
            old = file_key(util.syspath(item.path))
            try:
                write_item(item)
            except FileOperationError as exc:
                return write_error(item, exc)
            new = file_key(util.syspath(item.path))
            if new is not None:
                # Tags changed, not the audio: the analysis still holds.
                self.store.update_key(item.path, old, new)
            self.report.files_written += 1
        try:
            item.store()
        except Exception as exc:  # sqlite3.OperationalError: another process holds the library
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return f"{util.displayable_path(item.path)}: not saved, the library is busy ({exc})"
        return None


def _set_own_field(item: Item, name: str, value: str, changes: dict[str, Any], removals: list[str]) -> bool:
    """Set (or, for an empty ``value``, clear) a field only the plugin
    writes (``ml_<task>``). Returns whether it changes. A field that goes
    into files is emptied rather than removed, so the file loses the tag."""
    if value:
        if own(item, name) != value:
            changes[name] = value
            return True
        return False
    if not own(item, name):
        return False
    if name in type(item)._media_fields:
        changes[name] = ""
    else:
        removals.append(name)
    return True


def _only_idle_readers(models: Iterable[TaskModel], missing: tuple[str, ...], texts: Mapping[str, str]) -> bool:
    """Whether every missing bundle reads a text (lyrics, reviews) that
    this item does not have: nothing to analyse."""
    by_name = {m.name: m for m in models}
    return all(by_name[n].text_source is not None and not texts.get(by_name[n].text_source, "").strip()
               for n in missing)


def _no_input(names: Iterable[str]) -> dict[str, Any]:
    from tagcore.analysis import NO_INPUT, Output

    return {name: Output(NO_INPUT) for name in names}


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
