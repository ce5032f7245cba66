"""``python -m trainer disambig-eval``: the tag tasks of the disambig paper (sections
3 and 4) on any square tag-similarity matrix.

Modes (one per run):

- ``--taxonomy FILE`` (taxonomy learning, section 3.1): for each style of
  the matrix, rank the genres by similarity; a hit when a parent genre of
  the style (FILE: ``Genre---Style`` lines) is among the first k. HR@1,
  HR@2 and MAP with 95 % confidence half-widths. A style with two parents
  is a hit when either is in the top k; its average precision counts both
  parents as relevant (the usual definition).
- ``--deduplication`` (section 3.2): tags come in copies ``NAME_1`` /
  ``NAME_2`` (the artificial artist-level split); each tag ranks every
  other tag of the matrix and its twin is the one relevant item.
- ``--translation`` (section 4): tags of system A carry ``--prefix-a``
  (``mumu:``), the others are system B; for every A tag its most similar B
  tag, the ``--top`` best pairs whose names differ after folding (string
  matches excluded, as the paper's Table 4).

Matrix format: CSV, tag names as header and first column (the published
Deezer files; ``python -m trainer tag-embeddings`` writes the same). Name
matching against the taxonomy: the matrix's genres are the tags written
``genre:NAME`` (``--genre-prefix``); a name matches when its folded form
(case, accents, punctuation; :func:`tagcore.related.fold`) or its lower-case
form with non-ASCII letters dropped (the Deezer files spell "Musique
Concrète" as ``musique concrte``) equals the taxonomy's.

The pure functions (:func:`taxonomy_scores`, :func:`deduplication_scores`,
:func:`translation_pairs`, :func:`duplicate_split`, :func:`prefixed_union`)
are what the tests exercise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from trainer import metrics
from tagcore.related import fold, spelling_key
from trainer.datasets import DatasetError


# --- Names ---------------------------------------------------------------------


def match_keys(name: str) -> set[str]:
    """The keys a tag name matches under: folded, and lower-case with
    non-ASCII characters dropped (then folded)."""
    ascii_only = "".join(c for c in name.lower() if c.isascii())
    return {fold(name), fold(ascii_only)}


def read_taxonomy(lines: Sequence[str], *, where: str = "taxonomy") -> dict[str, set[str]]:
    """``Genre---Style`` lines -> style -> set of parent genres (a style
    may have several). Blank lines and ``#`` comments are skipped; a line
    without ``---`` raises DatasetError naming the line."""
    parents: dict[str, set[str]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "---" not in line:
            raise DatasetError(f"{where}:{number}: expected 'Genre---Style', got {line!r}")
        genre, style = (part.strip() for part in line.split("---", 1))
        if not genre or not style:
            raise DatasetError(f"{where}:{number}: empty genre or style in {line!r}")
        parents.setdefault(style, set()).add(genre)
    return parents


def confidence(values: Sequence[float]) -> float:
    """Half-width of the 95 % normal interval of the mean of ``values``
    (1.96 sample standard deviations over sqrt(n)); for 0/1 hits this is
    the binomial interval the paper's Table 2 reports."""
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return float("nan")
    return float(1.96 * arr.std(ddof=0) / math.sqrt(len(arr)))


def ranking_scores(similarity: np.ndarray, relevant: Sequence[set[int]]) -> dict:
    """HR@1, HR@2, MAP (in %) with 95 % half-widths, over the rows of
    ``similarity`` (n_queries, n_candidates); NaN cells rank last."""
    sim = np.where(np.isnan(similarity), -np.inf, similarity)
    top = np.argsort(-sim, axis=1, kind="stable")
    out: dict = {"n": int(len(relevant))}
    for k in (1, 2):
        hits = [float(bool(set(row[:k].tolist()) & rel)) for row, rel in zip(top, relevant)]
        assert abs(np.mean(hits) - metrics.hit_rate_at_k(similarity=sim, relevant=relevant, k=k)) < 1e-12
        out[f"hr@{k}"] = 100 * float(np.mean(hits))
        out[f"hr@{k}_ci"] = 100 * confidence(hits)
    aps = [metrics.average_precision(scores=row, relevant=rel) for row, rel in zip(sim, relevant)]
    out["map"] = 100 * float(np.mean(aps))
    out["map_ci"] = 100 * confidence(aps)
    return out


