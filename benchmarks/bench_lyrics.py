#!/usr/bin/env python
"""Speed of lyric genre inference (issue 11, point 8).

1. songs/s of each bundle's ``predict_texts`` on real lyrics (cleaning,
   language check, tokenizing, the model: the TF-IDF dot product of
   ``lyrics-tfidf``, the LSTM of ``lyrics-genius``), in batches as the
   analysis pass gives them (``--batch``), on the torch threads this CPU
   has (``--threads``), one bundle after the other in the same run, and
   each one's speed as a multiple of the last one's;
2. ``beet autotag-ml --source lyrics`` over a library of ``--items`` items
   (10,000) with lyrics and no decodable audio (each item's file is a tiny
   placeholder: the run must decode nothing), timed whole as a subprocess
   (beets start-up included) with the first bundle as the lyrics model:
   items/s against the floor of 200 items/s.
   The related-tags step that ``autotag-ml`` runs afterwards is on, as in
   the plugin's default config; ``--without-related`` turns it off.

Lyrics come from the Genius CSV (``--data``), cycled over the items; the
bundles are the shipped ``lyrics-tfidf`` (the default) and ``lyrics-genius``
(``--bundle``, comma-separated).

    python benchmarks/bench_lyrics.py --data ../shared/datasets/genius_lyrics/lyrics.csv.gz

Exit status: 0 floor met, 1 missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common import BenchError, beet_env, beet_executable, machine, run_measured

FLOOR_IPS = 200.0
HEAD_RE = re.compile(r"autotag-ml: (\d+) analysed \((\d+) decoded\), (\d+) from the store")


def load_texts(path: str, limit: int) -> list[str]:
    from trainer.datasets import genius

    return [record.text for record in genius.load(path)][:limit]


def inference_speed(bundle: str, texts: list[str], *, batch: int, threads: int) -> dict:
    """songs/s of ``bundle``'s ``predict_texts_checked`` over ``texts`` in
    batches, and the seconds its text preparation alone takes."""
    import torch

    from tagcore.bundle import load_bundle

    torch.set_num_threads(threads)
    loaded = load_bundle(bundle)
    model, family = loaded.model, loaded.family_module
    family.predict_texts(model, texts[:batch])  # warm-up
    started = time.perf_counter()
    skipped = 0
    for start in range(0, len(texts), batch):
        _, problems = family.predict_texts_checked(model, texts[start : start + batch])
        skipped += sum(p is not None for p in problems)
    seconds = time.perf_counter() - started
    prep_started = time.perf_counter()
    for start in range(0, len(texts), batch):
        prepare(family, model, texts[start : start + batch])
    prep = time.perf_counter() - prep_started
    return {"bundle": bundle, "family": family.FAMILY, "songs": len(texts), "batch": batch, "threads": threads,
            "seconds": seconds, "songs_per_s": len(texts) / seconds, "preparation_s": prep, "skipped": skipped}


def prepare(family, model, texts: list[str]) -> None:
    """The text preparation of a lyrics or ngram model alone (cleaning,
    language check, tokenizing, encoding)."""
    if family.FAMILY == "lyrics":
        family.prepare_texts(model.config, texts, vocabulary=family._vocabulary(model))
    else:
        family.read_texts(model.config, texts, known=family._tables(model)[0])


def lyrics_library(workdir: Path, texts: list[str], items: int, bundle: str, *, related: bool) -> Path:
    """A beets library of ``items`` items with lyrics whose files are tiny
    placeholders (not audio). Returns the config path."""
    from beets.library import Item, Library

    music = workdir / "music"
    music.mkdir(parents=True, exist_ok=True)
    for stale in ("library.db", "autotagml.sqlite", "autotagml.sqlite-wal", "autotagml.sqlite-shm"):
        (workdir / stale).unlink(missing_ok=True)
    lib = Library(str(workdir / "library.db"), str(music))
    with lib.transaction():
        for i in range(items):
            path = music / f"item{i:05d}.mp3"
            if not path.exists():
                path.write_bytes(b"placeholder, not audio\n")
            Item(path=os.fsencode(path), title=f"Song {i}", artist=f"Artist {i % 97}", format="MP3",
                 lyrics=texts[i % len(texts)]).add(lib)
    config = workdir / "config.yaml"
    config.write_text("\n".join([
        f"directory: {json.dumps(str(music))}", f"library: {json.dumps(str(workdir / 'library.db'))}",
        "plugins: autotagml", "autotagml:", "    auto: no", "    workers: 2", "    batch_size: 64",
        "    models:", "        genre: genre-musicnn", f"        lyrics_genre: {json.dumps(bundle)}",
        "    related:", f"        enabled: {'yes' if related else 'no'}", "",
    ]), encoding="utf-8")
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Genius lyrics.csv.gz")
    parser.add_argument("--bundle", default="lyrics-tfidf,lyrics-genius",
                        help="bundles to time, comma-separated; the first one runs in the beet command")
    parser.add_argument("--songs", type=int, default=2000, help="songs for the inference speed")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--without-related", action="store_true",
                        help="turn the related-tags step of autotag-ml off (on by default, as in the plugin's config)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    try:
        texts = load_texts(args.data, max(args.songs, 5000))
        print(f"machine: {machine()}")
        bundles = [b.strip() for b in args.bundle.split(",") if b.strip()]
        speeds = [inference_speed(b, texts[: args.songs], batch=args.batch, threads=args.threads) for b in bundles]
        for speed in speeds:
            print(f"inference {speed['bundle']}: {speed['songs']} songs in {speed['seconds']:.2f} s = "
                  f"{speed['songs_per_s']:.0f} songs/s, {speed['songs_per_s'] / speeds[-1]['songs_per_s']:.1f}x "
                  f"{speeds[-1]['bundle']} (batch {args.batch}, {args.threads} thread(s); cleaning+tokenizing "
                  f"{speed['preparation_s']:.2f} s; {speed['skipped']} skipped)", flush=True)
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-lyrics-"))
        config = lyrics_library(workdir, texts, args.items, bundles[0], related=not args.without_related)
        cmd = beet_executable() + ["-c", str(config), "autotag-ml", "-W", "--source", "lyrics"]
        result = run_measured(cmd, beet_env(workdir))
        match = HEAD_RE.search(result["stdout"])
        if result["returncode"] != 0 or match is None:
            raise BenchError(f"`{shlex.join(cmd)}` failed:\n{result['stdout'][-2000:]}{result['stderr'][-2000:]}")
        analysed, decoded, _ = map(int, match.groups())
        if decoded:
            raise BenchError(f"--source lyrics decoded {decoded} files")
        ips = args.items / result["wall_s"]
        summary = [line for line in result["stdout"].splitlines() if line.startswith(("autotag-ml", "  lyrics_genre ("))]
        print(f"beet autotag-ml --source lyrics: {args.items} items in {result['wall_s']:.1f} s = {ips:.0f} items/s "
              f"(floor {FLOOR_IPS:.0f}: {ips / FLOOR_IPS:.2f}x), peak RSS {result['peak_rss_mb']:.0f} MB")
        for line in summary:
            print(f"  {line.strip()}")
        if args.json:
            Path(args.json).write_text(json.dumps({"inference": speeds, "run": {
                "items": args.items, "wall_s": result["wall_s"], "items_per_s": ips, "floor": FLOOR_IPS,
                "analysed": analysed, "decoded": decoded, "peak_rss_mb": result["peak_rss_mb"],
                "summary": summary}}, indent=2))
        return 0 if ips >= FLOOR_IPS else 1
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
