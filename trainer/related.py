"""``python -m trainer related``: build the related-tags bundle, and its
quality check.

Bundle (``--out``): LSI tag vectors (the triplet paper, III-B) over the AllMusic
expert tags of MSD tracks (``--allmusic track_names_all.txt``; documents:
tracks with a genre and at least one style, mood or theme; four kinds:
genre, style, mood, theme) and LSI vectors of Last.fm free tags over
artists (``--lastfm`` HetRec-2k folder; documents: artists, a tag counted
once per artist), optionally an audio tag similarity (``--audio-similarity
CSV``, e.g. what ``python -m trainer tag-embeddings`` wrote). Only tag
vectors, tag names and counts are kept: no track, artist or user id.

Quality check (``--evaluate``): the AllMusic tracks are split 80/20 at
random (seed ``--seed``); the index is built from the 80 % (Last.fm as it
is), and for each held-out track its styles (and moods) are hidden and
proposed from its genres (moods: from its genres and its true styles, and
from its genres alone), and from the genre names a beets library would hold
for it (the roots of lastgenre's genre tree above its genres and styles:
"Rock", "Jazz", "Hip Hop"; the aliases of the bundle then reach AllMusic's
names, so this row checks them). Precision and recall at 5 are compared with the 5
most popular training styles/moods (one list for every track) and with the
5 most popular among training tracks sharing the track's genres (a stronger
baseline). The choice of source weights and popularity prior is made on a
validation tenth of the 80 %, never on the 20 %.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from tagcore import related as R
from trainer.report import write_json

KIND_OF_FIELD = {"genres": "genre", "styles": "style", "moods": "mood", "themes": "theme"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allmusic", required=True, help="AllMusic MSD tags (track_names_all.txt)")
    parser.add_argument("--lastfm", help="HetRec Last.fm-2k folder (tags.dat, user_taggedartists.dat)")
    parser.add_argument("--audio-similarity", help="square tag-similarity CSV from audio (optional source)")
    parser.add_argument("--audio-weight", type=float, default=0.5)
    parser.add_argument("--lastfm-weight", type=float, default=None,
                        help="weight of the Last.fm source mixed with AllMusic; 0: a fallback used only for tags "
                             "AllMusic cannot score (default: chosen on validation by --evaluate, else 0)")
    parser.add_argument("--prior-weight", type=float, default=None,
                        help="popularity prior mixed into proposals (default: chosen on validation, else 0)")
    parser.add_argument("--prior-scale", choices=R.PRIOR_SCALES, default=None,
                        help="popularity prior on counts or on log counts (default: chosen on validation)")
    parser.add_argument("--k", type=int, default=64, help="LSI topics for AllMusic")
    parser.add_argument("--lastfm-k", type=int, default=64, help="LSI topics for Last.fm")
    parser.add_argument("--min-count", type=int, default=2, help="AllMusic tags seen on fewer tracks are left out")
    parser.add_argument("--lastfm-min-artists", type=int, default=10, help="Last.fm tags on fewer artists are left out")
    parser.add_argument("--out", help="bundle folder to write")
    parser.add_argument("--name", default="related-tags")
    parser.add_argument("--version", default="1")
    parser.add_argument("--evaluate", action="store_true", help="run the held-out quality check (and store it in the bundle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", help="write the evaluation to this JSON file")


# --- Data -----------------------------------------------------------------------


def allmusic_documents(tracks) -> list[dict[str, tuple[str, ...]]]:
    """AllMusic tracks as LSI documents (kind -> names), keeping tracks
    with a genre and at least one style, mood or theme."""
    docs = []
    for t in tracks:
        doc = {KIND_OF_FIELD[f]: tuple(getattr(t, f)) for f in KIND_OF_FIELD}
        if doc["genre"] and (doc["style"] or doc["mood"] or doc["theme"]):
            docs.append(doc)
    return docs


def lastfm_source(artist_tags: dict[int, dict[str, int]], *, k: int, min_artists: int, weight: float) -> tuple[R.Source, list[int]]:
    """The Last.fm source; ``weight`` 0 makes it a fallback."""
    names, counts, vectors = R.cooccurrence_vectors(
        [list(tags) for _, tags in sorted(artist_tags.items())], k=k, min_count=min_artists
    )
    return with_weight(R.Source("lastfm", names, 1.0, vectors=vectors), weight), counts


def with_weight(source: R.Source, weight: float) -> R.Source:
    """A copy of ``source`` mixed in with ``weight``, or a fallback when 0."""
    return R.Source(source.name, source.names, weight if weight > 0 else 1.0, vectors=source.vectors,
                    similarity=source.similarity, fallback=weight <= 0, kinds=source.kinds)


def extra_sources(lastfm: R.Source | None, lastfm_weight: float, audio: R.Source | None) -> list[R.Source]:
    """The sources beside AllMusic: Last.fm at ``lastfm_weight`` (0: a
    fallback) and the audio similarity, those given."""
    return [*([with_weight(lastfm, lastfm_weight)] if lastfm else []), *([audio] if audio else [])]


def allmusic_index(docs: Sequence[dict], *, k: int, min_count: int) -> tuple[R.Vocabulary, R.Source]:
    tags, vectors = R.lsi_tag_vectors(docs, sets=list(R.KINDS), k=k, min_count=min_count)
    return R.Vocabulary(tags), R.Source("allmusic", [t.name for t in tags], 1.0, vectors=vectors, kinds=[t.kind for t in tags])


def audio_source(path: str, weight: float) -> R.Source:
    from trainer.datasets.deezer_disambiguation import load_similarity

    matrix = load_similarity(path)
    return R.Source("audio", [l.split(":", 1)[1] if l.startswith("genre:") else l for l in matrix.labels], weight,
                    similarity=np.nan_to_num(matrix.values, nan=0.0).astype(np.float32))


def popularity(docs: Sequence[dict], kind: str) -> dict[str, float]:
    """name -> share of documents holding it, scaled so the most popular is 1."""
    counts = Counter(t for d in docs for t in d.get(kind, ()))
    top = max(counts.values()) if counts else 1
    return {n: c / top for n, c in counts.items()}


# --- Evaluation -----------------------------------------------------------------


def _pr(proposals: Sequence[Sequence[str]], truths: Sequence[Sequence[str]], k: int = 5) -> dict:
    if not truths:
        return {"p@5": float("nan"), "r@5": float("nan"), "n": 0}
    ps, rs = zip(*(R.precision_recall_at_k(p, t, k=k) for p, t in zip(proposals, truths)))
    return {"p@5": float(np.mean(ps)), "r@5": float(np.mean(rs)), "n": len(truths)}


def genre_tree_paths() -> dict[str, tuple[str, ...]]:
    """lastgenre's genre tree as spelling key -> path (empty without beets'
    tree file)."""
    from tagcore.lastgenre import tree_paths_by_key

    return tree_paths_by_key()


def index_aliases(vocabulary: R.Vocabulary) -> dict[str, list[str]]:
    """The alias table a bundle ships: the hand-written AllMusic aliases,
    then the children of lastgenre's tree nodes the vocabulary lacks."""
    return R.merge_aliases(R.ALLMUSIC_ALIASES, R.tree_aliases(genre_tree_paths(), vocabulary))


