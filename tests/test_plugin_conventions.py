"""The plugin as beets users expect of a mature plugin: albums (``-a``),
quiet output, checked options, tags players read. Through beets' helpers,
on files the tests write."""

from __future__ import annotations

import os
import shutil

import mutagen
import pytest
from mediafile import MediaFile

from audio_fixtures import write_audio as write_format
from beets import ui
from beets.library import Item
from beets_fixtures import AutotagMLHelper
from beetsplug.autotagml.albums import album_values
from plugin_fixtures import make_bundle


@pytest.mark.parametrize("tracks, count, album", [
    ([["Rock"], ["Rock", "Pop"], ["Jazz"]], 2, ["Rock"]),  # carried by 2 of 3
    ([["Rock", "Pop"], ["Pop", "Rock"], ["Pop"]], 2, ["Pop", "Rock"]),  # most carried first
    ([["Rock"], ["Pop"], ["Jazz"], ["Pop"]], 2, ["Pop"]),  # half is enough
    ([["Rock"], ["Pop"], ["Jazz"]], 2, ["Rock"]),  # a compilation: the first most carried
    ([["Rock"], [], []], 2, ["Rock"]),  # tracks without a value do not vote
    ([[], []], 2, []),
    ([["A", "B", "C"], ["A", "B", "C"]], 2, ["A", "B"]),  # at most count
])
def test_album_values(tracks, count, album):
    assert album_values(tracks, count=count) == album


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    base = tmp_path_factory.mktemp("conventions-bundles")
    return {
        "mood": make_bundle(base / "mood", name="mood-test", labels=["happy", "sad", "calm"], bias=(4.0, 3.5, 0.0),
                            task="mood"),
        "style": make_bundle(base / "style", name="style-test", labels=["dream pop", "shoegaze", "trip hop"],
                             bias=(0.0, 4.0, 0.0), task="style"),
        "rock": make_bundle(base / "rock", name="genre-rock", labels=["hiphop", "rock", "jazz"], bias=(0.0, 5.0, 1.0)),
    }


