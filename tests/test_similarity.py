"""tagcore.similarity: exact search, the memory-mapped matrix, the HNSW
index, version keys, playlists and the M3U8 writer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tagcore import similarity as S


def _random_matrix(n: int, d: int = 32, seed: int = 0) -> S.EmbeddingMatrix:
    rng = np.random.default_rng(seed)
    return S.from_pairs((f"/m/{i}.flac".encode(), rng.standard_normal(d)) for i in range(n))


def test_brute_force_matches_numpy():
    matrix = _random_matrix(500)
    assert matrix.vectors.dtype == np.float16
    query = np.random.default_rng(1).standard_normal(32)
    scores = S.cosine_scores(matrix.vectors, query, chunk=64)  # several chunks
    reference = matrix.vectors.astype(np.float32) @ (query / np.linalg.norm(query))
    assert np.allclose(scores, reference, atol=1e-5)
    best = S.top_k(scores, k=5, exclude=[int(np.argmax(reference))])
    expected = [int(i) for i in np.argsort(-reference)[1:6]]
    assert [i for i, _ in best] == expected
    assert S.top_k(scores, k=1000) and len(S.top_k(scores, k=1000)) == 500
    assert S.top_k(np.array([]), k=3) == []
    # The float16 scan of large matrices (torch) agrees to float16 rounding.
    fast = S.cosine_scores(matrix.vectors, query, torch_min_rows=1)
    assert fast.dtype == np.float32 and np.allclose(fast, reference, atol=3e-3)


def test_from_pairs_refuses_mixed_lengths():
    with pytest.raises(ValueError, match="b.flac: embedding of length 3"):
        S.from_pairs([(b"a.flac", np.ones(2)), (b"b.flac", np.ones(3))])


def test_matrix_round_trip_is_memory_mapped_and_keyed(tmp_path):
    matrix = _random_matrix(50)
    base = tmp_path / "store.sqlite.similar-x-1"
    S.save_matrix(base, matrix, fingerprint="abc")
    loaded = S.load_matrix(base, fingerprint="abc")
    assert isinstance(loaded.vectors, np.memmap)
    assert loaded.keys == matrix.keys and np.array_equal(loaded.vectors, matrix.vectors)
    assert S.load_matrix(base, fingerprint="other") is None  # another store state
    assert S.load_matrix(tmp_path / "absent", fingerprint="abc") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_non_utf8_paths_survive(tmp_path):
    key = b"/m/caf\xe9.flac"  # latin-1 bytes
    matrix = S.from_pairs([(key, np.ones(4))])
    S.save_matrix(tmp_path / "m", matrix, fingerprint="f")
    assert S.load_matrix(tmp_path / "m", fingerprint="f").keys == [key]


@pytest.mark.skipif(not S.usearch_available(), reason="usearch (the ann extra) is not installed")
def test_ann_index_agrees_with_brute_force(tmp_path):
    matrix = _random_matrix(2000, d=64)
    index = S.open_index(matrix, ann_threshold=1000, index_path=tmp_path / "i.usearch")
    assert isinstance(index, S.ANNIndex) and (tmp_path / "i.usearch").is_file()
    exact = S.BruteForceIndex(matrix)
    rng = np.random.default_rng(3)
    recall = []
    for _ in range(20):
        q = rng.standard_normal(64)
        truth = {i for i, _ in exact.search(q, k=10)}
        recall.append(len(truth & {i for i, _ in index.search(q, k=10)}) / 10)
    assert np.mean(recall) >= 0.9
    # Scores are cosines, and excluded rows never come back.
    q = np.asarray(matrix.vectors[7], np.float32)
    found = index.search(q, k=3, exclude={7})
    assert 7 not in [i for i, _ in found] and all(-1.01 <= s <= 1.01 for _, s in found)
    reopened = S.open_index(matrix, ann_threshold=1000, index_path=tmp_path / "i.usearch")
    assert isinstance(reopened, S.ANNIndex)
    assert isinstance(S.open_index(matrix, ann_threshold=5000), S.BruteForceIndex)


@pytest.mark.parametrize("a, b", [
    ("Heroes", "Heroes - 2017 Remaster"),
    ("Heroes", "Heroes (Live at Wembley)"),
    ("Heroes", "HEROES [Remastered]"),
    ("Héroes", "Heroes"),
    ("Song feat. Somebody", "Song"),
])
def test_versions_share_a_key(a, b):
    assert S.version_key(a, "David Bowie") == S.version_key(b, "The David Bowie")


def test_different_songs_keep_apart():
    assert S.version_key("Heroes", "Bowie") != S.version_key("Heroes", "Motorhead")
    assert S.version_key("Song - Part Two", "X") != S.version_key("Song", "X")  # not a version word
    assert S.version_key("", "X") is None


def test_playlist_leaves_out_seeds_versions_and_spreads_artists():
    c = S.Candidate
    candidates = [
        c(1, 0.99, "Seed Song (Live)", "A"),  # another version of the seed
        c(2, 0.95, "One", "B"),
        c(3, 0.94, "Two", "B"),
        c(4, 0.93, "One - Remastered", "B"),  # another version of a taken song
        c(5, 0.90, "Three", "C"),
        c(6, 0.80, "Four", "B"),
    ]
    chosen = S.build_playlist(candidates, seeds=[("Seed Song", "A")], count=4, cooldown=1)
    assert [x.ident for x in chosen] == [2, 5, 3, 6]
    no_cooldown = S.build_playlist(candidates, seeds=[("Seed Song", "A")], count=4, cooldown=0)
    assert [x.ident for x in no_cooldown] == [2, 3, 5, 6]
    # When every remaining candidate waits, the best one is taken anyway.
    only_b = [c(i, 1 - i / 10, f"S{i}", "B") for i in range(3)]
    assert [x.ident for x in S.build_playlist(only_b, count=3, cooldown=2)] == [0, 1, 2]


def test_m3u8_written_atomically(tmp_path):
    entries = [S.PlaylistEntry(b"/music/a.flac", 201.7, "Artist - Title"),
               S.PlaylistEntry(b"/music/caf\xc3\xa9.mp3", -1, "Someone - Caf\u00e9")]
    target = tmp_path / "list.m3u8"
    target.write_text("old", encoding="utf-8")
    S.write_m3u8(target, entries)
    assert target.read_text(encoding="utf-8") == (  # durations rounded, not truncated
        "#EXTM3U\n#EXTINF:202,Artist - Title\n/music/a.flac\n#EXTINF:-1,Someone - Caf\u00e9\n/music/caf\u00e9.mp3\n"
    )
    with pytest.raises(OSError):
        S.write_m3u8(tmp_path / "missing" / "x.m3u8", entries)
    assert sorted(os.listdir(tmp_path)) == ["list.m3u8"]


def test_m3u8_modes_follow_the_umask_and_the_file_written_again(tmp_path):
    entries = [S.PlaylistEntry(b"/music/a.flac", 10, "A - B")]
    old = os.umask(0o022)
    try:
        S.write_m3u8(tmp_path / "new.m3u8", entries)
        os.umask(0o027)
        S.write_m3u8(tmp_path / "private.m3u8", entries)
    finally:
        os.umask(old)
    assert (tmp_path / "new.m3u8").stat().st_mode & 0o777 == 0o644  # a media server's user can read it
    assert (tmp_path / "private.m3u8").stat().st_mode & 0o777 == 0o640
    os.chmod(tmp_path / "new.m3u8", 0o664)
    S.write_m3u8(tmp_path / "new.m3u8", entries)
    assert (tmp_path / "new.m3u8").stat().st_mode & 0o777 == 0o664


def test_playlist_uri(tmp_path):
    path = os.fsencode(tmp_path / "music" / "a.flac")
    assert S.playlist_uri(path, relative_to=None) == path
    assert S.playlist_uri(path, relative_to=str(tmp_path)) == os.fsencode(os.path.join("music", "a.flac"))


def test_mean_query_weighs_seeds_equally():
    q = S.mean_query([np.array([10.0, 0.0]), np.array([0.0, 1.0])])
    assert np.allclose(q, [np.sqrt(0.5), np.sqrt(0.5)])
