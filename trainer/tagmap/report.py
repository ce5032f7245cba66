"""The evaluation's output as text: the genre options' table of
docs/models/tagmap.md, the fitted thresholds as Python tables to paste
into :mod:`trainer.tagmap.tables`, and the JSON ``--report``. (No figure
is drawn; :mod:`trainer.report` draws the project's figures.)"""

from __future__ import annotations

import json

import numpy as np

from trainer.tagmap.build import TABLES_FILE
from trainer.tagmap.tables import GENRE_THRESHOLDS, MSD, RULE_THRESHOLDS

OPTION_NAMES = {
    "trivial": "(t) \"Rock\" for every clip",
    "rule": "(a0) genre map, rule thresholds (no labels)",
    "map": "(a) genre map, fitted thresholds",
    "map1": "(a1) the same, at most 1 genre",
    "broad": "(a2) the same as the plugin writes `genres` now: broad genres, the best always",
    "head": "(b) GTZAN head (LR on the MSD embedding)",
    "head03": "(b') GTZAN head at threshold 0.3",
    "fusion": "(c) max fusion of (a) and (b)",
    "genre10": "(b*) the shipped genre10 bundle (trained on all of gtzan_mini)",
    "allmusic_head": "(h) head on the AllMusic genres (LR per genre on the MSD embedding)",
    "allmusic_head_gtzan": "(h+) the same, gtzan_mini's training clips added under their AllMusic genres",
    "allmusic_mfcc": "(m) the same on the MFCC statistics",
}


def _cell(value: list[float]) -> str:
    """A [mean, sd] pair as "0.123 ± 0.004", "–" when not measured."""
    return "–" if np.isnan(value[0]) else f"{value[0]:.3f} ± {value[1]:.3f}"


def format_genre_table(summary: dict) -> str:
    """The Markdown table of the genre options (mean ± sd over the rounds)."""
    lines = ["| option | hit@1 (expressible clips) | hit@1 (all clips) | precision | recall | F1 | no genre "
             "| GTZAN acc. |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in OPTION_NAMES.items():
        if key not in summary:
            continue
        s = summary[key]
        lines.append(f"| {name} | {_cell(s['hit'])} ({100 * s['expressible'][0]:.0f}%) | {_cell(s['hit_all'])} | "
                     f"{_cell(s['precision'])} | {_cell(s['recall'])} | {_cell(s['f1'])} | {_cell(s['none'])} | "
                     f"{_cell(s['gtzan'])} |")
    return "\n".join(lines)


def format_thresholds(name: str, table: dict[tuple[str, str], float]) -> str:
    """A threshold table as the Python source of :mod:`trainer.tagmap.tables`."""
    body = "\n".join(f"    ({'MSD' if b == MSD else 'MTT'}, {t!r}): {v}," for (b, t), v in table.items())
    return f"{name}: dict[tuple[str, str], float] = {{\n{body}\n}}"


def stale_thresholds(genre: dict[tuple[str, str], float], rule: dict[tuple[str, str], float]) -> list:
    """The (bundle, tag) whose fitted threshold differs from the shipped
    tables (:data:`GENRE_THRESHOLDS`, :data:`RULE_THRESHOLDS`)."""
    stale = [k for k, v in genre.items() if GENRE_THRESHOLDS.get(k) != v]
    return stale + [k for k, v in rule.items() if RULE_THRESHOLDS.get(k) != v]


def print_evaluation(genre: dict, moods: dict, rules: dict, rule_table: dict, *, log=print) -> None:
    """Every table of the evaluation, then the thresholds as tables and a
    note when they differ from the shipped ones."""
    log("\nDefault genre options (mean ± sd over CV seeds):\n")
    log(format_genre_table(genre["summary"]))
    log("\nMood map (quadrant head cross-validated on mood_4q):", json.dumps(moods))
    log("\nRule maps:", json.dumps({k: v for k, v in rules.items() if k != "thresholds"}, indent=1))
    log("\n" + format_thresholds("GENRE_THRESHOLDS", genre["shipped_thresholds"]))
    log(format_thresholds("RULE_THRESHOLDS", rule_table))
    stale = stale_thresholds(genre["shipped_thresholds"], rule_table)
    if stale:
        log(f"\nnote: {len(stale)} thresholds differ from the tables in {TABLES_FILE} (e.g. {stale[:3]})")


def report_json(genre: dict, moods: dict, rules: dict, *, patches: int) -> dict:
    """The figures as the JSON ``--report`` holds them."""
    return {"genre": {k: v for k, v in genre.items() if k not in ("shipped_thresholds", "rule_thresholds")},
            "genre_thresholds": {f"{b}:{t}": v for (b, t), v in genre["shipped_thresholds"].items()},
            "mood": moods, "rule_maps": rules, "patches": patches}


def print_moods_and_evidence(gate: dict, evidence: dict, *, log=print) -> None:
    """The quadrant decision's figures before and after the gate (mean ±
    sd), the shipped margin and factor, and the labels' evidence."""
    from trainer.tagmap.tables import GATE_MARGIN, NOT_WRITTEN, VETO_FACTOR

    log(f"\nMood and energy maps, before and after the quadrant gate ({gate['protocol']}):")
    before, after = gate["summary"]["before"], gate["summary"]["after"]
    for key in after:
        log(f"  {key:24s} {_cell(before[key]):>17s}  {_cell(after[key]):>17s}")
    shipped = gate["shipped"]
    log(f"chosen on all clips: margin {shipped['margin']}, factor {shipped['factor']} "
        f"(tables: {GATE_MARGIN}, {VETO_FACTOR})")
    log("\nInstrument and voice labels, real-data evidence:")
    for label, ev in evidence.items():
        stale = "" if ev["passes"] != (label in NOT_WRITTEN) else "   <- differs from NOT_WRITTEN"
        log(f"  {label:14s} written {ev['written']:4d}, checkable {ev['checkable']:3d}, right {ev['right']:3d}, "
            f"precision {ev['precision']}, {'written' if ev['passes'] else 'not written'}{stale}")