# --- Taxonomy learning (3.1) -------------------------------------------------------


@dataclass
class TaxonomyResult:
    scores: dict
    styles: list[str]  # matrix styles evaluated
    unmatched: list[str]  # matrix styles without a parent in the taxonomy
    genres: list[str]  # matrix genres ranked
    missing_genres: list[str]  # taxonomy genres absent from the matrix
    errors: list[tuple[str, str, set[str]]]  # (style, top genre, parents) where HR@1 misses


def taxonomy_scores(
    labels: Sequence[str], similarity: np.ndarray, parents: Mapping[str, set[str]], *, genre_prefix: str = "genre:"
) -> TaxonomyResult:
    """Rank the matrix genres (labels starting with ``genre_prefix``) for
    every matrix style whose name matches a taxonomy style
    (:func:`match_keys`); relevant: its parent genres. Scores in %."""
    labels = list(labels)
    genres = [i for i, l in enumerate(labels) if l.startswith(genre_prefix)]
    if not genres:
        raise DatasetError(f"no genre in the matrix (no label starts with {genre_prefix!r})")
    genre_by_key: dict[str, int] = {}
    for g in genres:
        for key in match_keys(labels[g][len(genre_prefix):]):
            genre_by_key[key] = g
    style_parents: dict[str, set[str]] = {}
    for style, ps in parents.items():
        for key in match_keys(style):
            style_parents.setdefault(key, set()).update(ps)
    rows, relevant, styles, unmatched = [], [], [], []
    for i, label in enumerate(labels):
        if label.startswith(genre_prefix):
            continue
        ps = set().union(*(style_parents.get(key, set()) for key in match_keys(label)))
        columns = {genres.index(genre_by_key[k]) for p in ps for k in match_keys(p) if k in genre_by_key}
        if not columns:
            unmatched.append(label)
            continue
        rows.append(i)
        relevant.append(columns)
        styles.append(label)
    if not rows:
        raise DatasetError("no style of the matrix matches a style of the taxonomy")
    sim = np.asarray(similarity, dtype=float)[np.ix_(rows, genres)]
    all_genres = sorted({p for ps in parents.values() for p in ps})
    present = set(genre_by_key)
    missing = [g for g in all_genres if not match_keys(g) & present]
    top = np.nanargmax(np.where(np.isnan(sim), -np.inf, sim), axis=1)
    errors = [(styles[j], labels[genres[top[j]]], {labels[genres[c]] for c in relevant[j]})
              for j in range(len(rows)) if top[j] not in relevant[j]]
    return TaxonomyResult(ranking_scores(sim, relevant), styles, unmatched, [labels[g] for g in genres], missing, errors)


# --- Deduplication (3.2) ---------------------------------------------------------


def twin_of(label: str, *, suffixes: tuple[str, str] = ("_1", "_2")) -> str | None:
    """``rock_1`` -> ``rock_2`` and back; None without a suffix."""
    a, b = suffixes
    if label.endswith(a):
        return label[: -len(a)] + b
    if label.endswith(b):
        return label[: -len(b)] + a
    return None


def deduplication_scores(labels: Sequence[str], similarity: np.ndarray, *,
                         suffixes: tuple[str, str] = ("_1", "_2"), candidates: str = "all") -> dict:
    """Each tag with a twin ranks every other tag (``candidates="all"``,
    the paper's protocol: "among all other tags") or only the other
    system's tags (``"other"``); its twin is the one relevant item. Scores
    in %. Tags without a twin in the matrix are counted in ``no_twin``."""
    labels = list(labels)
    position = {l: i for i, l in enumerate(labels)}
    sim = np.array(similarity, dtype=float)
    np.fill_diagonal(sim, -np.inf)
    if candidates == "other":
        system = np.array([l.endswith(suffixes[1]) for l in labels])
        sim[system[:, None] == system[None, :]] = -np.inf
    elif candidates != "all":
        raise ValueError(f"candidates must be 'all' or 'other', not {candidates!r}")
    rows, relevant, no_twin = [], [], []
    for i, label in enumerate(labels):
        twin = twin_of(label, suffixes=suffixes)
        if twin is None or twin not in position:
            no_twin.append(label)
            continue
        rows.append(i)
        relevant.append({position[twin]})
    if not rows:
        raise DatasetError(f"no tag of the matrix has a twin (suffixes {suffixes[0]!r}/{suffixes[1]!r})")
    out = ranking_scores(sim[rows], relevant)
    out["no_twin"] = no_twin
    return out


