"""The tag-map bundles from the tables: one :class:`MapSpec` per bundle
(what it reads, its labels, its rules) and :func:`write_bundle`, which
saves it with its recommended decision. Needs no data, only the installed
musicnn bundles' label lists (and mood4q's for the mood map)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from trainer.tagmap.figures import EVALUATION
from trainer.tagmap.genres import normalize
from trainer.tagmap.tables import (
    DECISIONS,
    ENERGY_SIDES,
    ENERGY_VETOES,
    GATE_MARGIN,
    GENRE_MAP,
    GENRE_THRESHOLDS,
    GTZAN_GENRES,
    GTZAN_HEAD,
    HEAD_FLOOR,
    HEAD_THRESHOLD,
    MOOD_HEAD,
    MOOD_LABELS,
    MOOD_QUADRANTS,
    MSD,
    MSD_CEILING,
    MSD_MOODS,
    MTT,
    MTT_MAPS,
    QUADRANT_MOODS,
    QUADRANTS,
    RULE_THRESHOLDS,
    SIDE_MOODS,
    VETO_FACTOR,
)

#: Version of a bundle whose spec names none. A bundle's version changes
#: whenever its outputs do (new thresholds, labels, a gate): the plugin's
#: store keeps outputs by bundle name and version, so old outputs are then
#: not reused.
VERSION = "1"
#: The file holding the tables, as the bundles' provenance names it.
TABLES_FILE = "trainer/tagmap/tables.py"
#: The bundles this package writes.
DEFAULT_NAMES = ("genre-musicnn", "mood-musicnn", "instrument-mtt", "voice-mtt", "energy-mtt")


@dataclass
class MapSpec:
    """One tag map: what it reads and the rules it applies."""

    name: str
    task: str
    sources: list[str]  # bundles whose scores it reads, in order
    source_labels: dict[str, list[str]]  # their labels, in their order
    labels: list[str]
    rules: list[tuple]  # (input "bundle:tag", label, threshold, bias(, ceiling))
    description: str = ""
    gate: dict | None = None  # the readable gate of tagcore.families.tagmap.build
    provenance: dict = field(default_factory=dict)
    version: str = VERSION

    @property
    def inputs(self) -> list[str]:
        """The input order: every label of every source, as "bundle:tag"."""
        return [f"{b}:{t}" for b in self.sources for t in self.source_labels[b]]

    def build(self):
        """(config, model) of the family :mod:`tagcore.families.tagmap`."""
        from tagcore.families import tagmap

        return tagmap.build(inputs=self.inputs, labels=self.labels, rules=self.rules, gate=self.gate)


def bundle_labels(name: str) -> list[str] | None:
    """Labels of an installed bundle, None when it is not installed."""
    from tagcore.bundle import BundleError, read_config

    try:
        return list(read_config(name)[1].get("labels", []))
    except BundleError:
        return None


def musicnn_labels() -> dict[str, list[str]]:
    """musicnn-msd's and musicnn-mtt's labels; exits when one is not installed."""
    out = {}
    for name in (MSD, MTT):
        labels = bundle_labels(name)
        if labels is None:
            raise SystemExit(f"error: the bundle {name} is not installed (python -m trainer musicnn)")
        out[name] = labels
    return out


def _threshold(table: dict[tuple[str, str], float], bundle: str, tag: str) -> float:
    """A source's threshold in ``table``; exits when it has none."""
    try:
        return table[(bundle, tag)]
    except KeyError:
        raise SystemExit(f"error: no threshold for {bundle}:{tag}; run python -m trainer tagmap --evaluate") from None


def genre_rules(thresholds: dict[tuple[str, str], float] | None = None, *,
                head: dict[str, float] | None = None) -> list[tuple]:
    """The genre map's rules; ``head``: GTZAN label -> threshold adds the
    GTZAN head's genres as sources (the combined option)."""
    thresholds = GENRE_THRESHOLDS if thresholds is None else thresholds
    rules = [(f"{bundle}:{tag}", genre, _threshold(thresholds, bundle, tag), 0.0)
             for bundle, table in GENRE_MAP.items() for tag, genre in table.items()]
    for label, threshold in (head or {}).items():
        rules.append((f"{GTZAN_HEAD}:{label}", normalize(label), threshold, 0.0))
    return rules


def genre_labels(*, head: bool = False) -> list[str]:
    """The genre map's labels in table order (``head``: and the GTZAN head's genres)."""
    labels = list(dict.fromkeys(g for table in GENRE_MAP.values() for g in table.values()))
    if head:
        labels += [normalize(g) for g in GTZAN_GENRES if normalize(g) not in labels]
    return labels


