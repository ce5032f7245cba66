"""``python -m trainer onnx BUNDLE...``: add an ONNX export to audio bundles.

For each bundle: its model (as the analysis pass runs it, batch norms
folded) is exported with ``torch.onnx.export`` to ``model.onnx`` (input
``patches``, (batch, frames, n_mels); outputs ``probabilities`` and
``embedding``, the family's ``predict_with_embedding``), run by ONNX
Runtime on random and on constant patches, and kept only when both
outputs agree with torch's within ``--tolerance``; ``config.json`` then
records it (:mod:`tagcore.onnx_runtime`). Needs the ``onnx`` extra
(``onnx`` and ``onnxruntime``).

Example::

    python -m trainer onnx tagcore/bundles/musicnn-msd tagcore/bundles/musicnn-mtt
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tagcore.bundle import CONFIG_FILE, WEIGHTS_FILE, BundleError, load_bundle
from tagcore.onnx_runtime import ONNX_FILE, file_sha256

#: Families whose models export: those with ``forward_with_embedding``.
EXPORTABLE = ("musicnn",)
OPSET = 17


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundles", nargs="+", help="bundle directories (or installed bundle names)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest absolute difference allowed between torch and ONNX Runtime (default 1e-4)")


def export_inputs(frames: int, n_mels: int, *, seed: int = 0) -> list[np.ndarray]:
    """The patches the check runs: random log-mels (batch 3) and constant
    ones (batch 1, silence-like), float32 (batch, frames, n_mels)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.0, (3, frames, n_mels)).astype(np.float32),
            np.full((1, frames, n_mels), -1.0, dtype=np.float32)]


def _wrapper(bundle):
    import torch

    family = bundle.family_module
    predict = getattr(family.predict_with_embedding, "__wrapped__", family.predict_with_embedding)

    class Export(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = bundle.model

        def forward(self, patches):
            return predict(self.model, patches)

    return Export().eval()


def export_bundle(path, *, tolerance: float = 1e-4) -> dict:
    """Export one bundle (see the module docstring); returns the entry
    written into its config.json. Raises BundleError when the family does
    not export or the outputs disagree."""
    import onnxruntime
    import torch

    bundle = load_bundle(path)
    if bundle.family not in EXPORTABLE or bundle.input_kind != "audio":
        raise BundleError(f"{bundle.path}: family {bundle.family} has no ONNX export (only {', '.join(EXPORTABLE)})")
    frames, n_mels = bundle.features.patch_frames, bundle.features.n_mels
    target = bundle.path / ONNX_FILE
    inputs = export_inputs(frames, n_mels)
    with tempfile.TemporaryDirectory(dir=bundle.path) as tmp:
        partial = Path(tmp) / ONNX_FILE
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks it keeps as constants
            torch.onnx.export(_wrapper(bundle), (torch.from_numpy(inputs[0]),), str(partial), dynamo=False,
                              input_names=["patches"], output_names=["probabilities", "embedding"],
                              dynamic_axes={"patches": {0: "batch"}, "probabilities": {0: "batch"},
                                            "embedding": {0: "batch"}}, opset_version=OPSET)
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        worst = 0.0
        for x in inputs:
            expected = bundle.family_module.predict_with_embedding(bundle.model, torch.from_numpy(x))
            got = session.run(None, {"patches": x})
            worst = max(worst, *(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected)))
        if not worst <= tolerance:
            raise BundleError(f"{bundle.path}: ONNX Runtime differs from torch by {worst:.3g} (> {tolerance:g})")
        os.replace(partial, target)
    entry = {"file": ONNX_FILE, "weights_sha256": file_sha256(bundle.path / WEIGHTS_FILE), "frames": frames,
             "max_abs_diff": float(f"{worst:.3g}"), "opset": OPSET,
             "exported_with": f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}",
             "command": "python -m trainer onnx " + bundle.path.name}
    _write_config(bundle.path, {**bundle.config, "onnx": entry})
    return entry


def _write_config(directory: Path, config: dict) -> None:
    """config.json replaced atomically (a temporary sibling, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".json")
    os.chmod(tmp, (directory / CONFIG_FILE).stat().st_mode & 0o777)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(tmp, directory / CONFIG_FILE)


def run(args: argparse.Namespace) -> int:
    status = 0
    for path in args.bundles:
        try:
            entry = export_bundle(path, tolerance=args.tolerance)
        except BundleError as error:
            print(f"error: {error}")
            status = 1
            continue
        print(f"{path}: {entry['file']} (largest difference from torch {entry['max_abs_diff']:g})")
    return status
