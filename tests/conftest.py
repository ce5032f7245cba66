"""Fixtures shared by the test modules, found by name (no import needed).

- ``assets``: a tiny bundle and short audio files, made once per module.
- ``task_bundles``: mood and style bundles beside the genre one.
- ``clear_cached_classproperty``, ``fresh_beets_log_handlers``: reset beets'
  class caches and log handlers around every test (autouse).

It also keeps the repository clean: a run that leaves a new file in it (a test
that wrote to ./runs instead of tmp_path, say) fails, naming the files.

Plain helpers live in the ``*_fixtures.py`` modules beside this file:
``plugin_fixtures`` (bundles, audio), ``beets_fixtures`` (``AutotagMLHelper``,
the base class of the plugin tests), ``audio_fixtures`` (every format),
``lyrics_fixtures``, ``realdata_fixtures`` (the shared datasets and the
``needs_shared`` mark).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from beets.util import cached_classproperty
from plugin_fixtures import make_bundle, write_audio, write_text_as_mp3, write_truncated

REPOSITORY = Path(__file__).resolve().parents[1]
#: Folders inside the repository that a test run may fill: caches and the
#: virtual environment of .ci/run (pip's *.egg-info too, by its suffix).
UNWATCHED = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
_FILES_BEFORE = pytest.StashKey[set]()

MOODS = ["happy", "sad", "calm"]
STYLES = ["dream pop", "shoegaze", "trip hop"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Bundle and audio made once per module; tests copy what they modify."""
    base = tmp_path_factory.mktemp("autotagml-assets")
    good_mp3 = write_audio(base / "tone.mp3", "mp3")
    return {
        "bundle": make_bundle(base / "bundle"),
        "bundle_v2": make_bundle(base / "bundle-v2", version="2"),
        "mp3": good_mp3,
        "flac": write_audio(base / "tone.flac", "flac"),
        "text": write_text_as_mp3(base / "text.mp3"),
        "truncated": write_truncated(good_mp3, base / "truncated.mp3", keep=good_mp3.stat().st_size // 5),
    }


@pytest.fixture(scope="module")
def task_bundles(tmp_path_factory) -> dict[str, Path]:
    """A mood bundle (happy 0.62, sad 0.37, calm 0.01 for any input) and a
    style bundle (shoegaze 0.96), made once per module."""
    base = tmp_path_factory.mktemp("task-bundles")
    return {
        "mood": make_bundle(base / "mood", name="mood-test", labels=MOODS, bias=(4.0, 3.5, 0.0), task="mood"),
        "style": make_bundle(base / "style", name="style-test", labels=STYLES, bias=(0.0, 4.0, 0.0), task="style"),
    }


@pytest.fixture(autouse=True)
def clear_cached_classproperty():
    """Item._types is cached per class; plugins change it between tests."""
    cached_classproperty.cache.clear()
    yield
    cached_classproperty.cache.clear()


@pytest.fixture(autouse=True)
def fresh_beets_log_handlers():
    """beets' CLI adds its log handler once, bound to the sys.stderr of that
    moment (the capture of an earlier test): drop what a test added."""
    log = logging.getLogger("beets")
    before = list(log.handlers)
    yield
    for handler in [h for h in log.handlers if h not in before]:
        log.removeHandler(handler)


# --- No test writes into the repository --------------------------------------


def repository_files(root: Path = REPOSITORY) -> set[str]:
    """Paths, relative to ``root``, of the files under it outside UNWATCHED
    folders and ``*.egg-info``."""
    found = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in UNWATCHED and not name.endswith(".egg-info")]
        found.update(os.path.relpath(os.path.join(folder, name), root) for name in files)
    return found


def pytest_sessionstart(session):
    session.config.stash[_FILES_BEFORE] = repository_files()


def pytest_sessionfinish(session, exitstatus):
    """Fail an otherwise green run that left new files in the repository."""
    before = session.config.stash.get(_FILES_BEFORE, None)
    if before is None or exitstatus != pytest.ExitCode.OK:
        return
    new = sorted(repository_files() - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.line("")
        reporter.write_sep("!", "the tests wrote into the repository (write under tmp_path instead)", red=True)
        for path in new[:20]:
            reporter.write_line(f"new file: {path}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
