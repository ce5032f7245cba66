"""The analysis store: round trip, file keys, pruning, moves, persistence."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tagcore.analysis import Output
from tagcore.store import Store, StoreError, file_key

LABELS = ["rock", "jazz"]


def out(rock=0.75, status="ok", embedding=None):
    return Output(status, scores={"rock": rock, "jazz": 1 - rock}, embedding=embedding,
                  message="x: too short" if status == "too_short" else None)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.sqlite") as s:
        yield s


def test_round_trip_of_scores_and_float16_embeddings(store):
    vector = np.linspace(-1, 1, 200).astype(np.float32)
    store.put(b"/m/a.flac", (10, 5), {"g": ("1", LABELS, out(0.75)), "e": ("2", [], Output("ok", embedding=vector))})

    got = store.get([b"/m/a.flac"], {"g": "1", "e": "2"}, keys={b"/m/a.flac": (10, 5)})[b"/m/a.flac"]

    assert got["g"].scores == {"rock": 0.75, "jazz": 0.25}
    assert got["e"].embedding.dtype == np.float32
    assert np.allclose(got["e"].embedding, vector, atol=1e-3)
    assert dict(store.embeddings("e", "2"))[b"/m/a.flac"].shape == (200,)


def test_only_the_asked_version_and_the_current_file_key_count(store):
    store.put("/m/a.flac", (10, 5), {"g": ("1", LABELS, out())})
    assert store.get(["/m/a.flac"], {"g": "2"}) == {}
    assert store.get(["/m/a.flac"], {"g": "1"}, keys={b"/m/a.flac": (10, 6)}) == {}
    assert store.get(["/m/a.flac"], {"g": "1"}, keys={b"/m/a.flac": None}) == {}
    assert "g" in store.get(["/m/a.flac"], {"g": "1"})[b"/m/a.flac"]


def test_a_changed_file_drops_its_older_outputs(store):
    store.put("/m/a.flac", (10, 5), {"g": ("1", LABELS, out()), "h": ("1", LABELS, out())})
    store.put("/m/a.flac", (11, 7), {"g": ("1", LABELS, out(0.5))})
    got = store.get(["/m/a.flac"], {"g": "1", "h": "1"}, keys={b"/m/a.flac": (11, 7)})[b"/m/a.flac"]
    assert set(got) == {"g"} and got["g"].scores["rock"] == 0.5


def test_failures_are_not_stored_and_too_short_is(store):
    store.put("/m/a.flac", (1, 1), {"g": ("1", LABELS, Output("failed", message="broken"))})
    store.put("/m/b.flac", (1, 1), {"g": ("1", LABELS, Output("too_short", message="b: too short"))})
    got = store.get(["/m/a.flac", "/m/b.flac"], {"g": "1"})
    assert list(got) == [b"/m/b.flac"] and got[b"/m/b.flac"]["g"].status == "too_short"


def test_prune_forget_move_and_update_key(store):
    for name in "abc":
        store.put(f"/m/{name}.flac", (1, 1), {"g": ("1", LABELS, out())})
    assert store.prune([b"/m/a.flac", b"/m/b.flac"]) == 1
    assert sorted(store.paths()) == [b"/m/a.flac", b"/m/b.flac"]
    store.forget(["/m/b.flac"])
    store.move("/m/a.flac", "/n/a.flac")
    assert list(store.paths()) == [b"/n/a.flac"]
    assert store.update_key("/n/a.flac", (1, 2), (3, 4)) is False  # not recorded under (1, 2)
    assert store.update_key("/n/a.flac", (1, 1), (3, 4)) is True
    assert store.get(["/n/a.flac"], {"g": "1"}, keys={b"/n/a.flac": (3, 4)})


def test_it_persists_and_refuses_what_is_not_a_store(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put("/m/a.flac", (1, 1), {"g": ("1", LABELS, out())})
    with Store(path) as s:
        assert len(s) == 1
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is no database" * 100)
    with pytest.raises(StoreError, match="bad.sqlite"):
        Store(bad)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99'")
    with pytest.raises(StoreError, match="schema 99"):
        Store(path)


def test_file_key_is_size_and_mtime_ns(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert file_key(path)[0] == 5 and file_key(tmp_path / "missing") is None
