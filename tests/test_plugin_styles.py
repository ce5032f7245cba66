"""The plugin's ``style`` task from album reviews, through beets' test
helpers: STYLE written into an mp3, a flac and an m4a, the album's style,
English or original names, labels routed to ``mood``, the review sources,
and bad review input (one line per album, nothing written for its style,
the other tasks still run).

The style bundle is a tiny HAN whose output layer is zero with a fixed
bias, so its scores do not depend on the text: 流行 (Pop) sigmoid(3) =
0.953, 摇滚 (Rock) sigmoid(-3) = 0.047, 伤感 (Sad, a mood) sigmoid(2) =
0.881, 民谣 (Folk) sigmoid(0.5) = 0.622.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import mutagen
import numpy as np
import pytest
import torch
from mediafile import MediaFile

from beets.library import Item
from beets_fixtures import AutotagMLHelper
from plugin_fixtures import make_bundle, write_audio
from tagcore import text as T
from tagcore.families import han

LABELS = ["流行", "摇滚", "伤感", "民谣"]
BIAS = (3.0, -3.0, 2.0, 0.5)
NAMES = {"流行": "Pop", "摇滚": "Rock", "伤感": "Sad", "民谣": "Folk"}
TASKS = {"流行": "style", "摇滚": "style", "伤感": "mood", "民谣": "style"}
VOCABULARY = [T.PAD, T.UNK, "rock", "guitar", "record", "great", "民谣", "好听", "专辑", "这张"]
REVIEWS = "这张民谣专辑很好听\n\na great rock record with guitar\n"


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


#: A vocabulary of Chinese words only, as the shipped NetEase model's is
#: (96 % of its words), plus two English words it happened to see.
VOCABULARY_ZH = [T.PAD, T.UNK, "民谣", "好听", "专辑", "这张", "摇滚", "吉他", "一", "很", "the", "rock"]


def make_style_bundle(directory: Path, *, name: str = "style-test", threshold: float = 0.5,
                      vocabulary: list[str] = VOCABULARY) -> Path:
    from trainer.han import save_style_bundle

    torch.manual_seed(0)
    config = han.Config(vocabulary=vocabulary, n_labels=len(LABELS), embed_dim=8, hidden=8, attention_dim=8)
    model = han.Model(config)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.copy_(torch.tensor(BIAS))
    return save_style_bundle(directory, model=model, name=name, version="1", labels=LABELS, names=NAMES, tasks=TASKS,
                             threshold=threshold, provenance={"made_by": "tests/test_plugin_styles.py"}, metrics={})


def write_m4a(path: Path, seconds: float = 6.0) -> Path:
    """A short AAC tone in an MP4 container, encoded with PyAV."""
    import av

    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, len(y), 1024):
            frame = av.AudioFrame.from_ndarray(y[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("styles-assets")
    return {
        "style": make_style_bundle(base / "style"),
        "style_zh": make_style_bundle(base / "style-zh", name="style-zh", vocabulary=VOCABULARY_ZH),
        "bundle": make_bundle(base / "genre"),
        "mp3": write_audio(base / "tone.mp3", "mp3"),
        "flac": write_audio(base / "tone.flac", "flac"),
        "m4a": write_m4a(base / "tone.m4a"),
    }


def file_styles(path: Path) -> list[str]:
    tags = mutagen.File(os.fsdecode(path))
    if path.suffix == ".mp3":
        frames = tags.tags.getall("TXXX:STYLE")
        return list(frames[0].text) if frames else []
    if path.suffix == ".m4a":
        return [v.decode() for v in tags.tags.get("----:com.apple.iTunes:STYLE", [])]
    return list(tags.get("STYLE", []))


class StylesHelper(AutotagMLHelper):
    def use_styles(self, *, genre: bool = False, mood: bool = False, **options) -> None:
        """Only the style task, plus the audio genre model and a model
        serving ``mood`` (any bundle) when asked."""
        from beets.util import cached_classproperty

        models = {"style": str(self.assets[options.pop("style_bundle", "style")])}
        if genre:
            models["genre"] = str(self.assets["bundle"])
        if mood:
            models["mood"] = str(self.assets["bundle"])
        self.config["autotagml"].set({"models": models, "model": None, "workers": self.workers, **options})
        cached_classproperty.cache.clear()

    def add_album_files(self, folder: str, kinds: list[str], reviews: bytes | str | None = None,
                        name: str = "Album") -> list[Item]:
        """Audio files in their own folder, with an optional reviews.txt,
        added to the library as one album."""
        directory = self.lib_path / folder
        directory.mkdir(parents=True, exist_ok=True)
        if reviews is not None:
            (directory / "reviews.txt").write_bytes(reviews.encode() if isinstance(reviews, str) else reviews)
        items = []
        for number, kind in enumerate(kinds, start=1):
            path = directory / f"{number:02d}.{kind}"
            shutil.copyfile(self.assets[kind], path)
            item = Item.from_path(str(path))
            item.update({"album": name, "albumartist": "Artist", "track": number})
            items.append(item)
        self.lib.add_album(items)
        return items


class TestStyles(StylesHelper):
    def test_style_lands_in_mp3_flac_and_m4a_and_on_the_album(self):
        self.use_styles()
        items = self.add_album_files("album", ["mp3", "flac", "m4a"], REVIEWS)

        out, _ = self.run_ml("-w")

        assert "style (style-test 1): 3 tagged" in out, out
        for item in items:
            stored = self.fresh(item)
            # Pop 0.953 and Folk 0.622 pass p = 0.5; Rock does not; Sad is a mood.
            assert stored.style == "Pop; Folk"
            assert stored["ml_style_pop"] == pytest.approx(sig(3.0), abs=1e-3)
            assert stored["ml_style_rock"] == pytest.approx(sig(-3.0), abs=1e-3)
            assert stored["ml_style_sad"] == pytest.approx(sig(2.0), abs=1e-3)
            assert isinstance(stored["ml_style_pop"], float)
            assert stored["ml_style_model"] == "style-test" and stored["ml_style_version"] == "1"
            # No mood model configured: the routed mood label fills mood.
            assert stored["mood"] == ["Sad"]
            assert file_styles(item.filepath) == ["Pop", "Folk"]
            assert MediaFile(os.fsdecode(item.path)).style == "Pop; Folk"
        album = self.fresh(items[0]).get_album()
        assert album.style == "Pop; Folk" and album["ml_written_style"] == ["Pop", "Folk"]  # from its tracks

    def test_original_names_and_a_mood_model_keeps_mood(self):
        self.use_styles(mood=True, reviews={"names": "original"})
        items = self.add_album_files("album", ["flac"], REVIEWS)

        self.run_ml("-W", "-t", "style")

        stored = self.fresh(items[0])
        assert stored.style == "流行; 民谣"
        assert not stored.get("mood")  # the mood task has its own model

    def test_attribute_source_and_pretend(self):
        self.use_styles()
        items = self.add_album_files("album", ["mp3"])
        album = self.fresh(items[0]).get_album()
        album["reviews"] = REVIEWS
        album.store()
        before = items[0].filepath.read_bytes()

        out, _ = self.run_ml("-p", "-w")
        assert "style (style-test 1): 1 to tag" in out
        assert items[0].filepath.read_bytes() == before and not self.fresh(items[0]).get("style")

        self.run_ml("-w")
        assert self.fresh(items[0]).style == "Pop; Folk" and file_styles(items[0].filepath) == ["Pop", "Folk"]

    def test_bad_reviews_one_line_per_album_nothing_written_other_tasks_run(self):
        self.use_styles(genre=True, reviews={"max_bytes": 4096})
        good = self.add_album_files("good", ["mp3"], REVIEWS, name="Good")
        bad = {
            "binary": self.add_album_files("binary", ["mp3", "flac"], b"\x89PNG\r\n\x1a\n\x00\x00\x01", name="Binary"),
            "blank": self.add_album_files("blank", ["mp3", "flac"], "   \n\n\t \n", name="Blank"),
            "large": self.add_album_files("large", ["mp3", "flac"], "rock guitar record\n\n" * 1000, name="Large"),
            "foreign": self.add_album_files("foreign", ["mp3"], "ein völlig unbekannter Text hier\n\nnoch mehr davon",
                                            name="Foreign"),
            "none": self.add_album_files("none", ["flac"], None, name="Without"),
        }

        out, _ = self.run_ml("-w")

        assert "style (style-test 1): 1 tagged" in out and "8 skipped without input" in out, out
        assert self.fresh(good[0]).style == "Pop; Folk"
        lines = [line for line in self.logged() if line.startswith("style skipped:")]
        assert len(lines) == 4, out  # one per album with unusable reviews; none for the album without
        for folder, cause in (("binary", "not UTF-8 text"), ("blank", "empty or whitespace"),
                              ("large", "larger than 4,096 bytes"), ("foreign", "known to style-test")):
            assert sum(folder in line and cause in line for line in lines) == 1, (folder, lines)
        for items in bad.values():
            for item in items:
                stored = self.fresh(item)
                assert not stored.get("style") and "ml_style_model" not in stored
                assert file_styles(item.filepath) == []
                assert stored.genres == ["Hip Hop"]  # the audio task still ran
            assert not self.fresh(items[0]).get_album().get("style")

    def test_albums_without_reviews_are_not_analysed_again(self):
        self.use_styles()
        items = self.add_album_files("plain", ["mp3", "flac"], None, name="Plain")

        out, _ = self.run_ml("-W")

        assert "0 analysed (0 decoded), 2 from the store" in out, out
        assert "style (style-test 1): 0 tagged" in out and "2 skipped without input" in out
        assert "style skipped" not in out  # no reviews at all: listed only with -v
        assert all(not self.fresh(item).get("style") for item in items)

    def test_a_chinese_model_reads_only_chinese_reviews(self):
        """English reviews shown to a model trained on Chinese text are not
        read, even though the words "the" and "rock" are in its vocabulary
        (a coverage check alone would pass them); in a mixed album the
        Chinese reviews are read."""
        self.use_styles(style_bundle="style_zh")
        english = self.add_album_files("english", ["mp3"], "the rock record\n\nthe rock guitar is great", name="English")
        mixed = self.add_album_files("mixed", ["flac"], "这张民谣专辑很好听\n\nthe rock record is great", name="Mixed")

        out, _ = self.run_ml("-w")

        assert "style (style-zh 1): 1 tagged" in out, out
        lines = [line for line in self.logged() if line.startswith("style skipped:")]
        assert len(lines) == 1 and "english" in lines[0], out
        assert "not read by style-zh" in lines[0] and "Chinese/Japanese/Korean text" in lines[0], lines
        assert not self.fresh(english[0]).get("style") and not MediaFile(os.fsdecode(english[0].path)).style
        assert self.fresh(mixed[0]).style == "Pop; Folk"


class TestReviewSources:
    """ReviewReader on its own, one branch of each review source: the first
    source holding anything decides; an unusable one is a problem, not a
    reason to look further."""

    @staticmethod
    def read(tmp_path: Path, *, sidecar: str | None = None, attribute=None, comments: str = "", **options):
        from beetsplug.autotagml.styles import Options, ReviewReader

        if sidecar is not None:
            (tmp_path / "reviews.txt").write_text(sidecar, encoding="utf-8")
        item = Item(path=os.fsencode(tmp_path / "01.mp3"), title="t", comments=comments)
        if attribute is not None:
            item["reviews"] = attribute
        vocabulary = T.Vocabulary(VOCABULARY)
        reader = ReviewReader(Options.from_config(options), vocabulary, "style-test")
        text = reader(item)
        album = next(iter(reader.albums.values()))
        return text, album

    def test_sidecar_first_then_attribute(self, tmp_path):
        text, album = self.read(tmp_path, sidecar=REVIEWS, attribute="a great guitar record with rock")
        assert album.origin == "reviews.txt" and "民谣" in text and album.problem is None
        without_sidecar = tmp_path / "other"
        without_sidecar.mkdir()
        text, album = self.read(without_sidecar, attribute="a great guitar record with rock")
        assert album.origin == "the reviews attribute" and "guitar" in text

    def test_attribute_not_text_or_only_whitespace(self, tmp_path):
        _, album = self.read(tmp_path, attribute=3, sources=["attribute"])
        assert album.problem == "the reviews attribute is not text (int)" and album.text == ""
        _, album = self.read(tmp_path, attribute="  \n\n\t", sources=["attribute"])
        assert album.problem == "the reviews attribute holds only whitespace"

    def test_an_empty_attribute_goes_on_to_the_comments(self, tmp_path):
        text, album = self.read(tmp_path, attribute="", comments="a great rock record with guitar",
                                sources=["attribute", "comments"])
        assert album.origin == "the comments tags" and text == "a great rock record with guitar"

    def test_no_source_holds_reviews(self, tmp_path):
        text, album = self.read(tmp_path, sources=["sidecar", "attribute", "comments"])
        assert text == "" and album.absent and album.problem == "no reviews (sidecar, attribute, comments)"

    def test_too_few_words_and_too_few_known_words(self, tmp_path):
        _, album = self.read(tmp_path, attribute="rock", sources=["attribute"])
        assert album.problem.startswith("the reviews attribute: 1 review(s), none with enough words"), album.problem
        _, album = self.read(tmp_path, attribute="ein völlig unbekannter Text hier rock", sources=["attribute"],
                             min_tokens=2)
        assert "of the words are known to style-test (at least 20% needed" in album.problem, album.problem
