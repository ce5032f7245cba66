"""LSI-guided triplet embeddings (the triplet paper: Schindler & Knees 2019).

A Deep Parallel Neural Network (DPNN, section IV-A, Figure 1) maps a log-mel
excerpt to a 256-d embedding in which tracks with related tags lie close.
Triplets are chosen online in each mini-batch (section III-A) from the
cosine relatedness of the tracks' LSI tag vectors (:mod:`tagcore.lsi`);
that selection and the loss are training-only and live in
:mod:`trainer.triplet_mining`.

Input: ``(batch, 130, 80)`` log-mel patches, frames first as
:func:`tagcore.features.compute_feature` gives them (80 mel bands from 16 Hz
to 11 kHz, 130 centred frames of 2048 samples with hop 1024 at 22,050 Hz: a
6 s segment read at a 3 s offset; :data:`FEATURE`). A shorter track's fewer
frames are padded with silence (0) up to 130. Output of :func:`embed`: ``(batch, 256)`` float32, l2-normalised
(``Config.normalise``), so squared Euclidean distances lie in [0, 4] and
cosine similarity ranks exactly as they do.

Figure 1's filter sizes, counts and pooling windows are not in the text;
the choices here (see ``docs/models/triplet.md``):

- input batch normalisation (one BatchNorm2d over the single channel) in
  place of feature standardisation (IV-B-2);
- left stack (spectral/timbral): kernels ``(3 bands x 7 frames)``,
  horizontally aligned (wider along time, the horizontal axis of the
  80 x 130 image), max pooling ``(2, 4), (2, 4), (2, 2)`` (bands, frames)
  that reduces time more than frequency; the stack ends with a max over the frames left and a mean over
  bands;
- right stack (temporal/rhythmic): kernels ``(7 bands x 3 frames)``,
  vertically aligned, max pooling ``(4, 2), (4, 2), (2, 2)`` that reduces
  frequency more than time; it ends
  with a max over the bands left and a mean over frames;
- conv -> BatchNorm -> ELU in every layer; each stack gives
  ``embedding_dim // 2`` channels and the two are concatenated: 256.

The model may instead read a frozen backbone's track embedding (``input_dim
> 0``: a two-layer projection ``input_dim -> hidden -> 256``, the
"pretrained front end" variant of issue 9); the triplet loss is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tagcore.families import as_trained, check_input, config_from_dict, config_to_dict, frozen_tuple
from tagcore.features import DPNN_SEGMENT

FAMILY = "triplet"
INPUT = "audio"
#: A triplet bundle gives an embedding only (its ``predict`` returns it too).
OUTPUTS = ("embedding",)

#: The seed paper's input (section IV-B-2): 22,050 Hz, Hann windows of 2048
#: samples with 50 % overlap (hop 1024), centred frames, 80 mel bands from
#: 16 Hz to 11 kHz, log-compressed; 130 frames = 6.0 s read at 3 s.
FEATURE = DPNN_SEGMENT

#: Mining rules of the online triplet selection.
#: ``"hard"``: the farthest valid positive and the nearest valid negative
#: (the usual hard mining of FaceNet / batch-hard); ``"paper"``: what the
#: seed's words say, argmin of the distance for the positive and argmax for
#: the negative (the easiest pairs).
MINING = ("hard", "paper")

INFERENCE_CHUNK = 16


@dataclass(frozen=True)
class Config:
    """Shape and training rule of a triplet embedder.

    Attributes
    ----------
    n_mels, frames : int
        Input size of the DPNN (80 x 130 in the paper).
    channels : tuple of int
        Output channels of the conv layers of each stack (the last one is
        ``embedding_dim // 2``).
    embedding_dim : int
        Length of the embedding (256, two stacks of half each).
    normalise : bool
        l2-normalise the embedding (distances in [0, 4]).
    input_dim : int
        0: the DPNN on log-mel patches. > 0: a projection of a backbone's
        ``input_dim``-long embedding (the pretrained-front-end variant).
    hidden : int
        Hidden units of the projection (``input_dim > 0`` only).
    margin : float
        alpha of equation 2 (the paper gives none).
    positive_threshold, negative_threshold : float
        A pair is positive when the LSI cosine is >= the first, negative
        when it is < the second (0.8 and 0.2 in the paper).
    mining : str
        ``"hard"`` or ``"paper"`` (see :data:`MINING`).
    """

    n_mels: int = 80
    frames: int = 130
    channels: tuple[int, ...] = (8, 16, 32, 128)
    embedding_dim: int = 256
    normalise: bool = True
    input_dim: int = 0
    hidden: int = 256
    margin: float = 0.2
    positive_threshold: float = 0.8
    negative_threshold: float = 0.2
    mining: str = "hard"

    def __post_init__(self):
        frozen_tuple(self, "channels", int)
        if self.mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, not {self.mining!r}")
        if self.embedding_dim % 2:
            raise ValueError(f"embedding_dim must be even (two stacks), not {self.embedding_dim}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return config_from_dict(cls, data, what=FAMILY)


def _block(c_in: int, c_out: int, kernel: tuple[int, int], pool: tuple[int, int]) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ELU()]
    if pool != (1, 1):
        layers.append(nn.MaxPool2d(pool, ceil_mode=True))
    return nn.Sequential(*layers)


#: Pooling windows (bands, frames) after each conv layer of the two stacks.
LEFT_POOLS = ((2, 4), (2, 4), (2, 2), (1, 1))
RIGHT_POOLS = ((4, 2), (4, 2), (2, 2), (1, 1))


class Model(nn.Module):
    """The DPNN (or, with ``input_dim > 0``, the projection variant).

    ``forward(x)`` takes ``(batch, frames, n_mels)`` log-mel patches (fewer
    frames than ``config.frames`` are padded with 0, the log-mel of silence) (``(batch, input_dim)`` for the projection) and
    returns ``(batch, embedding_dim)`` float32 embeddings, l2-normalised
    when ``config.normalise``.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        half = config.embedding_dim // 2
        if config.input_dim > 0:
            self.projection = nn.Sequential(
                nn.BatchNorm1d(config.input_dim),
                nn.Linear(config.input_dim, config.hidden),
                nn.BatchNorm1d(config.hidden),
                nn.ELU(),
                nn.Linear(config.hidden, config.embedding_dim),
            )
            return
        widths = list(config.channels[:-1]) + [half]
        if len(widths) > len(LEFT_POOLS):
            raise ValueError(f"at most {len(LEFT_POOLS)} conv layers per stack, got {len(widths)}")
        self.input_norm = nn.BatchNorm2d(1)
        left, right, c_in = [], [], 1
        for width, left_pool, right_pool in zip(widths, LEFT_POOLS, RIGHT_POOLS):
            left.append(_block(c_in, width, (3, 7), left_pool))
            right.append(_block(c_in, width, (7, 3), right_pool))
            c_in = width
        self.left = nn.Sequential(*left)
        self.right = nn.Sequential(*right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.input_dim > 0:
            z = self.projection(x)
        else:
            if x.dim() != 3:
                raise ValueError(f"expected (batch, frames, n_mels) log-mel patches, got shape {tuple(x.shape)}")
            if x.shape[1] < self.config.frames:
                x = F.pad(x, (0, 0, 0, self.config.frames - x.shape[1]))
            # (batch, frames, n_mels) -> (batch, 1, n_mels, frames): bands vertical, time horizontal.
            x = self.input_norm(x.transpose(1, 2).unsqueeze(1))
            # Left: spectral stack; what time pooling left is maxed, bands averaged.
            left = self.left(x).amax(dim=3).mean(dim=2)
            # Right: temporal stack; what band pooling left is maxed, frames averaged.
            right = self.right(x).amax(dim=2).mean(dim=2)
            z = torch.cat([left, right], dim=1)
        return F.normalize(z, dim=1) if self.config.normalise else z

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


# --- Inference ---------------------------------------------------------------


def input_shape(config: Config) -> tuple[int | None, ...]:
    """One input: (frames, n_mels) log-mel (fewer frames than ``frames``
    are padded), or (input_dim,) for the projection variant."""
    return (config.input_dim,) if config.input_dim > 0 else (None, config.n_mels)


@torch.inference_mode()
def embed(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Embeddings of a batch of inputs, shape (batch, embedding_dim)."""
    check_input(x, input_shape(model.config), what=FAMILY)
    model.eval()
    return model(x).float()


def predict(model: Model, x: torch.Tensor) -> torch.Tensor:
    """A triplet bundle gives embeddings only (``"outputs": ["embedding"]``);
    this returns them, so generic callers of ``predict`` still work."""
    return embed(model, x)


def predict_with_embedding(model: Model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`predict`, :func:`embed`) of one forward pass: the embedding twice."""
    embedding = embed(model, x)
    return embedding, embedding


prepare_for_inference = as_trained
