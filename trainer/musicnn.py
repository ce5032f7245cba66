"""Convert musicnn's pre-trained TensorFlow checkpoints into tagcore bundles.

``python -m trainer musicnn PATH [--out DIR] [--patches P]``

PATH is the ``musicnn-0.1.0-py3-none-any.whl`` file (``pip download
musicnn==0.1.0 --no-deps``) or a folder holding ``MSD_musicnn/`` and
``MTT_musicnn/`` (the wheel unpacked, or its ``musicnn/`` folder). The TF1
checkpoints are read with :mod:`trainer.tfcheckpoint` (no TensorFlow) and
written as the bundles ``musicnn-msd`` and ``musicnn-mtt`` into DIR
(default: the package's ``tagcore/bundles/``). The weight mapping is in
:data:`TF_LAYERS` and docs/models/musicnn.md.
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from tagcore.bundle import default_bundle_dir, save_bundle
from tagcore.families import musicnn
from tagcore.features import MelParams, feature_spec
from trainer.tfcheckpoint import CheckpointError, read_checkpoint
from trainer.datasets import DatasetError

PACKAGE = "musicnn"
PACKAGE_VERSION = "0.1.0"
LICENCE = "ISC"
# The notice of the package (musicnn-0.1.0.dist-info/LICENSE.md), used when
# the given folder does not carry it.
LICENCE_TEXT = (
    "Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019. "
    "Code developed by Jordi Pons (www.jordipons.me).\n\n"
    "Permission to use, copy, modify, and/or distribute this software for any purpose with or "
    "without fee is hereby granted, provided that the above copyright notice and this permission "
    "notice appear in all copies.\n\n"
    'THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS '
    "SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE "
    "AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES "
    "WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, "
    "NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE "
    "OF THIS SOFTWARE.\n"
)
CITATION = (
    "Jordi Pons and Xavier Serra. musicnn: pre-trained convolutional neural networks for music "
    "audio tagging. Late-breaking/demo session, 20th International Society for Music Information "
    "Retrieval Conference (ISMIR 2019), Delft. arXiv:1909.06654."
)
HOMEPAGE = "https://github.com/jordipons/musicnn"

# musicnn/configuration.py: output order of the two models.
MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip
MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
]  # fmt: skip

# (checkpoint folder, bundle name, labels, training data)
MODELS = (
    ("MSD_musicnn", "musicnn-msd", MSD_LABELS, "Million Song Dataset (last.fm top-50 tags)"),
    ("MTT_musicnn", "musicnn-mtt", MTT_LABELS, "MagnaTagATune (top-50 tags)"),
)

# TF variable scopes, in the order models.py creates the layers, and the
# torch module each maps to: (tf conv, tf batch norm, torch conv, torch norm).
TF_LAYERS = (
    (None, "batch_normalization", None, "input_norm"),
    ("conv2d", "batch_normalization_1", "timbral_convs.0", "timbral_norms.0"),  # 7 x 38
    ("conv2d_1", "batch_normalization_2", "timbral_convs.1", "timbral_norms.1"),  # 7 x 67
    ("conv2d_2", "batch_normalization_3", "temporal_convs.0", "temporal_norms.0"),  # 128 x 1
    ("conv2d_3", "batch_normalization_4", "temporal_convs.1", "temporal_norms.1"),  # 64 x 1
    ("conv2d_4", "batch_normalization_5", "temporal_convs.2", "temporal_norms.2"),  # 32 x 1
    ("conv2d_5", "batch_normalization_6", "midend_convs.0", "midend_norms.0"),  # 7 x 561
    ("conv2d_6", "batch_normalization_7", "midend_convs.1", "midend_norms.1"),  # 7 x 64
    ("conv2d_7", "batch_normalization_8", "midend_convs.2", "midend_norms.2"),  # 7 x 64
    (None, "batch_normalization_9", None, "pool_norm"),  # 1506
    ("dense", "batch_normalization_10", "dense", "dense_norm"),  # 1506 -> 200
    ("dense_1", None, "output", None),  # 200 -> 50
)
BN_FIELDS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var"))


#: 3 s patches per track, chosen from the measured quality and speed curve
#: (docs/models/heads.md, benchmarks/bench_patches.py): 2 patches reach 4.5
#: tracks/s for both models and their heads on the 2-core machine, 5 only 2.2.
DEFAULT_PATCHES = 2
#: Bumped when what the bundles compute changes (version 1: 5 patches), so
#: that stores analyse again.
BUNDLE_VERSION = "2"

def musicnn_feature(*, patches: int = 5) -> MelParams:
    """musicnn's input as a tagcore feature: 16 kHz, 512-sample Hann
    windows (librosa ``center=True``, reflection padding), hop 256, 96 Slaney
    mel bands of the power spectrum, float16 rounding, ``log10(1 + 10000 x)``;
    ``patches`` non-overlapping 187-frame (3 s) patches from the track's centre."""
    return MelParams(
        sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, log_c=10000.0, log="log10",
        center=True, mel_float16=True, power=2.0, excerpt_frames=187 * patches, patch_frames=187,
    )  # fmt: skip


