"""The one real-data mark: where the shared datasets are looked for, and the
skip of a test whose dataset is absent."""

from __future__ import annotations

from pathlib import Path

from realdata_fixtures import SHARED_ENV, needs_shared, shared_marks, shared_root


def test_the_datasets_are_beside_the_repository_unless_the_variable_names_a_folder(tmp_path):
    repository = Path(__file__).resolve().parents[1]
    assert shared_root({}) == repository.parent / "shared" / "datasets"
    assert shared_root({SHARED_ENV: str(tmp_path)}) == tmp_path
    assert shared_root({SHARED_ENV: ""}) == repository.parent / "shared" / "datasets"


def test_an_absent_dataset_skips_naming_its_path_and_a_present_one_runs(tmp_path):
    (tmp_path / "gtzan_mini").mkdir()
    absent = shared_marks("no_such_set", "tracks.csv", root=tmp_path)
    present = shared_marks("gtzan_mini", root=tmp_path)
    assert [m.name for m in absent] == [m.name for m in present] == ["realdata", "skipif"]
    assert absent[1].args == (True,) and present[1].args == (False,)
    reason = absent[1].kwargs["reason"]
    assert str(tmp_path / "no_such_set" / "tracks.csv") in reason and SHARED_ENV in reason


def test_the_decorator_applies_both_marks():
    @needs_shared("no_such_set", root=Path("/nonexistent"))
    def test_something():
        pass

    assert sorted(m.name for m in test_something.pytestmark) == ["realdata", "skipif"]

