"""The report folder every training run writes.

:func:`write_report` always writes three JSON files and, when the optional
``train`` extra is installed (matplotlib; scikit-learn for t-SNE), four
PNG figures:

- ``config.json``: the run configuration;
- ``metrics.json``: the family's evaluation figures;
- ``history.jsonl``: one JSON object per epoch;
- ``curves.png``: train and validation loss per epoch, other numeric
  per-epoch metrics on a second panel;
- ``confusion.png``: confusion matrix, counts in the cells, colour = share
  of the true class (row-normalised);
- ``label_graph.png``: a square label-by-label matrix (cosine similarity of
  the tag embeddings, section 2.4.5 of the disambig paper, or a co-occurrence matrix),
  labels ordered by group then name;
- ``tsne.png``: 2-D t-SNE of the tag embeddings, one annotated point per
  label, coloured by group (as Figure 1 of the disambig paper).

Every other figure of the trainer is drawn here too, one pure function per
figure (plain arrays and dicts in), saved by :func:`write_figure`: the HAN
label graph G - I (:func:`write_label_graph_delta`, with a CJK font when
one is installed), samplecnn's popularity buckets
(:func:`popularity_gain_figure`) and r sweep (:func:`r_sweep_figure`);
the lyrics trainer saves its confusion matrices with :func:`write_figure`.

Plotting never stops a training run: a missing extra, a missing input or a
failing figure is reported in the returned mapping (and on stderr) instead.
The figure functions are pure: arrays in, :class:`matplotlib.figure.Figure`
out, drawn on an Agg canvas without touching pyplot's global state.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

PLOTS_SKIPPED_NOTE = "plots skipped: install the train extra (pip install 'beets-autotagml[train]')"
TSNE_SKIPPED_NOTE = "tsne skipped: install scikit-learn (pip install 'beets-autotagml[train]')"

#: The figures, each written as NAME.png.
PLOT_NAMES = ("curves", "confusion", "label_graph", "tsne")
#: Per-epoch keys that are not plotted as metrics.
NON_METRIC_KEYS = frozenset({"epoch", "seconds", "time", "elapsed"})
#: Below this font size (points) the matrix figures leave out the numbers in the cells.
MIN_CELL_FONT = 5.0


# --- files ------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples, sets and paths made
    JSON types, keys made strings, and NaN/infinity made ``null`` (so the
    files stay strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(_jsonable(value), indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _write_atomic(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move
    it over ``path``: readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the report private
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented UTF-8 JSON with sorted keys, atomically."""
    _write_atomic(Path(path), lambda f: f.write(_dumps(value, indent=2) + "\n"))


def write_jsonl(path: Path, rows: Sequence[Mapping]) -> None:
    """One JSON object per line, sorted keys, atomically."""
    _write_atomic(Path(path), lambda f: f.writelines(_dumps(row) + "\n" for row in rows))


def history_rows(train_loss: Sequence[float], val_loss: Sequence[float] = (), **per_epoch: Sequence) -> list[dict]:
    """Per-epoch dicts ``{"epoch": 1, "train_loss": ..., "val_loss": ...}``
    from the lists of :class:`trainer.loop.History` (and any other
    per-epoch lists); a list shorter than ``train_loss`` leaves its key out
    of the later epochs."""
    columns = {"train_loss": train_loss, "val_loss": val_loss, **per_epoch}
    return [
        {"epoch": i + 1, **{k: v[i] for k, v in columns.items() if i < len(v)}}
        for i in range(len(train_loss))
    ]


# --- figures ----------------------------------------------------------------