class ConventionsHelper(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _bundles(self, _attach, bundles):
        self.bundles = bundles

    def album_of(self, name: str, kinds: list[str], genre_bundle: str = "bundle") -> list[Item]:
        """An album of tracks in their own folder, added as beets' importer would."""
        folder = self.lib_path / name
        folder.mkdir()
        items = []
        for number, kind in enumerate(kinds, start=1):
            path = folder / f"{number:02d}.{kind}"
            shutil.copyfile(self.assets[kind], path)
            item = Item.from_path(str(path))
            item.update({"album": name, "albumartist": "Artist", "track": number, "title": f"{name} {number}"})
            items.append(item)
        self.lib.add_album(items)
        return items


class TestAlbums(ConventionsHelper):
    def test_albums_get_genres_mood_and_style_from_their_tracks(self):
        self.use_model(models={"genre": str(self.assets["bundle"]), "mood": str(self.bundles["mood"]),
                               "style": str(self.bundles["style"])})
        items = self.album_of("one", ["mp3", "flac"])

        out, _ = self.run_ml("-a", "-W", "album:one")

        album = self.fresh(items[0]).get_album()
        assert list(album.genres) == ["Hip Hop"] and album["mood"] == ["Happy", "Sad"] and album.style == "Shoegaze"
        assert album["ml_written_genres"] == ["Hip Hop"]
        assert "albums: 1 updated" in out
        # Track fields are the tracks' own: the album's store does not pass its values down.
        assert all(self.fresh(item).genres == ["Hip Hop"] for item in items)

    def test_album_values_are_never_taken_for_the_tracks_own(self):
        """beets' item.get falls back to album fields: the plugin must read
        a track's own values (a track without mood on an album with one
        once crashed a run, and would have read the album's record)."""
        models = {"genre": str(self.assets["bundle"]), "mood": str(self.bundles["mood"])}
        self.use_model(models=models)
        items = self.album_of("one", ["mp3", "flac"])
        self.run_ml("-W")
        assert self.fresh(items[0]).get_album()["mood"] == ["Happy", "Sad"]

        self.use_model(models=models, threshold={"mood": 0.99})
        out, _ = self.run_ml("-W")

        for item in items:
            assert not self.fresh(item).get("mood", with_album=False)
            assert "ml_written_mood" not in self.fresh(item).keys(with_album=False)
        album = self.fresh(items[0]).get_album()
        assert not album.get("mood") and "ml_written_mood" not in album
        # Once more: tracks without mood on an album without mood, nothing to do.
        out, _ = self.run_ml("-W")
        assert "0 files written" in out and "albums: 0 updated, 1 unchanged" in out

    def test_album_option_takes_an_album_query(self):
        self.use_model()
        one = self.album_of("one", ["mp3"])
        two = self.album_of("two", ["mp3"])

        out, _ = self.run_ml("-a", "-W", "album:two")

        assert "1 analysed" in out
        assert self.fresh(two[0]).genres == ["Hip Hop"] and self.fresh(one[0]).genres == []

    def test_an_album_genre_the_user_set_is_kept(self):
        self.use_model()
        items = self.album_of("one", ["mp3"])
        album = self.fresh(items[0]).get_album()
        album.genres = ["Trip Hop"]
        album.store(inherit=False)

        out, _ = self.run_ml("-W")
        assert list(self.fresh(items[0]).get_album().genres) == ["Trip Hop"] and "1 kept" in out

        self.run_ml("-W", "--force")
        assert list(self.fresh(items[0]).get_album().genres) == ["Hip Hop"]

    def test_a_mixed_album_gets_what_most_tracks_carry(self):
        self.use_model()
        items = self.album_of("mixed", ["mp3", "mp3", "flac"])
        self.run_ml("-W")
        # One track is rock according to another model.
        self.use_model(model=str(self.bundles["rock"]))
        self.run_ml("-W", self.fresh(items[2]).path.decode())

        album = self.fresh(items[0]).get_album()
        assert list(album.genres) == ["Hip Hop"]


class TestOutput(ConventionsHelper):
    def test_a_query_matching_nothing_is_one_line(self):
        self.use_model()
        self.album_of("one", ["mp3"])

        out, err = self.run_ml("title:nothing-has-this-title")

        assert out == "autotag-ml: no item matches 'title:nothing-has-this-title'\n"
        out, _ = self.run_ml("-a", "album:nothing")
        assert out == "autotag-ml: no album matches 'album:nothing'\n"

    def test_an_empty_library_is_one_line(self):
        self.use_model()

        out, _ = self.run_ml()

        assert out == "autotag-ml: the library is empty\n"

    def test_a_clean_run_is_quiet(self):
        self.use_model(models={"genre": str(self.assets["bundle"]), "mood": str(self.bundles["mood"])},
                       threshold={"mood": 0.99})
        for number in range(8):
            self.add_audio(f"{number}.mp3", "mp3")

        out, err = self.run_ml("-W")

        assert not self.logged()  # nothing per item at the default verbosity
        assert len(out.splitlines()) <= 5, out
        assert "8 below threshold" in out  # counted in the summary


class TestOptions(ConventionsHelper):
    @pytest.mark.parametrize("options, message", [
        ({"treshold": 0.9}, "unknown option 'treshold'; did you mean 'threshold'?"),
        ({"threshold": {"gnere": 0.9}}, "threshold.gnere: no such task (configured: genre); did you mean 'genre'?"),
        ({"count": {"mood": 2}}, "count.mood: no such task"),
        ({"device": "gpu"}, "device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
        ({"genre_weights": {"audi": 1}}, "genre_weights.audi: no such source"),
        ({"model_threads": 0}, "model_threads must be auto or a whole number >= 1, not 0"),
        ({"model_threads": "many"}, "model_threads must be auto or a whole number >= 1, not 'many'"),
    ])
    def test_nonsense_is_refused_before_any_work(self, options, message):
        self.use_model(**options)
        item = self.add_audio("a.mp3", "mp3")

        with pytest.raises(ui.UserError) as error:
            self.run_command("autotag-ml", "-W")

        assert message in str(error.value)
        assert "ml_genre_model" not in self.fresh(item)

    def test_an_unknown_model_name_names_the_closest(self):
        self.use_model(models={"genre": str(self.assets["bundle"]), "mood": "mood-musicn"})
        self.add_audio("a.mp3", "mp3")

        out, error = self.run_ml_failing("-W")

        assert "did you mean 'mood-musicnn'?" in out
        assert error == "autotag-ml: 1 task not run (listed above)"


class TestFileTags(ConventionsHelper):
    def test_moods_go_to_tmoo_too_and_no_empty_tag_is_written(self):
        self.use_model(models={"genre": str(self.assets["bundle"]), "mood": str(self.bundles["mood"]),
                               "style": str(self.bundles["style"])})
        mp3 = self.lib_path / "a.mp3"
        shutil.copyfile(self.assets["mp3"], mp3)
        m4a = write_format(self.lib_path, "m4a-aac", seconds=5.0, name="b")
        for path in (mp3, m4a):
            Item.from_path(str(path)).add(self.lib)

        self.run_ml("-w")
        tags = mutagen.File(str(mp3))
        assert tags.tags.getall("TMOO")[0].text == ["Happy", "Sad"]
        assert tags.tags.getall("TXXX:MOOD")[0].text == ["Happy", "Sad"]

        # A stricter threshold empties the plugin's style: the tag goes, no empty atom stays.
        self.use_model(models={"genre": str(self.assets["bundle"]), "mood": str(self.bundles["mood"]),
                               "style": str(self.bundles["style"])}, threshold={"style": 0.99})
        self.run_ml("-w")
        assert "----:com.apple.iTunes:STYLE" not in mutagen.File(str(m4a)).tags
        assert not mutagen.File(str(mp3)).tags.getall("TXXX:STYLE")
        assert MediaFile(str(m4a)).style is None
        assert os.path.exists(m4a)


def vibe_head(directory, *, provenance=None):
    """A single-label head on a tiny backbone whose prediction is fixed:
    energetic 0.60, chill 0.40."""
    import torch

    from tagcore.bundle import save_bundle
    from tagcore.families import head
    from tagcore.features import MelParams
    from test_analysis import tiny_disambig

    backbone = tiny_disambig(directory, name="bb", features=MelParams(), outputs=("scores", "embedding"))
    config = head.Config(n_inputs=6, n_labels=2, hidden=0, multilabel=False)
    model = head.Model(config)
    with torch.no_grad():  # softmax(0.4, 0) = 0.60, 0.40: both pass 0.3
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.copy_(torch.tensor([0.4, 0.0]))
    return save_bundle(directory / "vibe", model=model.eval(), family="head", name="vibe-test", version="1",
                       labels=["energetic", "chill"], model_config=config.to_dict(),
                       input={"kind": "backbone", "bundle": str(backbone)}, task="vibe", provenance=provenance)


class TestHeads(ConventionsHelper):
    def test_a_head_learned_from_a_library_field_writes_that_field(self, tmp_path):
        # As `python -m trainer head --beets-library ... --field vibe` records it.
        vibe = vibe_head(tmp_path, provenance={"layout": "beets", "labels_from": "vibe"})
        self.use_model(models={"vibe": str(vibe)}, threshold=0.3)
        mine = self.add_audio("mine.mp3", "mp3", vibe="chill")
        other = self.add_audio("other.mp3", "mp3")

        out, _ = self.run_ml("-W")

        assert self.fresh(other)["vibe"] == "energetic" and self.fresh(other)["ml_written_vibe"] == ["energetic"]
        assert self.fresh(mine)["vibe"] == "chill" and "1 kept" in out  # the user's own label stays
        assert "ml_vibe" not in self.fresh(other)
        # Or the field the user names.
        self.use_model(models={"vibe": str(vibe)}, threshold=0.3, fields={"vibe": "feel"})
        self.run_ml("-W")
        assert self.fresh(mine)["feel"] == "energetic"

    def test_two_tasks_writing_one_field_is_refused(self, tmp_path):
        vibe = vibe_head(tmp_path)
        self.use_model(models={"genre": str(self.assets["bundle"]), "vibe": str(vibe)}, fields={"vibe": "genres"})
        self.add_audio("a.mp3", "mp3")
        with pytest.raises(ui.UserError, match="tasks genre and vibe both write genres"):
            self.run_command("autotag-ml", "-W")

    def test_a_single_label_head_writes_one_label(self, tmp_path):
        vibe = vibe_head(tmp_path)
        self.use_model(models={"vibe": str(vibe)}, threshold=0.3, count=2)
        item = self.add_audio("a.mp3", "mp3")

        self.run_ml("-W")

        assert self.fresh(item)["ml_vibe"] == "energetic"  # not "energetic, chill"
        assert self.fresh(item)["ml_vibe_chill"] == pytest.approx(0.401, abs=1e-3)


class TestPretend(ConventionsHelper):
    def test_pretend_shows_no_scores_for_the_embedding_task(self, tmp_path):
        from tagcore.features import MelParams
        from test_analysis import tiny_disambig

        both = tiny_disambig(tmp_path, name="scores-and-embedding", features=MelParams(),
                             outputs=("scores", "embedding"))
        self.use_model(models={"genre": str(self.assets["bundle"]), "embedding": str(both)})
        self.add_audio("a.mp3", "mp3")

        out, _ = self.run_ml("-p")

        assert "genre scores:" in out and "embedding scores:" not in out
        assert "embedding (scores-and-embedding 1): 1 with an embedding" in out
