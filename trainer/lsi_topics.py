"""LSI topics of mixed tag sets, as the triplet paper's Figure 3.

``python -m trainer lsi-topics --data track_names_all.txt`` fits the LSI of
:mod:`tagcore.lsi` (binary tag x track matrix, truncated SVD, only tracks
with a tag in every set used) on AllMusic tag sets of MSD tracks, for each
mixture of tag sets asked for, and shows one topic of each: the tags with
the largest positive and negative loadings on that topic's left singular
vector, coloured by tag set. The paper shows styles (#2), styles + moods
(#1), styles + moods + themes (#61) and all four sets (#7), the default
here. Topic numbers count from 0, in order of decreasing singular value,
as gensim's ``LsiModel`` numbers them: the paper's topic #1 has tags on
both sides, and the first singular vector of a non-negative matrix cannot
(Perron-Frobenius: its loadings all share one sign), so the paper counts
from 0.

Prints each topic's tags and loadings; ``--figure`` draws them (needs
matplotlib, the ``train`` extra); ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore import lsi
from trainer.datasets import DatasetError, LoadReport
from trainer.datasets import allmusic_msd

#: The paper's Figure 3: (tag sets, topic number from 0).
PAPER_TOPICS = (("styles", 2), ("styles+moods", 1), ("styles+moods+themes", 61),
                ("styles+moods+themes+genres", 7))


@dataclass(frozen=True)
class Topic:
    """One LSI topic: ``sets`` the tag sets mixed; ``number`` from 0;
    ``tracks`` and ``tags`` the matrix size it was fitted on; ``singular_value``
    its S entry; ``share`` its share of the squared singular values of all
    topics (the variance it explains); ``loadings`` (tag set, tag, loading)
    sorted from the most positive to the most negative, the ``n`` largest
    of each sign."""

    sets: tuple[str, ...]
    number: int
    tracks: int
    tags: int
    singular_value: float
    share: float
    loadings: tuple[tuple[str, str, float], ...]


def parse_topics(spec: str) -> list[tuple[tuple[str, ...], int]]:
    """``"styles:2,styles+moods:1"`` -> [(("styles",), 2), (("styles", "moods"), 1)];
    raises ValueError naming a bad entry (an unknown set or no topic number)."""
    out = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        sets_text, _, number_text = entry.rpartition(":")
        sets = tuple(filter(None, sets_text.split("+")))
        unknown = [name for name in sets if name not in allmusic_msd.FIELDS]
        if not sets or unknown or not number_text.isdigit():
            raise ValueError(f"--topics entry {entry!r}: expected SET[+SET...]:N with sets among "
                             f"{', '.join(allmusic_msd.FIELDS)} and N a topic number from 0")
        out.append((sets, int(number_text)))
    return out


def topic_loadings(model: lsi.LSIModel, vocabulary: Sequence[str], *, number: int, n: int) -> list[tuple[str, str, float]]:
    """The ``n`` most positive and ``n`` most negative loadings of topic
    ``number`` (from 0) on the unit left singular vector ``model.term_basis``
    (n_tags, k), as (tag set, tag, loading), most positive first. A sign
    with fewer than ``n`` tags gives what it has; zero loadings are left out."""
    if not 0 <= number < model.k:
        raise ValueError(f"topic {number} does not exist: the LSI has {model.k} topics (0 to {model.k - 1})")
    column = model.term_basis[:, number].astype(float)
    order = np.argsort(-column, kind="stable")
    positive = [i for i in order[:n] if column[i] > 0]
    negative = [i for i in order[::-1][:n] if column[i] < 0][::-1]
    return [(*vocabulary[i].split(":", 1), float(column[i])) for i in positive + negative]


def fit_topic(tracks: Sequence[allmusic_msd.AllMusicTrack], *, sets: Sequence[str], number: int, n: int) -> Topic:
    """Topic ``number`` of the LSI of ``tracks`` over ``sets`` (only tracks
    with a tag in every set, as section IV-B-1), with its ``n`` strongest
    tags of each sign (:func:`topic_loadings`)."""
    tag_sets = [{name: getattr(track, name) for name in sets} for track in tracks]
    kept = lsi.tracks_with_every_set(tag_sets, sets=sets)
    if not kept:
        raise ValueError(f"no track has a tag in every set of {'+'.join(sets)}")
    matrix, vocabulary = lsi.tag_track_matrix([tag_sets[i] for i in kept], sets=sets)
    model = lsi.fit_lsi(matrix, k=min(matrix.shape))
    loadings = tuple(topic_loadings(model, vocabulary, number=number, n=n))
    energy = model.singular_values.astype(float) ** 2
    return Topic(tuple(sets), number, len(kept), len(vocabulary), float(model.singular_values[number]),
                 float(energy[number] / energy.sum()), loadings)


def describe(topic: Topic) -> str:
    """A text block: the mixture, topic number, matrix size and the tags
    with their loadings, one per line."""
    lines = [f"{'+'.join(topic.sets)} #{topic.number} ({topic.tracks} tracks x {topic.tags} tags; "
             f"singular value {topic.singular_value:.2f}, {100 * topic.share:.1f} % of the squared sum)"]
    lines += [f"  {loading:+.3f}  {tag} ({tag_set})" for tag_set, tag, loading in topic.loadings]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="allmusic_msd's track_names_all.txt")
    parser.add_argument("--topics", default=",".join(f"{s}:{n}" for s, n in PAPER_TOPICS),
                        help="mixtures and topic numbers, SET[+SET...]:N comma-separated "
                             "(default: the paper's Figure 3)")
    parser.add_argument("--tags", type=int, default=8, help="tags shown on each side of a topic")
    parser.add_argument("--figure", help="write the figure (PNG) here")
    parser.add_argument("--json", help="write the topics (JSON) here")


def run(args: argparse.Namespace) -> int:
    from trainer import report

    try:
        wanted = parse_topics(args.topics)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped = LoadReport()
    try:
        problem = allmusic_msd.check_layout(args.data)
        if problem:
            raise DatasetError(f"{args.data}: {problem}")
        tracks = allmusic_msd.load(args.data, report=skipped)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(tracks)} tracks" + (f" ({len(skipped.skipped)} lines skipped)" if skipped.skipped else ""))
    topics = []
    for sets, number in wanted:
        try:
            topics.append(fit_topic(tracks, sets=sets, number=number, n=args.tags))
        except ValueError as exc:
            print(f"error: {'+'.join(sets)}: {exc}", file=sys.stderr)
            return 2
        print(describe(topics[-1]))
    if args.json:
        report.write_json(Path(args.json), [topic.__dict__ for topic in topics])
    if args.figure:
        print("figure:", report.write_figure(args.figure, lambda: report.lsi_topics_figure(topics),
                                             name="LSI topics"))
    return 0
