"""Playlist-based tag propagation (the samplecnn paper, section III): the walk, P(s'|s),
the supportive loss, the evaluation figures, the playlist readers of the
trainer and the Spotify experiment on a tiny synthesized CSV."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import propagation as prop
from tagcore.families import samplecnn

KEYS = list("abcdefgh")
#: a-b-c-d-e in order; c-f; a lone g (one song: dropped); h in no playlist;
#: b repeated in the first list (the repeat is dropped); x is unknown.
PLAYLISTS = [["a", "b", "c", "b", "d", "e", "x"], ["c", "f"], ["g"]]


@pytest.fixture()
def index():
    return prop.build_index(PLAYLISTS, keys=KEYS, names=["one", "two", "three"])


def test_index_drops_unknown_duplicates_and_one_song_playlists(index):
    assert index.dropped == {"unknown": 1, "duplicates": 1, "short": 1}
    assert index.n_playlists == 2 and index.names == ("one", "two")
    assert index.playlist(0).tolist() == [0, 1, 2, 3, 4]
    assert index.occurrences(2) == [(0, 2), (1, 0)]
    assert index.in_playlists.tolist() == [True] * 6 + [False, False]


def test_r_zero_never_moves(index):
    rng = np.random.default_rng(0)
    songs = np.arange(len(KEYS))
    assert (prop.walk(index, songs, r=0.0, rng=rng) == songs).all()
    assert all(prop.walk_one(index, s, r=0.0, rng=rng) == s for s in songs)


def test_songs_in_no_playlist_and_in_one_song_playlists_stay(index):
    rng = np.random.default_rng(1)
    g, h = KEYS.index("g"), KEYS.index("h")
    assert (prop.walk(index, np.array([g, h] * 50), r=0.9, rng=rng) == np.array([g, h] * 50)).all()
    assert prop.walk_one(index, h, r=0.9, rng=rng) == h
    assert prop.walk_distribution(index, g, r=0.9) == {g: 1.0}


def test_walk_distribution_by_hand(index):
    """Song a (first of a-b-c-d-e), r = 0.5: backward has no room (stays,
    1/2); forward: a 1/4, b 1/8, c 1/16, d 1/32, e 1/32 (the end song
    takes the tail)."""
    dist = prop.walk_distribution(index, 0, r=0.5)
    expected = {0: 0.5 + 0.25, 1: 0.125, 2: 0.0625, 3: 0.03125, 4: 0.03125}
    assert dist == pytest.approx(expected)
    assert sum(dist.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("r", [0.2, 0.5, 1.0])
def test_vectorised_walk_and_reference_walk_share_the_exact_distribution(index, r):
    song = 2  # c: in both playlists, in the middle of the first
    exact = prop.walk_distribution(index, song, r=r)
    n = 40_000
    fast = prop.walk(index, np.full(n, song), r=r, rng=np.random.default_rng(2))
    rng = np.random.default_rng(3)
    slow = np.array([prop.walk_one(index, song, r=r, rng=rng) for _ in range(8000)])
    for s, p in exact.items():
        assert abs((fast == s).mean() - p) < 0.012
        assert abs((slow == s).mean() - p) < 0.025
    assert set(np.unique(fast)) <= set(exact)


def test_walk_reaches_the_end_of_a_playlist_and_picks_it(index):
    """r = 1: the walk always runs to an end and takes that song (the
    printed pseudocode would pick nothing there)."""
    out = prop.walk(index, np.full(2000, 2), r=1.0, rng=np.random.default_rng(4))
    # from c: playlist one forward -> e, backward -> a; playlist two forward -> f, backward -> c itself
    assert set(out.tolist()) == {0, 4, 5, 2}


def test_selection_probability_is_equation_2():
    p = prop.selection_probability(4, 1, r=0.5)  # distances 1, 0, 1, 2
    z = 0.5 + 1 + 0.5 + 0.25
    assert p == pytest.approx([0.5 / z, 1 / z, 0.5 / z, 0.25 / z])
    assert prop.selection_probability(3, 0, r=0.0) == pytest.approx([1, 0, 0])


def test_pair_probability_is_equation_4(index):
    r = 0.5
    # c sits in one (position 2 of 5) and two (position 0 of 2)
    z_one = 1 + 0.5 + 0.5 + 0.25 + 0.25
    z_two = 1 + 0.5
    got = prop.pair_probability(index, np.array([2, 2, 2, 7]), np.array([1, 5, 2, 7]), r=r)
    assert got == pytest.approx([(0.5 / z_one) / 2, (0.5 / z_two) / 2, (1 / z_one + 1 / z_two) / 2, 1.0])


def test_propagated_targets_weights(index):
    tags = np.eye(len(KEYS), dtype=bool)
    songs = np.array([0, 2, 7, 6])
    neighbours, targets, weights = prop.propagated_targets(index, songs, tags, r=0.0, rng=np.random.default_rng(0))
    assert (neighbours == songs).all() and (weights == 0).all()
    neighbours, targets, weights = prop.propagated_targets(index, np.repeat(songs, 200), tags, r=0.7,
                                                           rng=np.random.default_rng(0), weighting="eq4")
    moved = neighbours != np.repeat(songs, 200)
    assert moved.any() and (weights[~moved] == 0).all() and (weights[moved] > 0).all() and (weights <= 1).all()
    assert (targets == tags[neighbours]).all()
    assert (weights[moved] == pytest.approx(prop.pair_probability(index, np.repeat(songs, 200)[moved],
                                                                  neighbours[moved], r=0.7)))
    _, _, flat = prop.propagated_targets(index, np.repeat(songs, 200), tags, r=0.7, rng=np.random.default_rng(0),
                                         weighting="none")
    assert set(np.unique(flat).tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="weighting"):
        prop.propagated_targets(index, songs, tags, r=0.5, rng=np.random.default_rng(0), weighting="twice")
    with pytest.raises(ValueError, match="search range"):
        prop.walk(index, songs, r=1.5, rng=np.random.default_rng(0))


def test_supportive_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    own = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    other = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    weights = torch.tensor([0.5, 0.0])

    def bce(z, y):
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    main = (bce(0, 1) + bce(2, 0) + bce(-1, 0) + bce(1, 1)) / 4
    support = (0.5 * (bce(0, 1) + bce(2, 1)) / 2 + 0.0) / 2
    assert float(samplecnn.loss(logits, own, other, weights)) == pytest.approx(main + support, rel=1e-6)


def test_r_zero_gives_exactly_plain_bce(index):
    torch.manual_seed(0)
    logits = torch.randn(8, len(KEYS))
    tags = np.random.default_rng(0).random((len(KEYS), len(KEYS))) < 0.3
    songs = np.arange(len(KEYS))
    _, targets, weights = prop.propagated_targets(index, songs, tags, r=0.0, rng=np.random.default_rng(0))
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(tags.astype(np.float32)))
    full = samplecnn.loss(logits, torch.from_numpy(tags), torch.from_numpy(targets), torch.from_numpy(weights))
    assert torch.equal(full, plain)


def test_evaluation_figures_by_hand():
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], bool)
    s = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.3], [0.1, 0.9]])
    # tag 0: order 0, 1, 2, 3 -> hits at 1 and 3: AP (1 + 2/3) / 2; tag 1: order 3, 1, 2, 0 -> hit at 2: 1/2
    assert prop.average_precisions(y, s).tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.5])
    # songs: 0 -> tag 0 first: 1; 1 -> tag 1 second: 1/2; 2 -> tag 0 second: 1/2; 3 has no tag
    annotation = prop.average_precisions(y, s, axis=1)
    assert annotation[:3].tolist() == pytest.approx([1, 0.5, 0.5]) and np.isnan(annotation[3])
    # AUC tag 0: positives 0.9, 0.2 vs negatives 0.8, 0.1 -> 3 of 4 pairs; tag 1: 0.7 vs 0.1, 0.3, 0.9 -> 2/3
    assert prop.roc_aucs(y, s).tolist() == pytest.approx([0.75, 2 / 3])
    assert prop.roc_aucs(y, np.zeros((4, 2))).tolist() == pytest.approx([0.5, 0.5])
    figures = prop.evaluate(y, s)
    assert figures["annotation_map"] == pytest.approx(2 / 3)
    assert figures["retrieval_auc"] == pytest.approx((0.75 + 2 / 3) / 2)


def test_bucket_improvement():
    starts, gains = prop.bucket_improvement(np.array([0.1, 0.2, 0.4, 0.5]), np.array([0.2, 0.2, 0.4, 0.6]),
                                            np.array([1, 10, 5, 2]), bucket=2)
    # popularity order: tag 1 (10), tag 2 (5) | tag 3 (2), tag 0 (1)
    assert starts.tolist() == [1, 3]
    assert gains.tolist() == pytest.approx([0.6 / 0.6 - 1, 0.8 / 0.6 - 1])


# --- the trainer: playlist readers and bad input ---------------------------------


def _audio_data(tmp_path, n=6):
    from trainer.samplecnn import AudioData
    from trainer.datasets import Record

    records = []
    for i in range(n):
        path = tmp_path / "music" / f"TRACK{i:04d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        records.append(Record(key=str(i), path=str(path), labels=("calm",) if i % 2 else ("happy",), artist=f"a{i}"))
    y = np.array([[i % 2 == 1, i % 2 == 0] for i in range(n)])
    return AudioData(records, ["calm", "happy"], y, np.zeros((n, 1, 10), np.float16), np.ones(n, int),
                     [r.artist for r in records], True, [(f"artist {i}", f"song {i}") for i in range(n)])


def _args(**values):
    base = dict(playlists=[], m3u=[], aotm=None)
    base.update(values)
    return argparse.Namespace(**base)


def test_m3u_folder_with_missing_files_foreign_files_duplicates_and_one_song_lists(tmp_path):
    from trainer.samplecnn import read_playlists, training_index

    data = _audio_data(tmp_path)
    music = tmp_path / "music"
    (tmp_path / "elsewhere.mp3").write_bytes(b"")
    lists = tmp_path / "playlists"
    lists.mkdir()
    (lists / "evening.m3u").write_text(
        "#EXTM3U\n#EXTINF:10,A - B\n../music/TRACK0000.flac\n../music/TRACK0001.flac\n../music/TRACK0001.flac\n"
        "../music/gone.flac\n../elsewhere.mp3\nhttp://radio.example/stream\n", encoding="utf-8")
    (lists / "single.m3u8").write_text(f"{music / 'TRACK0003.flac'}\n", encoding="utf-8")
    (lists / "notes.txt").write_text("not a playlist")
    found = read_playlists(data, _args(playlists=[str(lists)]))
    assert found.tracks == [[0, 1, 1], [3]]
    assert found.missing_files == 1 and found.not_in_library == 2
    assert any("gone.flac" in m for m in found.messages) and any("elsewhere.mp3" in m for m in found.messages)
    index = training_index(found, len(data.records), np.arange(len(data.records)))
    assert index.n_playlists == 1 and index.dropped == {"unknown": 0, "duplicates": 1, "short": 1}
    # restricted to training tracks: a test track never lends its tags
    assert training_index(found, len(data.records), np.array([0, 2, 3])).n_playlists == 0


def test_aotm_playlists_match_by_msd_id_and_by_artist_title(tmp_path):
    from trainer.samplecnn import read_playlists

    data = _audio_data(tmp_path)
    aotm = tmp_path / "aotm.json.gz"
    with gzip.open(aotm, "wt", encoding="utf-8") as f:
        json.dump([{"mix_id": 1, "category": "Mood", "playlist": [
            [["X", "Y"], "track0002"], [["Artist 4", "Song 4"], None], [["Nobody", "Nothing"], None]]}], f)
    found = read_playlists(data, _args(aotm=str(aotm)))
    assert found.tracks == [[2, 4]] and found.unmatched == 1


# --- the Spotify experiment on a synthesized CSV ---------------------------------


def _spotify_csv(path: Path, *, rows_per_list=12, lists=6, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    header = ("track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
              "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,danceability,"
              "energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,duration_ms")
    lines = [header]
    genres = [("rock", "hard rock"), ("rock", "album rock"), ("pop", "dance pop"), ("pop", "indie poptimism"),
              ("rap", "trap"), ("rap", "gangster rap")]
    n = 0
    for p in range(lists):
        genre, sub = genres[p % len(genres)]
        for k in range(rows_per_list):
            track = f"t{n}" if not (k == 0 and p > 0) else "t0"  # t0 sits in every playlist
            n += 1
            energy = 0.9 if genre == "rock" else 0.5 if genre == "pop" else 0.2
            lines.append(f"{track},Song {n},Artist {n % 17},50,al{n},Album,2019-01-01,List {p},pl{p},{genre},{sub},"
                         f"{rng.random():.3f},{energy + 0.05 * rng.standard_normal():.3f},{rng.integers(12)},"
                         f"-6.0,1,0.05,0.1,0.0,0.1,0.5,{100 + 20 * rng.random():.1f},200000")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_spotify_experiment_runs_and_reports(tmp_path, monkeypatch):
    from trainer import samplecnn as trainer_propagation
    from trainer import samplecnn_spotify

    drawn = []  # matplotlib costs seconds here; the figures' inputs are checked instead
    monkeypatch.setattr(samplecnn_spotify, "draw_figures", lambda *a, **k: drawn.append((a, k)))

    csv = _spotify_csv(tmp_path / "songs.csv")
    parser = argparse.ArgumentParser()
    trainer_propagation.add_arguments(parser)
    args = parser.parse_args(["--spotify", str(csv), "--seeds", "0", "--r-grid", "0.5", "--keep-tags", "1,0.5",
                              "--epochs", "3", "--batch-size", "16", "--lr", "0.1", "--hidden", "8",
                              "--report-dir", str(tmp_path / "report"), "--bucket", "4"])
    result = trainer_propagation.run(args, log=lambda *_: None)
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(saved["tags"]) == 9  # 3 genres + 6 subgenres
    assert len(saved["runs"]) == 2 * 5  # keep x (baseline, eq4, none, shuffled and doubled controls)
    assert len(drawn) == 1 and drawn[0][1] == {"bucket": 4}
    starts, curves = samplecnn_spotify.bucket_curves(saved, keep=0.5, r=0.5, weighting="eq4", bucket=4)
    assert starts.tolist() == [1, 5, 9] and curves["map"].shape == (1, 3)
    assert {run["weighting"] for run in saved["runs"]} == {"baseline", "eq4", "none", "shuffled", "doubled"}
    for run in saved["runs"]:
        assert 0 <= run["retrieval_auc"] <= 1 and 0 < run["annotation_map"] <= 1
    assert "keep=0.5 r=0.5 eq4" in result["metrics"]
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert summary.count("| 0.5 | eq4 | 0.") == 2  # one row per kept share
    assert summary.count("| 0.5 | shuffled | MAP |") == 2 and "Spearman" in summary


# --- fine-tuning on a beets library and its playlists -------------------------------


def test_fine_tune_on_a_beets_library_with_smartplaylist_m3u(tmp_path):
    import contextvars
    import os

    library = pytest.importorskip("beets.library")
    from plugin_fixtures import write_audio

    from tagcore.bundle import load_bundle
    from test_samplecnn import make_samplecnn_bundle
    from trainer import samplecnn as trainer_propagation

    music = tmp_path / "music"
    paths = [write_audio(music / f"a{i % 4}" / f"{i}.flac", "flac", seconds=3.0, frequency=200 + 60 * i)
             for i in range(8)]
    db = tmp_path / "library.db"
    moods = ["happy\\␀calm", "sad", "calm", "happy", "sad", "calm", "happy", None]

    def build():
        lib = library.Library(str(db), directory=str(music))
        for i, path in enumerate(paths):
            item = library.Item(path=os.fsencode(path), artist=f"artist{i % 4}", title=f"t{i}")
            if moods[i]:
                item["mood"] = moods[i]
            lib.add(item)

    contextvars.copy_context().run(build)
    lists = tmp_path / "playlists"
    lists.mkdir()
    (lists / "evening.m3u").write_text("\n".join([str(paths[0]), str(paths[2]), str(paths[5]), str(music / "gone.flac"),
                                                  str(paths[0])]) + "\n", encoding="utf-8")
    (lists / "one.m3u").write_text(f"{paths[3]}\n", encoding="utf-8")
    start = make_samplecnn_bundle(tmp_path / "start", labels=("angry", "tender"), bias=(0.0, 0.0), patches=1)
    parser = argparse.ArgumentParser()
    trainer_propagation.add_arguments(parser)
    args = parser.parse_args(["--beets-library", str(db), "--music-dir", str(music), "--field", "mood",
                              "--playlists", str(lists),
                              "--init", str(start), "--patches", "1", "--epochs", "2", "--batch-size", "4",
                              "--r", "0.5", "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
                              "--out", str(tmp_path / "mine"), "--report-dir", str(tmp_path / "runs")])
    messages = []
    result = trainer_propagation.run(args, log=messages.append)
    text = "\n".join(messages)
    assert "1 item(s) have no mood" in text  # the untagged item is skipped, counted in one line
    assert "1 missing files" in text and "gone.flac" in text
    assert "dropped 1 repeated entries and 1 playlists of fewer than two tracks" in text
    assert "labels differ, a new output layer is trained" in text
    bundle = load_bundle(result["bundle"])
    assert bundle.family == "samplecnn" and bundle.task == "mood" and bundle.labels == ["calm", "happy", "sad"]
    assert bundle.config["provenance"]["init"] == "mood-samplecnn-test 1"
    assert bundle.config["provenance"]["playlists"] == 2 and bundle.config["provenance"]["r"] == 0.5
    assert bundle.model.config.channels == (4,) * 10  # the architecture of the bundle it started from
    assert (tmp_path / "runs" / "metrics.json").is_file()


def test_cross_validation_with_and_without_propagation(tmp_path, monkeypatch):
    """--folds with playlists and r > 0: the same folds with r = 0 too, the
    top-N vocabulary, per-tag figures and the popularity buckets."""
    from plugin_fixtures import write_audio

    from trainer import samplecnn as trainer_propagation

    drawn = []
    monkeypatch.setattr(trainer_propagation, "popularity_figure", lambda *a, **k: drawn.append(a))
    rows, m3u = [], []
    for i in range(8):
        path = write_audio(tmp_path / "music" / f"{i}.flac", "flac", seconds=3.0, frequency=200 + 90 * i)
        tags = ["low" if i < 4 else "high"] + (["rare"] if i == 0 else [])
        rows.append(f"{path},{';'.join(tags)},artist{i}")
        m3u.append(str(path))
    (tmp_path / "data.csv").write_text("path,labels,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "all.m3u").write_text("\n".join(m3u) + "\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    trainer_propagation.add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path / "data.csv"), "--m3u", str(tmp_path / "all.m3u"), "--folds", "2",
                              "--top-tags", "2", "--r", "0.5", "--channels", ",".join(["4"] * 10), "--embedding", "4",
                              "--patches", "1", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--bucket", "1",
                              "--no-bundle", "--cache-dir", str(tmp_path / "cache"),
                              "--report-dir", str(tmp_path / "runs")])
    result = trainer_propagation.run(args, log=lambda *_: None)
    evaluation = result["metrics"]
    assert evaluation["labels"] == ["high", "low"]  # "rare" is not among the top 2
    assert set(evaluation["models"]) == {"samplecnn", "samplecnn_r0", "trivial"}
    for name in ("samplecnn", "samplecnn_r0"):
        assert len(evaluation["models"][name]["retrieval_auc"]["folds"]) == 2
    assert len(evaluation["per_tag"]) == 2 and evaluation["buckets"]["map"]["first_rank"] == [1, 2]
    assert len(drawn) == 1 and (tmp_path / "runs" / "cv.json").is_file()


def test_spotify_sweep_resumes_from_its_results(tmp_path, monkeypatch):
    from trainer import samplecnn as trainer_propagation
    from trainer import samplecnn_spotify

    monkeypatch.setattr(samplecnn_spotify, "draw_figures", lambda *a, **k: None)
    csv = _spotify_csv(tmp_path / "songs.csv")
    parser = argparse.ArgumentParser()
    trainer_propagation.add_arguments(parser)
    argv = ["--spotify", str(csv), "--seeds", "0", "--r-grid", "0.5", "--keep-tags", "1", "--epochs", "2",
            "--batch-size", "16", "--hidden", "4", "--report-dir", str(tmp_path / "report")]
    trainer_propagation.run(parser.parse_args(argv), log=lambda *_: None)
    first = json.loads((tmp_path / "report" / "results.json").read_text())

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(samplecnn_spotify, "run_one", refuse)
    trainer_propagation.run(parser.parse_args(argv), log=lambda *_: None)
    assert json.loads((tmp_path / "report" / "results.json").read_text())["runs"] == first["runs"]
    summary = trainer_propagation.run(parser.parse_args(argv + ["--summary-only"]), log=lambda *_: None)
    assert "keep=1 r=0.5 shuffled" in summary["metrics"]
    monkeypatch.undo()
    monkeypatch.setattr(samplecnn_spotify, "draw_figures", lambda *a, **k: None)
    # other settings: nothing is reused
    trainer_propagation.run(parser.parse_args(argv[:-2] + ["--lr", "0.05", "--report-dir", str(tmp_path / "report")]),
                            log=lambda *_: None)
    assert json.loads((tmp_path / "report" / "results.json").read_text())["settings"]["lr"] == 0.05


def test_spotify_sweep_plan_and_resumed_runs(tmp_path):
    from trainer import samplecnn_spotify as S

    assert S._trainings([0.0, 0.4]) == [("none", 0.0, "baseline"), (S.DOUBLED, 0.0, S.DOUBLED),
                                        ("eq4", 0.4, "eq4"), ("none", 0.4, "none"), (S.SHUFFLED, 0.4, S.SHUFFLED)]
    settings = {"epochs": 2}
    runs = [{"seed": 0, "keep": 1.0, "r": 0.4, "weighting": "eq4"}, {"seed": 1, "keep": 1.0, "r": 0.4, "weighting": "eq4"}]
    previous = tmp_path / "results.json"
    previous.write_text(json.dumps({"data": "songs.csv", "tags": ["a"], "hidden": 8, "settings": settings,
                                    "runs": runs}), encoding="utf-8")
    common = {"data": "songs.csv", "names": ["a"], "hidden": 8, "keeps": [1.0], "grid": [0.0, 0.4],
              "log": lambda message: None}
    assert S._previous_runs(previous, settings=settings, seeds=[0], **common) == runs[:1]
    assert S._previous_runs(previous, settings={"epochs": 3}, seeds=[0], **common) == []
    assert S._previous_runs(tmp_path / "none.json", settings=settings, seeds=[0], **common) == []


# --- the Spotify sweep: stopping, validation choice -------------------------------


def _run(seed, r, weighting, *, val, test, keep=1.0, stopped="rule"):
    return {"seed": seed, "keep": keep, "r": r, "weighting": weighting, "stopped": stopped, "epochs": 40,
            "val_retrieval_map": val, "val_annotation_map": val, "val_retrieval_auc": val,
            "annotation_map": test, "retrieval_map": test, "retrieval_auc": test}


def _choice_runs():
    """Two seeds. Validation favours none at 0.4 for seed 0 and eq4 at 0.8
    for seed 1; the test figures favour eq4 at 0.4 everywhere (a choice
    made on them would differ)."""
    runs = []
    for seed in (0, 1):
        runs += [_run(seed, 0.0, "baseline", val=0.2, test=0.50), _run(seed, 0.0, "doubled", val=0.2, test=0.55)]
        runs += [_run(seed, 0.4, "eq4", val=0.1, test=0.90), _run(seed, 0.4, "none", val=0.6 - 0.3 * seed, test=0.60),
                 _run(seed, 0.8, "eq4", val=0.2 + 0.3 * seed, test=0.40), _run(seed, 0.8, "shuffled", val=0.9, test=0.9)]
    runs.append(_run(0, 0.6, "none", val=0.99, test=0.99))  # seed 1 lacks it: no overall candidate
    return runs


def test_choice_on_validation_never_reads_the_test_figures():
    from trainer import samplecnn_spotify as S

    runs = _choice_runs()
    assert S.choose_on_validation(runs, keep=1.0, seed=0) == (0.6, "none")
    assert S.choose_on_validation(runs, keep=1.0, seed=1) == (0.8, "eq4")
    # overall: means 0.45 (0.4 none), 0.35 (0.8 eq4), 0.1 (0.4 eq4); 0.6 none ran in seed 0 only; the
    # shuffled control and the baseline are not candidates
    assert S.choose_on_validation(runs, keep=1.0) == (0.4, "none")
    assert S.choose_on_validation(runs, keep=0.3) is None
    tied = [_run(0, 0.8, "none", val=0.5, test=0), _run(0, 0.4, "none", val=0.5, test=0),
            _run(0, 0.4, "eq4", val=0.5, test=0)]
    assert S.choose_on_validation(tied, keep=1.0) == (0.4, "eq4")


def test_selected_gains_are_paired_by_seed():
    from trainer import samplecnn_spotify as S

    runs = [run for run in _choice_runs() if run["r"] != 0.6]
    per_seed = S.selected_gains(runs, keep=1.0)
    assert per_seed["choices"] == {0: [0.4, "none"], 1: [0.8, "eq4"]}
    # seed 0: 0.60 against 0.50 and 0.55; seed 1: 0.40 against the same
    assert per_seed["mean"]["baseline"]["retrieval_map"] == pytest.approx((0.6 / 0.5 + 0.4 / 0.5) / 2 - 1)
    assert per_seed["mean"]["doubled"]["retrieval_auc"] == pytest.approx((0.6 / 0.55 + 0.4 / 0.55) / 2 - 1)
    assert per_seed["better"] == {"baseline": 1, "doubled": 1} and per_seed["seeds"] == 2
    overall = S.selected_gains(runs, keep=1.0, per_seed=False)
    assert overall["choices"] == {0: [0.4, "none"], 1: [0.4, "none"]}
    assert overall["mean"]["baseline"]["annotation_map"] == pytest.approx(0.6 / 0.5 - 1)
    assert overall["better"] == {"baseline": 2, "doubled": 2}


def test_stop_reason_and_counts():
    from trainer import propagation_fit
    from trainer import samplecnn_spotify as S
    from trainer.loop import FitResult

    assert S.stop_reason(FitResult(stopped_early=True)) == "rule"
    assert S.stop_reason(FitResult(stopped_early=False)) == "cap"

    def fit(*, epochs, patience, val):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        x = torch.randn(8, 2)
        return propagation_fit.fit(model, train=np.arange(8), tags=np.eye(2, dtype=bool)[np.arange(8) % 2],
                                   inputs=lambda ids, rng: x[ids], val_loss=val, index=None, r=0.0,
                                   weighting="none", epochs=epochs, patience=patience, batch_size=4, lr=0.1,
                                   momentum=0.9, decay=5.0, seed=0, log=lambda *_: None)

    losses = iter([1.0, 2.0, 2.0, 2.0, 2.0])  # never better than the first epoch
    ruled = fit(epochs=50, patience=3, val=lambda m: next(losses))
    assert S.stop_reason(ruled) == "rule" and len(ruled.history) == 4 and ruled.best_epoch == ruled.history[0]["epoch"]
    falling = iter([5.0, 4.0, 3.0])  # still improving when the cap comes
    capped = fit(epochs=3, patience=3, val=lambda m: next(falling))
    assert S.stop_reason(capped) == "cap" and len(capped.history) == 3
    runs = [_run(0, 0.0, "baseline", val=0, test=0), _run(1, 0.0, "baseline", val=0, test=0, stopped="cap"),
            {**_run(2, 0.0, "baseline", val=0, test=0), "epochs": 99}]
    del runs[2]["stopped"]
    assert S.stop_counts(runs) == {"keep=1 baseline": {"rule": 1, "cap": 1, "unknown": 1, "max_epochs": 99}}


def test_sweep_plan_with_the_shuffled_control_at_some_r_only():
    from trainer import samplecnn_spotify as S

    plan = S._trainings([0.0, 0.4, 0.8], [0.8])
    assert [(w, r) for w, r, _ in plan].count((S.SHUFFLED, 0.8)) == 1 and (S.SHUFFLED, 0.4, S.SHUFFLED) not in plan
    assert len(plan) == 2 + 2 * 2 + 1
    args = argparse.Namespace(seeds="0", r_grid="0.4,0.8", keep_tags="1", control_r="0.8")
    assert S._sweep_options(args)[3] == [0.8]
    assert S._sweep_options(argparse.Namespace(**{**vars(args), "control_r": ""}))[3] == [0.4, 0.8]
    from trainer.datasets import DatasetError

    with pytest.raises(DatasetError):
        S._sweep_options(argparse.Namespace(**{**vars(args), "control_r": "0.6"}))


def test_spotify_runs_record_stopping_and_validation_figures(tmp_path, monkeypatch):
    from trainer import samplecnn as trainer_propagation
    from trainer import samplecnn_spotify

    monkeypatch.setattr(samplecnn_spotify, "draw_figures", lambda *a, **k: None)
    csv = _spotify_csv(tmp_path / "songs.csv")
    parser = argparse.ArgumentParser()
    trainer_propagation.add_arguments(parser)
    args = parser.parse_args(["--spotify", str(csv), "--seeds", "0,1", "--r-grid", "0.5", "--keep-tags", "1",
                              "--epochs", "2", "--batch-size", "16", "--hidden", "4", "--control-r", "0.5",
                              "--report-dir", str(tmp_path / "report")])
    result = trainer_propagation.run(args, log=lambda *_: None)
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["control_r"] == [0.5]
    for run in saved["runs"]:  # 2 epochs never reach patience 12: every run is at the cap
        assert run["stopped"] == "cap" and run["epochs"] == 2 and 0 <= run["val_retrieval_auc"] <= 1
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| keep=1 baseline | 0 | 2 | 0 | 2 |" in summary
    assert "Chosen on the validation songs" in summary
    assert set(result["metrics"]) and "keep=1 per_seed" in samplecnn_spotify.summarise(saved, bucket=4)["selection"]


def test_cross_validation_runs_only_the_first_folds(monkeypatch):
    from trainer import samplecnn as T

    n = 12
    rng = np.random.default_rng(0)
    y = np.eye(2, dtype=bool)[np.arange(n) % 2]
    data = T.AudioData(records=[None] * n, labels=["a", "b"], y=y,
                       audio=rng.standard_normal((n, 1, 3 ** 4)).astype(np.float16), counts=np.ones(n, int),
                       groups=[f"artist{i}" for i in range(n)], has_artists=True)
    seen = []
    monkeypatch.setattr(T, "_cnn_fold", lambda data, args, train, val, test, **k: (
        seen.append(test) or ({"samplecnn": {"accuracy": 0.5}}, {"best_epoch": 1, "epochs": 1}, None)))
    args = argparse.Namespace(folds=3, max_folds=1, no_cnn=False, compare_head=False, bucket=1)
    out = T.cross_validate(data, args, playlists=None, seeds=[0, 1], log=lambda *_: None)
    assert len(seen) == 1 and len(out["fits"]) == 1 and out["models"]["samplecnn"]["accuracy"]["folds"] == [0.5]
    args.max_folds = 0
    T.cross_validate(data, args, playlists=None, seeds=[0, 1], log=lambda *_: None)
    assert len(seen) == 1 + 2 * 3


def test_cross_validation_runs_only_the_named_folds_with_their_own_seeds(monkeypatch):
    from trainer import samplecnn as T

    n = 12
    y = np.eye(2, dtype=bool)[np.arange(n) % 2]
    data = T.AudioData(records=[None] * n, labels=["a", "b"], y=y,
                       audio=np.zeros((n, 1, 3 ** 4), np.float16), counts=np.ones(n, int),
                       groups=[f"artist{i}" for i in range(n)], has_artists=True)
    seen = []
    monkeypatch.setattr(T, "_cnn_fold", lambda data, args, train, val, test, seed, **k: (
        seen.append((seed, tuple(test))) or ({"samplecnn": {"accuracy": 0.5}}, {"best_epoch": 1, "epochs": 1}, None)))
    args = argparse.Namespace(folds=3, max_folds=0, fold_numbers="", no_cnn=False, compare_head=False, bucket=1)
    T.cross_validate(data, args, playlists=None, seeds=[0, 1], log=lambda *_: None)
    every = list(seen)
    seen.clear()
    args.fold_numbers = "2,3"
    out = T.cross_validate(data, args, playlists=None, seeds=[0, 1], log=lambda *_: None)
    # Folds 2 and 3 of each seed, the same test clips as in the whole run.
    assert seen == [every[1], every[2], every[4], every[5]]
    assert [(f["seed"], f["fold"]) for f in out["fits"]] == [(0, 2), (0, 3), (1, 2), (1, 3)]
    for bad in ("4", "0", "two"):
        args.fold_numbers = bad
        with pytest.raises(T.DatasetError, match="--fold-numbers"):
            T.cross_validate(data, args, playlists=None, seeds=[0], log=lambda *_: None)


def test_command_line_is_recorded_under_both_names(monkeypatch):
    from trainer import samplecnn as T

    for name in ("samplecnn", "propagation"):
        monkeypatch.setattr("sys.argv", ["trainer", name, "--spotify", "my songs.csv"])
        assert T.command_line() == "python -m trainer samplecnn --spotify 'my songs.csv'"
    monkeypatch.setattr("sys.argv", ["pytest", "-q"])
    assert T.command_line() == ""
