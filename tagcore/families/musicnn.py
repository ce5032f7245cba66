"""Family musicnn: the musically motivated CNN tagger of Pons and Serra.

Pons, Serra, "musicnn: pre-trained convolutional neural networks for music
audio tagging", ISMIR 2019 late-breaking demo; the architecture of Pons et
al., "End-to-end learning for music audio tagging at scale", ISMIR 2018.
A port of the ``musicnn==0.1.0`` package's ``build_musicnn`` (models.py) so
that its pre-trained MSD_musicnn and MTT_musicnn weights run in torch; the
weight mapping and every deviation are in docs/models/musicnn.md.

Input: ``(batch, frames, n_mels)`` = ``(patches, 187, 96)`` log-mel patches,
``log10(1 + 10000 * mel)`` at 16 kHz, 512-sample windows, hop 256 (3 s).

- input batch norm (one channel: a scalar affine);
- front end on the normalised input, all with ReLU then batch norm then
  max over frequency:

  * two *timbral* convolutions, 204 filters each, of 7 frames by
    ``int(0.4 * 96) = 38`` and ``int(0.7 * 96) = 67`` bands, on the input
    zero-padded by 3 frames each side in time (valid in frequency);
  * three *temporal* convolutions, 51 filters each, of 128, 64 and 32 frames
    by 1 band, TensorFlow ``same`` padding (zero padding of ``k - 1``
    frames, ``(k - 1) // 2`` before: 63/64, 31/32, 15/16);

  concatenated along channels: 204 + 204 + 3 * 51 = 561;
- mid end: three 7-frame 1-D convolutions of 64 filters (zero-padded by 3
  frames), each ReLU then batch norm; the second and third add their input
  (residual); front end and the three outputs are concatenated:
  561 + 3 * 64 = 753 channels;
- back end: max and mean over time, interleaved per channel as
  TensorFlow's ``concat([max, mean], axis=2)`` + ``flatten`` lays them out
  (``[max_0, mean_0, max_1, mean_1, ...]``, 1506 values), batch norm,
  dropout, dense 200 + ReLU, batch norm (the 200-unit *penultimate* layer,
  :func:`embed`), dropout, dense to the 50 tag logits; sigmoid.

Batch norm uses TensorFlow's epsilon 1e-3 (and momentum 0.99, torch's 0.01).
:func:`prepare_for_inference` returns an eval-only module with batch norms
folded where that is exact (same outputs, faster).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import check_input, config_from_dict, config_to_dict, frozen_tuple

FAMILY = "musicnn"
INPUT = "audio"
OUTPUTS = ("scores", "embedding")
#: Patches per forward pass in the analysis pass: small batches run faster
#: per patch on a CPU (cache) and bound memory (benchmarks/bench_patches.py).
INFERENCE_CHUNK = 2


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; defaults are musicnn 0.1.0's MSD/MTT_musicnn."""

    n_mels: int = 96
    n_labels: int = 50
    # Frames of one training input (3 s); the convolutions accept any length.
    patch_frames: int = 187
    timbral_frames: int = 7
    # Filter heights as fractions of n_mels: int(0.4 * 96) = 38, int(0.7 * 96) = 67.
    timbral_ratios: tuple[float, ...] = (0.4, 0.7)
    timbral_filters: int = 204  # int(1.6 * 128)
    temporal_frames: tuple[int, ...] = (128, 64, 32)
    temporal_filters: int = 51  # int(1.6 * 32)
    midend_filters: int = 64
    midend_frames: int = 7
    midend_layers: int = 3
    dense_units: int = 200
    dropout: float = 0.5
    bn_eps: float = 1e-3  # TensorFlow's default
    bn_momentum: float = 0.01  # torch convention for TF's 0.99

    def __post_init__(self):
        frozen_tuple(self, "timbral_ratios", float)
        frozen_tuple(self, "temporal_frames", int)
        if self.midend_layers < 1:
            raise ValueError("midend_layers must be at least 1")
        for width in self.timbral_widths:
            if not 1 <= width <= self.n_mels:
                raise ValueError(f"timbral filter width {width} does not fit {self.n_mels} mel bands")

    @property
    def timbral_widths(self) -> tuple[int, ...]:
        """Filter heights in mel bands, ``int(ratio * n_mels)`` as musicnn."""
        return tuple(int(r * self.n_mels) for r in self.timbral_ratios)

    @property
    def frontend_channels(self) -> int:
        """Width of the front end's output: 561 for the defaults."""
        return len(self.timbral_ratios) * self.timbral_filters + len(self.temporal_frames) * self.temporal_filters

    @property
    def midend_channels(self) -> int:
        """Width of the mid end's dense concatenation: 753 for the defaults."""
        return self.frontend_channels + self.midend_layers * self.midend_filters

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


