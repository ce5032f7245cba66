#!/usr/bin/env python
"""Do genre decisions survive a change of codec?

Each clip (``--gtzan`` clips of gtzan_mini, two per genre folder in name
order, and ``--mood`` clips of mood_4q, spread evenly over its sorted list)
is decoded once and encoded with PyAV into mp3 (LAME), flac, m4a (AAC) and
opus in ``--workdir``; the analysis pass (:class:`tagcore.analysis.Analysis`)
then runs the genre bundle (default ``genre-musicnn``, with its musicnn
sources) over every file, and the plugin's rule
(:func:`beetsplug.autotagml.fields.choose_genres` with the bundle's
threshold and count, and ``--min-count``) decides the genres written.

It prints, and writes as JSON with ``--json``: the share of clips whose
written genres are the same in every format (as ordered lists; as sets;
the first genre only), the clips left without a genre, and the largest difference of a musicnn-msd tag probability between
two formats of one clip (median and maximum over clips).

Run from the repository root::

    python benchmarks/bench_codecs.py --data ../shared/datasets --json codecs.json
    python benchmarks/bench_codecs.py --rescore codecs.json --min-count 0   # another rule, no decoding
    python benchmarks/bench_codecs.py --resampling --gtzan 10 --mood 10    # resampling alone

Keep module-level imports to the standard library: decoding workers are
started with 'spawn' and import this file again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import REPO  # noqa: F401 (puts the checkout first on sys.path)

#: format -> (PyAV muxer, encoder, file suffix, sample rates the encoder takes or None: any).
FORMATS = {
    "mp3": ("mp3", "libmp3lame", ".mp3", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "flac": ("flac", "flac", ".flac", None),
    "m4a": ("mp4", "aac", ".m4a", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "opus": ("ogg", "libopus", ".opus", (8000, 12000, 16000, 24000, 48000)),
}
#: Bit rate of the lossy encoders, bits per second.
BIT_RATE = 128_000


def decode_mono(path) -> tuple:
    """(float32 mono samples, sample rate) of a whole file, read with PyAV."""
    import av
    import numpy as np

    chunks, rate = [], None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        for frame in container.decode(stream):
            rate = frame.sample_rate
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32), rate


def encode(samples, rate: int, path, fmt: str, *, timestamps: bool = True) -> Path:
    """Write mono float32 ``samples`` at ``rate`` Hz as ``fmt`` (a key of
    :data:`FORMATS`) to ``path`` (its suffix is replaced). Opus is written at
    48 kHz when ``rate`` is not an Opus rate (PyAV resamples). Raises
    ``av.codec.codec.UnknownCodecError`` when this FFmpeg lacks the encoder.
    ``timestamps`` False feeds the encoder frames without timestamps: the
    M4A then carries no edit list and decodes with the AAC encoder's 1,024
    priming samples in front (as files of encoders that do not signal
    their delay do)."""
    import av
    import numpy as np

    muxer, codec, suffix, rates = FORMATS[fmt]
    av.codec.Codec(codec, "w")  # raises when the encoder is missing
    path = Path(path).with_suffix(suffix)
    out_rate = rate if rates is None or rate in rates else 48000
    with av.open(str(path), mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        if fmt != "flac":
            stream.bit_rate = BIT_RATE
        fmt_name = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt_name, layout="mono", rate=out_rate)
        written = 0

        def put(piece) -> None:
            # Timestamps from 0: the encoder then marks its priming samples
            # (AAC's 1,024) for the muxer, which writes them into an edit list
            # as players expect; without them the decoded audio starts late.
            nonlocal written
            piece.pts = written if timestamps else None
            written += piece.samples
            container.mux(stream.encode(piece))

        step = 4096
        for start in range(0, samples.size, step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, start:start + step]),
                                               format="flt", layout="mono")
            frame.sample_rate = rate
            for piece in resampler.resample(frame):
                put(piece)
        for piece in resampler.resample(None):
            put(piece)
        container.mux(stream.encode(None))
    return path


def pick_clips(data: Path, *, gtzan: int, mood: int) -> list[Path]:
    """Two gtzan_mini clips per genre folder (name order) up to ``gtzan``,
    and ``mood`` mood_4q clips spread evenly over its sorted list."""
    clips: list[Path] = []
    folders = sorted(p for p in (data / "gtzan_mini").glob("*") if p.is_dir())
    per_folder = [sorted(f.glob("*.flac"))[:2] for f in folders]
    clips += [c for pair in per_folder for c in pair][:gtzan]
    every = sorted((data / "mood_4q").glob("Q*/*.opus"))
    if mood and every:
        clips += [every[round(i * (len(every) - 1) / max(mood - 1, 1))] for i in range(mood)]
    return clips


def encode_all(clips: list[Path], workdir: Path, formats: list[str], *, timestamps: bool = True
               ) -> dict[str, dict[str, Path]]:
    """clip name -> format -> encoded file (encoded once, reused from ``workdir``)."""
    out: dict[str, dict[str, Path]] = {}
    for clip in clips:
        name = f"{clip.parent.name}-{clip.stem}".replace(".", "_")
        samples = rate = None
        out[name] = {}
        for fmt in formats:
            target = (workdir / name).with_suffix(FORMATS[fmt][2])
            if not target.exists():
                if samples is None:
                    samples, rate = decode_mono(clip)
                encode(samples, rate, workdir / name, fmt, timestamps=timestamps)
            out[name][fmt] = target
    return out


def summarise(decided: dict[str, dict[str, list[str]]], msd: dict[str, dict[str, list[float]]]) -> dict:
    """The figures: agreement over formats, clips without a genre, score spread."""
    import numpy as np

    agree = [name for name, per in decided.items() if len({tuple(g) for g in per.values()}) == 1]
    same_set = [name for name, per in decided.items() if len({frozenset(g) for g in per.values()}) == 1]
    none = sorted({f"{name} ({fmt})" for name, per in decided.items() for fmt, g in per.items() if not g})
    spread = [float(np.max(np.ptp(np.array(list(per.values())), axis=0))) for per in msd.values()]
    return {
        "clips": len(decided),
        "agree": len(agree),
        "agree_share": round(len(agree) / max(len(decided), 1), 3),
        "same_set_share": round(len(same_set) / max(len(decided), 1), 3),
        "same_first_share": round(sum(len({tuple(g[:1]) for g in per.values()}) == 1 for per in decided.values())
                                  / max(len(decided), 1), 3),
        "without_genre": none,
        "msd_max_diff_median": round(float(np.median(spread)), 4) if spread else None,
        "msd_max_diff_max": round(float(np.max(spread)), 4) if spread else None,
        "disagreeing": {name: per for name, per in decided.items() if name not in agree},
    }


def run(args) -> dict:
    from tagcore.analysis import Analysis
    from tagcore.bundle import read_config

    data = Path(args.data)
    clips = pick_clips(data, gtzan=args.gtzan, mood=args.mood)
    if not clips:
        raise SystemExit(f"no clips under {data}")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    files = encode_all(clips, workdir, formats, timestamps=not args.no_timestamps)
    decision = read_config(args.bundle)[1].get("decision") or {}
    threshold = float(decision.get("threshold", 0.5)) if args.threshold is None else args.threshold
    count = int(decision.get("count", 2))
    order = [(name, fmt, path) for name, per in files.items() for fmt, path in per.items()]
    analysis = Analysis([args.bundle, "musicnn-msd"], workers=args.workers, batch_size=8)
    genre: dict[str, dict[str, dict[str, float]]] = {}
    msd: dict[str, dict[str, list[float]]] = {}
    for result in analysis.analyse([path for _, _, path in order]):
        name, fmt, _ = order[result.index]
        output = result.outputs[args.bundle]
        if not output.ok:
            print(f"{name} ({fmt}): {output.status} {output.message}", file=sys.stderr)
            continue
        genre.setdefault(name, {})[fmt] = output.scores
        scores = result.outputs["musicnn-msd"].scores
        msd.setdefault(name, {})[fmt] = [scores[k] for k in sorted(scores)]
    complete = {name: per for name, per in genre.items() if len(per) == len(formats)}
    figures = decide_all(complete, {n: msd[n] for n in complete}, threshold=threshold, count=count,
                         min_count=args.min_count)
    figures.update(bundle=args.bundle, formats=formats, scores=complete, msd=msd)
    return figures


def decide_all(scores: dict, msd: dict, *, threshold: float, count: int, min_count: int) -> dict:
    """The figures of :func:`summarise` for the genre ``scores`` (clip ->
    format -> label scores) decided at ``min_count`` (and the agreement at 0)."""
    from beetsplug.autotagml.fields import choose_genres

    def decide(least: int) -> dict[str, dict[str, list[str]]]:
        return {name: {fmt: choose_genres(s, threshold=threshold, count=count, min_count=least)
                       for fmt, s in per.items()} for name, per in scores.items()}

    figures = summarise(decide(min_count), msd)
    figures["agree_share_min_count_0"] = summarise(decide(0), {})["agree_share"]
    figures.update(threshold=threshold, count=count, min_count=min_count)
    return figures


def resampling(args) -> dict:
    """How much resampling alone moves musicnn-msd's tag probabilities:
    each clip as a lossless WAV at its own rate and at 44.1 and 48 kHz
    (soxr "VHQ"), the largest difference of a tag probability to the
    clip at its own rate (median and maximum over clips and rates)."""
    import numpy as np
    import soundfile as sf
    import soxr

    from tagcore.analysis import Analysis

    workdir = Path(args.workdir) / "resampling"
    workdir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for clip in pick_clips(Path(args.data), gtzan=args.gtzan, mood=args.mood):
        samples, rate = decode_mono(clip)
        name = f"{clip.parent.name}-{clip.stem}".replace(".", "_")
        own = workdir / f"{name}-{rate}.wav"
        sf.write(own, samples, rate)
        for other in (44100, 48000):
            if other != rate:
                path = workdir / f"{name}-{other}.wav"
                sf.write(path, soxr.resample(samples, rate, other, quality="VHQ"), other)
                pairs.append((own, path))
    files = sorted({str(p) for pair in pairs for p in pair})
    out = {r.path: r.outputs["musicnn-msd"].scores
           for r in Analysis(["musicnn-msd"], workers=args.workers).analyse(files)}
    diffs = [max(abs(out[str(a)][k] - out[str(b)][k]) for k in out[str(a)]) for a, b in pairs]
    return {"pairs": len(diffs), "msd_max_diff_median": round(float(np.median(diffs)), 5),
            "msd_max_diff_max": round(float(np.max(diffs)), 5)}


def rescore(path: str, *, min_count: int) -> dict:
    """The figures again from the scores a ``--json`` file of this script
    holds (its threshold and count), at ``min_count``: no decoding."""
    saved = json.loads(Path(path).read_text())
    return decide_all(saved["scores"], saved.get("msd", {}), threshold=saved["threshold"], count=saved["count"],
                      min_count=min_count)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/datasets", help="folder holding gtzan_mini and mood_4q")
    parser.add_argument("--gtzan", type=int, default=20, help="gtzan_mini clips (two per genre folder)")
    parser.add_argument("--mood", type=int, default=20, help="mood_4q clips")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--bundle", default="genre-musicnn")
    parser.add_argument("--threshold", type=float, default=None, help="default: the bundle's decision")
    parser.add_argument("--min-count", type=int, default=1, help="the plugin's min_count (1 for genres)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/autotagml-codecs", help="where the encoded files go")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--no-timestamps", action="store_true",
                        help="encode without timestamps (M4A without its edit list; use another --workdir)")
    parser.add_argument("--rescore", metavar="JSON", help="decide again from the scores of an earlier --json")
    parser.add_argument("--resampling", action="store_true",
                        help="measure resampling alone instead (lossless copies at 44.1 and 48 kHz)")
    args = parser.parse_args(argv)
    if args.resampling:
        figures = resampling(args)
    else:
        figures = rescore(args.rescore, min_count=args.min_count) if args.rescore else run(args)
    text = json.dumps(figures, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    shown = {k: v for k, v in figures.items() if k not in ("scores", "msd")}
    print(json.dumps(shown, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
