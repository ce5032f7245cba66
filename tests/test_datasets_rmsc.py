"""RMSC Douban album reviews: one UTF-8 JSON file per album (fixture only)."""

import json

import pytest

from trainer.datasets import DatasetError, LoadReport, rmsc

ALBUM = {
    "name": "Mozart: The Great Piano Concertos, Vol.1",
    "url": "https://music.douban.com/subject/1394536/",
    "rates": "9.1",
    "tags": ["古典", "钢琴"],
    "all_short_comments": [
        {"name": "小明", "rate": "5", "vote": "12", "comment": "莫扎特总是好的。"},
        {"name": "阿花", "rate": None, "vote": "", "comment": "钢琴的声音让我平静。"},
    ],
}


def write_albums(root):
    root.mkdir()
    mozart = root / "Mozart: The Great Piano Concertos, Vol.1"  # the released files are named after the album
    mozart.write_text(json.dumps(ALBUM, ensure_ascii=False), encoding="utf-8")
    other = dict(ALBUM, name="朴树 - 我去2000年", rates="", tags=["流行", "民谣", "流行"], all_short_comments=[])
    (root / "我去2000年.json").write_text(json.dumps(other, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "broken.json").write_text('{"name": "x",\n "tags": [', encoding="utf-8")
    (root / "no_comments.json").write_text(json.dumps({"name": "x", "url": "", "rates": "7", "tags": []}))
    (root / "bad_comment.json").write_text(json.dumps(dict(ALBUM, all_short_comments=[{"name": "x"}])))
    (root / ".DS_Store").write_bytes(b"\0\1")


def test_albums_comments_and_report(tmp_path):
    write_albums(tmp_path / "rmsc")
    report = LoadReport()
    albums = rmsc.load(tmp_path / "rmsc", report=report)
    assert [a.key for a in albums] == ["Mozart: The Great Piano Concertos, Vol.1", "我去2000年.json"]
    mozart, pu = albums
    assert mozart.rating == 9.1 and mozart.labels == ("古典", "钢琴") and mozart.url.endswith("1394536/")
    assert mozart.comments[0] == rmsc.Comment(user="小明", rate="5", votes=12, text="莫扎特总是好的。")
    assert mozart.comments[1].rate == "" and mozart.comments[1].votes is None
    assert pu.rating is None and pu.labels == ("流行", "民谣") and pu.comments == ()
    assert len(report.skipped) == 3
    assert "bad_comment.json: comment 0 lacks" in report.skipped[0]
    assert "broken.json:2: invalid JSON" in report.skipped[1]
    assert "no_comments.json: missing key(s) all_short_comments" in report.skipped[2]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        rmsc.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no RMSC album"):
        rmsc.load(tmp_path / "empty")
