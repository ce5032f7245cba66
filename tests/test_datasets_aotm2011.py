"""Art of the Mix 2011 playlists JSON (plain and gzipped); fixture only."""

import gzip
import json

import pytest

from trainer.datasets import DatasetError, LoadReport, aotm2011
from trainer.datasets.aotm2011 import TrackRef

PLAYLISTS = [
    {
        "mix_id": 7,
        "category": "Road Trip",
        "timestamp": "2002-06-18 21:06:00",
        "user": {"name": "mixmaster", "since": "2001-01-01"},
        "playlist": [[["Weezer", "Buddy Holly"], "TRAOQIC128F4262F89"], [["Unmatched Band", "Some Song"], None],
                     [["Björk", "Jóga"], "TRBBBBB128F00000B1"], ["broken entry"]],
        "filtered_lists": [["TRAOQIC128F4262F89"]],
    },
    {"mix_id": 8, "category": "Mixed Genre", "playlist": [], "user": {"name": "other"}},
    {"mix_id": 7, "category": "Rock", "playlist": []},
    {"category": "Romantic", "playlist": []},
]


def test_playlists_tracks_and_report(tmp_path):
    path = tmp_path / "aotm2011_playlists.json"
    path.write_text(json.dumps(PLAYLISTS, ensure_ascii=False), encoding="utf-8")
    report = LoadReport()
    playlists = aotm2011.load(path, report=report)
    assert [p.key for p in playlists] == ["7", "8"]
    first = playlists[0]
    assert first.tracks == (
        TrackRef("Weezer", "Buddy Holly", "TRAOQIC128F4262F89"),
        TrackRef("Unmatched Band", "Some Song", None),
        TrackRef("Björk", "Jóga", "TRBBBBB128F00000B1"),
    )
    assert first.tags == ("Road Trip",) and first.user == "mixmaster" and first.name == ""
    assert report.skipped == [
        f"{path}: playlist 0: mix 7 entry 3 dropped: not enough values to unpack (expected 2, got 1)",
        f"{path}: playlist 2: mix_id 7 repeated",
        f"{path}: playlist 3: no mix_id or playlist list",
    ]
    gz = tmp_path / "aotm2011_playlists.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert aotm2011.load(gz) == playlists


def test_not_a_list_is_an_error(tmp_path):
    (tmp_path / "a.json").write_text('{"mix_id": 1}')
    with pytest.raises(DatasetError, match="expected a JSON list"):
        aotm2011.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('[{"mix_id": 1,\n')
    with pytest.raises(DatasetError, match="b.json:2: invalid JSON"):
        aotm2011.load(tmp_path / "b.json")