def _new_figure(width: float, height: float) -> "Figure":
    """A figure on an Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _label_names(labels: Sequence[str] | None, n: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for a matrix of {n} rows")
    return [str(label) for label in labels]


def _square(matrix: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty square matrix, got shape {matrix.shape}")
    return matrix


def _matrix_layout(n: int) -> tuple[float, float, float]:
    """(side in inches, tick font size, cell font size) of a matrix figure
    for ``n`` labels: the figure grows with ``n`` up to 22 in, fonts shrink
    with the cells."""
    side = float(np.clip(2.5 + 0.38 * n, 5, 22))
    cell_points = 0.8 * side / n * 72
    return side, float(np.clip(0.6 * cell_points, 4, 10)), float(min(0.35 * cell_points, 10))


def _numeric(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return math.nan
    return float(value)


def _series(history: Sequence[Mapping], key: str) -> np.ndarray:
    """Values of ``key`` per epoch, NaN where absent or not a number."""
    return np.array([_numeric(row.get(key)) for row in history], dtype=np.float64)


def curves_figure(history: Sequence[Mapping]) -> "Figure":
    """Loss per epoch (keys ending in ``loss``, e.g. train_loss and
    val_loss) on the first panel; every other numeric per-epoch key except
    epoch and timing keys on a second panel, drawn only when there is one.

    history : one mapping per epoch; the x axis is its ``epoch`` key
    (1-based position where missing). The best epoch (lowest val_loss) is
    marked.
    """
    if not history:
        raise ValueError("empty history")
    epochs = _series(history, "epoch")
    epochs = np.where(np.isnan(epochs), np.arange(1, len(history) + 1), epochs)
    keys = sorted({k for row in history for k in row if k not in NON_METRIC_KEYS})
    keys = [k for k in keys if not np.all(np.isnan(_series(history, k)))]
    loss_keys = [k for k in keys if k.endswith("loss")]
    other_keys = [k for k in keys if k not in loss_keys]
    panels = 2 if other_keys else 1
    fig = _new_figure(6.5 * panels, 4.2)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    marker = "o" if len(history) <= 30 else None
    for ax, panel_keys, title in zip(axes, (loss_keys, other_keys), ("Loss", "Other metrics")):
        for key in panel_keys:
            ax.plot(epochs, _series(history, key), marker=marker, markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    val = _series(history, "val_loss")
    if not np.all(np.isnan(val)):
        best = int(np.nanargmin(val))
        axes[0].axvline(epochs[best], color="grey", linestyle="--", linewidth=1,
                        label=f"best val_loss (epoch {epochs[best]:g})")
    axes[0].set_ylabel("loss")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("Training curves")
    return fig


def confusion_figure(confusion: np.ndarray, labels: Sequence[str] | None = None) -> "Figure":
    """Confusion matrix, shape (n, n), rows true class, columns predicted.

    Cell colour is the share of the row (true class), so rare classes read
    as clearly as common ones; cells show the counts (left out when the
    cells get too small to read). labels : n names (default: indices).
    """
    counts = _square(confusion, "confusion matrix")
    n = counts.shape[0]
    names = _label_names(labels, n)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side, tick_size, cell_size = _matrix_layout(n)
    fig = _new_figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
    _label_axes(ax, names, tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if cell_size >= MIN_CELL_FONT:
        size = cell_size
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=size,
                            color="white" if shares[i, j] > 0.5 else "black")
    total = counts.sum()
    accuracy = f", accuracy {np.trace(counts) / total:.3f}" if total else ""
    ax.set_title(f"Confusion matrix ({total:g} items{accuracy})")
    return fig


def label_order(labels: Sequence[str], groups: Mapping[str, str] | None = None) -> np.ndarray:
    """Indices that sort ``labels`` by group (labels without one last),
    then by name (case-insensitive); shape (n,)."""
    groups = groups or {}

    def key(i):
        return labels[i] not in groups, groups.get(labels[i], ""), labels[i].casefold(), labels[i]

    return np.array(sorted(range(len(labels)), key=key), dtype=int)


def label_graph_figure(
    matrix: np.ndarray,
    labels: Sequence[str] | None = None,
    groups: Mapping[str, str] | None = None,
    *,
    title: str = "Tag embedding cosine similarity",
) -> "Figure":
    """Heatmap of a square label-by-label matrix, shape (n, n): cosine
    similarity of the tag embeddings (diverging colours on [-1, 1]) or any
    non-negative matrix such as co-occurrence counts (sequential colours).
    Rows and columns are ordered by :func:`label_order`; lines separate the
    groups when ``groups`` (label -> group) is given.
    """
    matrix = _square(matrix, "label matrix")
    n = matrix.shape[0]
    names = _label_names(labels, n)
    order = label_order(names, groups)
    ordered = matrix[np.ix_(order, order)]
    names = [names[i] for i in order]
    if np.nanmin(ordered) >= -1.0 - 1e-9 and np.nanmax(ordered) <= 1.0 + 1e-9 and np.nanmin(ordered) < 0:
        style = dict(cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    else:
        style = dict(cmap="viridis")
    side, tick_size, cell_size = _matrix_layout(n)
    fig = _new_figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(ordered, **style)
    fig.colorbar(image, ax=ax, shrink=0.8)
    _label_axes(ax, names, tick_size)
    if groups:
        group_of = [groups.get(name) for name in names]
        for k in range(1, n):
            if group_of[k] != group_of[k - 1]:
                ax.axhline(k - 0.5, color="black", linewidth=0.8)
                ax.axvline(k - 0.5, color="black", linewidth=0.8)
    if cell_size >= 1.4 * MIN_CELL_FONT:  # four-character numbers need wider cells
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{ordered[i, j]:.2f}", ha="center", va="center", fontsize=min(cell_size, 7),
                        color="white" if abs(ordered[i, j]) > 0.6 else "black")
    ax.set_title(title)
    return fig


def _label_axes(ax, names: Sequence[str], size: float) -> None:
    """The same label names on both axes, x rotated."""
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(len(names)), labels=names, fontsize=size)


def tsne_embedding(embeddings: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, cosine distance) of ``embeddings``, shape
    (n_labels, dim) -> (n_labels, 2). The perplexity (30 by default) is
    clamped below the number of points. Raises ImportError without
    scikit-learn and ValueError for fewer than 3 points."""
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 labels, got {len(x) if x.ndim else 0}")
    perplexity = float(min(30.0, max(1.0, (len(x) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                learning_rate="auto", random_state=seed)
    return tsne.fit_transform(x)


def tsne_figure(points: np.ndarray, labels: Sequence[str] | None = None,
                groups: Mapping[str, str] | None = None) -> "Figure":
    """Scatter of 2-D points, shape (n_labels, 2), each annotated with its
    label and coloured by its group (label -> group; grey for labels
    without one), with a legend of the groups."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    names = _label_names(labels, len(points))
    groups = groups or {}
    n = len(points)
    fig = _new_figure(float(np.clip(5 + 0.12 * n, 8.5, 16)), float(np.clip(4 + 0.1 * n, 7, 13)))
    ax = fig.subplots()
    group_names = sorted({groups[name] for name in names if name in groups})
    palette = _palette(len(group_names))
    for colour, group in zip(palette, group_names):
        mask = np.array([groups.get(name) == group for name in names])
        ax.scatter(points[mask, 0], points[mask, 1], s=40, color=colour, label=group)
    ungrouped = np.array([name not in groups for name in names])
    if ungrouped.any():
        ax.scatter(points[ungrouped, 0], points[ungrouped, 1], s=40, color="grey",
                   label="(no group)" if group_names else None)
    size = float(np.clip(400 / max(n, 1), 6, 9))
    for (x, y), name in zip(points, names):
        ax.annotate(name, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=size)
    if group_names:
        ax.legend(title="group", fontsize=8, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.margins(0.12)
    ax.set_title("t-SNE of the tag embeddings")
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# --- figures of single families -----------------------------------------------
# Drawn by one trainer each, outside write_report: pass a thunk of one of
# them to write_figure, which never lets a figure stop the run.

#: Fonts that draw Chinese (the NetEase label names); the first installed one is used.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC", "Source Han Sans SC", "AR PL UMing CN")


def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` matplotlib finds, or None (none
    installed, or no matplotlib)."""
    try:
        from matplotlib import font_manager
    except ImportError:
        return None
    for name in CJK_FONTS:
        try:
            font_manager.findfont(name, fallback_to_default=False)
            return name
        except ValueError:
            continue
    return None


def label_graph_delta_figure(graph: np.ndarray, names: Sequence[str], *, title: str) -> "Figure":
    """Figure 2 of the han paper: heatmap of G - I for a learned
    label graph G, shape (n, n), scaled by 1 / max |G - I| into [-1, 1]
    (the scale is in the title). names : the n labels as shown."""
    delta = np.asarray(graph, dtype=float) - np.eye(len(graph))
    bound = float(np.abs(delta).max()) or 1.0
    return label_graph_figure(np.clip(delta / bound, -1, 1), list(names), title=f"{title}, scaled by 1/{bound:.3g}")


def write_label_graph_delta(path, graph: np.ndarray, names: Sequence[str], *, title: str) -> str:
    """:func:`label_graph_delta_figure` saved at ``path``, drawn with a CJK
    font when one is installed (so Chinese names show); the path or why
    not (:func:`write_figure`)."""
    font = cjk_font()

    def make() -> "Figure":
        return label_graph_delta_figure(graph, names, title=title)

    if font is None:
        return write_figure(path, make, name="label graph")
    import matplotlib

    # Drawn and saved inside the context: the font is looked up when the text is drawn.
    with matplotlib.rc_context({"font.sans-serif": [font, *matplotlib.rcParams["font.sans-serif"]]}):
        return write_figure(path, make, name="label graph")


def popularity_gain_figure(rows: Sequence[Sequence[Mapping]], *, xlabel: str) -> "Figure":
    """Figure 5 of the samplecnn paper (Lin, Chung and Chen): relative improvement of
    a retrieval metric per tag-popularity bucket, as bars.

    rows : one per figure row, each a sequence of panels (mappings):
        ``title``; ``starts`` (k,) the first popularity rank of each
        bucket and ``labels`` (k,) their tick labels; ``gain`` (k,) in
        percent; optional ``std`` (k,) error bars. A panel without
        ``starts`` shows only the zero line.
    """
    if not rows or not rows[0]:
        raise ValueError("no panel to draw")
    fig = _new_figure(10, 3.4 * len(rows))
    axes = fig.subplots(len(rows), len(rows[0]), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax, panel in zip(ax_row, panels):
            if panel.get("starts") is not None and len(panel["starts"]):
                k = len(panel["starts"])
                ax.bar(range(k), np.asarray(panel["gain"], dtype=float), capsize=3,
                       yerr=None if panel.get("std") is None else np.asarray(panel["std"], dtype=float))
                ax.set_xticks(range(k), list(panel["labels"]), fontsize=8)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("relative improvement (%)")
            ax.set_title(panel["title"], fontsize=9)
    return fig


def r_sweep_figure(rows: Sequence[Sequence[Mapping]], *, title: str) -> "Figure":
    """Figures 3 and 4 of the samplecnn paper (Lin, Chung and Chen): metrics against
    the search range r, mean ± std over seeds, one line per weighting.

    rows : one per figure row, each a sequence of panels (mappings):
        ``title``; ``lines``, each ``{"label", "style" (a matplotlib format
        such as "o-"), "r" (k,), "mean" (k,), "std" (k,)}``; optional
        ``control`` ``{"label", "value"}`` drawn as a horizontal line.
    """
    if not rows or not rows[0]:
        raise ValueError("no panel to draw")
    fig = _new_figure(13, 3.4 * len(rows))
    axes = fig.subplots(len(rows), len(rows[0]), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax, panel in zip(ax_row, panels):
            for line in panel["lines"]:
                ax.errorbar(line["r"], line["mean"], yerr=line["std"], fmt=line["style"], capsize=3,
                            label=line["label"])
            if panel.get("control"):
                ax.axhline(panel["control"]["value"], color="grey", linestyle="-.", linewidth=1,
                           label=panel["control"]["label"])
            ax.set_title(panel["title"], fontsize=9)
            ax.set_xlabel("search range r")
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


#: Colours of the tag sets in :func:`lsi_topics_figure` (the paper's Figure 3:
#: styles red, moods orange, themes purple, genres black).
TAG_SET_COLOURS = {"styles": "tab:red", "moods": "tab:orange", "themes": "tab:purple", "genres": "black"}


def lsi_topics_figure(topics: Sequence) -> "Figure":
    """Figure 3 of the triplet paper (Schindler and Knees): one panel per LSI
    topic, its tags as horizontal bars of their loading, most positive on
    top, coloured by tag set (:data:`TAG_SET_COLOURS`).

    topics : objects with ``sets`` (tag set names), ``number`` (from 0) and
        ``loadings`` ((tag set, tag, loading), most positive first), as
        :class:`trainer.lsi_topics.Topic`.
    """
    if not topics:
        raise ValueError("no topic to draw")
    height = max(len(topic.loadings) for topic in topics)
    fig = _new_figure(4.2 * len(topics), 0.9 + 0.24 * height)
    axes = fig.subplots(1, len(topics), squeeze=False)[0]
    for ax, topic in zip(axes, topics):
        rows = list(topic.loadings)[::-1]
        ax.barh(range(len(rows)), [loading for _, _, loading in rows],
                color=[TAG_SET_COLOURS.get(tag_set, "grey") for tag_set, _, _ in rows])
        ax.set_yticks(range(len(rows)), [tag for _, tag, _ in rows], fontsize=7)
        for label, (tag_set, _, _) in zip(ax.get_yticklabels(), rows):
            label.set_color(TAG_SET_COLOURS.get(tag_set, "grey"))
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel("loading", fontsize=8)
        ax.set_title(f"{'+'.join(topic.sets)} (#{topic.number})", fontsize=9)
    return fig


# --- the writer ---------------------------------------------------------------


def plots_available() -> bool:
    """Whether matplotlib (the ``train`` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_png(fig: "Figure", path: Path) -> None:
    """``fig`` as a PNG at ``path``, written atomically."""
    _write_atomic(Path(path), lambda f: fig.savefig(f, format="png"), binary=True)


def write_figure(path, make: Callable[[], "Figure"], *, name: str) -> str:
    """Draw ``make()`` and save it as a PNG at ``path``.

    Never raises: returns the path, or why there is no figure (matplotlib
    missing, or the error drawing it), said in one line on stderr; then an
    earlier run's figure at ``path`` is removed, so none is left stale.
    """
    path = Path(path)
    if not plots_available():
        reason = PLOTS_SKIPPED_NOTE
        print(f"{name}: {reason}", file=sys.stderr)
    else:
        try:
            save_png(make(), path)
            return str(path)
        except Exception as error:  # a figure never stops a run
            reason = f"failed: {type(error).__name__}: {error}"
            print(f"{name} plot {reason}", file=sys.stderr)
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    return reason


def _cosine_similarity(embeddings: np.ndarray) -> np.ndarray:
    """Section 2.4.5's cosine similarity between rows, (n, dim) -> (n, n)."""
    from tagcore.families.disambig import cosine_similarity_matrix

    return cosine_similarity_matrix(embeddings)


def _plot_jobs(history, labels, confusion, tag_embeddings, label_similarity, label_groups):
    """(name, figure thunk or skip reason) for each figure."""
    jobs: list[tuple[str, Callable[[], "Figure"] | str]] = []
    jobs.append(("curves", (lambda: curves_figure(history)) if history else "skipped: empty history"))
    jobs.append(("confusion", (lambda: confusion_figure(confusion, labels))
                 if confusion is not None else "skipped: no confusion matrix given"))
    if label_similarity is not None:
        jobs.append(("label_graph", lambda: label_graph_figure(label_similarity, labels, label_groups,
                                                               title="Label similarity")))
    elif tag_embeddings is not None:
        jobs.append(("label_graph", lambda: label_graph_figure(
            _cosine_similarity(tag_embeddings), labels, label_groups)))
    else:
        jobs.append(("label_graph", "skipped: no label matrix or tag embeddings given"))
    if tag_embeddings is None:
        jobs.append(("tsne", "skipped: no tag embeddings given"))
    elif len(tag_embeddings) < 3:
        jobs.append(("tsne", f"skipped: t-SNE needs at least 3 labels, got {len(tag_embeddings)}"))
    else:
        try:
            import sklearn.manifold  # noqa: F401
        except ImportError:
            jobs.append(("tsne", TSNE_SKIPPED_NOTE))
        else:
            jobs.append(("tsne", lambda: tsne_figure(tsne_embedding(tag_embeddings), labels, label_groups)))
    return jobs


def write_report(
    directory,
    *,
    run_config: dict,
    metrics: dict,
    history: list[dict],
    labels: list[str] | None = None,
    confusion: np.ndarray | None = None,
    tag_embeddings: np.ndarray | None = None,
    label_similarity: np.ndarray | None = None,
    label_groups: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write the report folder ``directory`` (created if needed).

    run_config, metrics : JSON-like mappings (numpy values allowed).
    history : one mapping per epoch (epoch, train_loss, val_loss, ...).
    labels : the n label names, in the order of the matrices' rows.
    confusion : (n, n) counts, rows true, columns predicted.
    tag_embeddings : (n, dim), e.g. ``embedding_from_weights(model)``.
    label_similarity : (n, n) label matrix for ``label_graph.png``;
        default the cosine similarity of ``tag_embeddings``.
    label_groups : label -> group, for ordering and colours.

    Returns ``{name: path or skip reason}`` for config, metrics, history,
    curves, confusion, label_graph and tsne. Plot problems never raise:
    they are returned (and printed to stderr); JSON write errors do raise.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, filename, write, value in (
        ("config", "config.json", write_json, run_config),
        ("metrics", "metrics.json", write_json, metrics),
        ("history", "history.jsonl", write_jsonl, history),
    ):
        write(directory / filename, value)
        written[name] = str(directory / filename)

    if not plots_available():
        print(PLOTS_SKIPPED_NOTE, file=sys.stderr)
        for name in PLOT_NAMES:
            (directory / f"{name}.png").unlink(missing_ok=True)  # no stale figure from an earlier run
        return {**written, **{name: PLOTS_SKIPPED_NOTE for name in PLOT_NAMES}}
    try:
        jobs = _plot_jobs(history, labels, confusion, tag_embeddings, label_similarity, label_groups)
    except Exception as error:  # plotting must not stop a run
        jobs = [(name, f"failed: {type(error).__name__}: {error}") for name in PLOT_NAMES]
    for name, job in jobs:
        written[name] = _run_plot(job, directory / f"{name}.png", name)
    return written


def _run_plot(job: Callable[[], "Figure"] | str, path: Path, name: str) -> str:
    """Draw and save one figure; the path, or why there is none (then an
    earlier run's figure at ``path`` is removed, so none is left stale)."""
    if isinstance(job, str):
        if job == TSNE_SKIPPED_NOTE:
            print(job, file=sys.stderr)
        path.unlink(missing_ok=True)
        return job
    return write_figure(path, job, name=name)
