"""Album reviews: low-information rules, top-voted selection, sidecar files
(reviews.txt paragraphs, reviews.json), bounded reading and bad bytes; the
plugin's reader over sidecar, attribute and comments sources."""

from __future__ import annotations

import json
import os

import pytest

from tagcore import reviews as R
from tagcore import text as T


@pytest.mark.parametrize(
    "text, informative",
    [
        ("好听", False),  # one word
        ("哈哈哈哈", False),
        ("!!!!", False),
        ("5 stars", True),
        ("great great", False),  # two tokens, one distinct
        ("这张民谣专辑很好听", True),
        ("A fine shoegaze record", True),
        ("   ", False),
    ],
)
def test_low_information_rule(text, informative):
    assert R.is_informative(text) is informative


def test_select_keeps_top_voted_informative_distinct_reviews():
    reviews = [R.Review("好听", 100), R.Review("a solid rock record", 3), R.Review("synth pop at its best", None),
               R.Review("great folk songs here", 10), R.Review("a  solid rock record", 50), R.Review("", 99)]
    kept = R.select_reviews(reviews, top=2)
    assert [r.text for r in kept] == ["great folk songs here", "a solid rock record"]
    # Unknown votes rank after known ones, in order.
    assert [r.text for r in R.select_reviews(reviews)][-1] == "synth pop at its best"
    many = [R.Review(f"review number {i}", i) for i in range(100)]
    assert [r.votes for r in R.select_reviews(many)] == list(range(99, 59, -1))  # the top 40


def test_paragraphs_and_album_text():
    assert R.split_paragraphs("one\nstill one\n\n \t\ntwo\r\n\r\nthree\n\n") == ["one\nstill one", "two", "three"]
    text = R.album_text([R.Review("first\n\ninner gap"), "second", R.Review("  ")])
    assert text == "first\ninner gap\n\nsecond"
    assert R.split_paragraphs(text) == ["first\ninner gap", "second"]


def test_sidecar_txt_and_json(tmp_path):
    assert R.read_sidecar(tmp_path) is None
    (tmp_path / "reviews.json").write_text(json.dumps(
        {"reviews": ["plain text review", {"text": "voted review", "votes": "7"}, {"comment": "rmsc style", "vote": 2}]}),
        encoding="utf-8")
    found = R.read_sidecar(tmp_path)
    assert found.path.name == "reviews.json"
    assert found.reviews == [R.Review("plain text review"), R.Review("voted review", 7), R.Review("rmsc style", 2)]
    (tmp_path / "reviews.txt").write_text("第一条评论，很好听的民谣\n\nsecond review\n", encoding="utf-8")
    found = R.read_sidecar(tmp_path)  # reviews.txt comes first
    assert found.path.name == "reviews.txt" and [r.text for r in found.reviews] == ["第一条评论，很好听的民谣", "second review"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("reviews.txt", b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8 text"),
        ("reviews.txt", b"caf\xe9 latin-1 bytes", "not UTF-8 text"),
        ("reviews.json", b"[\"unclosed", "invalid JSON"),
        ("reviews.json", b"{\"reviews\": [1, 2]}", "review 0 is neither a string"),
    ],
)
def test_bad_sidecars_raise_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(R.ReviewError, match=message) as error:
        R.read_sidecar(tmp_path)
    assert str(tmp_path / name) in str(error.value)


def test_a_10_mb_sidecar_is_read_only_up_to_the_cap(tmp_path, monkeypatch):
    paragraph = ("这是一条很长的评论，" * 20 + "\n\n").encode("utf-8")
    path = tmp_path / "reviews.txt"
    with open(path, "wb") as handle:
        for _ in range(10 * 1024 * 1024 // len(paragraph) + 1):
            handle.write(paragraph)
    assert path.stat().st_size > 10 * 1024 * 1024
    reads = []
    real_open = open

    def spying_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _Wrapped(handle, reads) if str(file) == str(path) else handle

    monkeypatch.setattr("builtins.open", spying_open)
    found = R.read_sidecar(tmp_path, max_bytes=100_000)
    assert found.truncated and reads == [100_001]  # one bounded read, never the whole file
    assert found.reviews and all(r.text.endswith("，") for r in found.reviews)  # the cut paragraph dropped
    (tmp_path / "reviews.txt").unlink()
    (tmp_path / "reviews.json").write_bytes(b"[" + b"\"x\"," * 50_000 + b"\"x\"]")
    with pytest.raises(R.ReviewError, match="larger than 100,000 bytes"):
        R.read_sidecar(tmp_path, max_bytes=100_000)


class _Wrapped:
    """A file handle recording the sizes asked of ``read``."""

    def __init__(self, handle, reads):
        self.handle, self.reads = handle, reads

    def read(self, n=-1):
        self.reads.append(n)
        return self.handle.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


# --- the plugin's reader --------------------------------------------------------


class FakeItem(dict):
    """What ReviewReader asks of a beets Item."""

    def __init__(self, path, album_id=None, **fields):
        super().__init__(album_id=album_id, **fields)
        self.path = os.fsencode(path)

    def get(self, key, default=None, with_album=True):
        return super().get(key, default)

    def get_album(self):
        return None


def reader(**options):
    from beetsplug.autotagml.styles import Options, ReviewReader

    vocabulary = T.Vocabulary([T.PAD, T.UNK, "rock", "guitar", "record", "民谣", "好听", "专辑"])
    return ReviewReader(Options.from_config(options), vocabulary, "style-test")


def test_reader_sources_in_order_once_per_album(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    (album / "reviews.txt").write_text("a rock record with guitar\n\n这张民谣专辑很好听\n", encoding="utf-8")
    read = reader(sources=["attribute", "sidecar"])
    first = FakeItem(album / "01.mp3", album_id=1, reviews="guitar rock record")
    second = FakeItem(album / "02.mp3", album_id=1)
    assert read(first) == "guitar rock record"
    assert read(second) == "guitar rock record"  # gathered once for the album
    assert reader()(FakeItem(album / "01.mp3", album_id=2)) == "a rock record with guitar\n\n这张民谣专辑很好听"
    # The comments source (off by default).
    commented = FakeItem(tmp_path / "x.mp3", comments="great guitar rock record")
    assert reader()(commented) == "" and reader(sources=["comments"])(commented) == "great guitar rock record"


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "no reviews"),
        (b"   \n\n\t\n", "no review in it (empty or whitespace)"),
        (b"\x00\x01\x02binary", "not UTF-8 text"),
        ("好听\n\n!!!".encode(), "none with enough words"),
        ("completely unknown english words everywhere".encode(), "known to style-test"),
        (b"rock " * 2000, "larger than 1,000 bytes"),
    ],
)
def test_reader_problems_give_one_line_per_album(tmp_path, content, problem):
    album = tmp_path / "album"
    album.mkdir()
    if content is not None:
        (album / "reviews.txt").write_bytes(content)
    read = reader(max_bytes=1000)
    items = [FakeItem(album / f"{n}.mp3", album_id=7, album="Album", albumartist="Artist") for n in range(3)]
    assert [read(item) for item in items] == ["", "", ""]
    lines = read.messages(include_absent=True)
    assert len(lines) == 1 and problem in lines[0] and lines[0].startswith("Artist - Album (")
    assert read.messages() == ([] if content is None else lines)  # albums without reviews: only with -v


def test_mixed_languages_are_tokenized_per_review(tmp_path):
    read = reader()
    item = FakeItem(tmp_path / "a.mp3", reviews="这张民谣专辑很好听\n\na rock record with guitar\n\nun disque de rock")
    assert read(item).count("\n\n") == 2 and not read.messages()
