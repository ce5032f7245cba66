"""Audio models run by ONNX Runtime instead of torch, where a bundle ships
an ONNX export of its weights.

An audio bundle may carry ``model.onnx`` beside ``weights.safetensors``:
the same model, exported by ``python -m trainer onnx BUNDLE`` and checked
there against torch. Its ``config.json`` then says so::

    "onnx": {"file": "model.onnx", "weights_sha256": "<sha256 of weights.safetensors>",
             "max_abs_diff": 1e-05}

On the CPU, ONNX Runtime runs musicnn's small forward passes faster than
torch (``benchmarks/bench_runtimes.py``). The analysis pass uses it when
the runtime is ``auto`` (the default) or ``onnx``, ``onnxruntime`` is
installed (the ``onnx`` extra) and the export matches the weights (the
recorded hash); otherwise torch runs the bundle as before. An ONNX file
is a protobuf graph, never a pickle.

Outputs: ``(probabilities (batch, n_labels), embedding (batch, dim))``, as
the family's ``predict_with_embedding`` gives them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
#: Runtimes the analysis pass accepts.
RUNTIMES = ("auto", "torch", "onnx")


def available() -> bool:
    """Whether ``onnxruntime`` can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class OnnxModel:
    """An ONNX Runtime session over a bundle's export; thread-safe (the
    analysis pass's model threads share it)."""

    session: Any = field(repr=False)
    frames: int | None  # the patch length it was exported for (None: any)

    def accepts(self, x_shape: tuple[int, ...]) -> bool:
        """Whether a (batch, frames, n_mels) input fits the export."""
        return self.frames is None or x_shape[1] == self.frames

    def predict_with_embedding(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (batch, n_labels) and embedding (batch, dim) for
        ``x`` (batch, frames, n_mels) float32."""
        probs, embedding = self.session.run(None, {"patches": np.ascontiguousarray(x, dtype=np.float32)})
        return probs, embedding


def onnx_model(bundle, *, threads: int = 1) -> tuple[OnnxModel | None, str]:
    """The bundle's ONNX export as an :class:`OnnxModel` with ``threads``
    intra-op threads, or ``(None, why not)``: no export, ``onnxruntime``
    missing, an export of other weights, or a file ONNX Runtime refuses."""
    entry = bundle.config.get("onnx")
    if not entry:
        return None, f"{bundle.name}: no ONNX export"
    if not available():
        return None, "onnxruntime is not installed (pip install 'beets-autotagml[onnx]')"
    path = bundle.path / str(entry.get("file", ONNX_FILE))
    if not path.is_file():
        return None, f"{bundle.name}: {path.name} is missing"
    from tagcore.bundle import WEIGHTS_FILE

    if file_sha256(bundle.path / WEIGHTS_FILE) != entry.get("weights_sha256"):
        return None, f"{bundle.name}: {path.name} was exported from other weights"
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        return None, f"{path}: ONNX Runtime cannot load it ({error})"
    frames = entry.get("frames")
    return OnnxModel(session=session, frames=int(frames) if frames else None), ""