def torch_state_dict(tensors: dict[str, np.ndarray], *, config: musicnn.Config) -> dict[str, torch.Tensor]:
    """The :class:`tagcore.families.musicnn.Model` state dict from a musicnn
    checkpoint's variables (optimizer slots like ``.../Adam`` are ignored).

    TF conv2d kernels ``(time, freq, in, out)`` become ``(out, in, time,
    freq)`` (front end) or conv1d ``(out, channels, time)`` (mid end, whose
    TF "freq" axis holds the channels); dense kernels ``(in, out)`` are
    transposed. Raises ValueError when a variable is missing or misshapen.
    """
    model = musicnn.Model(config)
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}

    def take(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"checkpoint has no variable {name!r}")
        return np.asarray(tensors[name], dtype=np.float32)

    def put(key: str, value: np.ndarray) -> None:
        value = torch.from_numpy(np.ascontiguousarray(value))
        if tuple(value.shape) != tuple(state[key].shape):
            raise ValueError(f"{key}: checkpoint gives shape {tuple(value.shape)}, model needs {tuple(state[key].shape)}")
        out[key] = value

    for tf_conv, tf_norm, conv, norm in TF_LAYERS:
        if tf_conv is not None:
            kernel = take(f"{tf_conv}/kernel")
            if kernel.ndim == 2:  # dense (in, out)
                put(f"{conv}.weight", kernel.T)
            elif conv.startswith("midend"):  # (7, channels, 1, out) -> (out, channels, 7)
                put(f"{conv}.weight", kernel[:, :, 0, :].transpose(2, 1, 0))
            else:  # (time, freq, 1, out) -> (out, 1, time, freq)
                put(f"{conv}.weight", kernel.transpose(3, 2, 0, 1))
            put(f"{conv}.bias", take(f"{tf_conv}/bias"))
        if tf_norm is not None:
            for tf_field, field in BN_FIELDS:
                put(f"{norm}.{field}", take(f"{tf_norm}/{tf_field}"))
            out[f"{norm}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    missing = set(state) - set(out)
    if missing:
        raise ValueError(f"no checkpoint variable for {sorted(missing)}")
    return out


def _locate(path: Path, workdir: Path) -> tuple[Path, str]:
    """The folder holding MSD_musicnn/ and MTT_musicnn/ and the licence
    text; a wheel is extracted (only those files) into ``workdir``."""
    licence = LICENCE_TEXT
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as wheel:
                names = wheel.namelist()
                wanted = [n for n in names if any(f"/{m}/" in f"/{n}" for m, *_ in MODELS)]
                for name in wanted:
                    wheel.extract(name, workdir)
                notices = [n for n in names if n.endswith(".dist-info/LICENSE.md")]
                if notices:
                    licence = wheel.read(notices[0]).decode("utf-8")
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path}: not a readable wheel ({exc})") from None
        path = workdir
    elif not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    for candidate in (path, path / "musicnn"):
        if all((candidate / m).is_dir() for m, *_ in MODELS):
            for notice in sorted(candidate.parent.glob("musicnn-*.dist-info/LICENSE.md")):
                licence = notice.read_text(encoding="utf-8")
            return candidate, licence
    raise DatasetError(f"{path}: holds no {' and '.join(m + '/' for m, *_ in MODELS)} folders")


def import_musicnn(source: str | Path, *, out: str | Path | None = None, patches: int = 5) -> list[Path]:
    """Convert MSD_musicnn and MTT_musicnn from ``source`` (wheel or folder)
    into bundles under ``out``; returns the bundle directories."""
    out = Path(out) if out is not None else default_bundle_dir()
    config = musicnn.Config()
    feature = musicnn_feature(patches=patches)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, licence = _locate(Path(source), Path(tmp))
        for checkpoint, name, labels, data in MODELS:
            prefix = folder / checkpoint  # holds ".index", ".data-00000-of-00001": the prefix is "MSD_musicnn/"
            try:
                tensors = read_checkpoint(str(prefix), verify_data=True)
                state = torch_state_dict(tensors, config=config)
            except (CheckpointError, ValueError) as exc:
                raise DatasetError(f"{checkpoint}: {exc}") from None
            model = musicnn.Model(config)
            model.load_state_dict(state, strict=True)
            model.eval()
            provenance = {
                "package": PACKAGE,
                "package_version": PACKAGE_VERSION,
                "source": f"pip download {PACKAGE}=={PACKAGE_VERSION} --no-deps; {PACKAGE}/{checkpoint}/",
                "source_checkpoint": f"{checkpoint} (TensorFlow 1 checkpoint '.index' + '.data-00000-of-00001')",
                "homepage": HOMEPAGE,
                "training_data": data,
                "licence": LICENCE,
                "licence_text": licence,
                "citation": CITATION,
                "converted_with": "python -m trainer musicnn",
                "notes": "torch port of musicnn's build_musicnn; see docs/models/musicnn.md",
            }
            written.append(
                save_bundle(
                    out / name, model=model, family=musicnn.FAMILY, name=name, version=BUNDLE_VERSION,
                    labels=list(labels), model_config=config.to_dict(), task="tags",
                    input={"kind": "audio", "feature": feature_spec(feature)},
                    outputs=("scores", "embedding"), embedding_dim=config.dense_units,
                    provenance=provenance,
                )  # fmt: skip
            )
        (out / "MUSICNN-LICENSE").write_text(licence, encoding="utf-8")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="musicnn-0.1.0-py3-none-any.whl, or a folder with MSD_musicnn/ and MTT_musicnn/")
    parser.add_argument("--out", default=None, help="where the bundles go (default: tagcore/bundles/)")
    parser.add_argument("--patches", type=int, default=DEFAULT_PATCHES,
                        help=f"3 s patches per track the bundles read (default {DEFAULT_PATCHES})")


def run(args: argparse.Namespace) -> int:
    if args.patches < 1:
        raise DatasetError("--patches must be at least 1")
    for path in import_musicnn(args.path, out=args.out, patches=args.patches):
        print(f"wrote {path}")
    return 0
