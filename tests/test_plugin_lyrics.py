"""The lyrics genre source in the autotagml plugin, through beets' test
helpers: two sources fused, one source alone (--source), bad lyrics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from beets.library import Item
from beets.test.helper import PluginMixin, TestHelper
from beets.util import cached_classproperty
from beetsplug.autotagml.fusion import GenreFusion, GenreSource, fuse
from lyrics_fixtures import ENGLISH, INSTRUMENTAL, PORTUGUESE, make_lyrics_bundle, softmax_bias
from plugin_fixtures import make_bundle, write_audio, write_text_as_mp3

#: The audio fixture's prediction: rock just ahead of hiphop.
AUDIO_PROBS = (0.45, 0.50, 0.05)  # hiphop, rock, jazz


# --- the fusion rule (pure) ------------------------------------------------


def test_fusion_maps_labels_onto_beets_genres_and_weights_sources():
    audio = GenreSource(task="genre", source="audio", weight=1.0)
    lyrics = GenreSource(task="lyrics_genre", source="lyrics", weight=0.5, names={"rap": "Hip Hop"})
    scores = {"genre": {"hiphop": 0.45, "rock": 0.50, "jazz": 0.05},
              "lyrics_genre": {"rap": 0.9, "rock": 0.05, "country": 0.05}}
    fused, voters = fuse([audio, lyrics], scores)
    assert fused["Hip Hop"] == pytest.approx((0.45 + 0.5 * 0.9) / 1.5)
    assert fused["Rock"] == pytest.approx((0.50 + 0.5 * 0.05) / 1.5)
    # Genres one source cannot name are scored by the others alone.
    assert fused["Jazz"] == pytest.approx(0.05) and fused["Country"] == pytest.approx(0.05)
    assert voters["Hip Hop"] == ["audio", "lyrics"] and voters["Jazz"] == ["audio"]
    rule = GenreFusion([audio, lyrics], threshold=0.3, count=1)
    assert rule.fields(scores) == {"genres": ["Hip Hop"], "ml_genre_sources": "audio, lyrics"}
    assert rule.fields({"genre": scores["genre"]}) == {"genres": ["Rock"], "ml_genre_sources": "audio"}
    assert GenreFusion([audio, lyrics], threshold=0.99, count=1).fields(scores) == {}
    # Weight 0: the source decides nothing.
    silent = GenreFusion([audio, GenreSource("lyrics_genre", "lyrics", 0.0, {"rap": "Hip Hop"})], threshold=0.3, count=1)
    assert silent.fields(scores) == {"genres": ["Rock"], "ml_genre_sources": "audio"}


# --- through beets ------------------------------------------------------------


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("autotagml-lyrics")
    return {
        "audio": make_bundle(base / "audio", name="genre-audio", bias=softmax_bias(AUDIO_PROBS)),
        "lyrics": make_lyrics_bundle(base / "lyrics"),
        "mp3": write_audio(base / "tone.mp3", "mp3"),
        "text": write_text_as_mp3(base / "text.mp3"),
    }



class TestLyricsSource(PluginMixin, TestHelper):
    plugin: ClassVar[str] = "autotagml"

    @pytest.fixture(autouse=True)
    def _setup(self, assets, capsys):
        self.assets, self.capsys = assets, capsys
        self.config["autotagml"].set({
            "models": {"genre": str(assets["audio"]), "lyrics_genre": str(assets["lyrics"])},
            "workers": 0, "threshold": 0.3, "count": 1,
        })
        cached_classproperty.cache.clear()

    def setup_beets(self) -> None:
        super().setup_beets()
        cached_classproperty.cache.clear()

    def add(self, name: str, kind: str = "mp3", **values) -> Item:
        path = self.lib_path / name
        shutil.copyfile(self.assets[kind], path)
        if kind == "text":
            return self.add_item(path=str(path), title=name, **values)
        item = Item.from_path(str(path))
        item.update(values)
        item.add(self.lib)
        return item

    def run_ml(self, *args: str) -> str:
        self.capsys.readouterr()
        self.run_command("autotag-ml", *args)
        return self.capsys.readouterr().out

    def fresh(self, item: Item) -> Item:
        return self.lib.get_item(item.id)

    def test_lyrics_and_audio_fused(self):
        with_lyrics = self.add("a.mp3", lyrics=ENGLISH)
        without = self.add("b.mp3")

        out = self.run_ml("-W")

        a, b = self.fresh(with_lyrics), self.fresh(without)
        # Audio alone says Rock; the lyrics' "rap" meets the audio's "hiphop" as Hip Hop.
        assert a.genres == ["Hip Hop"] and a["ml_genre_sources"] == "audio, lyrics", out
        assert a["ml_lyrics_genre_rap"] == pytest.approx(0.9, abs=1e-3)
        assert a["ml_genre_hiphop"] == pytest.approx(0.45, abs=1e-3)
        assert b.genres == ["Rock"] and b["ml_genre_sources"] == "audio"
        assert "ml_lyrics_genre_rap" not in b
        assert "1 skipped without input" in out

    @pytest.mark.parametrize("min_count, genres", [(None, ["Hip Hop"]), (0, [])])
    def test_fused_genres_under_the_threshold_keep_the_best_one(self, min_count, genres):
        """No fused genre reaches 0.99: the best fused one is written all
        the same (min_count 1 by default), none with min_count 0."""
        self.config["autotagml"]["threshold"] = 0.99
        if min_count is not None:
            self.config["autotagml"]["min_count"] = min_count
        item = self.add("a.mp3", lyrics=ENGLISH)

        self.run_ml("-W")

        assert self.fresh(item).genres == genres
        assert self.fresh(item).get("ml_genre_sources") == ("audio, lyrics" if genres else None)

    def test_lyrics_embedded_in_the_file_are_read(self):
        from mediafile import MediaFile

        path = self.lib_path / "embedded.mp3"
        shutil.copyfile(self.assets["mp3"], path)
        tags = MediaFile(str(path))
        tags.lyrics = ENGLISH
        tags.save()
        item = Item.from_path(str(path))  # as beets' importer reads it
        item.add(self.lib)

        self.run_ml("-W", "--source", "lyrics")

        stored = self.fresh(item)
        assert stored.genres == ["Hip Hop"] and stored["ml_genre_sources"] == "lyrics"

    def test_source_lyrics_alone_decodes_no_audio(self):
        # Not audio at all: only the lyrics can be read.
        item = self.add("text.mp3", kind="text", lyrics=ENGLISH)

        out = self.run_ml("-W", "--source", "lyrics")

        stored = self.fresh(item)
        assert stored.genres == ["Hip Hop"] and stored["ml_genre_sources"] == "lyrics", out
        assert "(0 decoded)" in out and "genre (" not in out.replace("lyrics_genre (", "")
        assert "ml_genre_hiphop" not in stored

    def test_source_audio_alone(self):
        item = self.add("a.mp3", lyrics=ENGLISH)

        out = self.run_ml("-W", "--source", "audio")

        stored = self.fresh(item)
        assert stored.genres == ["Rock"] and stored["ml_genre_sources"] == "audio", out
        assert "ml_lyrics_genre_rap" not in stored

    def test_unknown_source_is_a_clear_error(self):
        from beets import ui

        with pytest.raises(ui.UserError, match="unknown source"):
            self.run_command("autotag-ml", "--source", "video")

    @pytest.mark.parametrize("lyrics, reason", [
        (PORTUGUESE, "lyrics in 'pt' by their stopword profile"),
        (INSTRUMENTAL, "no words in the lyrics"),
    ])
    def test_bad_lyrics_are_skipped_with_the_reason_and_audio_still_used(self, lyrics, reason, caplog):
        item = self.add("a.mp3", lyrics=lyrics)

        out = self.run_ml("-W")
        assert "1 skipped as unreadable lyrics" in out and reason not in out  # the reason with -v
        self.run_command("-v", "autotag-ml", "-W", "-r")

        lines = [r.getMessage() for r in caplog.records if r.name == "beets.autotagml"]
        assert any(line.startswith(f"lyrics_genre skipped: {item.filepath}") and reason in line for line in lines), lines
        stored = self.fresh(item)
        assert stored.genres == ["Rock"] and stored["ml_genre_sources"] == "audio"
        assert "ml_lyrics_genre_rap" not in stored

    def test_megabyte_of_lyrics_is_truncated_not_fed_whole(self):
        item = self.add("a.mp3", lyrics=(ENGLISH + "\n") * (1_000_000 // len(ENGLISH) + 1))

        self.run_ml("-W")

        stored = self.fresh(item)
        assert stored["ml_genre_sources"] == "audio, lyrics" and stored.genres == ["Hip Hop"]

    def test_a_run_of_one_source_or_task_keeps_what_the_store_holds_of_the_others(self):
        item = self.add("a.mp3", lyrics=ENGLISH)
        self.run_ml("-W")
        assert self.fresh(item).genres == ["Hip Hop"]

        for args in (["--source", "lyrics"], ["--source", "audio"], ["-t", "genre"], ["-t", "lyrics_genre"]):
            out = self.run_ml("-W", *args)
            stored = self.fresh(item)
            assert stored.genres == ["Hip Hop"] and stored["ml_genre_sources"] == "audio, lyrics", (args, out)
            assert "(0 decoded)" in out and "0 tagged" in out

    def test_a_second_fused_run_changes_no_row_and_no_file(self):
        import hashlib

        item = self.add("a.mp3", lyrics=ENGLISH)
        self.run_ml("-w")
        path = self.fresh(item).filepath
        info = path.stat()
        before = (info.st_ino, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).digest(), dict(self.fresh(item)))

        out = self.run_ml("-w")

        info = path.stat()
        assert (info.st_ino, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).digest(),
                dict(self.fresh(item))) == before
        assert "0 files written" in out


#: A rap verse written for this test (not dataset text): money, the block,
#: the mic, rhymes, the hustle.
RAP_VERSE = """[Verse 1]
Yeah, I'm on the block with my homies, stacking cash, chasing money
Drop the beat, I spit fire on the mic, rhyme after rhyme, yeah
Hustle every day in these streets, ain't nobody stopping my grind
Gold chain on my neck, flexing, whip sitting on twenties, count the bands
Haters in the rear view, still I'm riding with my crew, real rap, no cap
Young rapper from the hood, got the flow, got the dough, money on my mind"""


class TestDefaultLyricsModel(PluginMixin, TestHelper):
    """The plugin's default models, lyrics only: no audio model decides."""

    plugin: ClassVar[str] = "autotagml"

    @pytest.fixture(autouse=True)
    def _setup(self, capsys):
        self.capsys = capsys
        self.config["autotagml"].set({"workers": 0})
        cached_classproperty.cache.clear()

    def setup_beets(self) -> None:
        super().setup_beets()
        cached_classproperty.cache.clear()

    def test_a_clear_rap_verse_gets_hip_hop_from_the_lyrics_alone(self, tmp_path):
        from beetsplug.autotagml import DEFAULT_MODELS

        assert DEFAULT_MODELS["lyrics_genre"] == "lyrics-tfidf"
        path = self.lib_path / "verse.mp3"
        shutil.copyfile(write_text_as_mp3(tmp_path / "text.mp3"), path)
        item = self.add_item(path=str(path), title="verse", lyrics=RAP_VERSE)
        self.capsys.readouterr()

        self.run_command("autotag-ml", "-W", "--source", "lyrics")

        out = self.capsys.readouterr().out
        stored = self.lib.get_item(item.id)
        assert stored["ml_lyrics_genre_model"] == "lyrics-tfidf", out
        assert stored.genres == ["Hip Hop"] and stored["ml_genre_sources"] == "lyrics", out
        assert stored["ml_lyrics_genre_rap"] > 0.5