def genre_spec(thresholds=None) -> MapSpec:
    """The bundle genre-musicnn (``thresholds``: default GENRE_THRESHOLDS)."""
    return MapSpec(
        # 2: thresholds refitted at the 2 patches the musicnn bundles read (1: at 5).
        name="genre-musicnn", task="genre", version="2", sources=[MSD, MTT], source_labels=musicnn_labels(),
        labels=genre_labels(), rules=genre_rules(thresholds),
        description="musicnn's Last.fm (MSD) and MagnaTagATune genre tags as beets genre names",
        provenance={"tables": f"{TABLES_FILE}: GENRE_MAP, NOT_GENRES, GENRE_THRESHOLDS",
                    "thresholds": "per source, fitted by coordinate ascent on the F1 of the written set "
                                  "(>= 0.5, at most 2) against the AllMusic genres of mood_4q's 900 clips and "
                                  "the GTZAN genres of gtzan_mini (each genre counted for its AllMusic genre "
                                  "through lastgenre's tree); subgenres among their source's top 10%; "
                                  "on the mean of each clip's 2 central patches, as the musicnn bundles read "
                                  "(trainer.tagmap.data.tagging_patches); cross-validated with artist-disjoint folds",
                    "fusion": "max over sources of logit(p) - logit(threshold): a genre passes 0.5 when one of "
                              "its sources passes its threshold; the strongest source gives its confidence"},
    )


def mood_rules(thresholds: dict[tuple[str, str], float] | None = None) -> list[tuple]:
    """The mood map's rules: the quadrant and side words first, biased above
    every MSD word, then the MSD words under their ceiling."""
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    bias = float(np.log(HEAD_FLOOR / (1 - HEAD_FLOOR)))
    rules = [(f"{MOOD_HEAD}:{q}", word, HEAD_THRESHOLD, bias) for q, word in QUADRANT_MOODS.items()]
    rules += [(f"{MOOD_HEAD}:{q}", word, HEAD_THRESHOLD, bias) for word, qs in SIDE_MOODS.items() for q in qs]
    rules += [(f"{MSD}:{tag}", word, _threshold(thresholds, MSD, tag), 0.0, MSD_CEILING)
              for tag, word in MSD_MOODS.items()]
    return rules


def quadrant_gate(words: dict[str, Sequence[str]], *, margin: float = GATE_MARGIN, factor: float = VETO_FACTOR,
                  thresholds: dict[tuple[str, str], float] | None = None) -> dict:
    """The readable gate (:func:`tagcore.families.tagmap.build`) of a map
    whose ``words`` (label -> quadrants) follow the quadrant decision:
    mood4q's quadrants, a second one joining from ``margin`` x the best's,
    MTT's energy tags vetoing the other arousal side from ``factor`` x
    their rule threshold (``factor`` 0: no vetoes); SIDE_MOODS exact."""
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    head = [f"{MOOD_HEAD}:{q}" for q in QUADRANTS]
    vetoes = [(f"{MTT}:{tag}", min(factor * _threshold(thresholds, MTT, tag), 0.999),
               [f"{MOOD_HEAD}:{q}" for q in side]) for tag, side in ENERGY_VETOES.items()] if factor else []
    return {"classes": head, "margin": margin, "vetoes": vetoes,
            "labels": {w: [f"{MOOD_HEAD}:{q}" for q in qs] for w, qs in words.items()},
            "exact": [w for w in SIDE_MOODS if w in words]}


def mood_spec(thresholds=None, head_labels: Sequence[str] | None = None, *, margin: float = GATE_MARGIN,
              factor: float = VETO_FACTOR) -> MapSpec:
    """The bundle mood-musicnn (``head_labels``: mood4q's label order,
    default QUADRANTS; ``margin``, ``factor``: the quadrant gate's)."""
    tags = musicnn_labels()
    labels = {MOOD_HEAD: list(head_labels or QUADRANTS), MSD: tags[MSD], MTT: tags[MTT]}
    return MapSpec(
        # 2: the quadrant gate, and rule thresholds refitted at the 2 patches the backbones read
        name="mood-musicnn", task="mood", version="2", sources=[MOOD_HEAD, MSD, MTT], source_labels=labels,
        labels=list(MOOD_LABELS), rules=mood_rules(thresholds),
        gate=quadrant_gate(MOOD_QUADRANTS, margin=margin, factor=factor, thresholds=thresholds),
        description="mood words from the quadrant head mood4q (the decision) and musicnn-msd's mood tags; "
                    "musicnn-mtt's energy tags veto the other arousal side",
        provenance={"tables": f"{TABLES_FILE}: QUADRANT_MOODS, SIDE_MOODS, MSD_MOODS, MOOD_QUADRANTS, "
                              f"ENERGY_VETOES, GATE_MARGIN, VETO_FACTOR, RULE_THRESHOLDS",
                    "thresholds": f"quadrant and side words: {HEAD_THRESHOLD} with a bias putting them at >= "
                                  f"{HEAD_FLOOR}; MSD words: half their 99th percentile over mood_4q + "
                                  f"gtzan_mini, capped at {MSD_CEILING} so the first mood comes from the quadrant "
                                  f"head",
                    "gate": f"a word is written only when the quadrant decision (the best quadrant, and a second "
                            f"from {margin} x its probability; MTT fast/loud or slow/soft/quiet at {factor} x "
                            f"their rule threshold keep only their arousal side) lies within its quadrants; "
                            f"margin and factor chosen on mood_4q with artist-disjoint CV"},
    )


