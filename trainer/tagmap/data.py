"""The evaluation's data: mood_4q and gtzan_mini with both musicnn models'
outputs, read through the backbone-output cache of
:mod:`trainer.embeddings` (10 patches extracted per clip, the central ones
averaged as the analysis pass does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from trainer.tagmap.tables import MSD, MTT

#: Patches extracted per clip (and cached); the evaluation averages the
#: central ``patches`` of them.
EXTRACTED_PATCHES = 10


def tagging_patches(name: str = MSD) -> int:
    """Patches the analysis pass averages for a musicnn bundle (its excerpt
    over its patch length): evaluation reads the same central patches."""
    from tagcore.bundle import load_bundle

    features = load_bundle(name).features
    return max(1, features.excerpt_frames // features.patch_frames)


@dataclass
class Clips:
    """Cached outputs of the musicnn models for one dataset, and its labels."""

    name: str
    paths: list[str]
    artists: list[str]
    labels: list[tuple[str, ...]]  # genres (AllMusic or GTZAN)
    scores: dict[str, np.ndarray]  # bundle -> (n, tags) probabilities
    tags: dict[str, list[str]]
    embedding: np.ndarray  # (n, 200) MSD track embedding
    moods: list[tuple[str, ...]] = field(default_factory=list)
    quadrants: list[str] = field(default_factory=list)

    def matrix(self, sources: Sequence[str], extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Input matrix of a map reading ``sources`` (extra: scores of other
        sources, e.g. a head's out-of-fold probabilities)."""
        scores = {**self.scores, **(extra or {})}
        return np.concatenate([scores[s] for s in sources], axis=1).astype(np.float32)


def _outputs(records, *, patches: int, log) -> tuple[dict, np.ndarray]:
    """Both musicnn models over ``records`` (cached): per bundle the track
    scores and the MSD track embedding over the ``patches`` central
    patches, for the clips that decoded; and the indices of those clips."""
    from trainer.embeddings import backbone_outputs

    out = backbone_outputs([r.path for r in records], patches=EXTRACTED_PATCHES, progress=True)
    ok = out[MSD].ok
    if not ok.all():
        log(f"  {int((~ok).sum())} files failed: {list(out[MSD].errors.values())[:3]}")
    keep = np.flatnonzero(ok)
    outputs = {
        "scores": {b: out[b].track_scores(patches=patches)[keep] for b in (MSD, MTT)},
        "tags": {b: out[b].labels for b in (MSD, MTT)},
        "embedding": out[MSD].track_embeddings(patches=patches)[keep],
    }
    return outputs, keep


def load_clips(data: Path, *, patches: int, log=print) -> tuple[Clips, Clips]:
    """mood_4q and gtzan_mini under ``data`` with their musicnn outputs
    (``patches`` central patches averaged as when tagging). mood_4q's
    labels are its AllMusic genres, with its moods and quadrants beside;
    gtzan_mini's its GTZAN genre, its file key standing for the artist."""
    from trainer.datasets import gtzan, mood_4q

    root = data / "mood_4q"
    genres = mood_4q.load(root, labels="genres")
    moods = mood_4q.load(root, labels="moods")
    quadrants = mood_4q.load(root, labels="quadrant")
    assert [r.path for r in genres] == [r.path for r in moods] == [r.path for r in quadrants]
    outputs, keep = _outputs(genres, patches=patches, log=log)
    mood = Clips(
        name="mood_4q", paths=[genres[i].path for i in keep], artists=[genres[i].artist for i in keep],
        labels=[genres[i].labels for i in keep], moods=[moods[i].labels for i in keep],
        quadrants=[quadrants[i].labels[0] for i in keep], **outputs,
    )
    records = gtzan.load(data / "gtzan_mini")
    outputs, keep = _outputs(records, patches=patches, log=log)
    gtz = Clips(
        name="gtzan_mini", paths=[records[i].path for i in keep], artists=[records[i].key for i in keep],
        labels=[records[i].labels for i in keep], **outputs,
    )
    return mood, gtz
