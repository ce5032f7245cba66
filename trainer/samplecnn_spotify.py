"""The Spotify playlist experiment of the samplecnn paper's propagation, with the
waveform front end swapped for a small MLP over 12 audio features
(``python -m trainer samplecnn --spotify spotify_songs.csv.gz``).

Data (:mod:`trainer.datasets.spotify_playlists`): 28,356 tracks in 471
playlists; a track's tags are the 6 genres and 24 subgenres of the
playlists holding it (30 tags); its input the 12 Spotify audio features
(danceability, energy, key, loudness, mode, speechiness, acousticness,
instrumentalness, liveness, valence, tempo, duration), standardised on the
training songs. Playlist order is the file's row order.

Protocol, per seed: songs split 70/10/20 by whole artists into training,
validation and test songs (:func:`trainer.splits.group_split`); playlists keep their training songs only (the
others' tags are unknown at training time). ``--keep-tags q`` < 1 hides
each (song, tag) link of the training and validation songs with probability
1 - q (the same links for every r), imitating the sparse social tags of the
paper's MSD setting; test songs keep all their tags. For every r of
``--r-grid`` (r = 0: the baseline, plain BCE) and each weighting (``eq4``:
P(s'|s) as the paper; ``none``: 1) the same MLP (two hidden layers, ReLU)
is trained from the same initialisation with the loop of
:func:`trainer.propagation_fit.fit` (SGD 0.01, momentum 0.9, lr / 5 on a rise
of the validation loss, patience 12) and scored on the test songs: the
section IV-C figures, per-tag retrieval MAP/AUC, and the relative
improvement over the baseline by tag-popularity bucket (Figure 5). A
control, ``shuffled``, walks the same playlists (lengths and memberships)
filled with a random permutation of the training songs, weight 1: as many
supportive terms, none from a coherent playlist; it tells propagation's
gain from what any extra soft targets would do. A second control,
``doubled``, counts the song's own binary cross-entropy twice (eq. 3 when
every s' has exactly the tags of s): it tells propagation's gain from the
larger loss (a larger step) alone.

Each run also records why it stopped (``stopped``: ``rule`` or ``cap``,
:func:`stop_reason`) and its figures on the validation songs against the
tags training sees (``val_*``). The summary chooses r and the weighting on
those (:func:`choose_on_validation`, per seed and overall; never on the
test songs) and reports the chosen setting's test change against the
baseline and the doubled control, paired by seed (:func:`selected_gains`).

Outputs under ``--report-dir`` (default ``runs/spotify-propagation``):
``results.json`` (every run), ``summary.md`` (tables, mean ± std over
seeds, stop counts, the validation choice), ``r_sweep.png`` (Figures 3
and 4) and ``popularity.png`` (Figure 5, at the setting chosen on the
validation songs).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from trainer import propagation as prop
from trainer import splits
from trainer.datasets import DatasetError, LoadReport, spotify_playlists

FEATURES = ("danceability", "energy", "musical_key", "loudness", "mode", "speechiness", "acousticness",
            "instrumentalness", "liveness", "valence", "tempo", "duration_ms")


class MLP(nn.Module):
    """12 features -> hidden -> hidden -> tags (logits)."""

    def __init__(self, n_inputs: int, hidden: int, n_tags: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, n_tags))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load(path, *, log=print):
    """(track ids, features (n, 12) float64, tag names, tags (n, 30) bool,
    artists, playlists as lists of row indices, playlist names)."""
    report = LoadReport()
    playlists, tracks = spotify_playlists.load(path, report=report)
    for message in report.skipped[:10]:
        log(f"skipped: {message}")
    ids = list(tracks)
    row = {t: i for i, t in enumerate(ids)}
    genres = sorted({g for p in playlists for g in p.genres})
    subgenres = sorted({g for p in playlists for g in p.subgenres})
    names = [f"genre:{g}" for g in genres] + [f"subgenre:{g}" for g in subgenres]
    column = {n: j for j, n in enumerate(names)}
    y = np.zeros((len(ids), len(names)), bool)
    for p in playlists:
        cols = [column[f"genre:{g}"] for g in p.genres] + [column[f"subgenre:{g}"] for g in p.subgenres]
        for t in p.tracks:
            y[row[t], cols] = True
    x = np.array([[float(getattr(tracks[t], f)) for f in FEATURES] for t in ids])
    artists = [tracks[t].artist or t for t in ids]
    return ids, x, names, y, artists, [[row[t] for t in p.tracks] for p in playlists], [p.name for p in playlists]


def doubled_loss(logits: torch.Tensor, targets: torch.Tensor, *rest) -> torch.Tensor:
    """The DOUBLED control: BCE on the song's own tags, twice (what eq. 3
    gives when every s' carries exactly the tags of s)."""
    from tagcore.families import samplecnn

    return 2 * samplecnn.loss(logits, targets)