def beets_genres(doc: dict) -> list[str]:
    """The genres a beets library would hold for an AllMusic track: the
    roots of lastgenre's genre tree above its genres and styles, title-cased
    as lastgenre writes them with ``canonical: yes`` ("Heavy Metal" ->
    "Rock", "Bebop" -> "Jazz"). Empty when the tree knows none of them."""
    from tagcore.lastgenre import tree_path

    roots = {path[0] for name in (*doc["genre"], *doc["style"]) if (path := tree_path(name))}
    return sorted(root.title() for root in roots)


def evaluate_split(train: Sequence[dict], test: Sequence[dict], *, k: int, min_count: int, sources_extra: Sequence[R.Source],
                   prior_weight: float, prior_scale: str = "linear") -> dict:
    """P@5/R@5 of proposals and baselines for styles and moods of ``test``
    documents, the index built from ``train``. Queries are the track's
    AllMusic genres (moods: also its true styles), and, as a user's library
    would hold them, its beets genre names (:func:`beets_genres`); names
    equal to a query name are dropped from the truth there (a query name is
    never proposed), and tracks left without truth are skipped."""
    vocabulary, allmusic = allmusic_index(train, k=k, min_count=min_count)
    index = R.RelatedIndex(vocabulary, [allmusic, *sources_extra], index_aliases(vocabulary))
    out: dict = {}
    by_genre: dict[str, dict[str, Counter]] = {kind: defaultdict(Counter) for kind in ("style", "mood")}
    for d in train:
        for kind in ("style", "mood"):
            for g in d["genre"]:
                by_genre[kind][g].update(d[kind])
    for kind, query_kind in (("style", "genres"), ("mood", "genres+styles"), ("mood", "genres"),
                             ("style", "beets genres"), ("mood", "beets genres")):
        prior = R.popularity_prior(vocabulary, kind, scale=prior_scale)
        counts = popularity(train, kind)
        global_top = [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
        ours, pop, cond, truths = [], [], [], []
        for d in test:
            if not d[kind] or not d["genre"]:
                continue
            truth = list(d[kind])
            if query_kind == "beets genres":
                query = beets_genres(d)
                asked = {R.spelling_key(q) for q in query}
                truth = [t for t in truth if R.spelling_key(t) not in asked]
                if not query or not truth:
                    continue
            else:
                query = list(d["genre"]) + (list(d["style"]) if query_kind == "genres+styles" else [])
            ours.append([n for n, _ in R.propose(index, query, kind=kind, count=5, prior=prior, prior_weight=prior_weight)])
            pop.append(global_top)
            c = Counter()
            for g in d["genre"]:
                c.update(by_genre[kind][g])
            cond.append([n for n, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:5]])
            truths.append(truth)
        out[f"{kind}s from {query_kind}"] = {"related": _pr(ours, truths), "most_popular": _pr(pop, truths),
                                             "popular_in_genre": _pr(cond, truths)}
    return out


