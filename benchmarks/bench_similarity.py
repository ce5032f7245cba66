"""Similarity search at library scale: brute force over a memory-mapped
float16 matrix against an HNSW index (usearch), on synthetic embeddings.

For each size N (default 1,000, 10,000, 100,000 and 1,000,000 tracks of
256-d float16 embeddings) a child process

1. writes the matrix as ``.npy`` (synthetic: 2,000 Gaussian clusters on the
   unit sphere plus isotropic noise, so neighbours exist as in a real
   library, l2-normalised, float16),
2. maps it (``np.load(mmap_mode="r")``) and times exact queries with
   :class:`tagcore.similarity.BruteForceIndex` (median of 30 queries, top
   10), against the floor of one float32 matrix-vector product over an
   in-memory float32 copy (numpy's BLAS, the memory-bound minimum for an
   exact scan), and reads the resident memory (VmRSS of /proc/self/status)
   grown by mapping and scanning the matrix (torch, whose float16
   matrix-vector product scans large matrices, is imported before);
3. unless ``--no-ann`` or N is below ``--ann-min``, builds a usearch HNSW
   index (cosine, float16, M=16, ef_add=128, ef_search=64; ``--threads``)
   and reports its build time, median query time, memory and recall@10
   against the brute-force results of 100 queries.

Each size runs in its own process so that resident memory is not shared
between sizes. Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_similarity.py [--sizes 1000,10000,100000,1000000]
        [--threads 1] [--ann-max 1000000] [--out runs/bench_similarity.json]

Prints one JSON object per size and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the checkout first on sys.path)
import numpy as np

DIM = 256


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def synthetic(n: int, *, seed: int, folder: Path) -> Path:
    """Write an (n, 256) float16 l2-normalised matrix to folder/m.npy in
    chunks (memory stays at one chunk)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    path = folder / "m.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, DIM))
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        x = centres[rng.integers(0, len(centres), stop - start)] + 0.06 * rng.standard_normal((stop - start, DIM)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:stop] = x.astype(np.float16)
    out.flush()
    del out
    return path


def median_ms(search, queries) -> float:
    """Median wall time of ``search(q)`` over ``queries``, in milliseconds."""
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def recall_at_10(truth: list[set], index, queries) -> float:
    """Mean share of the exact top 10 (``truth``) that ``index`` finds."""
    found = [{i for i, _ in index.search(q, k=10)} for q in queries]
    return float(np.mean([len(a & b) / 10 for a, b in zip(truth, found)]))


def one(n: int, args) -> dict:
    from tagcore import similarity as S

    folder = Path(tempfile.mkdtemp(prefix="bench-sim-", dir=args.tmp))
    made = time.perf_counter()
    path = synthetic(n, seed=0, folder=folder)
    result = {"n": n, "dim": DIM, "matrix_mb": round(n * DIM * 2 / 2**20, 1), "write_s": round(time.perf_counter() - made, 2)}
    rng = np.random.default_rng(1)
    import torch  # the float16 scan's library, loaded before measuring (beets' process holds it already)

    torch.set_num_threads(1)
    before = rss_mb()
    vectors = np.load(path, mmap_mode="r")
    matrix = S.EmbeddingMatrix([b""] * 0, vectors)  # keys are not needed to search
    matrix.keys = range(n)  # type: ignore[assignment]
    exact = S.BruteForceIndex(matrix)
    picks = rng.integers(0, n, 130)
    queries = [np.asarray(vectors[i], np.float32) + 0.05 * rng.standard_normal(DIM).astype(np.float32) for i in picks]
    exact.search(queries[0], k=10)  # page the matrix in
    result["brute_query_ms"] = round(median_ms(lambda q: exact.search(q, k=10), queries[:30]), 2)
    result["brute_rss_mb"] = round(rss_mb() - before, 1)
    # Floor: one float32 BLAS matrix-vector product over an in-memory copy.
    if n <= 1_000_000:
        dense = np.asarray(vectors, np.float32)
        result["floor_matvec_ms"] = round(median_ms(lambda q: dense @ q, queries[:30]), 2)
        result["brute_over_floor"] = round(result["brute_query_ms"] / max(result["floor_matvec_ms"], 1e-6), 2)
        del dense
    truth = [{i for i, _ in exact.search(q, k=10)} for q in queries[30:130]]
    if args.ann and n >= args.ann_min and n <= args.ann_max and S.usearch_available():
        before_ann = rss_mb()
        started = time.perf_counter()
        index = S.ANNIndex.build(S.EmbeddingMatrix(list(range(n)), vectors), threads=args.threads,  # type: ignore[arg-type]
                                 connectivity=args.connectivity, expansion_add=args.expansion_add,
                                 expansion_search=args.expansion_search)
        result["ann_params"] = {"M": args.connectivity, "ef_add": args.expansion_add, "ef_search": args.expansion_search}
        result["ann_build_s"] = round(time.perf_counter() - started, 1)
        result["ann_rss_mb"] = round(rss_mb() - before_ann, 1)
        result["ann_memory_mb"] = round(index.index.memory_usage / 2**20, 1)
        result["ann_query_ms"] = round(median_ms(lambda q: index.search(q, k=10), queries[:30]), 3)
        result["ann_recall_at_10"] = round(recall_at_10(truth, index, queries[30:130]), 3)
        # The same index searched wider (ef_search), no rebuild.
        for ef in [int(v) for v in args.ef_search_sweep.split(",") if v.strip()]:
            index.index.expansion_search = ef
            result[f"ef{ef}"] = {"query_ms": round(median_ms(lambda q: index.search(q, k=10), queries[:30]), 3),
                                 "recall_at_10": round(recall_at_10(truth, index, queries[30:130]), 3)}
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--threads", type=int, default=1, help="usearch build threads")
    parser.add_argument("--no-ann", dest="ann", action="store_false")
    parser.add_argument("--ann-min", type=int, default=1000)
    parser.add_argument("--ann-max", type=int, default=1_000_000, help="largest N an index is built for")
    parser.add_argument("--connectivity", type=int, default=16, help="HNSW M")
    parser.add_argument("--expansion-add", type=int, default=128, help="HNSW ef_construction")
    parser.add_argument("--expansion-search", type=int, default=64, help="HNSW ef_search")
    parser.add_argument("--ef-search-sweep", default="", help="also search the built index with these ef_search values")
    parser.add_argument("--tmp", default=None, help="folder for the temporary matrices")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args)), flush=True)
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--threads", str(args.threads), "--ann-min", str(args.ann_min),
               "--ann-max", str(args.ann_max), "--connectivity", str(args.connectivity),
               "--expansion-add", str(args.expansion_add), "--expansion-search", str(args.expansion_search),
               "--ef-search-sweep", args.ef_search_sweep] + ([] if args.ann else ["--no-ann"]) + (["--tmp", args.tmp] if args.tmp else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print("| tracks | matrix MB | brute force ms | floor ms | ratio | brute RSS MB | HNSW build s | HNSW ms | HNSW MB | recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n']:,} | {r['matrix_mb']} | {r['brute_query_ms']} | {r.get('floor_matvec_ms', '')} | "
              f"{r.get('brute_over_floor', '')} | {r['brute_rss_mb']} | {r.get('ann_build_s', '')} | "
              f"{r.get('ann_query_ms', '')} | {r.get('ann_memory_mb', '')} | {r.get('ann_recall_at_10', '')} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