def run_one(x, y_train_view, y_test, train, val, test, index, *, r, weighting, hidden, seed, args, log,
            loss=None):
    """Train one MLP; returns the section IV-C figures on the test songs."""
    from tagcore.families import samplecnn
    from trainer.propagation_fit import fit

    torch.manual_seed(seed)
    model = MLP(x.shape[1], hidden, y_test.shape[1])
    xt = torch.from_numpy(x.astype(np.float32))
    yv = torch.from_numpy(y_train_view[val].astype(np.float32))

    def inputs(ids, rng):
        return xt[ids]

    @torch.inference_mode()
    def val_loss(m):
        m.eval()
        return float(nn.functional.binary_cross_entropy_with_logits(m(xt[val]), yv))

    result = fit(model, train=train, tags=y_train_view, inputs=inputs, val_loss=val_loss, index=index, r=r,
                 weighting=weighting, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                 lr=args.lr, momentum=args.momentum, decay=args.decay, seed=seed, loss=loss or samplecnn.loss,
                 log=lambda *_: None)
    with torch.inference_mode():
        model.eval()
        scores = torch.sigmoid(model(xt[test])).numpy()
        val_scores = torch.sigmoid(model(xt[val])).numpy()
    figures = prop.evaluate(y_test[test], scores)
    # The validation songs' figures against the tags training sees (kept
    # share): what a setting may be chosen on, never the test songs.
    seen = prop.evaluate(y_train_view[val], val_scores)
    figures.update({f"val_{m}": seen[m] for m in METRICS})
    figures["best_epoch"] = result.best_epoch
    figures["epochs"] = len(result.history)
    figures["stopped"] = stop_reason(result)
    return figures


def stop_reason(result) -> str:
    """Why a fit ended: ``"rule"`` when the patience rule stopped it (a
    :class:`trainer.loop.FitResult` with ``stopped_early``; also when the
    rule fires on the last allowed epoch), ``"cap"`` when it ran out of
    epochs first (it may still have been improving)."""
    return "rule" if result.stopped_early else "cap"


def _write_summary(results: dict, report_dir: Path, *, bucket: int) -> dict:
    """summary.md and the figures of ``results`` in ``report_dir``; the
    summary is printed. Returns the command's answer (the table, the folder)."""
    summary = summarise(results, bucket=bucket)
    (report_dir / "summary.md").write_text(summary["markdown"], encoding="utf-8")
    draw_figures(results, summary, report_dir, bucket=bucket)
    print(summary["markdown"])
    return {"metrics": summary["table"], "report": str(report_dir)}


def _summary_only(args) -> dict:
    """``--summary-only``: summarise the runs already in --report-dir."""
    report_dir = Path(args.report_dir or "runs/spotify-propagation")
    try:
        results = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{report_dir / 'results.json'}: cannot read ({error})") from None
    return _write_summary(results, report_dir, bucket=args.bucket)


def _sweep_options(args) -> tuple[list[int], list[float], list[float], list[float]]:
    """(seeds, r grid with 0 added and sorted, keep fractions, r values of
    the shuffled control: ``--control-r``, else the grid's) of the command
    line; DatasetError on a value that is not a number in range."""
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    try:
        grid = sorted({float(v) for v in args.r_grid.split(",") if v.strip()} | {0.0})
        keeps = [float(v) for v in args.keep_tags.split(",") if v.strip()]
        control = sorted({float(v) for v in (getattr(args, "control_r", "") or "").split(",") if v.strip()})
    except ValueError:
        raise DatasetError("--r-grid, --keep-tags and --control-r: numbers separated by commas") from None
    if any(not 0 <= r <= 1 for r in grid) or any(not 0 < q <= 1 for q in keeps):
        raise DatasetError("--r-grid values must be in [0, 1], --keep-tags in (0, 1]")
    if any(r not in grid or r == 0 for r in control):
        raise DatasetError(f"--control-r values must be r > 0 of --r-grid ({grid})")
    return seeds, grid, keeps, control or [r for r in grid if r > 0]


