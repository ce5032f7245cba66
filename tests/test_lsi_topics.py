"""trainer.lsi_topics: the triplet paper's Figure 3 (LSI topics of mixed tag sets) on tiny files."""

import json

import numpy as np
import pytest

from tagcore import lsi
from trainer import lsi_topics
from trainer.__main__ import main as trainer_main


def test_parse_topics_reads_mixtures_and_names_a_bad_entry():
    assert lsi_topics.parse_topics("styles:2, styles+moods:0") == [(("styles",), 2), (("styles", "moods"), 0)]
    with pytest.raises(ValueError, match="'colours:1'"):
        lsi_topics.parse_topics("styles:1,colours:1")
    with pytest.raises(ValueError, match="'styles'"):
        lsi_topics.parse_topics("styles")


def test_topic_loadings_counts_from_zero_and_orders_both_signs():
    # Two groups of tracks: {a, b} and {c, d}; topic 0 (all one sign) is the
    # common direction, topic 1 separates the groups.
    tracks = [{"styles": ["a", "b"]}] * 3 + [{"styles": ["c", "d"]}] * 2
    matrix, vocabulary = lsi.tag_track_matrix(tracks, sets=["styles"])
    model = lsi.fit_lsi(matrix, k=4)
    first = lsi_topics.topic_loadings(model, vocabulary, number=0, n=4)
    assert {tag for _, tag, _ in first} == {"a", "b"}  # the larger group; c and d load 0 on it
    assert all(loading > 0 for _, _, loading in first)
    second = lsi_topics.topic_loadings(model, vocabulary, number=1, n=4)
    assert [tag for _, tag, _ in second] == ["c", "d"]
    np.testing.assert_allclose([loading for _, _, loading in second], [0.5 ** 0.5] * 2, atol=1e-5)
    with pytest.raises(ValueError, match="topic 4 does not exist"):
        lsi_topics.topic_loadings(model, vocabulary, number=4, n=2)


LINES = [
    "TRAAAAAAAAAAAAAAAA;Pop/Rock;Hard Rock, Heavy Metal;Aggressive;Partying",
    "TRAAAAAAAAAAAAAAAB;Pop/Rock;Hard Rock;Aggressive, Rowdy;Partying",
    "TRAAAAAAAAAAAAAAAC;Jazz;Bebop;Gentle, Intimate;Relaxation",
    "TRAAAAAAAAAAAAAAAD;Jazz;Bebop, Cool;Intimate;Relaxation",
    "TRAAAAAAAAAAAAAAAE;Pop/Rock;Hard Rock;;",  # no mood: left out of the styles+moods mixture
]


def test_fit_topic_keeps_tracks_with_every_set_and_separates_the_moods(tmp_path):
    path = tmp_path / "track_names_all.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    tracks = lsi_topics.allmusic_msd.load(path)
    topic = lsi_topics.fit_topic(tracks, sets=("styles", "moods"), number=1, n=3)
    assert topic.tracks == 4 and topic.tags == 3 + 1 + 4
    sides = {tag: loading > 0 for _, tag, loading in topic.loadings}
    assert sides["Aggressive"] != sides["Intimate"]
    assert 0 < topic.share < 1


def test_command_prints_and_writes_the_topics(tmp_path, capsys):
    path = tmp_path / "track_names_all.txt"
    path.write_text("\n".join(LINES) + "\nnot a line\n", encoding="utf-8")
    out = tmp_path / "topics.json"
    assert trainer_main(["lsi-topics", "--data", str(path), "--topics", "styles+moods:1,genres:0",
                         "--tags", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 lines skipped" in printed and "styles+moods #1 (4 tracks" in printed
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [(t["sets"], t["number"]) for t in written] == [(["styles", "moods"], 1), (["genres"], 0)]
    assert len(written[0]["loadings"]) == 4  # 2 tags on each side


def test_command_names_a_topic_that_does_not_exist(tmp_path, capsys):
    path = tmp_path / "track_names_all.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    assert trainer_main(["lsi-topics", "--data", str(path), "--topics", "genres:5"]) == 2
    assert "genres: topic 5 does not exist" in capsys.readouterr().err
