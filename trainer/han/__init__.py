"""``python -m trainer han``: review-driven multi-label styles (the han paper).

This package holds the command (:func:`add_arguments`, :func:`run`); its
modules each do one job: :mod:`trainer.han.data` (albums, split, labels,
vectors), :mod:`trainer.han.train` (the HAN rows and the CNN and LSTM
through the shared loop), :mod:`trainer.han.baselines` (A.2's baselines),
:mod:`trainer.han.evaluation` (threshold p, scores, the table) and
:mod:`trainer.han.bundle` (the style bundle, ``--ship``); the figures
are drawn by :mod:`trainer.report`.

Data (``--data``):

- a folder of RMSC album JSON files (:mod:`trainer.datasets.rmsc`): the
  reviews are the album's short comments, ranked by votes;
- a JSONL file, one album per line: ``{"texts": [...], "labels": [...]}``
  (optional ``"votes": [...]`` beside ``texts``);
- the NetEase playlist CSV (:mod:`trainer.datasets.netease`): one text per
  playlist, mapped onto reviews as its title followed by the sentences of
  its description (``Config.review_unit = "sentence"``; docs/models/han.md).

Pipeline (appendix A.1 and A.2):

1. reviews: low-information ones dropped, the 40 most voted kept
   (:func:`tagcore.reviews.select_reviews`), albums with fewer than
   ``--min-reviews`` dropped; tokens by :func:`tagcore.text.tokenize`;
2. one fixed split (``--split-seed``, ``--split`` fractions) into
   training, validation and test; labels kept when at least
   ``--min-label-count`` training albums carry them and at most
   ``--max-label-share`` of them do (a tag every album has carries no
   information); albums left without a kept label are dropped;
3. skip-gram vectors (gensim, ``sg=1``) on the training reviews only; the
   vocabulary (training words seen ``--min-word-count`` times, at most
   ``--vocab-size``) initialises the embedding table with them;
4. per seed: the HAN ablation (HAN, + label graph, + soft training, + soft
   targets at temperature ``--temperature``, the literal regulariser, the
   doubled-BCE control; G's step ``--graph-lr``),
   the CNN and hierarchical LSTM through the shared loop
   (:func:`trainer.loop.fit`, best validation micro-F1 kept), and BR, CC,
   LP, ML-KNN, MLP on album vectors; every model's decision threshold p
   tuned on validation; figures on the test split;
5. the variant with the best mean *validation* micro-F1 is written as a
   bundle (its seed ``--seeds[0]`` model), with its test figures, the
   label table and the label-graph heatmap (G - I, like Figure 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from tagcore import reviews as R
from trainer.datasets import DatasetError
from trainer.han.baselines import BASELINES
from trainer.han.bundle import command_line, english_table, graph_figure, save_style_bundle, ship, shown_names
from trainer.han.data import Prepared, prepare
from trainer.han.evaluation import THRESHOLDS, figures_line, format_table, summarise, summarise_dirs
from trainer.han.train import VARIANTS, VariantRun, fit_baseline, fit_variant


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.loop import add_loop_arguments

    parser.add_argument("--data", help="RMSC album folder, JSONL file, or NetEase playlist CSV")
    parser.add_argument("--name", default="style-netease", help="bundle name")
    parser.add_argument("--version", default="1", help="bundle version")
    parser.add_argument("--out", help="bundle directory (default: user data dir/bundles/NAME)")
    parser.add_argument("--run-dir", help="report folder (default: runs/NAME)")
    parser.add_argument("--seeds", default="0,1,2", help="model seeds (the split stays fixed)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--split", default="0.7,0.15,0.15", help="train,validation,test fractions")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="ablation rows to train (comma-separated)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help="baselines to run ('' for none)")
    parser.add_argument("--min-reviews", type=int, help="drop albums with fewer kept reviews (RMSC: 5, else 1)")
    parser.add_argument("--min-tokens", type=int, default=R.MIN_TOKENS, help="tokens a review needs to be kept")
    parser.add_argument("--max-reviews", type=int, default=40)
    parser.add_argument("--max-words", type=int, default=100)
    parser.add_argument("--min-label-count", type=int, default=10, help="training albums a label needs")
    parser.add_argument("--max-label-share", type=float, default=0.95, help="drop labels on more training albums")
    parser.add_argument("--min-word-count", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=135_000)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--w2v-epochs", type=int, default=20, help="skip-gram passes over the training reviews")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--graph-lr", type=float, default=None,
                        help="Adam step of the label graph G (default: --lr, like every weight)")
    parser.add_argument("--temperature", type=float, default=2.0, help="soft-target temperature of its ablation row")
    parser.add_argument("--identity-weight", type=float, default=1e-3, help="weight of ||G - I||^2")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--knn-k", type=int, default=10)
    parser.add_argument("--summarise", nargs="+", metavar="RUN_DIR",
                        help="only print the table of the runs.jsonl of these run folders (runs split over processes)")
    parser.add_argument("--figure", help="with --summarise and --ship: the heatmap of G - I (Figure 2) of the bundle "
                                         "with a label graph whose variant has the best mean validation micro-F1")
    parser.add_argument("--ship", nargs="+", metavar="BUNDLE",
                        help="with --summarise and --out: copy the bundle (of those given) whose variant has the best "
                             "mean validation micro-F1 in the combined table to --out, the table in its metrics")
    add_loop_arguments(parser)
    parser.set_defaults(batch_size=128, epochs=100, patience=15)


def run(args, *, log=print) -> dict:
    """``--summarise``: the combined table of earlier runs (and ``--ship``);
    else one experiment on ``--data``: the outcome of :func:`finish`."""
    if args.summarise:
        return summarise_runs(args, log=log)
    if not args.data:
        raise DatasetError("--data is required (an RMSC folder, a JSONL file or the NetEase CSV)")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = _names(args.variants, VARIANTS, "variant")
    baselines = _names(args.baselines, BASELINES, "baseline")
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir or Path("runs") / args.name)
    args.run_dir = str(run_dir)
    p = prepare(args, log=log)
    run_dir.mkdir(parents=True, exist_ok=True)
    results = Results(run_dir / "runs.jsonl", log=log)
    outcome: dict = {}
    for done, seed in enumerate(seeds, start=1):
        for variant in variants:
            trained = fit_variant(p, args, variant, seed=seed, log=log)
            results.record(variant, seed, trained.figures)
            results.extremes.setdefault(variant, []).append(trained.extremes)
            if seed == seeds[0]:
                results.kept[variant] = trained
        for name in baselines:
            results.record(name, seed, fit_baseline(p, args, name, seed=seed, log=log))
        # Written after every seed: a run stopped early keeps what it did.
        outcome = finish(p, args, seeds=seeds[:done], results=results, run_dir=run_dir, log=log)
    return outcome


def _names(option: str, known, what: str) -> list[str]:
    """The comma-separated names of ``option``, each checked against ``known``."""
    names = [n.strip() for n in option.split(",") if n.strip()]
    for name in names:
        if name not in known:
            raise DatasetError(f"unknown {what} {name!r}; known: {', '.join(known)}")
    return names


def summarise_runs(args, *, log=print) -> dict:
    """The combined table of the ``runs.jsonl`` of ``--summarise``; with
    ``--ship`` the best bundle copied to ``--out``, with ``--figure`` its
    label graph drawn."""
    table = summarise_dirs(args.summarise, order=[*VARIANTS, *BASELINES])
    log(format_table(table))
    if args.ship:
        if not args.out:
            raise DatasetError("--ship needs --out (where the chosen bundle goes)")
        chosen = ship(args.ship, table, Path(args.out), runs=args.summarise)
        log(f"shipped {chosen} to {args.out}")
    if args.ship and args.figure:
        log(f"label graph: {graph_figure(args.ship, table, Path(args.figure))}")
    return table


@dataclass
class Results:
    """What a run's seeds produced so far: figures per model (also appended
    to ``path``, runs.jsonl), the HAN rows of the first seed (``kept``:
    variant -> :class:`~trainer.han.train.VariantRun`) and Table 4's rows
    per variant (``extremes``)."""

    path: Path
    log: Callable = print
    figures: dict[str, list[dict]] = field(default_factory=dict)
    kept: dict[str, VariantRun] = field(default_factory=dict)
    extremes: dict[str, list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path.unlink(missing_ok=True)

    def record(self, name: str, seed: int, figures: dict) -> None:
        self.figures.setdefault(name, []).append(figures)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"model": name, "seed": seed, **figures}) + "\n")
        self.log(f"  {name} seed {seed}: " + figures_line(figures))


def finish(p: Prepared, args, *, seeds, results: Results, run_dir: Path, log=print) -> dict:
    """Write metrics.json, the report and (when HAN variants ran) the
    bundle of the variant with the best mean validation micro-F1."""
    from tagcore.bundle import user_bundle_dir
    from trainer.report import write_json, write_label_graph_delta, write_report

    table = {name: summarise(runs) for name, runs in results.figures.items()}
    evaluation = _evaluation(p, args, seeds=seeds, table=table, extremes=results.extremes)
    log(format_table(table))
    if not results.kept:
        write_json(run_dir / "metrics.json", evaluation)
        return evaluation
    # The shipped variant: the best mean validation micro-F1 (never test).
    chosen = max(results.kept, key=lambda v: table[v]["val_micro_f1"]["mean"])
    shipped = results.kept[chosen]
    figures = shipped.figures
    bundle_metrics = {
        "variant": chosen, "seed": seeds[0],
        "test": {k: figures[k] for k in ("micro_f1", "macro_f1", "one_error", "hamming_loss")},
        "threshold": figures["threshold"], "best_epoch": shipped.fitted.best_epoch,
        "ablation_mean_std": {name: {k: v for k, v in row.items() if k != "runs"} for name, row in table.items()},
        "protocol": evaluation["protocol"], "table4": results.extremes[chosen][0],
    }
    names, tasks = english_table(p.labels)
    out = Path(args.out) if args.out else user_bundle_dir() / args.name
    save_style_bundle(out, model=shipped.model, name=args.name, version=args.version, labels=p.labels, names=names,
                      tasks=tasks, threshold=figures["threshold"], provenance=_provenance(p, args),
                      metrics=bundle_metrics)
    log(f"bundle ({chosen}, seed {seeds[0]}) written to {out}")
    written = write_report(run_dir, run_config={k: v for k, v in vars(args).items() if k != "func"},
                           metrics={**evaluation, "shipped": bundle_metrics}, history=shipped.fitted.history)
    with_graph = [v for v in results.kept if results.kept[v].model.config.label_graph]
    if with_graph:
        drawn = max(with_graph, key=lambda v: table[v]["val_micro_f1"]["mean"])
        shown = shown_names(p.labels, names)
        figure = write_label_graph_delta(run_dir / "label_graph.png", results.kept[drawn].model.graph.detach().numpy(),
                                         [shown[l] for l in p.labels],
                                         title=f"Learned label graph G - I ({drawn}, seed {seeds[0]})")
    else:
        figure = "skipped: no variant with a label graph"
    log(f"report in {run_dir} ({figure})")
    return {"metrics": evaluation, "bundle": str(out), "written": written, "label_graph": figure}


def _evaluation(p: Prepared, args, *, seeds, table: dict, extremes: dict) -> dict:
    """metrics.json: the protocol in words, the labels, the table, Table 4
    and what the data preparation dropped."""
    protocol = (f"{p.layout}: one fixed split (seed {args.split_seed}, {args.split} train/validation/test: "
                f"{len(p.train)}/{len(p.val)}/{len(p.test)} albums), {len(p.labels)} labels on >= "
                f"{args.min_label_count} training albums and <= {args.max_label_share:.0%} of them; "
                f"seeds {list(seeds)}; threshold p tuned on validation micro-F1 over "
                f"{THRESHOLDS[0]}..{THRESHOLDS[-1]}; figures on the test split")
    return {"protocol": protocol, "labels": p.labels, "table": table, "table4": extremes, "dropped": p.dropped,
            "vocabulary": len(p.vocabulary), "vector_coverage": p.coverage}


def _provenance(p: Prepared, args) -> dict:
    """The bundle's provenance: data, command, date, versions, the paper."""
    return {
        "data": f"{Path(args.data).name} ({p.layout})", "command": command_line(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), "python": platform.python_version(),
        "torch": torch.__version__, "paper": "Zhao et al., review-driven multi-label music style "
                                             "classification (NAACL 2019)",
        "review_mapping": ("NetEase: one text per playlist; its reviews are the title and the sentences of the "
                           "description") if p.layout == "netease" else "reviews as published",
    }
