"""Styles heard in the audio: the genre scores split on lastgenre's tree,
broad genres in ``genres``, the specific ones under a written genre in
``style`` (fusion.py rule 4), merged after the styles read in reviews."""

from __future__ import annotations

from pathlib import Path

import mutagen
import pytest
from beets_fixtures import AutotagMLHelper, file_genres
from plugin_fixtures import make_bundle, write_audio

from beetsplug.autotagml.fusion import GenreFusion, GenreSource, StyleRule, merge_styles
from tagcore import lastgenre

pytestmark = pytest.mark.skipif(not lastgenre.tree_paths(), reason="beets' lastgenre tree is not installed")

AUDIO = GenreSource("genre", "audio", 1.0, {})
LYRICS = GenreSource("lyrics_genre", "lyrics", 0.5, {"rap": "Hip Hop"})
STYLES = StyleRule(threshold=0.5, count=2)


def test_genres_are_broad_and_styles_sit_under_them():
    scores = {"genre": {"indie rock": 0.8, "rock": 0.3, "jazz": 0.6, "house": 0.7, "bebop": 0.4}}
    rule = GenreFusion([AUDIO], threshold=0.5, count=2, min_count=1, styles=STYLES)
    decision = rule.decide(scores)
    assert decision.genres == ["Rock", "Electronic"]  # Rock scores its best style, 0.8
    assert decision.styles == ["Indie Rock", "House"]  # Bebop under the threshold
    assert decision.sources == ["audio"]
    mixed = GenreFusion([AUDIO], threshold=0.5, count=2, min_count=1).decide(scores)
    assert mixed.genres == ["Indie Rock", "House"] and mixed.styles == []


def test_a_style_needs_its_genre_written():
    scores = {"genre": {"jazz": 0.9, "soul": 0.7, "rock": 0.8, "punk rock": 0.6}}
    rule = GenreFusion([AUDIO], threshold=0.5, count=1, min_count=1, styles=STYLES)
    decision = rule.decide(scores)
    assert decision.genres == ["Jazz"]
    assert decision.styles == []  # Soul (R&B) and Punk Rock (Rock): their genres are not written


def test_the_best_broad_genre_is_written_below_the_threshold_and_no_style_is():
    rule = GenreFusion([AUDIO], threshold=0.5, count=2, min_count=1, styles=STYLES)
    decision = rule.decide({"genre": {"house": 0.3, "jazz": 0.2}})
    assert decision.genres == ["Electronic"] and decision.styles == []


def test_lyrics_vote_on_the_broad_genre():
    scores = {"genre": {"alternative rock": 0.55, "hip hop": 0.5}, "lyrics_genre": {"rap": 0.9, "rock": 0.05}}
    rule = GenreFusion([AUDIO, LYRICS], threshold=0.5, count=1, min_count=1, styles=STYLES)
    decision = rule.decide(scores)
    assert decision.genres == ["Hip Hop"]  # (0.5 + 0.5 * 0.9) / 1.5 = 0.63 against Rock at 0.55 (its style)
    assert decision.sources == ["audio", "lyrics"]


@pytest.mark.parametrize("reviews, audio, count, merged", [
    ([], ["Indie Rock", "House"], 2, ["Indie Rock", "House"]),
    (["Shoegaze"], ["Indie Rock", "House"], 2, ["Shoegaze", "Indie Rock"]),
    (["Shoegaze", "Dream Pop"], ["indie rock"], 1, ["Shoegaze", "Dream Pop"]),  # reviews never cut
    (["Indie Rock"], ["indie rock", "House"], 3, ["Indie Rock", "House"]),  # once, case aside
    ([], [], 2, []),
])
def test_merge_styles(reviews, audio, count, merged):
    assert merge_styles(reviews, audio, count=count) == merged


def file_styles(path: Path) -> list[str]:
    frames = mutagen.File(str(path)).tags.getall("TXXX:STYLE")
    return list(frames[0].text) if frames else []


@pytest.fixture(scope="module")
def style_assets(tmp_path_factory) -> dict[str, Path]:
    """A genre model scoring indie rock 0.84, house 0.11, jazz 0.04 for any input."""
    base = tmp_path_factory.mktemp("audio-styles")
    return {
        "bundle": make_bundle(base / "genre", labels=["indie rock", "house", "jazz"], bias=(3.0, 1.0, 0.0)),
        "mp3": write_audio(base / "tone.mp3", "mp3"),
    }


class TestPlugin(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _styles(self, style_assets):
        self.assets = {**self.assets, **style_assets}

    def test_the_genre_is_broad_and_the_style_specific(self):
        self.use_model()
        item = self.add_audio("a.mp3", "mp3")

        self.run_ml("-w")

        item = self.fresh(item)
        assert item.genres == ["Rock"]
        assert item.style == "Indie Rock"
        assert file_genres(item.filepath) == ["Rock"]
        assert file_styles(item.filepath) == ["Indie Rock"]

    def test_audio_styles_off_keeps_one_mixed_list(self):
        self.use_model(audio_styles=False)
        item = self.add_audio("a.mp3", "mp3")

        self.run_ml("-w")

        item = self.fresh(item)
        assert item.genres == ["Indie Rock"]
        assert not item.get("style")

    def test_a_style_the_user_set_is_kept(self):
        self.use_model()
        item = self.add_audio("a.mp3", "mp3", style="Post-Punk")

        self.run_ml("-w")

        item = self.fresh(item)
        assert item.genres == ["Rock"]
        assert item.style == "Post-Punk"
