"""M3U / M3U8 playlists: EXTINF parsing, path resolution, encodings."""

import os

import pytest

from trainer.datasets import DatasetError, LoadReport, m3u
from trainer.datasets.m3u import Entry


def test_m3u8_entries(tmp_path):
    (tmp_path / "lists").mkdir()
    path = tmp_path / "lists" / "Road trip.m3u8"
    path.write_text(
        "\ufeff#EXTM3U\n#PLAYLIST:Voyage à Paris\n"
        "#EXTINF:245,Weezer - Buddy Holly\n../music/Weezer/04 Buddy Holly.mp3\n"
        "#EXTINF:-1 tvg-id=\"x\",Radio Nova\nhttp://example.org/stream.mp3\n\n"
        "#EXTINF:abc,Broken - Entry\n/abs/Björk - Jóga.flac\n"
        "#EXTINF:12,Dangling\n#EXTINF:30,Sigur Rós - Hoppípolla\nSigur Rós/Hoppípolla.ogg\n"
        "#EXTINF:10,No entry after\n",
        encoding="utf-8",
    )
    report = LoadReport()
    playlist = m3u.load(path, report=report)
    assert playlist.name == "Voyage à Paris" and playlist.key == str(path)
    assert playlist.entries == (
        Entry(os.path.join(str(tmp_path), "music", "Weezer", "04 Buddy Holly.mp3"), 245.0, "Weezer", "Buddy Holly"),
        Entry("http://example.org/stream.mp3", None, "", "Radio Nova"),
        Entry("/abs/Björk - Jóga.flac"),
        Entry(os.path.join(str(tmp_path), "lists", "Sigur Rós", "Hoppípolla.ogg"), 30.0, "Sigur Rós", "Hoppípolla"),
    )
    assert [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped] == ["8", "10", "13"]
    assert "bad #EXTINF" in report.skipped[0] and "without an entry" in report.skipped[1]


def test_m3u_latin1_fallback_and_folder(tmp_path):
    old_text = "#EXTM3U\n#EXTINF:200,Céline Dion - Pour que tu m'aimes encore\nc\xe9line.mp3\n"
    (tmp_path / "old.m3u").write_bytes(old_text.encode("latin-1"))
    (tmp_path / "new.m3u").write_text("song.mp3\n", encoding="utf-8")
    (tmp_path / "bad.m3u8").write_bytes(b"caf\xe9.mp3\n")
    (tmp_path / "notes.txt").write_text("x")
    old = m3u.load(tmp_path / "old.m3u")
    assert old.name == "old" and old.entries[0].artist == "Céline Dion"
    assert old.entries[0].path == os.path.join(str(tmp_path), "céline.mp3")
    with pytest.raises(DatasetError, match="bad.m3u8: .m3u8 file is not UTF-8"):
        m3u.load(tmp_path / "bad.m3u8")
    (tmp_path / "bad.m3u8").unlink()
    assert [p.name for p in m3u.load_folder(tmp_path)] == ["new", "old"]
    with pytest.raises(DatasetError, match="cannot read"):
        m3u.load(tmp_path / "missing.m3u")