def same_padding(kernel: int) -> tuple[int, int]:
    """TensorFlow's ``same`` padding for stride 1: ``(before, after)`` with
    ``before = (kernel - 1) // 2`` (the extra frame of an even kernel goes
    after). 128 -> (63, 64), 7 -> (3, 3)."""
    total = kernel - 1
    return total // 2, total - total // 2


def _pad_time(x: torch.Tensor, kernel: int, dim_from_end: int, value: float = 0.0) -> torch.Tensor:
    """Pad axis ``-dim_from_end`` of ``x`` as TF ``same`` for ``kernel``."""
    before, after = same_padding(kernel)
    pad = [0, 0] * (dim_from_end - 1) + [before, after]
    return F.pad(x, pad, value=value)


def _midend(front: torch.Tensor, convs, norms, frames: int) -> torch.Tensor:
    """(batch, 561, frames) -> (batch, 753, frames): the front end and the
    mid-end layers (ReLU then batch norm; the second and later residual),
    densely concatenated."""
    outputs = [front]
    x = front
    for i, (conv, norm) in enumerate(zip(convs, norms)):
        y = norm(F.relu(conv(_pad_time(x, frames, 1))))
        x = y if i == 0 else y + x
        outputs.append(x)
    return torch.cat(outputs, dim=1)


def _pool(mid: torch.Tensor) -> torch.Tensor:
    """(batch, C, frames) -> (batch, 2C): max and mean over time,
    interleaved per channel as TF's concat + flatten."""
    return torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)


class Model(nn.Module):
    """musicnn (models.py ``build_musicnn``), torch layout.

    ``forward`` takes ``(batch, frames, n_mels)`` log-mel patches and returns
    tag logits ``(batch, n_labels)``; :meth:`forward_with_embedding` also
    returns the penultimate layer ``(batch, dense_units)``.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        c = config
        bn = dict(eps=c.bn_eps, momentum=c.bn_momentum)
        self.input_norm = nn.BatchNorm2d(1, **bn)
        self.timbral_convs = nn.ModuleList(
            nn.Conv2d(1, c.timbral_filters, kernel_size=(c.timbral_frames, w)) for w in c.timbral_widths
        )
        self.timbral_norms = nn.ModuleList(nn.BatchNorm2d(c.timbral_filters, **bn) for _ in c.timbral_widths)
        self.temporal_convs = nn.ModuleList(
            nn.Conv2d(1, c.temporal_filters, kernel_size=(k, 1)) for k in c.temporal_frames
        )
        self.temporal_norms = nn.ModuleList(nn.BatchNorm2d(c.temporal_filters, **bn) for _ in c.temporal_frames)
        widths = [c.frontend_channels] + [c.midend_filters] * (c.midend_layers - 1)
        self.midend_convs = nn.ModuleList(nn.Conv1d(w, c.midend_filters, c.midend_frames) for w in widths)
        self.midend_norms = nn.ModuleList(nn.BatchNorm1d(c.midend_filters, **bn) for _ in widths)
        self.pool_norm = nn.BatchNorm1d(2 * c.midend_channels, **bn)
        self.dense = nn.Linear(2 * c.midend_channels, c.dense_units)
        self.dense_norm = nn.BatchNorm1d(c.dense_units, **bn)
        self.output = nn.Linear(c.dense_units, c.n_labels)
        self.dropout = nn.Dropout(c.dropout)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, n_mels) -> (batch, 561, frames)."""
        x = self.input_norm(x.unsqueeze(1))  # (batch, 1, frames, n_mels)
        padded = _pad_time(x, self.config.timbral_frames, 2)
        maps = []
        for conv, norm in zip(self.timbral_convs, self.timbral_norms):
            maps.append(norm(F.relu(conv(padded))).amax(dim=3))
        for conv, norm, k in zip(self.temporal_convs, self.temporal_norms, self.config.temporal_frames):
            maps.append(norm(F.relu(conv(_pad_time(x, k, 2)))).amax(dim=3))
        return torch.cat(maps, dim=1)

    def midend(self, front: torch.Tensor) -> torch.Tensor:
        """(batch, 561, frames) -> (batch, 753, frames): front end and the
        three mid-end layers, densely concatenated."""
        return _midend(front, self.midend_convs, self.midend_norms, self.config.midend_frames)

    def pool(self, mid: torch.Tensor) -> torch.Tensor:
        """(batch, C, frames) -> (batch, 2C): max and mean over time,
        interleaved per channel as TF's concat + flatten."""
        return _pool(mid)

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, n_labels) and penultimate layer (batch, dense_units)."""
        pooled = self.pool_norm(self.pool(self.midend(self.frontend(x))))
        embedding = self.dense_norm(F.relu(self.dense(self.dropout(pooled))))
        return self.output(self.dropout(embedding)), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, (batch, dense_units)."""
        return self.forward_with_embedding(x)[1]


