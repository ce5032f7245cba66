"""``beet relatedtags`` and the related-tag proposals of ``beet autotag-ml``,
through beets' test helpers.

A tiny related-tags bundle is written by the tests (:func:`tiny_index`):
hand-made vectors in which Rap sits with Gangsta Rap and Aggressive, Jazz
with Bebop and Cool Jazz and Reflective; the genre model is the fixture
bundle of ``plugin_fixtures`` (every file is "hiphop", i.e. Hip Hop).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from beets.library import Item
from beets import ui
from beets.test.helper import PluginMixin, TestHelper
from beets.util import cached_classproperty
from plugin_fixtures import make_bundle, write_audio
from tagcore import related as R


def tiny_index() -> R.RelatedIndex:
    tags = [
        ("Rap", "genre", 50), ("Jazz", "genre", 40), ("Pop/Rock", "genre", 90),
        ("Gangsta Rap", "style", 20), ("Hardcore Rap", "style", 10), ("Bebop", "style", 15), ("Cool Jazz", "style", 12),
        ("Hard Rock", "style", 30),
        ("Aggressive", "mood", 25), ("Reflective", "mood", 30), ("Energetic", "mood", 40),
        ("Partying", "theme", 10), ("Late Night", "theme", 8),
    ]
    # axes: rap, jazz, rock
    vec = {
        "Rap": [1, 0, 0], "Jazz": [0, 1, 0], "Pop/Rock": [0, 0, 1],
        "Gangsta Rap": [0.95, 0, 0.1], "Hardcore Rap": [0.9, 0, 0.3], "Bebop": [0, 0.95, 0.05], "Cool Jazz": [0.05, 0.9, 0],
        "Hard Rock": [0.1, 0, 0.95],
        "Aggressive": [0.8, 0, 0.5], "Reflective": [0, 0.9, 0.1], "Energetic": [0.3, 0.1, 0.8],
        "Partying": [0.7, 0, 0.3], "Late Night": [0.1, 0.8, 0],
    }
    vocabulary = R.Vocabulary([R.Tag(n, k, c) for n, k, c in tags])
    source = R.Source("allmusic", [n for n, _, _ in tags], 1.0, vectors=np.array([vec[n] for n, _, _ in tags], dtype=np.float32))
    return R.RelatedIndex(vocabulary, [source], R.ALLMUSIC_ALIASES)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("related-assets")
    R.save_index(base / "related", tiny_index(), name="related-test", version="1", provenance={"made_by": "tests"})
    return {"related": base / "related", "bundle": make_bundle(base / "bundle"), "mp3": write_audio(base / "tone.mp3", "mp3")}


# beets' class caches and log handlers reset around every test.


class Helper(PluginMixin, TestHelper):
    plugin: ClassVar[str] = "autotagml"

    @pytest.fixture(autouse=True)
    def _attach(self, assets, capsys):
        self.assets = assets
        self.capsys = capsys
        self.config["autotagml"].set({"model": str(assets["bundle"]), "workers": 0,
                                      "related": {"bundle": str(assets["related"]), "min_score": 0.0}})
        cached_classproperty.cache.clear()

    def run(self, *args: str) -> str:
        self.capsys.readouterr()
        self.run_command(*args)
        return self.capsys.readouterr().out

    def add_audio(self, name: str, **values) -> Item:
        path = self.lib_path / name
        shutil.copyfile(self.assets["mp3"], path)
        item = Item.from_path(str(path))
        item.update(values)
        item.add(self.lib)
        return item


class TestRelatedTagsCommand(Helper):
    def test_lists_nearest_tags_with_kinds_and_scores(self):
        out = self.run("relatedtags", "-n", "3", "Jazz")
        assert out.splitlines()[1] == "  lastgenre genre tree: jazz"
        lines = [line for line in out.splitlines() if "genre tree" not in line]
        assert lines[0] == "Jazz (genre)"
        assert "Bebop  [style]" in lines[1]
        assert {l.split("[")[1].rstrip("]") for l in lines[1:]} <= {"style", "mood", "theme", "genre"}
        assert float(lines[1].split()[0]) >= float(lines[2].split()[0])

    def test_kind_filter_and_alias(self):
        out = self.run("relatedtags", "-k", "mood", "hip-hop")  # an alias of Rap
        lines = [line for line in out.splitlines() if "genre tree" not in line]
        assert "through an alias" in lines[0]
        assert "Aggressive  [mood]" in lines[1]
        assert "[style]" not in out

    def test_unknown_tag_names_the_closest_spellings(self):
        # Nothing listed: the command fails (non-zero exit) after naming the spellings.
        self.capsys.readouterr()
        with pytest.raises(ui.UserError, match="no tag given is known"):
            self.run_command("relatedtags", "Jaz")
        assert "Jaz: not in the vocabulary; closest spellings: Jazz" in self.capsys.readouterr().out

    def test_case_and_punctuation_do_not_matter(self):
        assert self.run("relatedtags", "GANGSTA-rap").splitlines()[0] == "GANGSTA-rap (style)"

    def test_genre_tree_path_is_shown(self):
        out = self.run("relatedtags", "Bebop")
        assert "  lastgenre genre tree: jazz > bebop" in out.splitlines()

    def test_two_words_are_one_tag(self):
        assert self.run("relatedtags", "cool", "jazz").splitlines()[0] == "cool jazz (style)"

    def test_unknown_kind_is_an_error(self):
        from beets import ui

        with pytest.raises(ui.UserError, match="unknown kind"):
            self.run("relatedtags", "-k", "colour", "Jazz")


class TestDuplicates(Helper):
    def add_genres(self):
        names = [["Hip-Hop"], ["Hip Hop"], ["hiphop"], ["Hip Hop"], ["Bossa Nova"], ["Bossanova"], ["JAZZ", "Jazz"], ["Rock"]]
        return [self.add_item(title=f"t{i}", genres=g) for i, g in enumerate(names)]

    def test_pretend_lists_groups_and_changes_nothing(self):
        items = self.add_genres()
        before = [list(self.lib.get_item(i.id).genres) for i in items]

        out = self.run("relatedtags", "--duplicates", "-p")

        assert "Hip Hop (2), Hip-Hop (1), hiphop (1) -> Hip Hop   [spelling]" in out
        assert "Bossa Nova (1), Bossanova (1) -> Bossa Nova   [spelling]" in out
        assert "Jazz (1), JAZZ (1) -> Jazz   [spelling]" in out
        assert "Rock" not in out.split("group(s)")[0].replace("Rock (", "")  # a lone genre is no group
        assert "3 group(s); 4 item(s) would change" in out
        assert [list(self.lib.get_item(i.id).genres) for i in items] == before

    def test_apply_renames_after_confirmation(self):
        self.config["import"]["write"] = False
        items = self.add_genres()
        self.run("relatedtags", "--duplicates", "--apply", "-y")
        genres = [list(self.lib.get_item(i.id).genres) for i in items]
        assert genres == [["Hip Hop"], ["Hip Hop"], ["Hip Hop"], ["Hip Hop"], ["Bossa Nova"], ["Bossa Nova"], ["Jazz"], ["Rock"]]

    def test_apply_renames_album_genres_too(self):
        self.config["import"]["write"] = False
        self.add_genres()
        album = self.add_album(genres=["Hip-Hop"])

        out = self.run("relatedtags", "--duplicates", "--apply", "-y")

        album = self.lib.get_album(album.id)
        assert list(album.genres) == ["Hip Hop"]
        assert all(list(item.genres) == ["Hip Hop"] for item in album.items())
        assert "and 1 album(s)" in out

    def test_apply_writes_files_and_skips_unwritable_ones(self):
        from mediafile import MediaFile

        self.config["import"]["write"] = True
        good = self.add_audio("a.mp3", genres=["hiphop"])
        other = self.add_audio("b.mp3", genres=["Hip Hop"])
        missing = self.add_item(title="gone", genres=["Hip-Hop"])  # no file behind it
        out = self.run("relatedtags", "--duplicates", "--apply", "-y")
        assert MediaFile(good.path).genres == ["Hip Hop"]
        assert list(self.lib.get_item(good.id).genres) == ["Hip Hop"]
        assert list(self.lib.get_item(other.id).genres) == ["Hip Hop"]
        assert list(self.lib.get_item(missing.id).genres) == ["Hip-Hop"]
        assert f"not renamed: error reading {missing.filepath}" in out
        assert "renamed the genres of 1 item(s)" in out

    def test_apply_declined_changes_nothing(self, monkeypatch):
        items = self.add_genres()
        monkeypatch.setattr("beets.ui.input_yn", lambda *a, **k: False)
        out = self.run("relatedtags", "--duplicates", "--apply")
        assert "nothing changed" in out
        assert list(self.lib.get_item(items[0].id).genres) == ["Hip-Hop"]

    def test_without_apply_or_duplicates_it_only_lists(self):
        items = self.add_genres()
        out = self.run("relatedtags", "--duplicates")
        assert out.splitlines()[-2:] == ["3 group(s); 4 item(s) would change",
                                         "use --apply to rename them (-p to list the items)"]
        assert list(self.lib.get_item(items[0].id).genres) == ["Hip-Hop"]
        for item in items:
            self.lib.get_item(item.id).remove()
        self.add_item(title="a", genres=["Rock"])
        self.add_item(title="b", genres=["Jazz"])
        out = self.run("relatedtags", "--duplicates", "--apply", "-y")
        assert out.splitlines()[-1] == "relatedtags: no likely duplicates among 2 genres"

    def test_empty_library(self):
        assert "relatedtags: no genres in the library" in self.run("relatedtags", "--duplicates")


class TestProposals(Helper):
    def test_attributes_set_files_untouched_by_default(self):
        item = self.add_audio("a.mp3")
        out = self.run("autotag-ml", "-W")
        fresh = self.lib.get_item(item.id)
        assert fresh.genres == ["Hip Hop"]
        assert fresh["ml_related_style"].split("; ")[:2] == ["Gangsta Rap", "Hardcore Rap"]
        assert len(fresh["ml_related_style_scores"].split("; ")) == len(fresh["ml_related_style"].split("; "))
        assert fresh["ml_related_mood"].split("; ")[0] == "Aggressive"
        assert fresh["ml_related_theme"].split("; ")[0] == "Partying"
        assert not fresh.get("style")
        assert "mood" not in fresh or not fresh["mood"]
        assert "related tags: 1 item(s) got proposals" in out

    def test_pretend_shows_and_changes_nothing(self):
        item = self.add_audio("a.mp3")
        before = dict(self.lib.get_item(item.id))
        out = self.run("autotag-ml", "-p")
        assert "style: Gangsta Rap; Hardcore Rap" in out
        assert "related tags: 1 item(s) would get proposals" in out
        assert dict(self.lib.get_item(item.id)) == before

    def test_write_fills_empty_style_and_mood_only(self):
        self.config["autotagml"]["related"]["write"] = True
        self.config["autotagml"]["related"]["count"] = 2
        empty = self.add_audio("a.mp3")
        user = self.add_audio("b.mp3", style="Trip Hop", mood=["Calm"])
        self.run("autotag-ml", "-w")
        e, u = self.lib.get_item(empty.id), self.lib.get_item(user.id)
        assert e.style == "Gangsta Rap; Hardcore Rap"
        assert list(e.mood) == ["Aggressive", "Energetic"]
        assert u.style == "Trip Hop" and list(u.mood) == ["Calm"]
        from mediafile import MediaFile

        assert MediaFile(e.path).style == "Gangsta Rap; Hardcore Rap"

    def test_disabled(self):
        self.config["autotagml"]["related"]["enabled"] = False
        item = self.add_audio("a.mp3")
        out = self.run("autotag-ml", "-W")
        assert "ml_related_style" not in self.lib.get_item(item.id)
        assert "related tags" not in out
