"""Online triplet selection and the triplet loss of the triplet paper (Schindler &
Knees 2019, section III-A, equation 2): training-only, so it lives in the
trainer; the model and its inference stay in :mod:`tagcore.families.triplet`.

Pure torch functions on one mini-batch: :func:`pair_masks` (valid positive
and negative pairs from the tracks' LSI relatedness, with the album
filter), :func:`select_triplets` (one triplet per anchor, ``hard`` or
``paper`` mining), :func:`squared_distances` and :func:`loss` (the hinge).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from tagcore.families.triplet import MINING


@dataclass
class Triplets:
    """Index triplets chosen in one batch.

    ``anchors``, ``positives``, ``negatives``: int64 tensors of equal length;
    ``skipped``: anchors without a valid positive or negative (not used).
    """

    anchors: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.anchors.numel())


def pair_masks(
    tag_similarity: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    positive_threshold: float = 0.8,
    negative_threshold: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid positive and negative pairs of a batch (section III-A).

    Parameters
    ----------
    tag_similarity : (B, B) float tensor
        Cosine of the tracks' l2-normalised LSI vectors.
    groups : (B,) int tensor or None
        Album ids (the album filter): no pair, positive or negative, joins
        two tracks of one album. Negative ids mean "unknown" and filter
        nothing.
    positive_threshold, negative_threshold : float

    Returns
    -------
    (positive, negative) : two (B, B) bool tensors
        The diagonal is zeroed first, as the paper does, and a track is
        never its own positive nor its own negative (a zeroed diagonal
        would otherwise pass ``< negative_threshold``).
    """
    similarity = tag_similarity.clone()
    n = similarity.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=similarity.device)
    similarity[eye] = 0.0
    allowed = ~eye
    if groups is not None:
        same = (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)
        allowed &= ~same
    positive = (similarity >= positive_threshold) & allowed
    negative = (similarity < negative_threshold) & allowed
    return positive, negative


def select_triplets(
    distances: torch.Tensor,
    tag_similarity: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    positive_threshold: float = 0.8,
    negative_threshold: float = 0.2,
    mining: str = "hard",
) -> Triplets:
    """One triplet per anchor that has a valid positive and negative.

    Parameters
    ----------
    distances : (B, B) tensor
        Squared Euclidean distances of the batch's embeddings.
    tag_similarity, groups, positive_threshold, negative_threshold
        As :func:`pair_masks`.
    mining : ``"hard"`` or ``"paper"``
        ``hard``: the valid positive at the largest distance and the valid
        negative at the smallest; ``paper``: the positive at the smallest
        distance (argmin) and the negative at the largest (argmax), as the
        paper's text reads.

    Returns
    -------
    Triplets
        Anchors without a positive or without a negative are skipped and
        counted in ``skipped``.
    """
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, not {mining!r}")
    positive, negative = pair_masks(tag_similarity, groups=groups, positive_threshold=positive_threshold,
                                    negative_threshold=negative_threshold)
    d = distances.detach()
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    if mining == "hard":
        pos = torch.where(positive, d, -inf).argmax(dim=1)
        neg = torch.where(negative, d, inf).argmin(dim=1)
    else:
        pos = torch.where(positive, d, inf).argmin(dim=1)
        neg = torch.where(negative, d, -inf).argmax(dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    anchors = torch.nonzero(valid, as_tuple=False).flatten()
    return Triplets(anchors, pos[anchors], neg[anchors], skipped=int((~valid).sum()))


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) squared Euclidean distances, clamped at 0."""
    norms = (embeddings * embeddings).sum(dim=1)
    return (norms[:, None] + norms[None, :] - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)


def loss(
    embeddings: torch.Tensor,
    tag_similarity: torch.Tensor,
    *,
    margin: float,
    groups: torch.Tensor | None = None,
    positive_threshold: float = 0.8,
    negative_threshold: float = 0.2,
    mining: str = "hard",
) -> tuple[torch.Tensor, Triplets]:
    """Equation 2 with its hinge: mean over the chosen triplets of
    ``max(0, |f(a) - f(p)|^2 - |f(a) - f(n)|^2 + margin)``.

    The paper sums over the triplets; the mean makes the step size
    independent of how many anchors found a triplet. Returns the loss (0
    with a gradient of zero when no anchor found one) and the
    :class:`Triplets`.
    """
    distances = squared_distances(embeddings)
    triplets = select_triplets(distances, tag_similarity, groups=groups, positive_threshold=positive_threshold,
                               negative_threshold=negative_threshold, mining=mining)
    if len(triplets) == 0:
        return embeddings.sum() * 0.0, triplets
    a, p, n = triplets.anchors, triplets.positives, triplets.negatives
    hinge = F.relu(distances[a, p] - distances[a, n] + margin)
    return hinge.mean(), triplets
