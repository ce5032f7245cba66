"""Model bundles: a directory with ``config.json`` and ``weights.safetensors``.

``config.json`` (format version 2) holds::

    {
      "format": "tagcore-bundle",
      "format_version": 2,
      "family": "disambig",            # a key of tagcore.families.FAMILIES
      "name": "genre10",               # what the plugin and the store record
      "version": "1",                  # bump when the weights change
      "task": "genre",                 # what the output serves: genre, mood,
                                       # style, instrument, embedding, ...
      "input": {"kind": "audio", "feature": {"kind": "logmel", ...}},
                                       # or {"kind": "backbone", "bundle": "musicnn-msd"}
                                       # or {"kind": "scores", "bundles": ["musicnn-msd", ...]}
                                       # or {"kind": "text", "source": "lyrics"}
      "outputs": ["scores", "embedding"],  # what a forward pass gives
      "labels": ["blues", ...],        # output order of the scores
      "embedding_dim": 200,            # length of the embedding, if any
      "model": {...},                  # the family's Config (a frozen dataclass), as a dict
      "provenance": {...},             # training data, command, date, licence
      "metrics": {...}                 # evaluation figures and how they were made
    }

Version 1 bundles (no ``task``, ``input``, ``outputs``; a top-level
``features`` dict of :class:`tagcore.features.MelParams`) still load: they
are read as genre taggers on that log-mel feature (:func:`upgrade_v1`).

Weights are read with safetensors only: nothing is ever unpickled.
Default bundles ship in ``tagcore/bundles/``; bundles a user trains live in
:func:`user_bundle_dir`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagcore.spelling import did_you_mean

FORMAT = "tagcore-bundle"
FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
REQUIRED_KEYS = ("format", "format_version", "family", "name", "version", "task", "input", "outputs", "model")
REQUIRED_KEYS_V1 = ("format", "format_version", "family", "name", "version", "labels", "model", "features")
INPUT_KINDS = ("audio", "backbone", "scores", "text")
OUTPUTS = ("scores", "embedding")
DEFAULT_BUNDLE = "genre10"
APP_NAME = "beets-autotagml"


class BundleError(Exception):
    """A bundle is missing, malformed, or not a safetensors bundle."""


@dataclass
class Bundle:
    """A loaded bundle: its validated config (the JSON object of
    ``config.json``), a ready model (eval mode) and the family's typed
    ``Config`` of that model (read from ``config["model"]`` when not given)."""

    path: Path
    config: dict[str, Any]
    model: Any = field(repr=False)
    model_config: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.model_config is None:
            self.model_config = read_model_config(self.config, source=str(self.path / CONFIG_FILE))

    @property
    def family(self) -> str:
        return self.config["family"]

    @property
    def family_module(self):
        """The module of the bundle's family (:class:`tagcore.families.Family`)."""
        from tagcore.families import family_module

        return family_module(self.family)

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def version(self) -> str:
        return str(self.config["version"])

    @property
    def labels(self) -> list[str]:
        return list(self.config.get("labels", []))

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def input(self) -> BundleInput:
        """What the bundle reads, typed."""
        return BundleInput.from_config(self.config)

    @property
    def input_kind(self) -> str:
        """``"audio"``, ``"backbone"``, ``"scores"`` or ``"text"``."""
        return self.config["input"]["kind"]

    @property
    def features(self):
        """The audio feature this bundle reads (MelParams or WaveParams),
        None for backbone heads and text bundles."""
        return bundle_feature(self.config)

    @property
    def backbone(self) -> str | None:
        """Name of the bundle whose embedding a head reads, else None."""
        return self.input.bundle

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.config["outputs"])


@dataclass(frozen=True)
class BundleInput:
    """What a bundle reads: the ``input`` object of its (validated)
    ``config.json``, typed.

    ``kind``: one of :data:`INPUT_KINDS`. ``feature`` (audio): its
    MelParams or WaveParams. ``bundle`` (backbone): the bundle whose
    embedding it reads. ``bundles`` (scores): the bundles whose scores it
    reads, in the order they are concatenated. ``source`` (text): the text
    it reads (``"lyrics"``, ``"reviews"``...).
    """

    kind: str
    feature: Any = None
    bundle: str | None = None
    bundles: tuple[str, ...] = ()
    source: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BundleInput:
        spec = config["input"]
        kind = spec["kind"]
        return cls(
            kind=kind,
            feature=bundle_feature(config),
            bundle=spec["bundle"] if kind == "backbone" else None,
            bundles=tuple(spec["bundles"]) if kind == "scores" else (),
            source=spec["source"] if kind == "text" else None,
        )


def bundle_feature(config: dict[str, Any]):
    """The audio feature a (validated) config names, or None."""
    from tagcore.features import feature_params

    if config["input"]["kind"] != "audio":
        return None
    return feature_params(config["input"]["feature"])


def default_bundle_dir() -> Path:
    """Directory of the bundles shipped inside the package."""
    return Path(__file__).resolve().parent / "bundles"


