"""The sample-level CNN on raw waveforms (the samplecnn paper) and the
supportive loss of playlist-based tag propagation.

Model: Lee, Park, Kim and Nam, "Sample-level deep convolutional neural
networks for music auto-tagging using raw waveforms" (SMC 2017), their
3^9 model, which the samplecnn paper (Lin, Chung and Chen, section IV-A) adopts:
11 convolution layers, about 1.9 million parameters with 50 tags::

    (batch, 59049) raw audio at 22,050 Hz (2.68 s)
    conv 3, stride 3, 128 channels, BN, ReLU           -> 19683 steps
    9 x [conv 3 (padding 1), BN, ReLU, max pool 3]      -> 1 step
        widths 128 128 256 256 256 256 256 256 512
    conv 1, 512 channels, BN, ReLU, dropout 0.5         (the embedding, 512)
    dense -> n_labels, sigmoid

Loss (the samplecnn paper, eq. 3 and 4): binary cross-entropy on the song's own tags
plus a supportive binary cross-entropy whose targets are the tags of a song
s' drawn by the playlist walk (:mod:`trainer.propagation`), weighted per
song. The weight is 0 when s' = s, so with r = 0 (or a song in no playlist)
the loss is exactly the plain binary cross-entropy.

Deviations and choices (docs/models/samplecnn.md): widths configurable (a
narrower model for CPU training); an input longer than 3^(blocks + 1)
samples ends in a global max over the steps left; the supportive term is
averaged over tags and songs like the main term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import as_trained, check_input, config_from_dict, config_to_dict, frozen_tuple

FAMILY = "samplecnn"
INPUT = "audio"  # raw waveform patches (the "waveform" feature)
OUTPUTS = ("scores", "embedding")
#: Patches per forward pass at inference on a CPU (the activations of one
#: 59,049-sample patch at full width are ~10 MB per layer).
INFERENCE_CHUNK = 8


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; defaults are Lee et al.'s 3^9 model.

    Attributes
    ----------
    input_samples : int
        Samples in one model input; at least ``3 ** (len(channels))``
        (59,049 = 3^10 for the first strided convolution and 9 blocks).
    channels : tuple of int
        Width of the strided first convolution, then of each block.
    embedding : int
        Width of the final 1x1 convolution (the embedding).
    n_labels : int
    dropout : float
    """

    input_samples: int = 59049
    channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
    embedding: int = 512
    n_labels: int = 50
    dropout: float = 0.5

    def __post_init__(self):
        frozen_tuple(self, "channels", int)
        if len(self.channels) < 2:
            raise ValueError("channels: the strided convolution and at least one block")
        if self.input_samples < 3 ** len(self.channels):
            raise ValueError(f"input_samples must be at least 3^{len(self.channels)} = {3 ** len(self.channels)} "
                             f"for {len(self.channels) - 1} blocks, not {self.input_samples}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class Model(nn.Module):
    """The sample-level CNN. ``forward``: (batch, samples) -> logits
    (batch, n_labels); :meth:`embed`: (batch, samples) -> (batch, embedding)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        first, *widths = config.channels
        self.stem = nn.Sequential(nn.Conv1d(1, first, 3, stride=3), nn.BatchNorm1d(first), nn.ReLU())
        blocks, c_in = [], first
        for c_out in widths:
            blocks.append(nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1), nn.BatchNorm1d(c_out), nn.ReLU(),
                                        nn.MaxPool1d(3)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv1d(c_in, config.embedding, 1), nn.BatchNorm1d(config.embedding), nn.ReLU())
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(config.embedding, config.n_labels)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(audio.unsqueeze(1)))
        return self.head(x).amax(dim=2)  # one step left for 3^10 samples; else a global max

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.dense(self.dropout(self.embed(audio)))


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def loss(logits: torch.Tensor, targets: torch.Tensor, propagated: torch.Tensor | None = None,
         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Equation 3 of the samplecnn paper, as means.

    ``mean_s mean_t BCE(f(x_s)_t, y_{s,t}) + mean_s w_s mean_t BCE(f(x_s)_t, y_{s',t})``

    logits, targets, propagated: (batch, n_labels); weights: (batch,), the
    weight of each song's supportive term (P(s'|s) of eq. 4, or 1; 0 where
    s' = s). Without ``propagated`` it is plain binary cross-entropy; with
    all weights 0 it is exactly the same number.
    """
    main = F.binary_cross_entropy_with_logits(logits, targets.float())
    if propagated is None:
        return main
    if weights is None:
        raise ValueError("propagated targets need their weights")
    per_song = F.binary_cross_entropy_with_logits(logits, propagated.float(), reduction="none").mean(dim=1)
    return main + (weights.to(per_song.dtype) * per_song).mean()


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: (input_samples,) of raw audio."""
    return (config.input_samples,)


@torch.inference_mode()
def predict(model: Model, audio: torch.Tensor) -> torch.Tensor:
    """Tag probabilities (batch, n_labels) of (batch, samples) raw audio
    patches; the analysis pass averages a track's patches."""
    check_input(audio, input_shape(model.config), what=FAMILY)
    model.eval()
    return torch.sigmoid(model(audio))


@torch.inference_mode()
def predict_with_embedding(model: Model, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (batch, n_labels) and embeddings (batch, embedding) of
    one forward pass."""
    check_input(audio, input_shape(model.config), what=FAMILY)
    model.eval()
    embedding = model.embed(audio)
    return torch.sigmoid(model.dense(embedding)), embedding


@torch.inference_mode()
def embed(model: Model, audio: torch.Tensor) -> torch.Tensor:
    """Embeddings (batch, embedding) of (batch, samples) raw audio patches."""
    check_input(audio, input_shape(model.config), what=FAMILY)
    model.eval()
    return model.embed(audio)


prepare_for_inference = as_trained
