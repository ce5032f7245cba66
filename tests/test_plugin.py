"""Tests of the autotagml beets plugin, through beets' own test helpers.

Audio fixtures are synthesized here (the beets wheel ships none) and the
model is a tiny bundle whose dense-layer bias fixes the prediction:
hiphop 0.975, rock 0.018, jazz 0.007 for any input.
"""

from __future__ import annotations

import logging
import shutil
from typing import ClassVar

import pytest
from mediafile import MediaFile

from beets import ui
from beets.test.helper import AutotagImportHelper, PluginMixin
from beets.util import cached_classproperty
from beets_fixtures import AutotagMLHelper, file_genres
from beetsplug import autotagml
from plugin_fixtures import EXPECTED, write_truncated

# --- Pure functions -------------------------------------------------------


@pytest.mark.parametrize(
    "label, genre",
    [
        ("hiphop", "Hip Hop"),
        ("hip-hop", "Hip Hop"),
        ("Hip_Hop", "Hip Hop"),
        ("rnb", "R&B"),
        ("r&b", "R&B"),
        ("rock", "Rock"),
        ("jazz", "Jazz"),
        ("post rock", "Post-Rock"),
        ("foo bar", "Foo Bar"),
    ],
)
def test_canonical_genre(label, genre):
    assert autotagml.canonical_genre(label) == genre


@pytest.mark.parametrize("label, known", [("hiphop", True), ("rnb", True), ("foo bar", False)])
def test_is_known_genre(label, known):
    assert autotagml.is_known_genre(label) is known


@pytest.mark.parametrize(
    "labels, fields",
    [
        (["hiphop", "rock"], ["ml_genre_hiphop", "ml_genre_rock"]),
        (["R&B", "Hip-Hop"], ["ml_genre_r_b", "ml_genre_hip_hop"]),
        (["r&b", "r b", "&&"], ["ml_genre_r_b", "ml_genre_r_b_2", "ml_genre_label_2"]),
    ],
)
def test_label_fields(labels, fields):
    assert list(autotagml.label_fields(labels).values()) == fields


@pytest.mark.parametrize(
    "threshold, count, genres",
    [
        (0.3, 2, ["Hip Hop"]),
        (0.0, 2, ["Hip Hop", "Rock"]),
        (0.0, 3, ["Hip Hop", "Rock", "Jazz"]),
        (0.0, 1, ["Hip Hop"]),
        (0.0, 0, []),
        (0.99, 2, []),
    ],
)
def test_choose_genres(threshold, count, genres):
    assert autotagml.choose("genre", EXPECTED, threshold=threshold, count=count) == genres


def test_choose_genres_merges_labels_naming_one_genre():
    scores = {"hiphop": 0.5, "hip-hop": 0.3, "rock": 0.2}
    assert autotagml.choose("genre", scores, threshold=0.0, count=2) == ["Hip Hop", "Rock"]


# --- Command --------------------------------------------------------------


