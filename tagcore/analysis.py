"""The analysis pass: many bundles over many files, each file decoded once.

::

    file ──► read_span (one read covering every feature's excerpt)
         ──► soxr, once per distinct sample rate
         ──► compute_feature, once per distinct feature      (worker processes)
         ──► each audio bundle's forward, patches averaged   (model thread)
         ──► heads on their backbone's embedding
         ──► text bundles on the text the caller supplies
         ──► Result: per bundle, label scores and/or an embedding

Bundles say in config.json what they read (an audio feature, a backbone's
embedding, a text source) and what they give (``scores``, ``embedding``);
see :mod:`tagcore.bundle`. Two bundles naming equal feature parameters
share one computation; a backbone runs once per file however many heads
read it, and whether or not it was asked for itself.

Three things run at once: decoding and features in worker processes
(bounded time per file, see :func:`tagcore.workers.map_files`), the models in
one background thread of this process (torch releases the GIL while it
computes), and the caller consuming results in the calling thread.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagcore.audio import AudioError, TooShortError, Window, read_span
from tagcore import onnx_runtime
from tagcore.bundle import Bundle, BundleError, BundleInput, load_bundle, read_config
from tagcore.features import FeatureParams, InputTooShort, compute_feature, feature_key
from tagcore.workers import map_files

#: Output statuses. ``too_short`` and ``no_input`` (no text of the bundle's
#: source was supplied) are skips, not failures; ``unavailable``: the
#: bundle could not be loaded (:attr:`Analysis.broken` says why, once).
OK, FAILED, TOO_SHORT, NO_INPUT, UNAVAILABLE = "ok", "failed", "too_short", "no_input", "unavailable"
#: A text the bundle cannot read (lyrics in another language, no words):
#: a skip with its reason in ``message``; not stored, so retried.
SKIPPED = "skipped"


class Cancelled(Exception):
    """Raised in the model thread when a pass was abandoned."""


@dataclass
class Output:
    """One bundle's output for one input.

    ``scores`` maps label -> probability (taggers); ``embedding`` is a
    float32 vector (embedders, backbones); ``message`` says why when
    ``status`` is not ``"ok"``, naming the file and the cause.
    """

    status: str = OK
    scores: dict[str, float] | None = None
    embedding: np.ndarray | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class Result:
    """Outcome for one input: an :class:`Output` per requested bundle name.
    ``index`` is the input's position; ``decodes`` counts the reads of the
    file this result cost (1, or 0 when no audio bundle ran or it failed
    before reading)."""

    index: int
    path: str
    outputs: dict[str, Output]
    decodes: int = 0


@dataclass(frozen=True)
class Input:
    """A file and the texts a caller has for it, by source (``"lyrics"``...)."""

    path: Any
    texts: Mapping[str, str] = field(default_factory=dict)


def top_labels(scores: Mapping[str, float], *, threshold: float, count: int) -> list[tuple[str, float]]:
    """At most ``count`` (label, score) pairs with score >= ``threshold``,
    best first; ties broken by label for a stable order."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(label, score) for label, score in ranked if score >= threshold][: max(count, 0)]


# --- In the decoding workers ---------------------------------------------


@dataclass
class Decoded:
    """What a worker sends back for one file: each feature (by key) as an
    array of shape (patches, ...) or the AudioError that prevented it."""

    features: dict[str, Any]
    decodes: int = 1