def _previous_runs(previous: Path, *, data: str, names: list[str], hidden: int, settings: dict, seeds, keeps, grid,
                   log) -> list[dict]:
    """The runs of an earlier call with the same data, tags and settings in
    ``previous`` (results.json) that this sweep would run again: an
    interrupted sweep resumes. [] when there are none."""
    if not previous.is_file():
        return []
    old = json.loads(previous.read_text(encoding="utf-8"))
    if (old.get("data"), old.get("tags"), old.get("hidden")) != (data, names, hidden) or old.get("settings") != settings:
        return []
    runs = [run for run in old["runs"] if run["seed"] in seeds and run["keep"] in keeps and run["r"] in grid]
    log(f"{len(runs)} runs of {previous} kept")
    return runs


@dataclass
class _Setting:
    """One (seed, keep) setting: the 70/10/20 split by artists, the inputs
    standardised on its training songs, the tags the training sees
    (``view``), the playlist index of the training songs and its shuffled
    control, each tag's training popularity and the percentage of training
    songs in a playlist."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    x: np.ndarray
    view: np.ndarray
    index: object
    shuffled_index: object
    popularity: np.ndarray
    covered: int


def _prepare_setting(x_raw: np.ndarray, y: np.ndarray, artists, lists, list_names, *, seed: int, keep: float) -> _Setting:
    """The setting of ``seed`` and ``keep`` (see the module's protocol)."""
    n = len(y)
    # 70 / 10 / 20 % of the songs, by whole artists
    train, val, test = splits.group_split(groups=artists, shares=(0.7, 0.1, 0.2), seed=seed)
    mean, std = x_raw[train].mean(0), x_raw[train].std(0) + 1e-9
    allowed = set(train.tolist())
    index = prop.build_index([[t for t in p if t in allowed] for p in lists], keys=list(range(n)), names=list_names)
    rng = np.random.default_rng([seed, int(keep * 1000)])
    view = y.copy()
    hide = rng.random(y.shape) >= keep
    hide[test] = False
    view &= ~hide
    # The control: the same playlists (lengths, memberships) filled
    # with a random permutation of the training songs, walked with
    # weight 1: as many supportive terms, none from a coherent list.
    shuffled = np.arange(n)
    shuffled[train] = train[np.random.default_rng([seed, 99]).permutation(len(train))]
    shuffled_index = prop.build_index([[int(shuffled[t]) for t in p if t in allowed] for p in lists], keys=list(range(n)))
    return _Setting(train=train, val=val, test=test, x=(x_raw - mean) / std, view=view, index=index,
                    shuffled_index=shuffled_index, popularity=view[train].sum(0),
                    covered=int(index.in_playlists[train].mean() * 100))


def _trainings(grid: Sequence[float], control: Sequence[float] | None = None) -> list[tuple[str, float, str]]:
    """(weighting, r, run name) of every model of a setting: the baseline,
    the doubled control, then each weighting at every r > 0 of ``grid`` and
    the shuffled control at every r > 0 of ``control`` (None: of ``grid``)."""
    control = grid if control is None else control
    plan = [("none", 0.0), (DOUBLED, 0.0)] + [(w, r) for w in prop.WEIGHTINGS for r in grid if r > 0]
    plan += [(SHUFFLED, r) for r in grid if r > 0 and r in control]
    return [(w, r, w if w == DOUBLED else "baseline" if r == 0 else w) for w, r in plan]


def _train_run(setting: _Setting, y: np.ndarray, *, weighting: str, r: float, args, seed: int, log) -> dict:
    """Train and score one model of ``setting``; returns its section IV-C figures."""
    walk_index = None if r == 0 else setting.shuffled_index if weighting == SHUFFLED else setting.index
    return run_one(setting.x, setting.view, y, setting.train, setting.val, setting.test, walk_index, r=r,
                   weighting="none" if weighting in (SHUFFLED, DOUBLED) else weighting,
                   hidden=args.hidden, seed=seed, args=args, log=log,
                   loss=doubled_loss if weighting == DOUBLED else None)


def run(args, *, log=print, command: str = "") -> dict:
    """The command: every (keep, seed, weighting, r) run of the sweep, with
    results.json rewritten after each, then the summary and the figures;
    ``command``: the command line recorded in results.json."""
    if getattr(args, "summary_only", False):
        return _summary_only(args)
    torch.set_num_threads(max(1, args.threads))
    seeds, grid, keeps, control = _sweep_options(args)
    ids, x_raw, names, y, artists, lists, list_names = load(args.spotify, log=log)
    log(f"{len(ids)} tracks, {len(lists)} playlists, {len(names)} tags, {len(set(artists))} artists; "
        f"seeds {seeds}, r {grid}, keep {keeps}")
    report_dir = Path(args.report_dir or "runs/spotify-propagation")
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    settings = {k: getattr(args, k) for k in ("epochs", "patience", "batch_size", "lr", "momentum", "decay")}
    from trainer.report import write_json

    runs = _previous_runs(report_dir / "results.json", data=Path(args.spotify).name, names=names, hidden=args.hidden,
                          settings=settings, seeds=seeds, keeps=keeps, grid=grid, log=log)
    done = {(run["seed"], run["keep"], run["r"], run["weighting"]) for run in runs}

    def header() -> dict:
        return {"command": command, "data": Path(args.spotify).name, "tags": names,
                "seeds": seeds, "r_grid": grid, "control_r": control, "keep_tags": keeps, "hidden": args.hidden,
                "settings": settings,
                "seconds": round(time.monotonic() - started, 1), "runs": runs}

    # keep outermost: every seed of the first setting is done before the next
    # setting starts (results.json is rewritten after every run)
    for keep in keeps:
        for seed in seeds:
            setting = _prepare_setting(x_raw, y, artists, lists, list_names, seed=seed, keep=keep)
            for weighting, r, name in _trainings(grid, control):
                if (seed, keep, r, name) in done:
                    continue
                t0 = time.monotonic()
                figures = _train_run(setting, y, weighting=weighting, r=r, args=args, seed=seed, log=log)
                runs.append({"seed": seed, "keep": keep, "r": r, "weighting": name,
                             "annotation_map": figures["annotation_map"], "retrieval_map": figures["retrieval_map"],
                             "retrieval_auc": figures["retrieval_auc"],
                             "per_tag_map": figures["per_tag_map"].tolist(),
                             "per_tag_auc": figures["per_tag_auc"].tolist(),
                             **{f"val_{m}": figures[f"val_{m}"] for m in METRICS},
                             "popularity": setting.popularity.tolist(), "best_epoch": figures["best_epoch"],
                             "epochs": figures["epochs"], "stopped": figures["stopped"],
                             "seconds": round(time.monotonic() - t0, 1),
                             "train_songs_in_playlists_pct": setting.covered})
                write_json(report_dir / "results.json", header())
                log(f"seed {seed} keep {keep} r {r} {weighting}: annotation MAP {figures['annotation_map']:.4f} "
                    f"retrieval MAP {figures['retrieval_map']:.4f} AUC {figures['retrieval_auc']:.4f} "
                    f"(epoch {figures['best_epoch']}/{figures['epochs']}, stopped by {figures['stopped']}, "
                    f"{time.monotonic() - t0:.0f} s)")
    results = header()
    write_json(report_dir / "results.json", results)
    return _write_summary(results, report_dir, bucket=args.bucket)


METRICS = ("annotation_map", "retrieval_map", "retrieval_auc")
#: The control run's name: playlists filled with shuffled training songs, weight 1.
SHUFFLED = "shuffled"
#: The second control: the song's own BCE counted twice (r = 0), i.e. the
#: supportive term when a neighbour's tags are exactly the song's own.
DOUBLED = "doubled"
LEGEND = {"eq4": "weight P(s'|s) (eq. 4)", "none": "weight 1", SHUFFLED: "shuffled playlists, weight 1 (control)"}


def summarise(results: dict, *, bucket: int) -> dict:
    """Mean ± std over seeds per (keep, r, weighting); the paired relative
    change against the same seed's baseline; per-bucket improvements."""
    runs = results["runs"]
    table = {}
    lines = []
    names = results["tags"]
    for keep in results["keep_tags"]:
        lines += [f"\n### Training tags kept: {keep:g}\n",
                  "| r | weighting | annotation MAP | retrieval MAP | retrieval AUC | Δ ann. MAP | Δ ret. MAP | Δ AUC | "
                  "Δ ret. MAP, subgenres | seeds better (ret. MAP) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        base = {run["seed"]: run for run in runs if run["keep"] == keep and run["weighting"] == "baseline"}
        sub = np.array([n.startswith("subgenre:") for n in names])
        for r in results["r_grid"]:
            for weighting in (("baseline", DOUBLED) if r == 0 else (*prop.WEIGHTINGS, SHUFFLED)):
                chosen = [run for run in runs if run["keep"] == keep and run["r"] == r and run["weighting"] == weighting
                          and run["seed"] in base]
                if not chosen:
                    continue
                row = {m: (float(np.mean([c[m] for c in chosen])), float(np.std([c[m] for c in chosen], ddof=1))
                           if len(chosen) > 1 else 0.0) for m in METRICS}
                rel = {m: float(np.mean([c[m] / base[c["seed"]][m] - 1 for c in chosen])) for m in METRICS}
                rel_sub = float(np.mean([np.nanmean(np.array(c["per_tag_map"])[sub])
                                         / np.nanmean(np.array(base[c["seed"]]["per_tag_map"])[sub]) - 1
                                         for c in chosen]))
                better = sum(c["retrieval_map"] > base[c["seed"]]["retrieval_map"] for c in chosen)
                table[f"keep={keep:g} r={r:g} {weighting}"] = {"mean_std": row, "relative": rel,
                                                                "relative_subgenre_map": rel_sub, "better": better,
                                                                "seeds": len(chosen)}
                lines.append(f"| {r:g} | {weighting} | " + " | ".join(f"{row[m][0]:.4f} ± {row[m][1]:.4f}" for m in METRICS)
                             + " | " + " | ".join(f"{100 * rel[m]:+.1f}%" for m in METRICS)
                             + f" | {100 * rel_sub:+.1f}% | {better}/{len(chosen)} |")
    # Against the doubled control: what propagation adds beyond a larger loss.
    for keep in results["keep_tags"]:
        doubled = {run["seed"]: run for run in runs if run["keep"] == keep and run["weighting"] == DOUBLED}
        if not doubled:
            continue
        sub = np.array([n.startswith("subgenre:") for n in names])
        lines += [f"\n### Against the doubled control (training tags kept {keep:g}; paired by seed)\n",
                  "| r | weighting | Δ ret. MAP | Δ ret. MAP, subgenres | Δ AUC | seeds better (ret. MAP) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in [r for r in results["r_grid"] if r > 0]:
            for weighting in (*prop.WEIGHTINGS, SHUFFLED):
                chosen = [run for run in runs if run["keep"] == keep and run["r"] == r and run["weighting"] == weighting
                          and run["seed"] in doubled]
                if not chosen:
                    continue
                rel = np.mean([c["retrieval_map"] / doubled[c["seed"]]["retrieval_map"] - 1 for c in chosen])
                auc = np.mean([c["retrieval_auc"] / doubled[c["seed"]]["retrieval_auc"] - 1 for c in chosen])
                rel_sub = np.mean([np.nanmean(np.array(c["per_tag_map"])[sub])
                                   / np.nanmean(np.array(doubled[c["seed"]]["per_tag_map"])[sub]) - 1 for c in chosen])
                better = sum(c["retrieval_map"] > doubled[c["seed"]]["retrieval_map"] for c in chosen)
                lines.append(f"| {r:g} | {weighting} | {100 * rel:+.1f}% | {100 * rel_sub:+.1f}% | {100 * auc:+.1f}% | "
                             f"{better}/{len(chosen)} |")
    # Figure 5 as a table: per popularity bucket, the relative change of
    # retrieval MAP and AUC against the same seed's baseline (mean over
    # seeds), and the rank correlation of per-tag change with popularity.
    for keep in results["keep_tags"]:
        lines += [f"\n### Relative change by tag popularity (training tags kept {keep:g}; buckets of {bucket} tags, "
                  "most popular first; mean over seeds)\n",
                  "| r | weighting | metric | " + " | ".join(f"ranks {b + 1}-{b + bucket}" for b in
                                                          range(0, len(names), bucket)) + " | Spearman(popularity, change) |",
                  "| --- | --- | --- |" + " --- |" * (len(range(0, len(names), bucket)) + 1)]
        for r in [r for r in results["r_grid"] if r > 0]:
            for weighting in (*prop.WEIGHTINGS, SHUFFLED):
                starts, curves = bucket_curves(results, keep=keep, r=r, weighting=weighting, bucket=bucket)
                for metric in ("map", "auc"):
                    if not curves[metric].size:
                        continue
                    rho = tag_rank_correlation(results, keep=keep, r=r, weighting=weighting, metric=metric)
                    lines.append(f"| {r:g} | {weighting} | {metric.upper()} | "
                                 + " | ".join(f"{100 * v:+.1f}%" for v in np.nanmean(curves[metric], axis=0))
                                 + f" | {rho:+.2f} |")
    selection, answer = _selection_lines(results)
    return {"table": table, "selection": answer, "markdown": "\n".join(lines + selection) + "\n"}


#: The validation figure a setting is chosen on (the validation songs'
#: retrieval MAP against the tags training sees).
SELECT_ON = "val_retrieval_map"


def choose_on_validation(runs: list[dict], *, keep: float, seed: int | None = None,
                         metric: str = SELECT_ON) -> tuple[float, str] | None:
    """(r, weighting) of the propagation setting (eq4 or none, r > 0) with
    the highest validation figure ``metric``: of seed ``seed``'s runs, or
    (``seed`` None) the highest mean over seeds among settings every seed
    ran. Test figures are never read. Ties go to the smaller r, then eq4.
    None when there is no candidate."""
    values: dict[tuple[float, str], dict[int, float]] = {}
    for run in runs:
        if run["keep"] == keep and run["weighting"] in prop.WEIGHTINGS and run["r"] > 0 and metric in run \
                and (seed is None or run["seed"] == seed):
            values.setdefault((run["r"], run["weighting"]), {})[run["seed"]] = run[metric]
    seeds = set().union(*values.values()) if values else set()
    complete = {k: float(np.mean(list(v.values()))) for k, v in values.items() if set(v) == seeds}
    if not complete:
        return None
    return max(sorted(complete, key=lambda k: (k[0], prop.WEIGHTINGS.index(k[1]))), key=lambda k: complete[k])


def selected_gains(runs: list[dict], *, keep: float, per_seed: bool = True, metric: str = SELECT_ON) -> dict:
    """The test gain of the validation-chosen setting, paired by seed.

    Per seed, the setting of :func:`choose_on_validation` (its own seed's
    runs when ``per_seed``, else one setting for all seeds); its test
    figures against the same seed's baseline and doubled control, as
    relative changes (0.02 = +2%). Returns {"choices": {seed: [r,
    weighting]}, "rows": per seed {seed, r, weighting, vs: {reference:
    {metric: change}}}, "mean": {reference: {metric: mean change}},
    "better": {reference: seeds whose test retrieval MAP is higher},
    "seeds": n}; references "baseline" and "doubled"."""
    at = {(run["seed"], run["r"], run["weighting"]): run for run in runs if run["keep"] == keep}
    seeds = sorted({seed for seed, _, w in at if w == "baseline"})
    overall = None if per_seed else choose_on_validation(runs, keep=keep, metric=metric)
    rows = []
    for seed in seeds:
        choice = choose_on_validation(runs, keep=keep, seed=seed, metric=metric) if per_seed else overall
        refs = {"baseline": at.get((seed, 0.0, "baseline")), DOUBLED: at.get((seed, 0.0, DOUBLED))}
        mine = at.get((seed, *choice)) if choice else None
        if mine is None or None in refs.values():
            continue
        rows.append({"seed": seed, "r": choice[0], "weighting": choice[1],
                     "vs": {name: {m: mine[m] / ref[m] - 1 for m in METRICS} for name, ref in refs.items()}})
    mean = {name: {m: float(np.mean([row["vs"][name][m] for row in rows])) if rows else float("nan")
                   for m in METRICS} for name in ("baseline", DOUBLED)}
    better = {name: sum(row["vs"][name]["retrieval_map"] > 0 for row in rows) for name in ("baseline", DOUBLED)}
    return {"choices": {row["seed"]: [row["r"], row["weighting"]] for row in rows}, "rows": rows, "mean": mean,
            "better": better, "seeds": len(rows)}


def stop_counts(runs: list[dict]) -> dict:
    """Per (keep, run name): how many runs stopped on the patience rule and
    how many at the epoch cap, and the most epochs any ran. Runs without a
    recorded reason count as "unknown"."""
    out: dict[str, dict] = {}
    for run in runs:
        row = out.setdefault(f"keep={run['keep']:g} {run['weighting']}", {"rule": 0, "cap": 0, "unknown": 0,
                                                                          "max_epochs": 0})
        row[run.get("stopped", "unknown")] += 1
        row["max_epochs"] = max(row["max_epochs"], int(run.get("epochs", 0)))
    return out


def _selection_lines(results: dict) -> tuple[list[str], dict]:
    """summary.md's sections on stopping and on the validation-chosen
    setting; also their figures for the command's answer."""
    runs = results["runs"]
    counts = stop_counts(runs)
    cap = results.get("settings", {}).get("epochs")
    lines = [f"\n### How the runs stopped (cap {cap} epochs, patience {results.get('settings', {}).get('patience')})\n",
             "| setting | stopped by the rule | at the cap | unknown | most epochs |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {c['rule']} | {c['cap']} | {c['unknown']} | {c['max_epochs']} |" for name, c in counts.items()]
    answer = {"stops": counts}
    for per_seed in (True, False):
        label = "per seed" if per_seed else "overall (mean over seeds)"
        lines += [f"\n### Chosen on the validation songs ({SELECT_ON}), {label}: test change, paired by seed\n",
                  "| tags kept | chosen (seed: r weighting) | vs baseline: ann. MAP | ret. MAP | AUC | seeds better | "
                  "vs doubled: ann. MAP | ret. MAP | AUC | seeds better |", "| --- |" + " --- |" * 9]
        for keep in results["keep_tags"]:
            gains = selected_gains(runs, keep=keep, per_seed=per_seed)
            answer[f"keep={keep:g} {'per_seed' if per_seed else 'overall'}"] = gains
            chosen = ", ".join(f"{seed}: {r:g} {w}" for seed, (r, w) in gains["choices"].items())
            cells = [" | ".join(f"{100 * gains['mean'][name][m]:+.1f}%" for m in METRICS)
                     + f" | {gains['better'][name]}/{gains['seeds']}" for name in ("baseline", DOUBLED)]
            lines.append(f"| {keep:g} | {chosen} | " + " | ".join(cells) + " |")
    return lines, answer


def tag_rank_correlation(results: dict, *, keep: float, r: float, weighting: str, metric: str) -> float:
    """Spearman correlation, over tags, between training popularity and the
    relative change of the per-tag retrieval figure (means over seeds);
    negative: rarer tags gain more."""
    runs = results["runs"]
    changes, popularity = [], []
    for seed in results["seeds"]:
        base = [x for x in runs if x["seed"] == seed and x["keep"] == keep and x["weighting"] == "baseline"]
        mine = [x for x in runs if x["seed"] == seed and x["keep"] == keep and x["r"] == r and x["weighting"] == weighting]
        if base and mine:
            b, m = np.array(base[0][f"per_tag_{metric}"], float), np.array(mine[0][f"per_tag_{metric}"], float)
            changes.append(m / b - 1)
            popularity.append(np.array(base[0]["popularity"], float))
    if not changes:
        return float("nan")
    change, pop = np.nanmean(changes, axis=0), np.mean(popularity, axis=0)
    ok = ~np.isnan(change)
    ranks = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)  # noqa: E731
    return float(np.corrcoef(ranks(pop[ok]), ranks(change[ok]))[0, 1])


def bucket_curves(results: dict, *, keep: float, r: float, weighting: str, bucket: int):
    """Per seed, Figure 5's relative improvement of retrieval MAP and AUC
    per popularity bucket (training-song counts of that seed's view)."""
    runs = results["runs"]
    out = {"map": [], "auc": []}
    starts = None
    for seed in results["seeds"]:
        base = [x for x in runs if x["seed"] == seed and x["keep"] == keep and x["weighting"] == "baseline"]
        mine = [x for x in runs if x["seed"] == seed and x["keep"] == keep and x["r"] == r and x["weighting"] == weighting]
        if not base or not mine:
            continue
        for metric in ("map", "auc"):
            starts, gains = prop.bucket_improvement(np.array(base[0][f"per_tag_{metric}"], float),
                                                    np.array(mine[0][f"per_tag_{metric}"], float),
                                                    np.array(base[0]["popularity"]), bucket=bucket)
            out[metric].append(gains)
    return starts, {k: np.array(v) for k, v in out.items()}


def draw_figures(results: dict, summary: dict, report_dir: Path, *, bucket: int) -> dict[str, str]:
    """r_sweep.png (Figures 3 and 4) and popularity.png (Figure 5), drawn by
    :mod:`trainer.report`; a figure that cannot be drawn is reported, never
    raised. Returns figure name -> its path or why there is none."""
    from trainer.report import popularity_gain_figure, r_sweep_figure, write_figure

    title = f"Spotify playlists, MLP on 12 features: mean ± std over seeds {results['seeds']} (r = 0: baseline)"
    xlabel = f"tag popularity rank (buckets of {bucket} tags)"

    def sweep():
        return r_sweep_figure(r_sweep_panels(results), title=title)

    def popularity():
        return popularity_gain_figure(popularity_panels(results, summary, bucket=bucket), xlabel=xlabel)

    return {"r_sweep": write_figure(report_dir / "r_sweep.png", sweep, name="r_sweep"),
            "popularity": write_figure(report_dir / "popularity.png", popularity, name="popularity")}


#: The r-sweep lines: weighting -> line format ("o-": dots and a solid line).
SWEEP_STYLES = {"eq4": "o-", "none": "s--", SHUFFLED: "x:"}


def r_sweep_panels(results: dict) -> list[list[dict]]:
    """The panels of :func:`trainer.report.r_sweep_figure`: a row per kept
    tag share, a panel per metric of :data:`METRICS`, a line per weighting
    (r = 0 is the baseline), the doubled-loss control as a level line."""
    runs = results["runs"]
    rows = []
    for keep in results["keep_tags"]:
        row = []
        for metric in METRICS:
            lines = [_sweep_line(runs, results["r_grid"], keep=keep, metric=metric, weighting=weighting)
                     for weighting in SWEEP_STYLES]
            doubled = [x[metric] for x in runs if x["keep"] == keep and x["weighting"] == DOUBLED]
            control = {"label": "doubled own BCE, r = 0 (control)", "value": float(np.mean(doubled))} if doubled else None
            row.append({"title": f"{metric.replace('_', ' ')} (tags kept {keep:g})", "lines": lines, "control": control})
        rows.append(row)
    return rows


def _sweep_line(runs: list[dict], r_grid, *, keep: float, metric: str, weighting: str) -> dict:
    """One weighting's line: mean and std over seeds of ``metric`` at each r
    of ``r_grid`` that has runs."""
    xs, means, stds = [], [], []
    for r in r_grid:
        w = "baseline" if r == 0 else weighting
        vals = [x[metric] for x in runs if x["keep"] == keep and x["r"] == r and x["weighting"] == w]
        if vals:
            xs.append(r)
            means.append(float(np.mean(vals)))
            stds.append(float(np.std(vals)))
    return {"label": LEGEND[weighting], "style": SWEEP_STYLES[weighting], "r": xs, "mean": means, "std": stds}


def popularity_panels(results: dict, summary: dict, *, bucket: int) -> list[list[dict]]:
    """The panels of :func:`trainer.report.popularity_gain_figure`: a row per
    kept tag share, at the setting chosen on the validation songs over all
    seeds (:func:`choose_on_validation`; runs without validation figures:
    the eq4 r with the best mean test retrieval MAP, as before); a panel per
    retrieval metric (MAP, AUC), mean ± std over seeds in percent."""
    rows = []
    for keep in results["keep_tags"]:
        choice = choose_on_validation(results["runs"], keep=keep)
        if choice is None:
            choice = (max((r for r in results["r_grid"] if r > 0),
                          key=lambda r: summary["table"].get(f"keep={keep:g} r={r:g} eq4", {}).get("mean_std", {})
                          .get("retrieval_map", (0,))[0]), "eq4")
        r, weighting = choice
        starts, curves = bucket_curves(results, keep=keep, r=r, weighting=weighting, bucket=bucket)
        row = []
        for metric in ("map", "auc"):
            panel: dict = {"title": f"retrieval {metric.upper()}, r = {r:g} ({weighting}), tags kept {keep:g}"}
            if curves[metric].size:
                panel.update(starts=starts, labels=[f"{s}-{s + bucket - 1}" for s in starts],
                             gain=100 * np.nanmean(curves[metric], axis=0), std=100 * np.nanstd(curves[metric], axis=0))
            row.append(panel)
        rows.append(row)
    return rows