def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the sigmoid outputs against 0/1 targets
    (batch, n_labels), mean over batch and labels (musicnn's training loss)."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: (frames, n_mels) log-mel; the convolutions take any length."""
    return (None, config.n_mels)


@torch.inference_mode()
def predict_with_embedding(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: sigmoid tag probabilities (batch, n_labels) in [0, 1]
    and the 200-unit penultimate layer (batch, dense_units).

    ``x``: (batch, frames, n_mels) log-mel patches, frames = 187 (3 s).
    """
    check_input(x, input_shape(model.config), what=FAMILY)
    model.eval()
    logits, embedding = model.forward_with_embedding(x)
    return torch.sigmoid(logits), embedding


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Sigmoid tag probabilities, shape (batch, n_labels), each in [0, 1];
    ``x`` is (batch, frames, n_mels)."""
    return predict_with_embedding(model, x)[0]


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The penultimate layer (dense 200, ReLU, batch norm), shape
    (batch, dense_units); ``x`` is (batch, frames, n_mels)."""
    return predict_with_embedding(model, x)[1]


# --- Inference: batch norms folded ----------------------------------------


def _bn_affine(norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``scale * x + shift`` (per channel)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


class InferenceModel(nn.Module):
    """Eval-only musicnn with batch norms folded (see
    :func:`prepare_for_inference`); same ``forward`` and
    :meth:`forward_with_embedding` as :class:`Model`, no dropout, no grads.
    """

    def __init__(self, model: Model):
        super().__init__()
        c = self.config = model.config
        with torch.no_grad():
            a, b = (t.item() for t in _bn_affine(model.input_norm))
            # Input batch norm x' = a x + b folded into every front-end
            # convolution: conv(a x + b) = a conv(x) + b sum(W). The zero
            # padding of x' is padding of x with -b / a.
            self.pad_value = -b / a if a != 0 else None
            self.input_norm = copy.deepcopy(model.input_norm) if a == 0 else None
            convs = list(model.timbral_convs) + list(model.temporal_convs)
            norms = list(model.timbral_norms) + list(model.temporal_norms)
            # Each batch norm after a ReLU commutes with the max over
            # frequency where its scale is positive, and turns it into a min
            # where it is negative; ReLU commutes with both. So: pool first,
            # then ReLU and the affine on the (batch, channels, frames)
            # result. A negative-scale channel's filter is negated, so that
            # one max gives -min of the original response for it.
            scales, shifts = zip(*(_bn_affine(n) for n in norms))
            self.front_convs = nn.ModuleList()
            for conv, scale in zip(convs, scales):
                sign = torch.where(scale < 0, -1.0, 1.0)
                folded = nn.Conv2d(1, conv.out_channels, conv.kernel_size)
                if a != 0:
                    folded.weight.copy_(conv.weight * a * sign[:, None, None, None])
                    folded.bias.copy_((conv.bias + b * conv.weight.sum(dim=(1, 2, 3))) * sign)
                else:
                    folded.weight.copy_(conv.weight * sign[:, None, None, None])
                    folded.bias.copy_(conv.bias * sign)
                self.front_convs.append(folded)
            self.register_buffer("front_sign", torch.where(torch.cat(scales) < 0, -1.0, 1.0)[None, :, None].clone())
            self.register_buffer("front_mul", torch.cat(scales)[None, :, None].clone())
            self.register_buffer("front_add", torch.cat(shifts)[None, :, None].clone())
            self.kernels = [c.timbral_frames] * len(c.timbral_ratios) + list(c.temporal_frames)
            self.n_timbral = len(c.timbral_ratios)
            self.midend_convs = copy.deepcopy(model.midend_convs)
            self.midend_norms = copy.deepcopy(model.midend_norms)
            # Back end: batch norm -> (dropout) -> dense folds into the dense.
            scale, shift = _bn_affine(model.pool_norm)
            self.dense = nn.Linear(model.dense.in_features, model.dense.out_features)
            self.dense.weight.copy_(model.dense.weight * scale[None, :])
            self.dense.bias.copy_(model.dense.bias + model.dense.weight @ shift)
            # The dense norm is the embedding itself: kept as an affine.
            scale, shift = _bn_affine(model.dense_norm)
            self.register_buffer("dense_mul", scale.clone())
            self.register_buffer("dense_add", shift.clone())
            self.output = copy.deepcopy(model.output)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        if self.input_norm is not None:
            x = self.input_norm(x)
        value = self.pad_value if self.pad_value is not None else 0.0
        padded = None
        maps = []
        for i, (conv, k) in enumerate(zip(self.front_convs, self.kernels)):
            if i < self.n_timbral:  # the timbral convolutions share one padding
                if padded is None:
                    padded = _pad_time(x, k, 2, value)
                maps.append(conv(padded).amax(dim=3))
            else:
                maps.append(conv(_pad_time(x, k, 2, value)).amax(dim=3))
        # max of the (sign-flipped) response, back to max or min, ReLU, affine.
        front = torch.cat(maps, dim=1).mul_(self.front_sign).clamp_(min=0)
        return torch.addcmul(self.front_add, front, self.front_mul)

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = _midend(self.frontend(x), self.midend_convs, self.midend_norms, self.config.midend_frames)
        pooled = _pool(mid)
        embedding = torch.addcmul(self.dense_add, F.relu(self.dense(pooled)), self.dense_mul)
        return self.output(embedding), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, (batch, dense_units)."""
        return self.forward_with_embedding(x)[1]

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("an InferenceModel is eval-only; train musicnn.Model instead")
        return super().train(False)


def prepare_for_inference(model: Model) -> InferenceModel:
    """An eval-only copy of ``model`` with its batch norms folded.

    Exact rewrites (outputs equal up to float rounding):

    - the input batch norm (a scalar affine) is folded into the five
      front-end convolutions; their zero padding becomes padding with
      ``-shift / scale`` of the raw input;
    - ReLU and each front-end batch norm commute with the max over
      frequency (a min for a channel with a negative scale, obtained as a
      max of the negated filter), so they run on the pooled (batch, 561,
      frames) maps instead of the full convolution outputs;
    - the back end's batch norm is folded into the dense layer after it.

    The mid-end batch norms (after ReLU, their output zero-padded and used
    as residual) and the penultimate one (the embedding) are kept.
    """
    if isinstance(model, InferenceModel):
        return model
    model.eval()
    return InferenceModel(model)
