"""Real-data evidence for the instrument and voice labels: where each is
written on mood_4q and gtzan_mini, and how often right among the writes
whose truth a clip's genre decides (``tables.LABEL_EVIDENCE``). No audio
here carries instrument or voice annotations, so this is the evidence
there is; the policy (:func:`passes`) keeps a label only when it is
checkable often enough and right most of the time."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trainer.tagmap.build import mtt_spec
from trainer.tagmap.data import Clips
from trainer.tagmap.tables import CANDIDATE_MAPS, EVIDENCE_MIN_CHECKABLE, EVIDENCE_MIN_PRECISION, LABEL_EVIDENCE, RULE_THRESHOLDS

#: The tasks whose labels need evidence.
EVIDENCE_TASKS = ("instrument", "voice")


def clip_groups(clips: Clips) -> list[set[str]]:
    """Each clip's genre groups as LABEL_EVIDENCE names them."""
    prefix = "gtzan" if clips.name == "gtzan_mini" else "allmusic"
    return [{f"{prefix}:{g}" for g in labels} for labels in clips.labels]


def label_evidence(written: np.ndarray, groups: Sequence[set[str]], *, right: Sequence[str],
                   wrong: Sequence[str]) -> dict:
    """Counts for one label: clips ``written`` (booleans), checkable
    writes (a right or a wrong group, not both), right among them, and
    their share (None when none is checkable)."""
    is_right = np.array([bool(g & set(right)) and not g & set(wrong) for g in groups])
    is_wrong = np.array([bool(g & set(wrong)) and not g & set(right) for g in groups])
    n_right, n_wrong = int((written & is_right).sum()), int((written & is_wrong).sum())
    checkable = n_right + n_wrong
    return {"written": int(written.sum()), "checkable": checkable, "right": n_right, "wrong": n_wrong,
            "precision": round(n_right / checkable, 3) if checkable else None}


def passes(evidence: dict) -> bool:
    """The policy: enough checkable writes, right most of the time."""
    return (evidence["checkable"] >= EVIDENCE_MIN_CHECKABLE and evidence["precision"] is not None
            and evidence["precision"] >= EVIDENCE_MIN_PRECISION)


def evaluate_evidence(clips: Sequence[Clips], *, maps: dict | None = None,
                      thresholds: dict | None = None) -> dict[str, dict]:
    """Per label of the instrument and voice maps (``maps``: task -> a
    table, default CANDIDATE_MAPS: every label, written or not), its evidence over all
    ``clips`` together and whether it passes."""
    import torch

    from tagcore.families import tagmap

    groups = [g for c in clips for g in clip_groups(c)]
    out = {}
    for task in EVIDENCE_TASKS:
        spec = mtt_spec(task, thresholds or RULE_THRESHOLDS, table=(maps or CANDIDATE_MAPS)[task])
        _, model = spec.build()
        probs = np.concatenate([tagmap.predict(model, torch.from_numpy(c.matrix(spec.sources))).numpy()
                                for c in clips])
        for j, label in enumerate(spec.labels):
            ev = label_evidence(probs[:, j] >= 0.5, groups, **LABEL_EVIDENCE[label])
            out[label] = {"task": task, **ev, "passes": passes(ev)}
    return out
