"""Model bundles: a directory with ``config.json`` and ``weights.safetensors``.

``config.json`` holds::

    {
      "format": "tagcore-bundle",
      "format_version": 1,
      "family": "disambig",           # a key of tagcore.families.FAMILIES
      "name": "genre10",          # what the plugin records on items
      "version": "1",                 # bump when the weights change
      "labels": ["blues", ...],        # output order of the model
      "model": {...},                  # the family's Config, as a dict
      "features": {...},               # tagcore.features.MelParams, as a dict
      "provenance": {...},             # training data, command, date
      "metrics": {...}                 # evaluation figures and how they were made
    }

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

FORMAT = "tagcore-bundle"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
REQUIRED_KEYS = ("format", "format_version", "family", "name", "version", "labels", "model", "features")
DEFAULT_BUNDLE = "genre10"
APP_NAME = "beets-autotagml"


class BundleError(Exception):
    """A bundle is missing, malformed, or not a safetensors bundle."""


@dataclass
class Bundle:
    """A loaded bundle: its validated config and a ready model (eval mode)."""

    path: Path
    config: dict[str, Any]
    model: Any = field(repr=False)

    @property
    def family(self) -> str:
        return self.config["family"]

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def version(self) -> str:
        return str(self.config["version"])

    @property
    def labels(self) -> list[str]:
        return list(self.config["labels"])

    @property
    def features(self):
        from tagcore.features import MelParams

        return MelParams.from_dict(self.config["features"])


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
        f"installed bundles ({', '.join(available) or 'none'})"
    )


def validate_config(config: Any, *, source: str = CONFIG_FILE) -> dict[str, Any]:
    """Check a bundle config's structure; return it or raise BundleError."""
    if not isinstance(config, dict):
        raise BundleError(f"{source}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise BundleError(f"{source}: missing keys {missing}")
    if config["format"] != FORMAT:
        raise BundleError(f"{source}: format is {config['format']!r}, expected {FORMAT!r}")
    if config["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"{source}: format_version {config['format_version']!r} is not supported "
            f"(this tagcore reads version {FORMAT_VERSION})"
        )
    labels = config["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(l, str) and l for l in labels):
        raise BundleError(f"{source}: labels must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise BundleError(f"{source}: labels contain duplicates")
    for key in ("model", "features"):
        if not isinstance(config[key], dict):
            raise BundleError(f"{source}: {key!r} must be an object")
    from tagcore.families import FAMILIES

    if config["family"] not in FAMILIES:
        raise BundleError(f"{source}: unknown model family {config['family']!r}")
    return config


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
    from tagcore.features import MelParams

    path, config = read_config(name_or_path)
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise BundleError(f"{path}: missing {WEIGHTS_FILE}")
    try:
        MelParams.from_dict(config["features"])
        family = family_module(config["family"])
        model_config = family.Config.from_dict(config["model"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{config_path}: {exc}") from None
    if getattr(model_config, "n_labels", len(config["labels"])) != len(config["labels"]):
        raise BundleError(f"{config_path}: model.n_labels does not match the label list")
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
    return Bundle(path=path, config=config, model=model)


def save_bundle(
    directory: str | os.PathLike,
    *,
    model,
    family: str,
    name: str,
    version: str,
    labels: list[str],
    model_config: dict,
    features: dict,
    provenance: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write a bundle atomically: files go to a temporary sibling directory
    that replaces ``directory`` only once complete. Returns the path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    config = validate_config(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": family,
            "name": name,
            "version": str(version),
            "labels": list(labels),
            "model": model_config,
            "features": features,
            "provenance": provenance or {},
            "metrics": metrics or {},
        }
    )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # mkdtemp makes a private directory; a bundle is meant to be shared.
        staging.chmod(0o755)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            (staging / name).chmod(0o644)
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
