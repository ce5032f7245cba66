"""``python -m trainer tagmap``: the shipped tag maps, from their tables.

A tag map (family :mod:`tagcore.families.tagmap`) turns other bundles'
label scores into a vocabulary of the product, in the same analysis pass:
musicnn's Last.fm and MagnaTagATune tags into beets' genre names, mood
words, instruments, voices and energy words. The maps are data: which tag
feeds which label (the tables), above which probability it counts (the
thresholds), and how sources rank (biases and ceilings). This package
holds the tables, writes the bundles from them, and evaluates them::

    python -m trainer tagmap --out tagcore/bundles       # write the five bundles
    python -m trainer tagmap --evaluate --data ../shared/datasets

Where things live:

- :mod:`~trainer.tagmap.tables`: the maps, the tags left out, the shipped
  thresholds and decisions, the tables that count genres and moods;
- :mod:`~trainer.tagmap.figures`: the evaluation's figures the bundles carry;
- :mod:`~trainer.tagmap.genres`: lastgenre's names and what a genre name
  counts for (AllMusic genre, GTZAN genre, subgenre);
- :mod:`~trainer.tagmap.build`: one spec per bundle, and the bundle writer;
- :mod:`~trainer.tagmap.data`: the evaluation's clips and their cached
  musicnn outputs;
- :mod:`~trainer.tagmap.fitting`: the threshold rule and the fitted
  thresholds (coordinate ascent);
- :mod:`~trainer.tagmap.scoring`: a genre option's scores on AllMusic and
  GTZAN genres;
- :mod:`~trainer.tagmap.heads`: the GTZAN head the genre options compare with;
- :mod:`~trainer.tagmap.evaluate`: the cross-validated evaluation;
- :mod:`~trainer.tagmap.vocabulary`: whether the audio can tell genres the
  vocabulary lacks (reggae, latin, R&B, classical), by the evidence rule;
- :mod:`~trainer.tagmap.report`: its tables as text and JSON;
- this module: the command line.

``--evaluate`` needs the real data (gtzan_mini, mood_4q): it reads the
cached per-patch outputs of both musicnn models
(:func:`trainer.embeddings.backbone_outputs`), scores the default genre
options (the genre map, a GTZAN-trained head on the MSD embedding, and
their max fusion) with artist-disjoint cross-validation on the AllMusic
genres of mood_4q and on gtzan_mini, prints the table of
``docs/models/tagmap.md``, the genre thresholds fitted on all of mood_4q
(the ones ``GENRE_THRESHOLDS`` ships) and the threshold rule's values
for the other maps. Writing bundles needs no data.

Thresholds
----------
- **genre** (``tables.GENRE_THRESHOLDS``): fitted on the AllMusic genres of
  mood_4q's 900 clips and the GTZAN genres of gtzan_mini's 100
  (``tables.GTZAN_ALLMUSIC``) by coordinate ascent
  (:func:`~trainer.tagmap.fitting.fit_thresholds`) on the F1 of the written
  set (threshold 0.5 on the map's scores, at most 2 genres), each written
  genre counted for its AllMusic genre
  (:func:`~trainer.tagmap.genres.allmusic_genre`); a subgenre only among its
  source's top 10% (``fitting.SUBGENRE_QUANTILES``). Cross-validated with
  folds that keep each artist of mood_4q on one side; the shipped values
  are fitted on all clips.
- **mood, instrument, voice, energy**
  (:func:`~trainer.tagmap.fitting.rule_threshold`): a rule fitted on no
  label: half the tag's 99th percentile over 1,000 real clips (mood_4q and
  gtzan_mini), i.e. half of what it reaches on the ten clips where it is
  most evident. musicnn's outputs are small and differ in scale from tag to
  tag; half the clear case keeps a tag off clips where it is merely
  possible.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="directory the bundles are written to (default: the shipped bundles, tagcore/bundles)")
    parser.add_argument("--only", default="",
                        help="comma-separated bundle names to write (default: all five)")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the genre options and print the fitted thresholds (needs --data)")
    parser.add_argument("--data", default="../shared/datasets",
                        help="folder holding mood_4q/ and gtzan_mini/ (for --evaluate)")
    parser.add_argument("--report", help="with --evaluate: write the figures as JSON here")
    parser.add_argument("--seeds", default="0,1,2", help="with --evaluate: CV seeds")
    parser.add_argument("--vocabulary-only", action="store_true",
                        help="with --evaluate: only the genres the vocabulary lacks (trainer.tagmap.vocabulary)")


def _specs_to_write(only: set[str], *, log=print) -> list:
    """The specs of the bundles to write (all five, or those in ``only``);
    the mood map is skipped, with a message, when mood4q is not installed."""
    from trainer.tagmap.build import bundle_labels, genre_spec, mood_spec, mtt_spec
    from trainer.tagmap.tables import MOOD_HEAD, MTT_MAPS, QUADRANTS

    head_labels = bundle_labels(MOOD_HEAD)
    makers = [genre_spec, lambda: mood_spec(head_labels=head_labels), *(lambda t=t: mtt_spec(t) for t in MTT_MAPS)]
    specs = []
    for make in makers:
        spec = make()
        if only and spec.name not in only:
            continue
        if spec.task == "mood":
            if head_labels is None:
                log(f"skipped {spec.name}: the quadrant head {MOOD_HEAD} is not installed")
                continue
            if sorted(head_labels) != sorted(QUADRANTS):
                raise SystemExit(f"error: {MOOD_HEAD} has labels {head_labels}, expected {list(QUADRANTS)}")
        specs.append(spec)
    return specs


def run(args, *, log=print) -> int:
    """Write the bundles (or, with ``--evaluate``, run the evaluation)."""
    if args.evaluate:
        return run_evaluation(args, log=log)
    from tagcore.bundle import default_bundle_dir
    from trainer.tagmap.build import write_bundle

    out = Path(args.out) if args.out else default_bundle_dir()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    specs = _specs_to_write(only, log=log)
    command = "python -m trainer tagmap" + (f" --out {args.out}" if args.out else "")
    for spec in specs:
        path = write_bundle(spec, out, command=command)
        log(f"wrote {path} ({len(spec.labels)} labels from {len(spec.rules)} sources)")
    return 0


def run_evaluation(args, *, log=print) -> int:
    """Read the clips, run every evaluation, print the tables (and write the
    JSON report when ``--report`` names a file)."""
    import json

    from trainer.head import mfcc_statistics
    from trainer.tagmap import report
    from trainer.tagmap.data import load_clips, tagging_patches
    from trainer.tagmap.evaluate import evaluate_genre, evaluate_mood, evaluate_rule_maps
    from trainer.tagmap.evidence import evaluate_evidence
    from trainer.tagmap.moods import evaluate_moods

    data = Path(args.data)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    patches = tagging_patches()
    log(f"reading musicnn outputs of mood_4q and gtzan_mini ({patches} central patches per clip)")
    mood, gtz = load_clips(data, patches=patches, log=log)
    if args.vocabulary_only:
        vocabulary = _vocabulary(mood, gtz, seeds=seeds, log=log)
        if args.report:
            Path(args.report).write_text(json.dumps(vocabulary, indent=1) + "\n", encoding="utf-8")
            log(f"wrote {args.report}")
        return 0
    log("MFCC statistics of the mood_4q clips (the baseline of row (m))")
    mfcc = mfcc_statistics(mood.paths, workers=1)
    genre = evaluate_genre(mood, gtz, seeds=seeds, mfcc=mfcc, log=log)
    rules = evaluate_rule_maps(mood, gtz, log=log)
    rule_table = {tuple(k.split(":", 1)): v for k, v in rules["thresholds"].items()}
    moods = evaluate_mood(mood, seeds=seeds, thresholds=rule_table)
    moods["gate"] = evaluate_moods(mood, seeds=seeds, log=log)
    rules["evidence"] = evaluate_evidence([mood, gtz], thresholds=rule_table)
    report.print_evaluation(genre, moods, rules, rule_table, log=log)
    report.print_moods_and_evidence(moods["gate"], rules["evidence"], log=log)
    vocabulary = _vocabulary(mood, gtz, seeds=seeds, log=log)
    if args.report:
        figures = {**report.report_json(genre, moods, rules, patches=patches), "vocabulary": vocabulary}
        Path(args.report).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.report}")
    return 0


def _vocabulary(mood, gtz, *, seeds: list[int], log=print) -> dict:
    """The figures of :mod:`trainer.tagmap.vocabulary`, their table printed."""
    from trainer.tagmap.heads import shipped_gtzan_head
    from trainer.tagmap.vocabulary import evaluate_vocabulary, format_vocabulary_table

    vocabulary = evaluate_vocabulary(mood, gtz, seeds=seeds, gtzan_head=shipped_gtzan_head(mood.embedding), log=log)
    log(f"\nGenres the vocabulary lacks ({vocabulary['protocol']}):\n")
    log(format_vocabulary_table(vocabulary))
    return vocabulary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer tagmap", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))