def decode_features(path, *, features: tuple[tuple[str, FeatureParams], ...], min_duration: float) -> Decoded:
    """Read ``path`` once, resample once per distinct rate, compute each
    feature. Runs in a worker process (numpy, soundfile, av, soxr only).

    Raises AudioError when the file cannot be read at all; a feature that
    needs more audio than the file has gets a TooShortError in its place.
    """
    import soxr

    windows = [Window(params.excerpt_seconds, params.offset) for _, params in features]
    span = read_span(path, windows=windows, min_duration=min_duration)
    at_rate: dict[int, np.ndarray] = {}
    out: dict[str, Any] = {}
    for position, (key, params) in enumerate(features):
        rate = params.sample_rate
        if rate not in at_rate:
            at_rate[rate] = span.audio if rate == span.rate else soxr.resample(span.audio, span.rate, rate, quality="HQ")
        try:
            out[key] = compute_feature(span.cut(position, at_rate[rate], rate), params=params)
        except InputTooShort as error:
            out[key] = TooShortError(path, str(error))
    return Decoded(out)


# --- The graph of bundles ------------------------------------------------


@dataclass
class _Node:
    """A bundle the pass runs: requested, or the backbone of one that is."""

    name: str
    config: dict  # its config.json
    spec: Any  # what to load it from: a path, or a loaded Bundle
    requested: bool = False
    need_scores: bool = False
    need_embedding: bool = False
    feature: str | None = None  # feature key (audio bundles)
    backbone: str | None = None  # name of the backbone node (heads)
    sources: tuple[str, ...] = ()  # names of the nodes whose scores it reads (tag maps)
    bundle: Bundle | None = None
    broken: str | None = None
    onnx: Any = None  # an onnx_runtime.OnnxModel running it instead of torch (audio bundles)
    input: BundleInput = field(init=False)  # what it reads, from config

    def __post_init__(self):
        self.input = BundleInput.from_config(self.config)

    @property
    def kind(self) -> str:
        return self.input.kind

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.config["outputs"])