def duplicate_split(
    tracks: Sequence[tuple[str, Sequence[str]]], *, rng: np.random.Generator, suffixes: tuple[str, str] = ("_1", "_2")
) -> list[tuple[str, ...]]:
    """The artificial duplication of section 3.2: ``tracks`` are (artist,
    tags); the artists are dealt at random into two halves and every tag of
    a track of half 1 becomes ``TAG_1`` (half 2: ``TAG_2``). All tracks of an
    artist land in one half, so no track mixes the two systems. Returns the
    new tag tuples in track order."""
    artists = sorted({artist for artist, _ in tracks})
    order = rng.permutation(len(artists))
    half = {artists[j]: (0 if rank < (len(artists) + 1) // 2 else 1) for rank, j in enumerate(order)}
    return [tuple(f"{tag}{suffixes[half[artist]]}" for tag in tags) for artist, tags in tracks]


# --- Translation (4) --------------------------------------------------------------


def prefixed_union(
    tracks_a: Sequence[Sequence[str]], tracks_b: Sequence[Sequence[str]], *, prefix_a: str = "mumu:", prefix_b: str = ""
) -> list[tuple[str, ...]]:
    """Section 4's training labels: the tracks of both systems with their
    tags prefixed by system, so a same-name tag of A and B stay two
    classes (``mumu:jazz`` and ``jazz``). ``prefix_a != prefix_b``."""
    if prefix_a == prefix_b:
        raise ValueError("the two systems need different prefixes")
    return [tuple(prefix_a + t for t in tags) for tags in tracks_a] + [tuple(prefix_b + t for t in tags) for tags in tracks_b]


def strip_system(label: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        if prefix and label.startswith(prefix):
            return label[len(prefix):]
    return label


def translation_pairs(
    labels: Sequence[str], similarity: np.ndarray, *, prefix_a: str = "mumu:", prefix_b: str = "",
    top: int = 10, exclude_string_matches: bool = True, genre_prefix: str = "genre:", one_to_one: bool = False,
) -> list[tuple[str, str, float]]:
    """For every tag of system A (prefix ``prefix_a``) its most similar tag
    of system B, excluding B tags spelled like it (same
    :func:`tagcore.related.spelling_key` once the system and ``genre:``
    prefixes are removed: "dance hall" and "dancehall" match) when
    ``exclude_string_matches``; the ``top`` pairs by similarity, best
    first. With ``one_to_one`` the pairs are taken greedily from all (A, B)
    pairs by decreasing similarity, each tag of either system at most once."""
    labels = list(labels)
    sim = np.asarray(similarity, dtype=float)
    a_idx = [i for i, l in enumerate(labels) if l.startswith(prefix_a)]
    b_idx = [i for i, l in enumerate(labels) if not l.startswith(prefix_a) and (not prefix_b or l.startswith(prefix_b))]
    if not a_idx or not b_idx:
        raise DatasetError(f"translation needs tags with and without the prefix {prefix_a!r}")

    def bare(label):
        return spelling_key(strip_system(strip_system(label, [prefix_a, prefix_b]), [genre_prefix]))

    if one_to_one:
        every = sorted(((float(sim[i, j]), labels[i], labels[j]) for i in a_idx for j in b_idx
                        if not np.isnan(sim[i, j]) and not (exclude_string_matches and bare(labels[i]) == bare(labels[j]))),
                       key=lambda p: (-p[0], p[1], p[2]))
        used: set[str] = set()
        chosen = []
        for score, a, b in every:
            if a not in used and b not in used:
                used.update((a, b))
                chosen.append((a, b, score))
                if len(chosen) == top:
                    break
        return chosen
    pairs = []
    for i in a_idx:
        best, best_score = None, -np.inf
        for j in b_idx:
            if exclude_string_matches and bare(labels[i]) == bare(labels[j]):
                continue
            s = sim[i, j]
            if not np.isnan(s) and s > best_score:
                best, best_score = j, s
        if best is not None:
            pairs.append((labels[i], labels[best], float(best_score)))
    pairs.sort(key=lambda p: (-p[2], p[0]))
    return pairs[:top]


# --- Command ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--similarity", required=True, action="append",
                        help="square tag-similarity CSV (tag names as header and index); repeat for several")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--taxonomy", help="'Genre---Style' list (one pair a line): taxonomy learning")
    mode.add_argument("--deduplication", action="store_true", help="tags NAME_1/NAME_2: retrieve each tag's twin")
    mode.add_argument("--translation", action="store_true", help="top pairs between two tag systems")
    parser.add_argument("--genre-prefix", default="genre:", help="how the matrix marks genres (taxonomy, translation)")
    parser.add_argument("--candidates", choices=["all", "other"], default="all",
                        help="deduplication: rank all other tags (paper) or only the other system's")
    parser.add_argument("--prefix-a", default="mumu:", help="translation: prefix of system A's tags")
    parser.add_argument("--prefix-b", default="", help="translation: prefix of system B's tags (default: the rest)")
    parser.add_argument("--top", type=int, default=10, help="translation: pairs to list")
    parser.add_argument("--keep-string-matches", action="store_true", help="translation: keep same-name pairs")
    parser.add_argument("--one-to-one", action="store_true",
                        help="translation: each tag of either system in at most one listed pair")
    parser.add_argument("--json", help="also write the results to this JSON file")


def _name(path: str) -> str:
    return Path(path).name.split("_tag_similarity")[0]


def run(args) -> int:
    from trainer.datasets.deezer_disambiguation import load_similarity

    results: dict = {}
    taxonomy = None
    if args.taxonomy:
        path = Path(args.taxonomy)
        if not path.is_file():
            raise DatasetError(f"{path}: no such taxonomy file")
        taxonomy = read_taxonomy(path.read_text(encoding="utf-8").splitlines(), where=str(path))
    for csv_path in args.similarity:
        matrix = load_similarity(csv_path)
        name = _name(csv_path)
        if taxonomy is not None:
            result = taxonomy_scores(matrix.labels, matrix.values, taxonomy, genre_prefix=args.genre_prefix)
            results[name] = {**result.scores, "styles": len(result.styles), "unmatched_styles": result.unmatched,
                             "genres": len(result.genres), "missing_genres": result.missing_genres,
                             "hr@1_misses": [[s, g, sorted(p)] for s, g, p in result.errors]}
        elif args.deduplication:
            results[name] = deduplication_scores(matrix.labels, matrix.values, candidates=args.candidates)
        else:
            pairs = translation_pairs(matrix.labels, matrix.values, prefix_a=args.prefix_a, prefix_b=args.prefix_b,
                                      top=args.top, exclude_string_matches=not args.keep_string_matches,
                                      genre_prefix=args.genre_prefix, one_to_one=args.one_to_one)
            results[name] = {"pairs": [[a, b, round(s, 4)] for a, b, s in pairs]}
    if args.translation:
        for name, r in results.items():
            print(f"{name}: top {len(r['pairs'])} pairs" + (" (string matches excluded)" if not args.keep_string_matches else ""))
            for a, b, s in r["pairs"]:
                print(f"  {a:35s} {b:35s} {s:.3f}")
    else:
        print(f"{'matrix':24s} {'n':>4s} {'HR@1':>12s} {'HR@2':>12s} {'MAP':>12s}")
        for name, r in results.items():
            cells = " ".join(f"{r[m]:5.1f} ± {r[m + '_ci']:4.1f}" for m in ("hr@1", "hr@2", "map"))
            print(f"{name:24s} {r['n']:4d} {cells}")
        for name, r in results.items():
            if r.get("unmatched_styles"):
                print(f"{name}: styles without a parent in the taxonomy (left out): {', '.join(r['unmatched_styles'])}")
            if r.get("missing_genres"):
                print(f"{name}: taxonomy genres absent from the matrix: {', '.join(r['missing_genres'])}")
            if r.get("no_twin"):
                print(f"{name}: tags without a twin (left out): {', '.join(r['no_twin'][:10])}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=2), encoding="utf-8")
        tmp.replace(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer disambig-eval", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
