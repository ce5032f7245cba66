"""One ``autotag-ml`` run: ask the store, analyse what it lacks, set fields.

For every item and configured task the store is asked first: an unchanged
file (same path, size and mtime) already analysed by the task's bundle
version is never decoded again, and its fields are set from the store
(so a changed ``threshold`` or ``count``, or fields another tool
overwrote, are re-applied without decoding). Files that need a bundle are
analysed in one pass (:class:`tagcore.analysis.Analysis`, one decode per
file), their outputs committed to the store, then their fields set.

An item's fields are saved only when they change; a failed file write
stores nothing; a file is written through a temporary copy that replaces
it only once complete (:func:`write_atomically`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from beets import util
from beets.library import FileOperationError
from tagcore.store import Store, file_key

from . import fields as F

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

    @property
    def is_embedding(self) -> bool:
        return self.task in F.EMBEDDING_TASKS

    @property
    def source(self) -> str:
        """What the bundle reads: its text source (``lyrics``...), else ``audio``."""
        return self.text_source or "audio"


@dataclass
class TaskReport:
    """Per-task counts of a run; ``below``/``failures`` keep (item, message)."""

    model: TaskModel
    tagged: int = 0
    unchanged: int = 0
    no_input: int = 0
    too_short: list[tuple[Any, str]] = field(default_factory=list)
    failures: list[tuple[Any, str]] = field(default_factory=list)
    below: list[tuple[Any, str]] = field(default_factory=list)
    #: Texts the model could not read (another language, no words), with why.
    skipped: list[tuple[Any, str]] = field(default_factory=list)

    def line(self, *, pretend: bool = False) -> str:
        verb = "to tag" if pretend else "tagged"
        skipped = f"{self.unchanged} unchanged, {len(self.too_short)} skipped as too short"
        if self.no_input:
            skipped += f", {self.no_input} skipped without input"
        if self.skipped:
            skipped += f", {len(self.skipped)} skipped as unreadable {self.model.source}"
        return (
            f"{self.model.task} ({self.model.name} {self.model.version}): {self.tagged} {verb}, "
            f"{skipped}, {len(self.failures)} failed, {len(self.below)} below threshold"
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
    proposals: list[tuple[Any, dict[str, Any], dict[str, dict[str, float]]]] = field(default_factory=list)

    def summary(self, *, pretend: bool = False) -> list[str]:
        head = "autotag-ml (pretend, nothing changed)" if pretend else "autotag-ml"
        lines = [
            f"{head}: {self.analysed} analysed ({self.decoded} decoded), {self.from_store} from the store"
            + (f", {self.pruned} pruned from the store" if self.pruned else "")
        ]
        lines += [f"  {report.line(pretend=pretend)}" for report in self.tasks.values()]
        lines += [f"  {task}: not run: {why}" for task, why in self.unavailable.items()]
        return lines


# --- Writing --------------------------------------------------------------


def write_atomically(item: Item) -> None:
    """Write ``item``'s tags into its file through a temporary copy in the
    same directory (``.<name>.autotagml-XXXX.<ext>``, hidden) that replaces
    the file only once fully written, so a crash never leaves a
    half-written file. A copy left by a killed run is removed the next time
    the item is written. Raises FileOperationError."""
    import glob

    from beets.library import WriteError

    path = os.fsdecode(util.syspath(item.path))
    directory, name = os.path.split(path)
    base, extension = os.path.splitext(name)
    prefix = f".{base[:40]}.autotagml-"
    for leftover in glob.glob(os.path.join(glob.escape(directory or "."), glob.escape(prefix) + "*" + glob.escape(extension))):
        with contextlib.suppress(OSError):
            os.unlink(leftover)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=extension, dir=directory or ".")
    os.close(handle)
    try:
        try:
            shutil.copy2(path, temporary)
        except OSError as exc:
            raise WriteError(item.path, exc) from None
        item.write(path=os.fsencode(temporary))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    item.mtime = item.current_mtime()


@contextmanager
def batched_commits(lib: Library | None, every: int = 64) -> Iterator[Callable[[], None]]:
    """Group ``item.store()`` calls into one SQLite commit per ``every``
    items (a commit costs ~20 ms); yields a function to call after each
    store. Without a library, stores commit one by one as usual."""
    if lib is None:
        yield lambda: None
        return
    state = {"tx": lib.transaction(), "count": 0}
    state["tx"].__enter__()

    def stored() -> None:
        state["count"] += 1
        if state["count"] % every == 0:
            state["tx"].__exit__(None, None, None)
            state["tx"] = lib.transaction()
            state["tx"].__enter__()

    try:
        yield stored
    finally:
        state["tx"].__exit__(*sys.exc_info())


class _NoProgress:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    """A click progress bar on stderr when ``enabled`` and more than
    :data:`PROGRESS_MIN_ITEMS` items, else a silent stand-in."""
    if not enabled or total <= PROGRESS_MIN_ITEMS:
        yield _NoProgress()
        return
    import click

    with click.progressbar(length=total, label="autotag-ml", file=sys.stderr, show_pos=True) as bar:
        yield bar


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
    """

    def __init__(self, models: Mapping[str, TaskModel], *, store: Store, log, analysis_options: dict,
                 loaded: dict, write: bool, pretend: bool, force: bool, lib: Library | None,
                 fusion=None):
        self.models = dict(models)
        #: GenreFusion (fusion.py) deciding ``genres`` from several sources, or None.
        self.fusion = fusion
        self.store = store
        self.log = log
        self.analysis_options = analysis_options
        self.loaded = loaded
        self.write = write and not pretend
        self.pretend = pretend
        self.force = force
        self.lib = lib
        self.report = Report(tasks={task: TaskReport(model) for task, model in self.models.items()})
        self.bundles = {m.name: m.version for m in self.models.values()}
        #: Paths of every item the run went through.
        self.seen: set[bytes] = set()

    def run(self, items: Iterable[Item], *, progress: bool = False) -> Report:
        """Set every item's fields, from the store or from a new analysis."""
        todo: list[tuple[Any, bytes, tuple[str, ...], dict]] = []  # (id or item, path, bundle names, texts)
        with batched_commits(self.lib) as stored:
            for chunk in _chunks(items, CHUNK):
                paths = [item.path for item in chunk]
                self.seen.update(paths)
                keys = {p: file_key(util.syspath(p)) for p in paths}
                known = {} if self.force else self.store.get(paths, self.bundles, keys=keys)
                for item in chunk:
                    have = known.get(item.path, {})
                    missing = tuple(m.name for m in self.models.values() if m.name not in have)
                    if keys[item.path] is None:
                        self._fail_all(item, f"{util.displayable_path(item.path)}: file not found")
                    elif missing:
                        entry = item.id if self.lib is not None and item.id is not None else item
                        texts = {m.text_source: (m.reader(item) if m.reader else item.get(m.text_source)) or ""
                                 for m in self.models.values() if m.text_source and m.name in missing}
                        if _only_idle_readers(self.models.values(), missing, texts):
                            # Nothing to analyse (e.g. an album without reviews): no pass, no_input.
                            self.report.from_store += 1
                            self._apply(item, {**have, **_no_input(missing)}, stored)
                            continue
                        todo.append((entry, item.path, missing, texts))
                    else:
                        self.report.from_store += 1
                        self._apply(item, have, stored)
            self._analyse(todo, stored, progress)
        for report in self.report.tasks.values():
            for entries in (report.failures, report.below, report.too_short, report.skipped):
                entries.sort(key=lambda entry: util.displayable_path(entry[0].path))
        return self.report

    def _analyse(self, todo, stored, progress: bool) -> None:
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
                    for name, why in analysis.broken.items():
                        if name not in reported:
                            reported.add(name)
                            for model in self.models.values():
                                if model.name == name:
                                    self.report.unavailable[model.task] = why
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
                    if key is not None and not self.pretend:
                        self.store.put(path, key, outputs)
                    have = {} if self.force else self.store.get([path], self.bundles, keys={path: key}).get(path, {})
                    have.update({name: output for name, (_, _, output) in outputs.items()})
                    self._apply(item, have, stored)

    def _labels(self, name: str) -> list[str]:
        return next(m.labels for m in self.models.values() if m.name == name)

    def _fail_all(self, item: Item, message: str) -> None:
        for report in self.report.tasks.values():
            report.failures.append((item, message))

    def _apply(self, item: Item, outputs: Mapping[str, Any], stored: Callable[[], None]) -> None:
        """Set the fields of every task whose output is here; save once."""
        changes: dict[str, Any] = {}
        removals: list[str] = []
        changed_tasks: list[TaskReport] = []  # a tag field set: "tagged"
        touched_tasks: list[TaskReport] = []  # any field of the task changes
        keys = list(item.keys())
        for task, model in self.models.items():
            if task in self.report.unavailable:
                continue
            report = self.report.tasks[task]
            output = outputs.get(model.name)
            if output is None:
                continue
            if output.status == "too_short":
                report.too_short.append((item, output.message or f"{util.displayable_path(item.path)}: too short"))
                continue
            if output.status == "no_input":
                report.no_input += 1
                continue
            if output.status == "skipped":
                report.skipped.append((item, output.message or f"{util.displayable_path(item.path)}: skipped"))
                continue
            if output.status != "ok":
                report.failures.append((item, output.message or f"{util.displayable_path(item.path)}: failed"))
                continue
            scores, labels, extra = output.scores, model.labels, {}
            if model.view is not None and not model.is_embedding:
                scores, labels, extra = model.view(output.scores or {}, threshold=model.threshold, count=model.count)
            new, chosen = F.task_fields(
                task, scores=None if model.is_embedding else scores, labels=labels,
                model=model.name, version=model.version, threshold=model.threshold, count=model.count,
            )
            new.update(extra)
            stale = F.stale_fields(task, keys, new)
            differ = {k: v for k, v in new.items() if item.get(k) != v}
            changes.update(differ)
            removals += stale
            if differ or stale:
                touched_tasks.append(report)
            if not model.is_embedding and not chosen:
                # Confidences are kept; the tag field is left as it was.
                best = F.format_scores(scores or {}, limit=1)
                report.below.append((item, f"no score >= {model.threshold:g}; best {best}"))
            elif differ or stale:
                changed_tasks.append(report)
            else:
                report.unchanged += 1
        if self.fusion is not None:
            self._fuse(item, outputs, changes)
        if not changes and not removals:
            return
        if self.pretend:
            self.report.proposals.append((item, changes, {
                task: outputs[m.name].scores for task, m in self.models.items()
                if m.name in outputs and outputs[m.name].scores is not None
            }))
            for report in changed_tasks:
                report.tagged += 1
            return
        before = {k: item.get(k) for k in (*changes, *removals) if k in item}
        item.update(changes)
        for key in removals:
            del item[key]
        error = self._save(item)
        if error is not None:
            # Nothing stored: put the item back as it was in memory too.
            for key in changes:
                if key in before:
                    item[key] = before[key]
                elif key in item:
                    del item[key]
            item.update({k: v for k, v in before.items() if k in removals})
            for report in touched_tasks:
                report.failures.append((item, error))
            return
        stored()
        for report in changed_tasks:
            report.tagged += 1

    def _fuse(self, item: Item, outputs: Mapping[str, Any], changes: dict[str, Any]) -> None:
        """Replace the audio-only ``genres`` in ``changes`` by the genres of
        every genre source with an output (fusion.py), and record them in
        ``ml_genre_sources``; no genre reaching the threshold leaves
        ``genres`` as it was."""
        scores = {}
        for task, model in self.models.items():
            output = outputs.get(model.name)
            if task in self.fusion.tasks and output is not None and output.status == "ok" and output.scores:
                scores[task] = output.scores
        changes.pop(F.tag_field("genre"), None)
        if not scores:
            return
        fused = self.fusion.fields(scores)
        changes.update({k: v for k, v in fused.items() if item.get(k) != v})

    def _save(self, item: Item) -> str | None:
        """Write the file's tags (if asked), then store the row. Returns an
        error message, with nothing stored, when the write fails."""
        if self.write:
            old = file_key(util.syspath(item.path))
            try:
                write_atomically(item)
            except FileOperationError as exc:
                return str(exc)
            new = file_key(util.syspath(item.path))
            if new is not None:
                # Tags changed, not the audio: the analysis still holds.
                self.store.update_key(item.path, old, new)
        item.store()
        return None


def _only_idle_readers(models: Iterable[TaskModel], missing: tuple[str, ...], texts: Mapping[str, str]) -> bool:
    """Whether every missing bundle reads its text through a reader
    (styles.ReviewReader) that found none for this item."""
    by_name = {m.name: m for m in models}
    return all(by_name[n].reader is not None and not texts.get(by_name[n].text_source, "").strip() for n in missing)


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
