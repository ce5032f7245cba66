"""The decision rule of the tag fields: the best ``min_count`` labels
always, then those reaching the threshold, at most ``count``
(beetsplug.autotagml.fields.pick), for one model and for the fused genres."""

from __future__ import annotations

import math

import pytest

from beetsplug.autotagml import fields as F
from beetsplug.autotagml.fusion import GenreFusion, GenreSource

RANKED = [("Jazz", 0.45), ("Blues", 0.30), ("Soul", 0.10)]


@pytest.mark.parametrize(
    "threshold, count, min_count, chosen",
    [
        (0.5, 2, 0, []),                   # nothing reaches the threshold
        (0.5, 2, 1, ["Jazz"]),             # the best one all the same
        (0.5, 2, 2, ["Jazz", "Blues"]),
        (0.5, 1, 2, ["Jazz"]),             # never more than count
        (0.5, 0, 1, []),
        (0.3, 3, 1, ["Jazz", "Blues"]),    # further ones only at the threshold
        (0.3, 3, 0, ["Jazz", "Blues"]),
        (0.0, 3, 0, ["Jazz", "Blues", "Soul"]),
        (0.2, 3, 3, ["Jazz", "Blues", "Soul"]),
    ],
)
def test_pick(threshold, count, min_count, chosen):
    assert F.pick(RANKED, threshold=threshold, count=count, min_count=min_count) == chosen


def test_pick_takes_a_value_once_and_never_a_nan():
    ranked = [("Jazz", 0.4), ("Jazz", 0.35), ("Blues", math.nan), ("Soul", 0.2)]
    assert F.pick(ranked, threshold=0.3, count=3, min_count=2) == ["Jazz", "Soul"]


@pytest.mark.parametrize(
    "min_count, genres",
    [(0, []), (1, ["Hip Hop"]), (2, ["Hip Hop", "Rock"])],
)
def test_choose_genres_below_the_threshold(min_count, genres):
    # "hiphop" and "hip-hop" name one genre: their best score ranks it.
    scores = {"hiphop": 0.4, "hip-hop": 0.3, "rock": 0.2, "jazz": 0.1}
    assert F.choose_genres(scores, threshold=0.5, count=2, min_count=min_count) == genres
    assert F.choose("genre", scores, threshold=0.5, count=2, min_count=min_count) == genres


def test_choose_ranks_a_nan_last():
    scores = {"rock": math.nan, "jazz": 0.1}
    assert F.choose("genre", scores, threshold=0.5, count=2, min_count=1) == ["Jazz"]


@pytest.mark.parametrize("min_count, written", [(0, None), (1, "Calm")])
def test_task_fields_min_count(min_count, written):
    fields, chosen = F.task_fields("mood", scores={"calm": 0.2, "happy": 0.1}, labels=["calm", "happy"],
                                   model="m", version="1", threshold=0.5, count=2, min_count=min_count)
    assert fields.get("mood") == ([written] if written else None)
    assert chosen == ([written] if written else [])
    assert fields["ml_mood_calm"] == 0.2  # confidences either way


AUDIO = GenreSource("genre", "audio", 1.0, {})
LYRICS = GenreSource("lyrics_genre", "lyrics", 0.5, {"rap": "Hip Hop"})


@pytest.mark.parametrize(
    "min_count, genres, sources",
    [
        (0, [], None),
        (1, ["Hip Hop"], "audio, lyrics"),
        (2, ["Hip Hop", "Jazz"], "audio, lyrics"),
    ],
)
def test_fused_genres_below_the_threshold(min_count, genres, sources):
    scores = {"genre": {"hip hop": 0.3, "jazz": 0.2}, "lyrics_genre": {"rap": 0.4, "rock": 0.1}}
    rule = GenreFusion([AUDIO, LYRICS], threshold=0.5, count=2, min_count=min_count)
    fields = rule.fields(scores)
    assert fields.get("genres", []) == genres
    assert fields.get("ml_genre_sources") == sources


def test_fused_genres_add_only_those_reaching_the_threshold():
    scores = {"genre": {"hip hop": 0.2, "jazz": 0.9, "rock": 0.1}}
    rule = GenreFusion([AUDIO, LYRICS], threshold=0.5, count=3, min_count=1)
    assert rule.fields(scores) == {"genres": ["Jazz"], "ml_genre_sources": "audio"}
