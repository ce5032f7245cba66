"""The HAN trainer's figures: the decision threshold p tuned on validation,
section 5.1's scores on test, and the Table-2 rows (mean ± std over seeds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from trainer import metrics
from trainer.datasets import DatasetError
from trainer.han.data import Prepared

#: The grid of decision thresholds p tuned on validation.
THRESHOLDS = tuple(round(v, 2) for v in np.arange(0.05, 0.951, 0.05))


def scores_at(y: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Section 5.1's figures of probabilities (n, m) at one threshold."""
    decisions = probs >= threshold
    return {"micro_f1": metrics.micro_f1(y_true=y, y_pred=decisions),
            "macro_f1": metrics.macro_f1(y_true=y, y_pred=decisions),
            "one_error": metrics.one_error(y_true=y, scores=probs),
            "hamming_loss": metrics.hamming_loss(y_true=y, y_pred=decisions)}


def tune_threshold(y_val: np.ndarray, probs_val: np.ndarray, *, grid: Sequence[float] = THRESHOLDS) -> float:
    """The p of ``grid`` with the best validation micro-F1 (the lowest on ties)."""
    values = [metrics.micro_f1(y_true=y_val, y_pred=probs_val >= p) for p in grid]
    return float(grid[int(np.argmax(values))])


def evaluate_probs(p: Prepared, probs: np.ndarray) -> dict:
    """Threshold tuned on validation, figures on test (and validation)."""
    threshold = tune_threshold(p.y[p.val], probs[p.val])
    out = {"threshold": threshold, **scores_at(p.y[p.test], probs[p.test], threshold)}
    out["val_micro_f1"] = metrics.micro_f1(y_true=p.y[p.val], y_pred=probs[p.val] >= threshold)
    return out


def summarise(runs: Sequence[dict]) -> dict:
    """mean and std (ddof 1) of each numeric figure over seeds, plus the runs."""
    out: dict = {"seeds": len(runs), "runs": list(runs)}
    for key in ("micro_f1", "macro_f1", "one_error", "hamming_loss", "threshold", "val_micro_f1", "epochs", "seconds",
                "best_epoch", "graph_max_delta", "graph_fro_delta"):
        values = [r[key] for r in runs if key in r]
        if values:
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            out[key] = {"mean": float(np.mean(values)), "std": std}
    return out


def summarise_dirs(run_dirs: Sequence[str | Path], *, order: Sequence[str] = ()) -> dict:
    """The table (:func:`summarise` per model) of the ``runs.jsonl`` files
    of several run folders: one experiment split over processes. Models
    in ``order`` first, in that order; the others after them."""
    runs: dict[str, list[dict]] = {}
    for directory in run_dirs:
        path = Path(directory) / "runs.jsonl"
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                runs.setdefault(row.pop("model"), []).append(row)
    rank = {name: i for i, name in enumerate(order)}
    return {name: summarise(runs[name]) for name in sorted(runs, key=lambda n: rank.get(n, len(rank)))}


def figures_line(f: dict) -> str:
    """One run's test figures, p and validation micro-F1, as a log line."""
    return (f"micro-F1 {f['micro_f1']:.3f} macro-F1 {f['macro_f1']:.3f} one-error {f['one_error']:.3f} "
            f"hamming {f['hamming_loss']:.4f} (p {f['threshold']:.2f}, validation micro-F1 {f['val_micro_f1']:.3f})")


def format_table(table: dict) -> str:
    """The Table-2 rows as Markdown, mean ± std over seeds (percent for
    F1 and one-error, as the paper)."""
    lines = ["| model | OE (-) | HL (-) | macro-F1 (+) | micro-F1 (+) | p | validation micro-F1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in table.items():
        def cell(key, scale=100.0, digits=1):
            return f"{row[key]['mean'] * scale:.{digits}f} ± {row[key]['std'] * scale:.{digits}f}"  # noqa: B023 (used in this iteration)
        lines.append(f"| {name} | {cell('one_error')} | {cell('hamming_loss', 1.0, 3)} | {cell('macro_f1')} | "
                     f"{cell('micro_f1')} | {cell('threshold', 1.0, 2)} | {cell('val_micro_f1')} |")
    return "\n".join(lines)