class Analysis:
    """Runs a set of bundles over many files in one pass.

    Parameters
    ----------
    bundles : sequence of str, os.PathLike or Bundle
        Bundle names, directories or loaded bundles. A head's backbone is
        added (and run once per file) when it is not in the list.
    workers : int
        Decoding processes (0 = decode in this process, no timeout).
    timeout : float
        Seconds allowed to decode one file before it is reported as failed.
    batch_size : int
        Files per model batch (their patches share forward passes).
    min_duration : float
        Files with less audio than this, in seconds, are too short.
    device : str
        Torch device for the models; ``"auto"``: CUDA when present, else
        the CPU (resolved when the models load, so a pass that never runs
        a model never imports torch).
    loaded : dict or None
        A cache of loaded bundles by name, shared between passes.
    model_threads : int or None
        Batches run by the models at the same time, each in its own thread
        with ``cpu_count // model_threads`` torch threads. None: on the CPU,
        as many as there are cores (at most 4), so that while the decoding
        workers are ahead every core runs a model (musicnn's small forward
        passes gain little from torch's own threads, two batches side by
        side gain nearly twice); 1 on a GPU.
    runtime : str
        What runs audio bundles on the CPU: ``"auto"`` (ONNX Runtime for a
        bundle that ships a checked ONNX export, when ``onnxruntime`` is
        installed; torch for the others), ``"torch"``, or ``"onnx"`` (a
        bundle whose export cannot run is unavailable, with the reason).
        See :mod:`tagcore.onnx_runtime`.

    Raises
    ------
    BundleError
        A bundle's config.json is missing or malformed, two bundles share a
        name, or a head's backbone gives no embedding. (Weights load in
        :meth:`analyse`; a bundle whose weights fail is reported in
        :attr:`broken` and the others run.)

    Example
    -------
    >>> analysis = Analysis(["genre10"], workers=0)        # doctest: +SKIP
    >>> for result in analysis.analyse(["song.flac"]):     # doctest: +SKIP
    ...     print(result.outputs["genre10"].scores)
    """

    def __init__(
        self,
        bundles: Sequence[Any],
        *,
        workers: int = 2,
        timeout: float = 30.0,
        batch_size: int = 16,
        min_duration: float = 3.0,
        device: str = "cpu",
        loaded: dict[str, Bundle] | None = None,
        model_threads: int | None = None,
        runtime: str = "auto",
    ):
        if runtime not in onnx_runtime.RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(onnx_runtime.RUNTIMES)}, not {runtime!r}")
        self.runtime = runtime
        #: name -> "onnx" or "torch": what ran each audio bundle (filled by analyse()).
        self.runtimes: dict[str, str] = {}
        if model_threads is not None and int(model_threads) < 1:
            raise ValueError(f"model_threads must be at least 1, not {model_threads!r}")
        self.model_threads = None if model_threads is None else int(model_threads)
        self.workers = workers
        self.timeout = timeout
        self.batch_size = max(1, int(batch_size))
        self.min_duration = min_duration
        self.device = device
        self._loaded = loaded if loaded is not None else {}
        self.nodes: dict[str, _Node] = {}
        for spec in bundles:
            node = self._add(spec)
            if node.requested:
                raise BundleError(f"two bundles are named {node.name!r}")
            node.requested = True
            node.need_scores = "scores" in node.outputs
            node.need_embedding = "embedding" in node.outputs
        # Tag maps first: a source they add may be a head, whose backbone is added next.
        for node in [n for n in self.nodes.values() if n.kind == "scores"]:
            self._link_sources(node)
        for node in [n for n in self.nodes.values() if n.kind == "backbone"]:
            self._link_backbone(node)
        self.features: dict[str, FeatureParams] = {}
        for node in self.nodes.values():
            if node.kind == "audio":
                params = node.input.feature
                node.feature = feature_key(params)
                self.features[node.feature] = params
        #: name -> why the bundle could not be loaded (filled by analyse()).
        self.broken: dict[str, str] = {}
        #: Set when a pass is abandoned: the model thread stops between forward passes.
        self._cancelled = threading.Event()

    def _add(self, spec: Any, *, near: _Node | None = None) -> _Node:
        """The node of ``spec`` (added when new). A bundle another one names
        (``near``: a head's backbone, a tag map's source) is looked up by
        name among the installed bundles, then beside ``near``'s directory."""
        if isinstance(spec, Bundle):
            name, config = spec.name, spec.config
            self._loaded.setdefault(name, spec)
        elif isinstance(spec, str) and spec in self.nodes:
            return self.nodes[spec]
        else:
            try:
                path, config = read_config(spec)
            except BundleError:
                home = near.spec.path if isinstance(near.spec, Bundle) else near.spec if near else None
                sibling = os.path.join(os.path.dirname(os.fspath(home)), str(spec)) if home else None
                if sibling is None or not os.path.isdir(sibling):
                    raise
                path, config = read_config(sibling)
            name, spec = config["name"], path
        if name not in self.nodes:
            self.nodes[name] = _Node(name=name, config=config, spec=spec)
        return self.nodes[name]

    def _link_sources(self, node: _Node) -> None:
        """Add the bundles whose scores tag map ``node`` reads."""
        sources = [self._add(spec, near=node) for spec in node.input.bundles]
        for source in sources:
            if source.kind not in ("audio", "backbone") or "scores" not in source.outputs:
                raise BundleError(f"{node.name}: it reads {source.name}, which gives no audio scores")
            source.need_scores = True
        node.sources = tuple(source.name for source in sources)

    def _link_backbone(self, node: _Node) -> None:
        """Add the audio bundle whose embedding head ``node`` reads."""
        backbone = self._add(node.input.bundle, near=node)
        if "embedding" not in backbone.outputs:
            raise BundleError(f"{node.name}: its backbone {backbone.name} gives no embedding")
        if backbone.kind != "audio":
            raise BundleError(f"{node.name}: its backbone {backbone.name} is not an audio bundle")
        backbone.need_embedding = True
        node.backbone = backbone.name

    @property
    def requested(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.requested]

    # --- models (in the model thread) -----------------------------------

    def _load_all(self) -> None:
        """Load every node's weights; a failure marks the node (and the
        heads that read it) broken, the others still run."""
        import torch

        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            # Each model thread gets its share of the cores (model_threads_for).
            torch.set_num_threads(max(1, usable_cpus() // self._threads()))
        for node in self.nodes.values():
            if node.name in self._loaded:
                node.bundle = self._loaded[node.name]
                continue
            try:
                node.bundle = self._loaded[node.name] = load_bundle(node.spec, device=self.device)
            except BundleError as error:
                node.broken = str(error)
        for node in self.nodes.values():
            if node.kind == "audio" and node.broken is None:
                self._choose_runtime(node, torch.get_num_threads())
        self._mark_readers_of_broken()
        self.broken = {n.name: n.broken for n in self.nodes.values() if n.broken is not None}

    def _choose_runtime(self, node: _Node, threads: int) -> None:
        """ONNX Runtime for an audio bundle where ``runtime`` and the bundle
        allow (see the class docstring), else torch."""
        node.onnx = None
        if self.runtime != "torch" and str(self.device) == "cpu" and node.bundle.config.get("onnx"):
            node.onnx, why = onnx_runtime.onnx_model(node.bundle, threads=threads)
            if node.onnx is None and self.runtime == "onnx":
                node.broken = why
        elif self.runtime == "onnx":
            node.broken = f"{node.name}: runtime onnx needs the CPU and a bundle with an ONNX export"
        self.runtimes[node.name] = "onnx" if node.onnx is not None else "torch"

    def _threads(self) -> int:
        """Model threads of this pass: ``model_threads``, else
        :func:`model_threads_for` the device (``auto`` counts as the CPU
        until the models load)."""
        if self.model_threads is not None:
            return self.model_threads
        return model_threads_for(self.device)

    def _mark_readers_of_broken(self) -> None:
        """A head whose backbone, or a tag map one of whose sources, is
        broken is broken too (heads first: a tag map may read a head)."""
        for node in self.nodes.values():
            if node.kind == "backbone" and node.broken is None:
                backbone = self.nodes[node.backbone]
                if backbone.broken is not None:
                    node.broken = f"{node.name}: its backbone {backbone.name} is unavailable ({backbone.broken})"
        for node in self.nodes.values():
            if node.kind == "scores" and node.broken is None:
                for source in node.sources:
                    if self.nodes[source].broken is not None:
                        node.broken = f"{node.name}: {source} is unavailable ({self.nodes[source].broken})"

    def _forward_audio(self, node: _Node, arrays: list[np.ndarray]) -> tuple[list, list]:
        """Scores and embeddings, averaged over each file's patches, for
        ``arrays`` of shape (patches, ...). Returns two lists (None where
        not needed)."""
        import torch

        family = node.bundle.family_module
        model = node.bundle.model
        counts = [len(a) for a in arrays]
        scores_out: list = [None] * len(arrays)
        embed_out: list = [None] * len(arrays)
        # Files whose patches have the same shape share forward passes.
        by_shape: dict[tuple, list[int]] = {}
        for position, array in enumerate(arrays):
            by_shape.setdefault(array.shape[1:], []).append(position)
        # Forward passes of at most `chunk` patches: on a CPU, musicnn's
        # small batches stay in cache (2 patches: 37 ms each; 16: 64 ms,
        # measured on 2 cores) and memory stays bounded whatever the batch
        # size and patch count; a GPU takes large batches.
        chunk = family.INFERENCE_CHUNK
        if not str(self.device).startswith("cpu"):
            chunk = max(chunk, 256)
        for positions in by_shape.values():
            patches = np.concatenate([arrays[p] for p in positions])
            onnx = node.onnx if node.onnx is not None and node.onnx.accepts(patches.shape) else None
            x = patches if onnx is not None else torch.from_numpy(patches).to(self.device)
            parts: tuple[list, list] = ([], [])
            with torch.inference_mode():
                for start in range(0, len(x), chunk):
                    if self._cancelled.is_set():
                        raise Cancelled()
                    if onnx is not None:
                        probs, embeds = onnx.predict_with_embedding(x[start : start + chunk])
                        probs, embeds = (probs if node.need_scores else None), (embeds if node.need_embedding else None)
                    else:
                        probs, embeds = _family_forward(family, model, x[start : start + chunk], node.need_scores,
                                                        node.need_embedding)
                    for slot, value in zip(parts, (probs, embeds)):
                        if value is not None:
                            slot.append(np.asarray(value, dtype=np.float32) if onnx is not None
                                        else value.float().cpu().numpy())
            sizes = [counts[p] for p in positions]
            for p, row in zip(positions, _means_per_file(parts[0], sizes)):
                scores_out[p] = row
            for p, vector in zip(positions, _means_per_file(parts[1], sizes)):
                embed_out[p] = vector.astype(np.float32)
        return scores_out, embed_out

    def _run_batch(self, files: list[tuple[int, str, Decoded | AudioError | None, Mapping[str, str]]]) -> list[Result]:
        """Run every working bundle over a batch of files, one runner per
        input kind in :data:`_RUNNERS` order, and gather the requested
        outputs (``unavailable`` for a broken bundle)."""
        batch = _Batch(files)
        for kind, runner in _RUNNERS:
            for node in self.nodes.values():
                if node.kind == kind and node.broken is None and not (kind == "audio" and self._cancelled.is_set()):
                    getattr(self, runner)(node, batch)
        results = []
        for i, (index, path, decoded, _) in enumerate(files):
            wanted = {
                name: batch.outputs[i].get(name) or Output(UNAVAILABLE, message=self.broken.get(name))
                for name in self.requested
            }
            results.append(Result(index, path, wanted, decodes=decoded.decodes if isinstance(decoded, Decoded) else 0))
        return results

    def _run_audio(self, node: _Node, batch: _Batch) -> None:
        """An audio bundle on each decoded file's feature; a file that could
        not be decoded (or is too short for the feature) fails here."""
        ready, arrays = [], []
        for i, (_, _, decoded, _) in enumerate(batch.files):
            value = decoded if isinstance(decoded, AudioError) else decoded.features[node.feature]
            if isinstance(value, AudioError):
                batch.outputs[i][node.name] = _failed(value)
            else:
                ready.append(i)
                arrays.append(value)
        if not ready:
            return
        scores, embeds = self._forward_audio(node, arrays)
        for i, row, vector in zip(ready, scores, embeds):
            out = Output(OK)
            if row is not None:
                out.scores = _label_scores(node.bundle.labels, row)
            if vector is not None:
                out.embedding = vector
                batch.embeddings[i][node.name] = vector
            batch.outputs[i][node.name] = out

    def _run_head(self, node: _Node, batch: _Batch) -> None:
        """A head on its backbone's embedding; where the backbone has none,
        the head gets the backbone's output (its failure)."""
        ready = [i for i in range(len(batch.files)) if node.backbone in batch.embeddings[i]]
        for i in set(range(len(batch.files))) - set(ready):
            batch.outputs[i][node.name] = batch.outputs[i][node.backbone]
        if ready:
            x = np.stack([batch.embeddings[i][node.backbone] for i in ready])
            self._predict_vectors(node, batch, ready, x)

    def _run_tag_map(self, node: _Node, batch: _Batch) -> None:
        """A tag map on its sources' scores, concatenated in the order it
        lists them; where a source failed, the map gets that failure."""
        outputs = batch.outputs
        ready = [i for i in range(len(batch.files)) if all(outputs[i][s].ok for s in node.sources)]
        for i in set(range(len(batch.files))) - set(ready):
            outputs[i][node.name] = next(outputs[i][s] for s in node.sources if not outputs[i][s].ok)
        if ready:
            x = np.stack([
                np.concatenate([[outputs[i][s].scores[label] for label in self.nodes[s].bundle.labels]
                                for s in node.sources])
                for i in ready
            ]).astype(np.float32)
            self._predict_vectors(node, batch, ready, x)

    def _predict_vectors(self, node: _Node, batch: _Batch, ready: list[int], x: np.ndarray) -> None:
        """Scores of a head or tag map for the files ``ready``, from their
        input vectors ``x`` (len(ready), n_inputs) float32."""
        import torch

        family = node.bundle.family_module
        probs = family.predict(node.bundle.model, torch.from_numpy(x).to(self.device)).float().cpu().numpy()
        for i, row in zip(ready, probs):
            batch.outputs[i][node.name] = Output(OK, scores=_label_scores(node.bundle.labels, row))

    def _run_text(self, node: _Node, batch: _Batch) -> None:
        """A text bundle on the text of its source the caller supplied
        (``no_input`` without one). A text the model cannot read (another
        language, no words) is a skip with its reason, not a failure."""
        source = node.input.source
        ready = [i for i, (_, _, _, texts) in enumerate(batch.files) if (texts.get(source) or "").strip()]
        for i in set(range(len(batch.files))) - set(ready):
            batch.outputs[i][node.name] = Output(NO_INPUT, message=f"{batch.files[i][1]}: no {source}")
        if not ready:
            return
        family = node.bundle.family_module
        texts = [batch.files[i][3][source] for i in ready]
        probs, problems = family.predict_texts_checked(node.bundle.model, texts)
        for i, row, problem in zip(ready, np.asarray(probs), problems):
            path = batch.files[i][1]
            if problem is not None:
                batch.outputs[i][node.name] = Output(SKIPPED, message=f"{path}: {problem}")
            elif not np.all(np.isfinite(row)):
                batch.outputs[i][node.name] = Output(FAILED, message=f"{path}: {node.name} gave no prediction")
            else:
                batch.outputs[i][node.name] = Output(OK, scores=_label_scores(node.bundle.labels, row))

    # --- the pass -------------------------------------------------------

    def _decode(self, paths: Iterator[Any]) -> Iterator[tuple[int, Any, Decoded | AudioError | None]]:
        """(index, path, what the workers made of it) per path: every
        audio feature the bundles read, computed in the workers; None for
        each path when no bundle reads audio (nothing is decoded)."""
        audio = tuple(
            (key, self.features[key])
            for key in dict.fromkeys(n.feature for n in self.nodes.values() if n.kind == "audio")
        )
        if not audio:
            return ((index, path, None) for index, path in enumerate(paths))
        job = functools.partial(decode_features, features=audio, min_duration=self.min_duration)
        return map_files(paths, job=job, workers=self.workers, timeout=self.timeout)

    def analyse(self, inputs: Iterable[Any]) -> Iterator[Result]:
        """Yield one :class:`Result` per input, in completion order.

        ``inputs``: paths, or :class:`Input` (a path and its texts). Read
        lazily; memory holds at most a few batches of features.
        """
        texts_of: dict[int, Mapping[str, str]] = {}
        decoded = self._decode(_paths_of(inputs, texts_of))
        pending: list = []
        scored: deque[Future] = deque()
        self._cancelled.clear()
        threads = self._threads()
        model_thread = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tagcore-model")
        try:
            loading = model_thread.submit(self._load_all)

            def run_batch(files):
                loading.result()  # batches wait for the models
                return self._run_batch(files)

            def submit() -> None:
                if pending:
                    scored.append(model_thread.submit(run_batch, list(pending)))
                    pending.clear()

            def finished(keep: int) -> Iterator[Result]:
                """The results of the finished batches at the head of the
                queue, waiting for the oldest ones until at most ``keep``
                batches are left in it."""
                while scored and (len(scored) > keep or scored[0].done()):
                    yield from scored.popleft().result()

            for index, path, value in decoded:
                pending.append((index, _path_text(path), value, texts_of.pop(index, {})))
                if len(pending) >= self.batch_size:
                    if loading.done():
                        loading.result()  # raise an unexpected loading error here
                    # Keep at most one batch queued beyond those running: memory
                    # stays bounded, and waiting for the oldest batch alone
                    # (not for every batch queued) keeps each model thread busy.
                    yield from finished(keep=threads)
                    submit()
                yield from finished(keep=len(scored))
            submit()
            loading.result()
            yield from finished(keep=0)
        except BaseException:
            # Ctrl-C, or the caller stopped reading: the batch in the model
            # thread stops at its next forward pass instead of finishing,
            # and the decoding workers are killed (closing `decoded`).
            self._cancelled.set()
            model_thread.shutdown(wait=False, cancel_futures=True)
            close = getattr(decoded, "close", None)
            if close is not None:
                close()
            raise
        model_thread.shutdown(wait=True)


@dataclass
class _Batch:
    """The files of one model batch and what the runners made of them: per
    file, an Output by bundle name and the embeddings heads read."""

    files: list[tuple[int, str, Decoded | AudioError | None, Mapping[str, str]]]
    outputs: list[dict[str, Output]] = field(init=False)
    embeddings: list[dict[str, np.ndarray]] = field(init=False)

    def __post_init__(self):
        self.outputs = [{} for _ in self.files]
        self.embeddings = [{} for _ in self.files]


#: The runner (an Analysis method) of each input kind, in the order they
#: run: heads read the audio bundles' embeddings, tag maps their scores.
_RUNNERS = (("audio", "_run_audio"), ("backbone", "_run_head"), ("scores", "_run_tag_map"), ("text", "_run_text"))


def model_threads_for(device: str, *, cpu_count: int | None = None) -> int:
    """Default model threads: 1 on a GPU (one stream of large batches);
    on the CPU one per core, at most 4."""
    if not str(device).startswith("cpu") and str(device) != "auto":
        return 1
    return max(1, min(4, cpu_count or usable_cpus()))


def usable_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the system
    says, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _means_per_file(chunks: list[np.ndarray], sizes: list[int]) -> list[np.ndarray]:
    """The forward passes' outputs ``chunks`` (concatenated: (sum(sizes),
    ...)) averaged over each file's ``sizes[i]`` patches; [] when there are
    none (an output nobody needs)."""
    if not chunks:
        return []
    return [part.mean(axis=0) for part in np.split(np.concatenate(chunks), np.cumsum(sizes)[:-1])]


def _label_scores(labels: Sequence[str], row: np.ndarray) -> dict[str, float]:
    """label -> probability, for a row of probabilities in label order."""
    return {label: float(p) for label, p in zip(labels, row)}


def _failed(error: AudioError) -> Output:
    """The output of a file that could not be read or is too short."""
    return Output(TOO_SHORT if isinstance(error, TooShortError) else FAILED, message=str(error))


def _paths_of(inputs: Iterable[Any], texts_of: dict[int, Mapping[str, str]]) -> Iterator[Any]:
    """The path of each input, lazily; the texts of an :class:`Input` are
    put in ``texts_of`` under its index as it goes by."""
    for index, item in enumerate(inputs):
        if isinstance(item, Input):
            if item.texts:
                texts_of[index] = item.texts
            yield item.path
        else:
            yield item


def _family_forward(family, model, x, need_scores: bool, need_embedding: bool):
    """(probabilities or None, embedding or None) of one forward pass of an
    audio family (:class:`tagcore.families.AudioFamily`)."""
    if need_scores and need_embedding:
        return family.predict_with_embedding(model, x)
    if need_scores:
        return family.predict(model, x), None
    return None, family.embed(model, x) if need_embedding else None


def _path_text(path: Any) -> str:
    try:
        return os.fsdecode(path)
    except TypeError:
        return str(path)
