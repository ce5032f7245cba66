"""The real datasets, for the tests that read them (marked ``realdata``).

They live outside the repository, in ``../shared/datasets`` beside the
checkout, and are never committed; the environment variable
``AUTOTAGML_SHARED_DATA`` names another folder. A test that needs one says
which with :func:`needs_shared`, and is skipped, naming the missing path, when
it is absent. ``pytest -m "not realdata"`` leaves them all out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Environment variable naming the datasets folder instead of ../shared/datasets.
SHARED_ENV = "AUTOTAGML_SHARED_DATA"


def shared_root(environ=os.environ) -> Path:
    """The folder of the shared datasets: ``$AUTOTAGML_SHARED_DATA`` when set,
    else ``shared/datasets`` beside the repository's folder."""
    override = environ.get(SHARED_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "datasets"


#: The shared datasets folder (it may not exist).
SHARED = shared_root()


def shared_marks(*parts: str, root: Path | None = None) -> list[pytest.MarkDecorator]:
    """The marks of a test that reads ``SHARED/<parts>`` (a dataset folder or
    one of its files): ``realdata``, and a skip when that path is absent that
    names it and says how to point elsewhere. For ``pytestmark = ...``."""
    path = (SHARED if root is None else root).joinpath(*parts)
    reason = f"real data absent: {path} (set {SHARED_ENV} to the folder holding {parts[0]})"
    return [pytest.mark.realdata, pytest.mark.skipif(not path.exists(), reason=reason)]


def needs_shared(*parts: str, root: Path | None = None):
    """Decorator form of :func:`shared_marks`, for one test function or class."""

    def mark(test):
        for one in shared_marks(*parts, root=root):
            test = one(test)
        return test

    return mark