def split(docs: Sequence, *, seed: int) -> tuple[list, list, list, list]:
    """(train, fit, validation, test) documents in their order: 20 % of them
    at random for the test, the rest (train) cut into fit and a tenth for
    validation (:func:`trainer.splits.group_split`)."""
    from trainer import splits

    fit, val, test = splits.group_split(n=len(docs), shares=(0.72, 0.08, 0.2), seed=seed)
    return tuple([docs[i] for i in part] for part in (np.union1d(fit, val), fit, val, test))


def _validation_grid(args, fit: Sequence[dict], val: Sequence[dict], *, lastfm: R.Source | None,
                     audio: R.Source | None) -> list[dict]:
    """Mean P@5 on ``val`` of an index built from ``fit`` for every
    combination of the Last.fm weight, the prior weight and the prior
    scale that the command line leaves open (one value where it fixes it)."""
    lastfm_weight = args.lastfm_weight if args.lastfm_weight is not None else 0.0
    prior_weight = args.prior_weight if args.prior_weight is not None else 0.0
    prior_scale = args.prior_scale or "linear"
    grid = []
    for lw in ([0.0, 0.5, 1.0] if lastfm and args.lastfm_weight is None else [lastfm_weight if lastfm else 0.0]):
        for pw in ([0.0, 0.25, 0.5] if args.prior_weight is None else [prior_weight]):
            for ps in (R.PRIOR_SCALES if args.prior_scale is None and pw > 0 else [prior_scale]):
                r = evaluate_split(fit, val, k=args.k, min_count=args.min_count,
                                   sources_extra=extra_sources(lastfm, lw, audio),
                                   prior_weight=pw, prior_scale=ps)
                score = np.nanmean([r[key]["related"]["p@5"] for key in r])
                grid.append({"lastfm_weight": lw, "prior_weight": pw, "prior_scale": ps,
                             "validation_mean_p@5": float(score), **{key: r[key]["related"] for key in r}})
                print(f"validation: lastfm {lw} prior {pw} ({ps}): mean P@5 {score:.3f}", file=sys.stderr)
    return grid


def evaluate(args, docs: Sequence[dict], *, lastfm: R.Source | None, audio: R.Source | None) -> dict:
    """Weights chosen on a validation tenth of a random 80 %, then P@5 and
    R@5 on the other 20 % (printed; written to ``--report`` when given).
    Returns the protocol, the chosen weights, the grid and the test figures."""
    train, fit, val, test = split(docs, seed=args.seed)
    # Choose the Last.fm weight and the prior on the validation tenth.
    grid = _validation_grid(args, fit, val, lastfm=lastfm, audio=audio)
    best = max(grid, key=lambda g: g["validation_mean_p@5"])
    lastfm_weight, prior_weight, prior_scale = best["lastfm_weight"], best["prior_weight"], best["prior_scale"]
    test_result = evaluate_split(train, test, k=args.k, min_count=args.min_count,
                                 sources_extra=extra_sources(lastfm, lastfm_weight, audio),
                                 prior_weight=prior_weight, prior_scale=prior_scale)
    evaluation = {
        "protocol": f"AllMusic tracks split 80/20 at random (seed {args.seed}); index from the 80 %; "
                    "weights chosen on a random tenth of the 80 %; P@5/R@5 on the 20 %",
        "chosen": {"lastfm_weight": lastfm_weight, "prior_weight": prior_weight, "prior_scale": prior_scale},
        "validation_grid": grid,
        "test": test_result,
        "tracks": {"train": len(train), "test": len(test)},
    }
    for key, r in test_result.items():
        print(f"test {key}: " + "; ".join(f"{m} P@5 {v['p@5']:.3f} R@5 {v['r@5']:.3f} (n {v['n']})" for m, v in r.items()))
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, evaluation)
    return evaluation


