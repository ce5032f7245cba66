"""Audio genre classifier of the disambig paper and the tag embeddings it yields.

Hennequin, Royo-Letelier, Moussallam, "Audio based disambiguation of music
genre tags", ISMIR 2018. Sections 2.2 to 2.4 and Table 1.

Input: log-compressed mel spectrogram, shape (batch, frames, n_mels), see
:mod:`tagcore.features`. Four blocks of 3x3 convolution + max pooling
(Table 1: widths 64/128/256/512, pools 2x2, 3x4, 2x3, 3x4), a GRU over time
whose *last* output feeds dropout and a dense softmax layer over the tags.
Trained with categorical cross-entropy on monolabel targets drawn by
:func:`trainer.monolabel.monolabel_sample` (section 2.2, training-only).

Deviations from the paper (see docs/models/disambig.md):

- the input is batch-normalised per mel band and convolutions are followed
  by batch normalisation and ELU, as in the architecture of Choi et al. [4]
  that the paper says it follows (the paper lists neither); padding is
  "same" so Table 1's output shapes hold;
- channel widths and GRU size are configurable: the bundle trained on the
  100-clip GTZAN sample uses a quarter of the paper's widths;
- pooling that would shrink an axis below 1 (short excerpts) is clamped,
  so excerpts shorter than 30 s still produce an output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import as_trained, check_input, config_from_dict, config_to_dict, frozen_tuple

FAMILY = "disambig"
INPUT = "audio"
OUTPUTS = ("scores", "embedding")
#: Patches per forward pass in the analysis pass (on a CPU).
INFERENCE_CHUNK = 64


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; defaults are the paper's (Table 1, section 2.2)."""

    n_mels: int = 96
    channels: tuple[int, ...] = (64, 128, 256, 512)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (3, 4), (2, 3), (3, 4))
    gru_hidden: int = 512
    dropout: float = 0.5
    n_labels: int = 10
    # Monolabel scheme of section 2.2: per-tag cap and upsampling target.
    tag_cap: int = 2000

    def __post_init__(self):
        frozen_tuple(self, "channels", int)
        frozen_tuple(self, "pools", lambda p: tuple(int(v) for v in p))
        if len(self.channels) != len(self.pools):
            raise ValueError("channels and pools must have the same length")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


class ConvBlock(nn.Module):
    """3x3 convolution, batch norm, ELU, then max pooling (time, mel)."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(c_out)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.elu(self.norm(self.conv(x)))
        # Clamp the pool to the input so short excerpts still pass through.
        kernel = (min(self.pool[0], x.shape[2]), min(self.pool[1], x.shape[3]))
        return F.max_pool2d(x, kernel)


class Model(nn.Module):
    """CNN + GRU genre classifier (Table 1).

    ``forward`` takes (batch, frames, n_mels) log-mel input and returns
    logits of shape (batch, n_labels); :meth:`embed` returns the GRU's last
    output (batch, gru_hidden), the "last hidden layer" of section 2.4.1.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        # Frequency-wise input normalisation, as the input batch norm of [4].
        self.input_norm = nn.BatchNorm1d(config.n_mels)
        widths = (1, *config.channels)
        self.blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, pool)
            for c_in, c_out, pool in zip(widths[:-1], widths[1:], config.pools)
        )
        mel_left = config.n_mels
        for _, pool_mel in config.pools:
            mel_left = max(1, mel_left // pool_mel)
        self.gru = nn.GRU(config.channels[-1] * mel_left, config.gru_hidden, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(config.gru_hidden, config.n_labels)

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(mels.transpose(1, 2)).transpose(1, 2)
        x = x.unsqueeze(1)  # (batch, 1, frames, mels)
        for block in self.blocks:
            x = block(x)
        batch, channels, frames, mel_left = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * mel_left)
        outputs, _ = self.gru(x)
        return outputs[:, -1]  # last temporal output only (temporal pooling)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.dense(self.dropout(self.embed(mels)))


def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy against monolabel class indices (batch,)."""
    return F.cross_entropy(logits, targets)


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: (frames, n_mels) log-mel, any number of frames."""
    return (None, config.n_mels)


@torch.inference_mode()
def predict(model: Model, mels: torch.Tensor) -> torch.Tensor:
    """Softmax label probabilities, shape (batch, n_labels), rows sum to 1."""
    check_input(mels, input_shape(model.config), what=FAMILY)
    model.eval()
    return torch.softmax(model(mels), dim=-1)


@torch.inference_mode()
def predict_with_embedding(model: Model, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (batch, n_labels) and the GRU's last output
    (batch, gru_hidden) of one forward pass."""
    check_input(mels, input_shape(model.config), what=FAMILY)
    model.eval()
    embedding = model.embed(mels)
    return torch.softmax(model.dense(embedding), dim=-1), embedding


@torch.inference_mode()
def embed(model: Model, mels: torch.Tensor) -> torch.Tensor:
    """The GRU's last output (batch, gru_hidden): the track embedding."""
    check_input(mels, input_shape(model.config), what=FAMILY)
    model.eval()
    return model.embed(mels)


prepare_for_inference = as_trained


# --- Section 2.4: genre tag embeddings ------------------------------------


def embedding_from_weights(model: Model) -> np.ndarray:
    """f_w (eq. 1): column i of the last layer's weights, shape (n_labels, hidden)."""
    return model.dense.weight.detach().cpu().numpy().copy()


def embedding_from_output_columns(probabilities: np.ndarray) -> np.ndarray:
    """f_c (eq. 2): column i of the (n_tracks, n_labels) output matrix P,
    returned as rows, shape (n_labels, n_tracks)."""
    return np.asarray(probabilities, dtype=np.float64).T.copy()


def embedding_from_output_means(probabilities: np.ndarray, annotations: np.ndarray) -> np.ndarray:
    """f_m (eq. 3): mean output over the tracks annotated with each tag.

    annotations : (n_tracks, n_labels) 0/1. Returns (n_labels, n_labels);
    a tag with no annotated track gets a row of zeros.
    """
    annotations = np.asarray(annotations, dtype=np.float64)
    counts = annotations.sum(axis=0)[:, None]
    sums = annotations.T @ np.asarray(probabilities, dtype=np.float64)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def embedding_from_cooccurrence(annotations: np.ndarray) -> np.ndarray:
    """f_dist (eq. 4): column i of the 0/1 occurrence matrix, as rows."""
    return np.asarray(annotations, dtype=np.float64).T.copy()


def cosine_similarity_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity between rows (section 2.4.5), shape (n, n)."""
    e = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    unit = np.divide(e, norms, out=np.zeros_like(e), where=norms > 0)
    return unit @ unit.T