def user_bundle_dir() -> Path:
    """Directory of bundles a user trained (platformdirs' user data dir)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / "bundles"


def resolve_bundle(name_or_path: str | os.PathLike) -> Path:
    """Find a bundle: an existing directory path, else a name looked up in
    the user bundle directory, then among the shipped defaults."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    for base in (user_bundle_dir(), default_bundle_dir()):
        if (base / str(name_or_path)).is_dir():
            return base / str(name_or_path)
    available = sorted(p.name for base in (user_bundle_dir(), default_bundle_dir()) if base.is_dir() for p in base.iterdir() if (p / CONFIG_FILE).is_file())
    raise BundleError(
        f"no model bundle {str(name_or_path)!r}: not a directory, and not one of the "
        f"installed bundles ({', '.join(available) or 'none'}){did_you_mean(str(name_or_path), available)}"
    )


def upgrade_v1(config: dict[str, Any], *, source: str = CONFIG_FILE) -> dict[str, Any]:
    """A format-1 config as format 2: a genre tagger on its log-mel feature."""
    missing = [k for k in REQUIRED_KEYS_V1 if k not in config]
    if missing:
        raise BundleError(f"{source}: missing keys {missing}")
    if not isinstance(config["features"], dict):
        raise BundleError(f"{source}: 'features' must be an object")
    upgraded = {k: v for k, v in config.items() if k != "features"}
    upgraded.update(
        format_version=FORMAT_VERSION,
        task="genre",
        input={"kind": "audio", "feature": {"kind": "logmel", **config["features"]}},
        outputs=["scores"],
    )
    return upgraded


def validate_config(config: Any, *, source: str = CONFIG_FILE) -> dict[str, Any]:
    """Check a bundle config's structure (format 1 is upgraded first, see
    :func:`upgrade_v1`); return the format-2 config or raise BundleError."""
    if not isinstance(config, dict):
        raise BundleError(f"{source}: expected a JSON object")
    if config.get("format") != FORMAT:
        raise BundleError(f"{source}: format is {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("format_version") == 1:
        config = upgrade_v1(config, source=source)
    elif config.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{source}: format_version {config.get('format_version')!r} is not supported "
            f"(this tagcore reads versions 1 and {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise BundleError(f"{source}: missing keys {missing}")
    for key in ("name", "task"):
        if not isinstance(config[key], str) or not config[key]:
            raise BundleError(f"{source}: {key!r} must be a non-empty string")
    _check_outputs(config, source=source)
    if not isinstance(config["model"], dict):
        raise BundleError(f"{source}: 'model' must be an object")
    _check_input(config, source=source)
    from tagcore.families import FAMILIES

    if config["family"] not in FAMILIES:
        raise BundleError(f"{source}: unknown model family {config['family']!r}{did_you_mean(config['family'], FAMILIES)}")
    return config


def _check_outputs(config: dict[str, Any], *, source: str) -> None:
    """``outputs``, and the ``labels`` or ``embedding_dim`` they need."""
    outputs = config["outputs"]
    if not isinstance(outputs, list) or not outputs or not set(outputs) <= set(OUTPUTS):
        raise BundleError(f"{source}: outputs must be a non-empty list drawn from {list(OUTPUTS)}")
    if "scores" in outputs:
        labels = config.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(l, str) and l for l in labels):
            raise BundleError(f"{source}: labels must be a non-empty list of strings")
        if len(set(labels)) != len(labels):
            raise BundleError(f"{source}: labels contain duplicates")
    if "embedding" in outputs:
        dim = config.get("embedding_dim")
        if not isinstance(dim, int) or dim <= 0:
            raise BundleError(f"{source}: embedding_dim must be a positive integer")


def _names(value: Any) -> bool:
    """Whether ``value`` is a non-empty string."""
    return isinstance(value, str) and bool(value)


def _check_input(config: dict[str, Any], *, source: str) -> None:
    """``input``: its kind and what that kind needs (a feature, a backbone,
    source bundles, a text source)."""
    spec = config["input"]
    if not isinstance(spec, dict) or spec.get("kind") not in INPUT_KINDS:
        raise BundleError(f"{source}: input must be an object with kind in {list(INPUT_KINDS)}")
    if spec["kind"] == "audio":
        try:
            bundle_feature(config)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{source}: input.feature: {exc}") from None
    elif spec["kind"] == "backbone" and not _names(spec.get("bundle")):
        raise BundleError(f"{source}: input.bundle must name the backbone bundle")
    elif spec["kind"] == "scores" and not (
        isinstance(spec.get("bundles"), list) and spec["bundles"] and all(map(_names, spec["bundles"]))
    ):
        raise BundleError(f"{source}: input.bundles must list the bundles whose scores it reads")
    elif spec["kind"] == "text" and not _names(spec.get("source")):
        raise BundleError(f"{source}: input.source must name the text (lyrics, reviews...)")