def write_index(args, docs: Sequence[dict], *, tracks_in_file: int, lastfm: R.Source | None, n_artists: int,
                audio: R.Source | None, weights: dict, evaluation: dict) -> None:
    """The related-tags bundle in ``--out``: the AllMusic index of every
    document with the extra sources, aliases, provenance, the figures and
    the default prior (``weights``: lastfm_weight, prior_weight, prior_scale)."""
    lastfm_weight = weights["lastfm_weight"]
    vocabulary, allmusic = allmusic_index(docs, k=args.k, min_count=args.min_count)
    index = R.RelatedIndex(vocabulary, [allmusic, *extra_sources(lastfm, lastfm_weight, audio)],
                           index_aliases(vocabulary))
    kinds = Counter(t.kind for t in vocabulary.tags)
    provenance = {
        "command": "python -m trainer related " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["related"] else "",
        "allmusic": {"file": Path(args.allmusic).name, "tracks_used": len(docs), "tracks_in_file": tracks_in_file,
                     "lsi_topics": allmusic.vectors.shape[1], "min_count": args.min_count, "tags_by_kind": dict(kinds),
                     "source": "AllMusic expert tags of Million Song Dataset tracks (the triplet paper's tag sets), research use"},
        "lastfm": None if not lastfm else {"folder": Path(args.lastfm).name, "artists": n_artists,
                                            "tags": len(lastfm.names), "min_artists": args.lastfm_min_artists,
                                            "lsi_topics": lastfm.vectors.shape[1], "weight": lastfm_weight,
                                            "source": "HetRec 2011 Last.fm-2k, research use"},
        "audio": None if not audio else {"file": Path(args.audio_similarity).name, "tags": len(audio.names),
                                          "weight": args.audio_weight},
        "aliases": "hand-written AllMusic aliases (tagcore.related.ALLMUSIC_ALIASES), then the children of "
                   "beets' lastgenre genre tree (genres-tree.yaml) for tree nodes the vocabulary lacks",
        "contents": "tag names, kinds, document counts and LSI tag vectors only; no track, artist or user data",
        "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    defaults = {"prior_weight": weights["prior_weight"], "prior_scale": weights["prior_scale"]}
    R.save_index(args.out, index, name=args.name, version=args.version, provenance=provenance,
                 metrics=evaluation, defaults=defaults)
    print(f"bundle written to {args.out}: {len(vocabulary)} tags ({dict(kinds)})", file=sys.stderr)


def run(args) -> int:
    """The command: read AllMusic (and Last.fm, and audio similarity),
    evaluate with ``--evaluate``, write the bundle with ``--out``."""
    from trainer.datasets import DatasetError, LoadReport, allmusic_msd, lastfm_hetrec

    report = LoadReport()
    tracks = allmusic_msd.load(args.allmusic, report=report)
    docs = allmusic_documents(tracks)
    if not docs:
        raise DatasetError(f"{args.allmusic}: no track with a genre and a style, mood or theme")
    lastfm = None
    n_artists = 0
    if args.lastfm:
        at = lastfm_hetrec.artist_tags(args.lastfm, report=report)
        n_artists = len(at)
        lastfm, _counts = lastfm_source(at, k=args.lastfm_k, min_artists=args.lastfm_min_artists, weight=0.5)
    audio = audio_source(args.audio_similarity, args.audio_weight) if args.audio_similarity else None
    for message in report.skipped[:20]:
        print(f"skipped: {message}", file=sys.stderr)
    print(f"{len(docs)} AllMusic tracks used of {len(tracks)}; Last.fm: {len(lastfm.names) if lastfm else 0} tags "
          f"over {n_artists} artists", file=sys.stderr)

    weights = {"lastfm_weight": args.lastfm_weight if args.lastfm_weight is not None else 0.0,
               "prior_weight": args.prior_weight if args.prior_weight is not None else 0.0,
               "prior_scale": args.prior_scale or "linear"}
    evaluation: dict = {}
    if args.evaluate:
        evaluation = evaluate(args, docs, lastfm=lastfm, audio=audio)
        weights = evaluation["chosen"]
    if args.out:
        write_index(args, docs, tracks_in_file=len(tracks), lastfm=lastfm, n_artists=n_artists, audio=audio,
                    weights=weights, evaluation=evaluation)
    return 0