class TestCommand(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _model(self, _attach):
        self.use_model()

    @pytest.mark.parametrize("kind", ["mp3", "flac"])
    def test_tags_land_in_file_and_library(self, kind):
        item = self.add_audio(f"song.{kind}", kind)

        out, _ = self.run_ml("-w")

        assert file_genres(item.filepath) == ["Hip Hop"]
        stored = self.fresh(item)
        assert stored.genres == ["Hip Hop"]
        assert stored["ml_genre_model"] == "genre-test"
        assert stored["ml_genre_version"] == "1"
        assert isinstance(stored["ml_genre_hiphop"], float)
        assert stored["ml_genre_hiphop"] == pytest.approx(EXPECTED["hiphop"], abs=1e-3)
        assert stored["ml_genre_jazz"] == pytest.approx(EXPECTED["jazz"], abs=1e-3)
        assert "autotag-ml: 1 analysed (1 decoded), 0 from the store" in out
        assert "genre (genre-test 1): 1 tagged, 0 unchanged, 0 skipped as too short, 0 failed, 0 below threshold" in out

    @pytest.mark.parametrize(
        "args, import_write, file_written",
        [
            (["-w"], False, True),
            (["-W"], True, False),
            ([], True, True),
            ([], False, False),
        ],
    )
    def test_write_options(self, args, import_write, file_written):
        self.config["import"]["write"] = import_write
        item = self.add_audio("song.mp3", "mp3")
        before = item.filepath.read_bytes()

        self.run_ml(*args)

        assert self.fresh(item).genres == ["Hip Hop"]
        assert (item.filepath.read_bytes() != before) is file_written
        assert file_genres(item.filepath) == (["Hip Hop"] if file_written else [])

    def test_pretend_changes_nothing_but_keeps_the_analysis(self):
        item = self.add_audio("song.mp3", "mp3", genres=["Blues"])
        before_bytes = item.filepath.read_bytes()
        before_row = dict(self.fresh(item))

        out, _ = self.run_ml("-p", "-w", "--force")

        assert item.filepath.read_bytes() == before_bytes
        after = self.fresh(item)
        assert dict(after) == before_row
        assert "ml_genre_model" not in after
        assert "  genres:\n    - Blues\n    + Hip Hop\n" in out  # beets' diff of list fields
        assert "genre scores: hiphop 0.98, rock 0.02, jazz 0.01" in out
        assert "pretend, nothing changed): 1 analysed" in out
        assert "genre (genre-test 1): 1 to tag" in out
        # What pretend analysed is in the store: the real run decodes nothing.
        out, _ = self.run_ml("-W")
        assert "0 analysed (0 decoded), 1 from the store" in out

    def test_second_run_reads_the_store_and_reanalyze_decodes_again(self):
        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-W")

        out, _ = self.run_ml("-W")
        assert "0 analysed (0 decoded), 1 from the store" in out
        assert "0 tagged, 1 unchanged" in out

        out, _ = self.run_ml("-W", "--reanalyze")
        assert "1 analysed (1 decoded), 0 from the store" in out
        assert "0 tagged, 1 unchanged" in out
        assert self.fresh(item).genres == ["Hip Hop"]

    def test_new_model_version_reanalyses(self):
        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-W")
        self.use_model("bundle_v2")

        out, _ = self.run_ml("-W")

        assert "1 analysed (1 decoded)" in out
        assert "genre (genre-test 2): 0 tagged, 1 unchanged" in out  # the same genres
        assert self.fresh(item)["ml_genre_version"] == "2"

    @pytest.mark.parametrize(
        "threshold, count, min_count, genres, below",
        [
            (0.3, 2, None, ["Hip Hop"], 0),
            (0.0, 2, None, ["Hip Hop", "Rock"], 0),
            (0.01, 3, None, ["Hip Hop", "Rock"], 0),
            (0.0, 1, None, ["Hip Hop"], 0),
            # Nothing passes: the best genre all the same (min_count 1 by default) ...
            (0.99, 2, None, ["Hip Hop"], 0),
            (0.99, 2, 2, ["Hip Hop", "Rock"], 0),
            (0.99, 1, 2, ["Hip Hop"], 0),  # never more than count
            # ... or nothing, with min_count 0: genres stay empty.
            (0.99, 2, 0, [], 1),
        ],
    )
    def test_threshold_and_count(self, threshold, count, min_count, genres, below):
        options = {} if min_count is None else {"min_count": min_count}
        self.use_model(threshold=threshold, count=count, **options)
        item = self.add_audio("song.mp3", "mp3")

        out, _ = self.run_ml("-w")

        stored = self.fresh(item)
        assert stored.genres == genres
        assert file_genres(item.filepath) == genres
        assert stored["ml_genre_model"] == "genre-test"  # analysed either way
        assert f"{1 - below} tagged" in out
        assert f"{below} below threshold" in out
        assert "below threshold:" not in out  # per-item detail only with -v
        if below:
            self.caplog.clear()
            self.run_command("-v", "autotag-ml", "-w")
            assert f"genre below threshold: {item.filepath} (no score >= 0.99; best hiphop 0.98)" in self.logged(logging.DEBUG)

    def test_best_genre_under_the_threshold_keeps_the_ownership_rules(self):
        """min_count writes a genre below the threshold only where the
        plugin may write: a user's genre stays without force."""
        self.use_model(threshold=0.99, count=2)
        mine = self.add_audio("mine.mp3", "mp3")
        theirs = self.add_audio("theirs.mp3", "mp3", genres=["Polka"])

        self.run_ml("-w")

        assert self.fresh(mine).genres == ["Hip Hop"]
        assert self.fresh(mine)["ml_written_genres"] == ["Hip Hop"]
        assert self.fresh(theirs).genres == ["Polka"]

    @pytest.mark.parametrize("value", [-1, 1.5, "one"])
    def test_bad_min_count_is_a_user_error(self, value):
        self.use_model(min_count=value)
        self.add_audio("song.mp3", "mp3")

        _, message = self.run_ml_failing()

        assert "min_count" in message

    def test_multiple_genres_written_to_file(self):
        self.use_model(threshold=0, count=2)
        item = self.add_audio("song.flac", "flac")

        self.run_ml("-w")

        assert file_genres(item.filepath) == ["Hip Hop", "Rock"]
        assert MediaFile(str(item.filepath)).genres == ["Hip Hop", "Rock"]

    def test_bad_model_path_is_a_user_error(self):
        self.add_audio("song.mp3", "mp3")
        missing = self.temp_path / "no-such-bundle"
        self.config["autotagml"]["model"] = str(missing)

        with pytest.raises(ui.UserError, match="no-such-bundle"):
            self.run_ml()

    def test_broken_weights_is_a_user_error(self):
        broken = self.temp_path / "broken-bundle"
        shutil.copytree(self.assets["bundle"], broken)
        (broken / "weights.safetensors").write_bytes(b"\x80\x04 not safetensors")
        self.config["autotagml"]["model"] = str(broken)
        self.add_audio("song.mp3", "mp3")

        with pytest.raises(ui.UserError, match="weights.safetensors"):
            self.run_ml()

    def test_failed_write_leaves_row_untouched(self, monkeypatch):
        from mediafile import UnreadableFileError

        item = self.add_audio("song.mp3", "mp3")
        before_row = dict(self.fresh(item))
        before_bytes = item.filepath.read_bytes()

        def refuse(self, *args, **kwargs):
            raise UnreadableFileError(self.filename, "disk says no")

        monkeypatch.setattr(MediaFile, "save", refuse)
        out, error = self.run_ml_failing("-w")

        assert dict(self.fresh(item)) == before_row
        assert item.filepath.read_bytes() == before_bytes
        assert "0 tagged" in out and "1 failed" in out
        assert sum("disk says no" in line for line in self.logged()) == 1
        assert any(line.startswith(f"failed: error writing {item.filepath}") for line in self.logged())
        assert error == "autotag-ml: 1 item failed (listed above)"


class TestBrokenFiles(AutotagMLHelper):
    """A library with broken files; with workers > 0 and more than five
    items the progress bar runs too."""

    @pytest.mark.parametrize("workers, good", [(0, 2), (2, 6)])
    def test_broken_files_reported_and_untouched(self, workers, good):
        self.use_model(workers=workers)
        goods = [self.add_audio(f"good{i}.{kind}", kind) for i, kind in zip(range(good), ["mp3", "flac"] * good)]
        text = self.add_audio("text.mp3", "text", genres=["Blues"])
        truncated = self.add_audio("truncated.mp3", "truncated", genres=["Blues"])
        broken = {item.id: (item.filepath.read_bytes(), dict(self.fresh(item))) for item in (text, truncated)}

        self.capsys.readouterr()
        with pytest.raises(ui.UserError, match="1 item failed"):  # the exit status says so
            self.run_command("autotag-ml", "-w")
        out, err = self.capsys.readouterr()

        assert f"{good} tagged, 0 unchanged, 1 skipped as too short, 1 failed, 0 below threshold" in out
        assert f"failed: {text.filepath}: not a recognised audio file" in self.logged()
        assert not any("truncated" in line for line in self.logged())  # too short: a skip, listed with -v
        self.caplog.clear()
        with pytest.raises(ui.UserError):
            self.run_command("-v", "autotag-ml", "-W")
        assert f"genre skipped: {truncated.filepath}: too short: 1.1 s < 3.0 s" in self.logged(logging.DEBUG)
        for item in (text, truncated):
            data, row = broken[item.id]
            assert item.filepath.read_bytes() == data
            assert dict(self.fresh(item)) == row
        for item in goods:
            assert self.fresh(item).genres == ["Hip Hop"]
            assert file_genres(item.filepath) == ["Hip Hop"]
        # click's bar writes only its label when stderr is not a terminal
        assert ("autotag-ml" in err.splitlines()) is (good + 2 > autotagml.PROGRESS_MIN_ITEMS)


# --- Import stage ---------------------------------------------------------


class TestImportStage(PluginMixin, AutotagImportHelper):
    plugin: ClassVar[str] = "autotagml"

    @pytest.fixture(autouse=True)
    def _prepare(self, assets):
        self.config["autotagml"].set({"model": str(assets["bundle"]), "workers": 0})
        cached_classproperty.cache.clear()
        album = self.import_path / "album"
        album.mkdir()
        self.sources = []
        for number, kind in enumerate(["mp3", "flac"], start=1):
            path = album / f"track_{number}.{kind}"
            shutil.copyfile(assets[kind], path)
            medium = MediaFile(str(path))
            medium.update({"artist": "Tag Artist", "album": "Tag Album", "title": f"Tag Track {number}", "track": number})
            medium.save()
            self.sources.append(path)
        (album / "notes.mp3").write_text("not audio")  # the importer skips it itself

    def test_as_is_import_sets_genres(self, assets, caplog):
        # beets reads this one's tags, the decoder finds it too short
        truncated = write_truncated(assets["mp3"], self.import_path / "album" / "track_3.mp3", keep=10_000)
        medium = MediaFile(str(truncated))
        medium.update({"artist": "Tag Artist", "album": "Tag Album", "title": "Tag Track 3", "track": 3})
        medium.save()

        with caplog.at_level(logging.WARNING, logger="beets"):
            self.setup_importer(autotag=False, write=True).run()

        items = {item.title: item for item in self.lib.items()}
        assert len(items) == 3
        for name in ("Tag Track 1", "Tag Track 2"):
            assert items[name].genres == ["Hip Hop"]
            assert items[name]["ml_genre_model"] == "genre-test"
            assert isinstance(items[name]["ml_genre_hiphop"], float)
        assert items["Tag Track 3"].genres == []
        assert "ml_genre_model" not in items["Tag Track 3"]
        assert any("track_3.mp3: too short" in record.getMessage() for record in caplog.records)

    def test_applied_import_writes_genres_to_files(self):
        """With a match applied and import.write on, beets' importer writes
        the files after the plugin stages (ImportTask.manipulate_files)."""
        self.setup_importer(write=True).run()

        items = list(self.lib.items())
        assert len(items) == 2
        for item in items:
            assert item.title.startswith("Applied Track")
            assert item.genres == ["Hip Hop"]
            assert file_genres(item.filepath) == ["Hip Hop"]

    def test_bad_model_never_breaks_the_import(self):
        self.config["autotagml"]["model"] = str(self.temp_path / "missing-bundle")
        cached_classproperty.cache.clear()

        self.setup_importer(autotag=False).run()

        items = list(self.lib.items())
        assert len(items) == 2
        assert all(item.genres == [] and "ml_genre_model" not in item for item in items)