def mtt_spec(task: str, thresholds=None, *, margin: float = GATE_MARGIN, factor: float = VETO_FACTOR,
             table: dict | None = None) -> MapSpec:
    """The bundle ``<task>-mtt`` of MTT_MAPS (``thresholds``: default
    RULE_THRESHOLDS; ``table``: another map, e.g. CANDIDATE_MAPS'); the
    energy map also reads mood4q and follows the quadrant gate
    (``margin``, ``factor``)."""
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    table = MTT_MAPS[task] if table is None else table
    sources = list(dict.fromkeys(bundle for bundle, _ in table))
    labels = musicnn_labels()
    source_labels = {b: labels[b] for b in sources}
    gate = None
    if task == "energy":
        sources.append(MOOD_HEAD)
        source_labels[MOOD_HEAD] = bundle_labels(MOOD_HEAD) or list(QUADRANTS)
        gate = quadrant_gate(ENERGY_SIDES, margin=margin, factor=factor, thresholds=thresholds)
    return MapSpec(
        # 2: labels without real-data evidence left out, the energy gate, rule thresholds at 2 patches
        name=f"{task}-mtt", task=task, version="2", sources=sources, source_labels=source_labels,
        labels=list(dict.fromkeys(table.values())),
        rules=[(f"{b}:{tag}", label, _threshold(thresholds, b, tag), 0.0) for (b, tag), label in table.items()],
        gate=gate,
        description=f"{task} words from musicnn's MagnaTagATune tags" + (
            " (and the Last.fm tag 'instrumental' for 'no vocals')" if MSD in sources else "") + (
            ", written only on the arousal side of mood4q's quadrant decision" if gate else ""),
        provenance={"tables": f"{TABLES_FILE}: {task.upper()}_MAP, RULE_THRESHOLDS" + (
                        ", ENERGY_SIDES, ENERGY_VETOES, GATE_MARGIN, VETO_FACTOR" if gate else ""),
                    "thresholds": "half each tag's 99th percentile over 1,000 real clips (mood_4q + gtzan_mini); "
                                  "no label used"},
    )


def all_specs(*, mood_head_labels=None) -> list[MapSpec]:
    """The five bundles' specs, in DEFAULT_NAMES order."""
    return [genre_spec(), mood_spec(head_labels=mood_head_labels)] + [mtt_spec(t) for t in MTT_MAPS]


def write_bundle(spec: MapSpec, out: Path, *, command: str) -> Path:
    """Write ``spec`` as a bundle ``out/<name>`` (atomically) with its
    recommended decision in config.json."""
    import os
    import tempfile

    from tagcore.bundle import CONFIG_FILE, save_bundle

    config, model = spec.build()
    path = save_bundle(
        out / spec.name, model=model, family="tagmap", name=spec.name, version=spec.version, labels=spec.labels,
        model_config=config.to_dict(), task=spec.task, input={"kind": "scores", "bundles": spec.sources},
        provenance={**spec.provenance, "description": spec.description, "command": command,
                    "evaluation": "docs/models/tagmap.md; python -m trainer tagmap --evaluate --data DATASETS",
                    "written": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()},
        metrics=EVALUATION.get(spec.task, {}),
    )
    # save_bundle knows no "decision"; add it the same atomic way.
    config_path = path / CONFIG_FILE
    data = json.loads(config_path.read_text(encoding="utf-8"))
    data["decision"] = DECISIONS[spec.task]
    fd, staging = tempfile.mkstemp(prefix=".config.", dir=path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.chmod(staging, 0o644)
    os.replace(staging, config_path)
    return path