def read_model_config(config: dict[str, Any], *, source: str = CONFIG_FILE):
    """The family's typed Config of a validated bundle config (its
    ``"model"`` object), after checking that the family reads the bundle's
    input kind and gives its outputs (``INPUT``, ``OUTPUTS`` of
    :mod:`tagcore.families`). Imports the family (and torch). Raises
    BundleError naming ``source`` and the fault (an unknown key, say)."""
    from tagcore.families import family_module

    family = family_module(config["family"])
    kind, outputs = config["input"]["kind"], config["outputs"]
    if kind != family.INPUT:
        raise BundleError(f"{source}: a {family.FAMILY} model reads {family.INPUT} input, not {kind}")
    if not set(outputs) <= set(family.OUTPUTS):
        raise BundleError(f"{source}: a {family.FAMILY} model gives {list(family.OUTPUTS)}, not {outputs}")
    try:
        model_config = family.Config.from_dict(config["model"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{source}: model: {exc}") from None
    n_labels = len(config.get("labels", []))
    if "scores" in outputs and getattr(model_config, "n_labels", n_labels) != n_labels:
        raise BundleError(f"{source}: model.n_labels does not match the label list")
    if kind == "audio":
        feature, takes = bundle_feature(config), tuple(family.input_shape(model_config))
        gives = (None, feature.n_mels) if feature.kind == "logmel" else (feature.patch_samples,)
        if len(gives) != len(takes) or any(None not in (a, b) and a != b for a, b in zip(gives, takes)):
            raise BundleError(f"{source}: its {feature.kind} feature gives patches of shape {_shape(gives)}; "
                              f"the model reads {_shape(takes)}")
    return model_config


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("any" if n is None else str(n) for n in shape) + ")"


def read_config(name_or_path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """A bundle's directory and validated ``config.json`` (name, version,
    labels...), read without touching its weights. Raises BundleError."""
    path = resolve_bundle(name_or_path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise BundleError(f"{path}: missing {CONFIG_FILE}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"{config_path}: cannot read ({exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{config_path}: not valid JSON ({exc})") from None
    return path, validate_config(config, source=str(config_path))


def load_bundle(name_or_path: str | os.PathLike, *, device: str = "cpu") -> Bundle:
    """Load and validate a bundle; the model is returned in eval mode.

    Raises BundleError when the directory, config or weights are missing or
    malformed, when the weights are not a safetensors file (a pickle, say),
    or when they do not fit the model the config describes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from tagcore.families import family_module

    path, config = read_config(name_or_path)
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise BundleError(f"{path}: missing {WEIGHTS_FILE}")
    model_config = read_model_config(config, source=str(config_path))
    family = family_module(config["family"])
    try:
        state = load_file(str(weights_path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{weights_path}: not a safetensors weights file ({exc})") from None
    model = family.Model(model_config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{weights_path}: weights do not fit the configured model ({exc})") from None
    model.to(device).eval()
    # A family may make its model faster for inference once loaded (fold
    # batch norm into convolutions, say); training code loads the weights
    # into family.Model itself and never sees this.
    model = family.prepare_for_inference(model)
    return Bundle(path=path, config=config, model=model, model_config=model_config)


def save_bundle(
    directory: str | os.PathLike,
    *,
    model,
    family: str,
    name: str,
    version: str,
    labels: list[str] | None,
    model_config,
    features: dict | None = None,
    task: str = "genre",
    input: dict | None = None,
    outputs: tuple[str, ...] | list[str] = ("scores",),
    embedding_dim: int | None = None,
    provenance: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write a format-2 bundle atomically: files go to a temporary sibling
    directory that replaces ``directory`` only once complete. Returns the path.

    ``model_config``: the family's Config (a dict of it is read through
    ``Config.from_dict`` first, so a key the family does not know fails
    here, not at loading). ``features`` (a MelParams/WaveParams dict, with
    or without ``kind``; log-mel when absent) is a short form of
    ``input={"kind": "audio", "feature": ...}``; give one or the other.
    Raises BundleError for a config the family cannot load."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if (features is None) == (input is None):
        raise ValueError("give either features (an audio bundle) or input")
    if input is None:
        input = {"kind": "audio", "feature": {"kind": "logmel", **features}}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "name": name,
        "version": str(version),
        "task": task,
        "input": input,
        "outputs": list(outputs),
        "model": model_config if isinstance(model_config, dict) else model_config.to_dict(),
        "provenance": provenance or {},
        "metrics": metrics or {},
    }
    if labels is not None:
        config["labels"] = list(labels)
    if embedding_dim is not None:
        config["embedding_dim"] = int(embedding_dim)
    config = validate_config(config, source=f"{directory / CONFIG_FILE} (being saved)")
    config["model"] = read_model_config(config, source=f"{directory / CONFIG_FILE} (being saved)").to_dict()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # mkdtemp makes a private directory; a bundle is meant to be shared.
        staging.chmod(0o755)
        for file_name in (CONFIG_FILE, WEIGHTS_FILE):
            (staging / file_name).chmod(0o644)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
