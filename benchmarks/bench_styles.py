#!/usr/bin/env python
"""Speed of the review-styles model (the han paper, family ``han``).

1. Inference: ``--albums`` synthetic albums of ``--reviews`` reviews each
   (default 1,000 x 40), every review ``--words`` words drawn from the
   bundle's own vocabulary (Chinese words for the NetEase bundle) and
   joined as text, run through ``han.predict_albums`` (splitting,
   jieba/word tokenizing, encoding, the forward pass; the analysis pass
   also checks each text first, :func:`han.text_problem`, which tokenizes
   it once more). Reported in albums per second, whole and for the forward
   pass alone, against the floor of ``--floor`` albums/s (default 16.7: a
   10,000-album library in 10 minutes).
2. One training epoch on the NetEase playlists (``--data``, optional):
   the data prepared as ``python -m trainer han`` does (not timed), then
   one epoch of the + soft training HAN through the shared loop
   (``trainer.loop.fit``, batch ``--batch-size``), in seconds, evaluation
   on the validation split included.

    python benchmarks/bench_styles.py --data ../shared/datasets/netease_playlists/music_message.csv
    python benchmarks/bench_styles.py --albums 100 --reviews 10        # quick check

Threads: torch's default unless ``--threads``; the figures in
docs/benchmarks.md name what they used. On a shared machine the wall-clock
rate depends on the load: the CPU time of the process is reported beside
it (albums per CPU-second), with the load average. Exit status: 0 the inference floor
is met, 1 it is missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import common  # noqa: F401  (puts the checkout first on sys.path)
import numpy as np


def synthetic_albums(vocabulary: list[str], *, albums: int, reviews: int, words: int, seed: int = 0) -> list[str]:
    """Album texts: reviews of ``words`` vocabulary words (separated by
    nothing between CJK words, by spaces otherwise), one per paragraph."""
    from tagcore import text as T

    rng = np.random.default_rng(seed)
    pool = [w for w in vocabulary[2:] if w.strip()] or ["word"]
    out = []
    for _ in range(albums):
        texts = []
        for _ in range(reviews):
            chosen = [pool[i] for i in rng.integers(0, len(pool), size=words)]
            joiner = "" if T.script_of("".join(chosen)) == "cjk" else " "
            texts.append(joiner.join(chosen) + ("。" if joiner == "" else "."))
        out.append("\n\n".join(texts))
    return out


def bench_inference(bundle, args) -> dict:
    import torch

    from tagcore.families import han

    model = bundle.model
    texts = synthetic_albums(list(model.config.vocabulary), albums=args.albums, reviews=args.reviews, words=args.words)
    han.predict_albums(model, texts[:8])  # warm-up: jieba's dictionary, first forward
    started, cpu_started = time.perf_counter(), time.process_time()
    probs = han.predict_albums(model, texts)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    # The forward pass alone, on the same albums already encoded.
    vocabulary = han.vocabulary_of(model)
    c = model.config
    encoded = [han.encode_album(han.split_reviews(t, unit=c.review_unit), vocabulary, max_reviews=c.max_reviews,
                                max_words=c.max_words) for t in texts]
    started = time.perf_counter()
    for start in range(0, len(encoded), han.INFERENCE_BATCH):
        han.predict(model, han.collate_albums(encoded[start : start + han.INFERENCE_BATCH]))
    forward = time.perf_counter() - started
    return {"albums": len(texts), "reviews_per_album": args.reviews, "words_per_review": args.words,
            "review_unit": c.review_unit, "reviews_read_per_album": float(np.mean([e.shape[0] for e in encoded])),
            "seconds": total, "albums_per_s": len(texts) / total, "cpu_seconds": cpu,
            "albums_per_cpu_s": len(texts) / cpu, "forward_seconds": forward,
            "forward_albums_per_s": len(texts) / forward, "threads": torch.get_num_threads(),
            "output_shape": list(probs.shape)}


def bench_epoch(args) -> dict:
    import torch

    from tagcore.families import han
    from trainer import han as han_trainer
    from trainer.han.data import prepare
    from trainer.han.train import han_config, new_han, train_network

    parser = argparse.ArgumentParser()
    han_trainer.add_arguments(parser)
    options = parser.parse_args(["--data", args.data, "--run-dir", str(Path(args.workdir) / "epoch"),
                                 "--batch-size", str(args.batch_size), "--epochs", "1", "--device", "cpu"])
    prepared = prepare(options, log=lambda *a: None)
    model = new_han(prepared, han_config(prepared, options, "+soft training"), 0)
    result = train_network(prepared, model, han.model_loss(model), options, seed=0, name="bench epoch",
                           log=lambda *a: None)
    return {"train_albums": len(prepared.train), "validation_albums": len(prepared.val),
            "batch_size": args.batch_size, "epoch_seconds": result.history[0]["seconds"],
            "train_albums_per_s": result.history[0]["examples_per_s"], "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="style-netease", help="style bundle (name or directory)")
    parser.add_argument("--albums", type=int, default=1000)
    parser.add_argument("--reviews", type=int, default=40)
    parser.add_argument("--words", type=int, default=20, help="words per synthetic review")
    parser.add_argument("--floor", type=float, default=10_000 / 600, help="albums/s to meet")
    parser.add_argument("--data", help="NetEase playlist CSV for the training-epoch figure")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workdir", default="/tmp/bench-styles")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    try:
        import torch

        from tagcore.bundle import load_bundle

        if args.threads:
            torch.set_num_threads(args.threads)
        bundle = load_bundle(args.bundle)
        figures = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
                   "bundle": f"{bundle.name} {bundle.version}", "inference": bench_inference(bundle, args)}
        if args.data:
            figures["epoch"] = bench_epoch(args)
    except Exception as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    inf = figures["inference"]
    print(f"inference: {inf['albums']} albums x {inf['reviews_per_album']} reviews: {inf['albums_per_s']:.1f} albums/s "
          f"({inf['seconds']:.1f} s; {inf['albums_per_cpu_s']:.1f} albums per CPU-second; forward pass alone "
          f"{inf['forward_albums_per_s']:.1f} albums/s), load average {os.getloadavg()[0]:.1f}, "
          f"{inf['threads']} thread(s); floor {args.floor:.1f} albums/s: ratio {inf['albums_per_s'] / args.floor:.2f}")
    if "epoch" in figures:
        ep = figures["epoch"]
        print(f"training: one epoch over {ep['train_albums']} NetEase albums (batch {ep['batch_size']}, validation "
              f"{ep['validation_albums']} included): {ep['epoch_seconds']:.1f} s, {ep['threads']} thread(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    ok = inf["albums_per_s"] >= args.floor
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
