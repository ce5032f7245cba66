"""The dataset contract, tested on every module of trainer.datasets (as
mirdata tests all its loaders); loaders on fixtures that mirror the real
layouts, and on the real data in ../shared/datasets when it is there."""

import dataclasses
import json
import pkgutil
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from realdata_fixtures import SHARED, needs_shared
from trainer import datasets
from trainer.datasets import (
    NAMES,
    DatasetError,
    LoadReport,
    gtzan,
    mtg_jamendo,
    resolve,
)


HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def write_jamendo(root: Path) -> None:
    split = root / "split-0"
    split.mkdir(parents=True)
    rows = {
        "train": [
            "track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t340.1\tgenre---rock",
            "track_0000242\tartist_000005\talbum_000033\t42/242.mp3\t248.5\tgenre---rock\tgenre---pop",
            "broken row",
            "track_0000300\tartist_000006\talbum_000040\t00/300.mp3\t120.0\tmood/theme---happy",
        ],
        "validation": ["track_0000400\tartist_000007\talbum_000041\t00/400.mp3\t200.0\tgenre---jazz"],
        "test": ["track_0000500\tartist_000008\talbum_000042\t00/500.mp3\t210.0\tgenre---jazz"],
    }
    for name, lines in rows.items():
        (split / f"autotagging_genre-{name}.tsv").write_text(HEADER + "\n".join(lines) + "\n")


def test_jamendo_layout(tmp_path):
    write_jamendo(tmp_path)
    report = LoadReport()
    records = mtg_jamendo.load(tmp_path, report=report)
    assert mtg_jamendo.check_layout(tmp_path) is None
    assert [r.key for r in records] == ["track_0000241", "track_0000242", "track_0000400", "track_0000500"]
    assert records[1].labels == ("rock", "pop")
    assert records[1].album == "album_000033" and records[1].artist == "artist_000005"
    assert records[0].path == str(tmp_path / "audio" / "41" / "241.mp3")
    assert [r.split for r in records] == ["train", "train", "validation", "test"]
    assert len(report.skipped) == 2
    assert "autotagging_genre-train.tsv:4" in report.skipped[0] and "6 tab-separated" in report.skipped[0]
    assert "autotagging_genre-train.tsv:5" in report.skipped[1]


def test_jamendo_missing_split_is_named(tmp_path):
    with pytest.raises(DatasetError, match="autotagging_genre-train.tsv: missing"):
        mtg_jamendo.load(tmp_path)


def test_gtzan_layout(tmp_path):
    for genre in ("blues", "rock"):
        (tmp_path / genre).mkdir()
        (tmp_path / genre / f"{genre}.00000.wav").write_bytes(b"")
    (tmp_path / "rock" / "notes.txt").write_text("x")
    report = LoadReport()
    records = gtzan.load(tmp_path, report=report)
    assert [(r.key, r.labels) for r in records] == [("blues/blues.00000", ("blues",)), ("rock/rock.00000", ("rock",))]
    assert len(report.skipped) == 1 and "notes.txt" in report.skipped[0]


def test_gtzan_empty_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no <genre>/<audio file>"):
        gtzan.load(tmp_path)


@needs_shared("gtzan_mini")
def test_real_gtzan_mini():
    records = gtzan.load(SHARED / "gtzan_mini")
    assert len(records) == 100
    assert len({r.labels for r in records}) == 10


@needs_shared("mtg_jamendo")
def test_real_mtg_jamendo_genre_split():
    report = LoadReport()
    records = mtg_jamendo.load(SHARED / "mtg_jamendo", report=report)
    assert len(records) > 10000
    assert not report.skipped
    assert len({tag for r in records for tag in r.labels}) == 87


# --- the contract, over every dataset module ------------------------------------


def write_mood_4q(root: Path) -> Path:
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        (root / quadrant).mkdir()
    (root / "Q1" / "MT0000004637.mp3").write_bytes(b"")
    (root / "panda_dataset_taffc_metadata.csv").write_text(
        "Song,Artist,Title,Quadrant,MoodsStrSplit,GenresStr\nMT0000004637,Ace of Base,All,Q1,Happy,Pop; Rock\n")
    return root


def write_mtg_jamendo(root: Path) -> Path:
    write_jamendo(root)
    return root


def write_vagalume(root: Path) -> Path:
    (root / "artists-data.csv").write_text("Artist,Genres,Songs,Popularity,Link\nA,Rock; Pop,1.0,0.3,/a/\n")
    (root / "lyrics-data.csv").write_text("ALink,SName,SLink,Lyric,language\n/a/,Song,/a/song.html,\"la\nla\",en\n")
    return root


def write_lastfm_hetrec(root: Path) -> Path:
    (root / "tags.dat").write_text("tagID\ttagValue\n1\trock\n", encoding="latin-1")
    (root / "user_taggedartists.dat").write_text("userID\tartistID\ttagID\tday\tmonth\tyear\n2\t52\t1\t1\t4\t2009\n")
    return root


def write_deezer_disambiguation(root: Path) -> Path:
    (root / "dataset").mkdir()
    (root / "fw_tag_similarity.csv").write_text(",aor,acid jazz\naor,1.0,0.25\nacid jazz,0.25,1.0\n")
    (root / "dataset" / "test.csv").write_text("sng_id,label,seg_start,seg_duration\n67466693,AOR,113.3,30\n")
    return root


def write_rmsc(root: Path) -> Path:
    album = {"name": "Album", "url": "https://music.douban.com/subject/1/", "rates": "8.7", "tags": ["流行"],
             "all_short_comments": [{"name": "u", "rate": "4", "vote": "12", "comment": "好听"}]}
    (root / "Album.json").write_text(json.dumps(album, ensure_ascii=False), encoding="utf-8")
    return root


def write_gtzan(root: Path) -> Path:
    (root / "blues").mkdir()
    (root / "blues" / "blues.00000.wav").write_bytes(b"")
    return root


def write_magnatagatune(root: Path) -> Path:
    rows = [["clip_id", "guitar", "mp3_path"], ["2", "1", "f/a-b-01-c-30-59.mp3"]]
    path = root / "annotations_final.csv"
    path.write_text("".join("\t".join(f'"{field}"' for field in row) + "\n" for row in rows))
    return path


def write_fma(root: Path) -> Path:
    columns = [("artist", "id"), ("album", "id"), ("set", "split"), ("set", "subset"), ("track", "genre_top"),
               ("track", "genres"), ("track", "genres_all")]
    rows = [[""] + [group for group, _ in columns], [""] + [name for _, name in columns],
            ["track_id"] + [""] * len(columns), ["2", "1", "1", "training", "small", "Hip-Hop", '"[21]"', '"[21]"']]
    (root / "fma_metadata").mkdir()
    path = root / "fma_metadata" / "tracks.csv"
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path


def write_beets_library(root: Path) -> Path:
    path = root / "library.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, artist TEXT, title TEXT, genres TEXT)")
        connection.execute("INSERT INTO items VALUES (1, ?, 'Weezer', 'Buddy Holly', 'Rock')", (b"/music/a.mp3",))
    connection.close()
    return path


def write_m3u(root: Path) -> Path:
    path = root / "road trip.m3u8"
    path.write_text("#EXTM3U\n#EXTINF:245,Weezer - Buddy Holly\nWeezer/04 Buddy Holly.mp3\n", encoding="utf-8")
    return path


def write_aotm2011(root: Path) -> Path:
    path = root / "aotm2011_playlists.json"
    path.write_text(json.dumps([{"mix_id": 7, "category": "Road Trip",
                                 "playlist": [[["Weezer", "Buddy Holly"], "TRAOQIC128F4262F89"]]}]))
    return path


def write_genius(root: Path) -> Path:
    path = root / "lyrics.csv"
    path.write_text(",artist,title,lyrics,genre\n0,['Lil Nas X'],Old Town Road,\"Oh\nyeah\",country\n")
    return path


SPOTIFY_COLUMNS = ("track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
                   "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,danceability,"
                   "energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,"
                   "duration_ms")


def write_spotify_playlists(root: Path) -> Path:
    path = root / "spotify_songs.csv"
    row = "6f807x0ima9a1j3VPbc7VN,Memories,Maroon 5,66,2oCs0DGTsRO98Gh5ZSl2Cx,Memories,2019-12-13,Pop Remix," \
          "37i9dQZF1DXcZDD7cfEKhW,pop,dance pop,0.748,0.916,6,-2.634,1,0.0583,0.102,0,0.0653,0.518,122.036,194754"
    path.write_text(SPOTIFY_COLUMNS + "\n" + row + "\n")
    return path


def write_allmusic_msd(root: Path) -> Path:
    path = root / "track_names_all.txt"
    path.write_text("TRBOEFO128F92FC62E;Pop/Rock;Album Rock, Hard Rock;Aggressive, Brash;\n")
    return path


def write_netease(root: Path) -> Path:
    path = root / "music_message.csv"
    path.write_text("[听·莫文蔚] 慢慢喜欢你,华语-流行,介绍：你说她性感,5149,373万,50,5\n", encoding="utf-8")
    return path


#: The smallest example of each dataset: writes it under a folder, returns
#: the path its ``load`` takes.
EXAMPLES = {name: globals()[f"write_{name}"] for name in NAMES}


def plain(value) -> bool:
    """Plain data: None, numbers, strings, numpy arrays, and tuples, lists,
    dicts and dataclasses (NamedTuples included) made of plain data."""
    if value is None or isinstance(value, (str, bytes, int, float, np.ndarray, np.generic)):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(plain(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (tuple, list)):
        return all(plain(item) for item in value)
    if isinstance(value, dict):
        return all(plain(key) and plain(item) for key, item in value.items())
    return False


def test_every_module_is_registered():
    found = {m.name for m in pkgutil.iter_modules(datasets.__path__) if not m.name.startswith("_")}
    assert set(NAMES) == found and len(NAMES) == len(found)


@pytest.mark.parametrize("name", NAMES)
def test_module_declares_the_contract(name):
    module = datasets.module(name)
    assert module.__doc__ and len(module.__doc__) > 80, "the docstring describes the layout"
    assert isinstance(module.REMOTES, tuple)
    assert all(isinstance(remote, datasets.Download) for remote in module.REMOTES)
    assert callable(module.check_layout) and callable(module.load)


@pytest.mark.parametrize("name", NAMES)
def test_empty_folder_is_rejected_with_a_message(name, tmp_path):
    module = datasets.module(name)
    problem = module.check_layout(tmp_path)
    assert isinstance(problem, str) and len(problem) > 10
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path))):
        module.load(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_example_is_recognised_and_loads_plain_records(name, tmp_path):
    module = datasets.module(name)
    path = EXAMPLES[name](tmp_path)
    assert module.check_layout(path) is None
    assert resolve(path) == (name, module), "NAMES order: a more general layout comes first"
    report = LoadReport()
    loaded = module.load(path, report=report)
    assert loaded and plain(loaded), loaded
    assert report.skipped == [] or name == "mtg_jamendo"  # its example holds a broken row


def test_every_other_example_is_rejected(tmp_path):
    """Each layout check accepts its own example only (resolve depends on it)
    except that GTZAN's accepts any folder of audio folders, 4Q's too."""
    paths = {}
    for name in NAMES:
        (tmp_path / name).mkdir()
        paths[name] = EXAMPLES[name](tmp_path / name)
    accepted = {(checker, name) for checker in NAMES for name in NAMES
                if datasets.module(checker).check_layout(paths[name]) is None}
    assert accepted - {(n, n) for n in NAMES} == {("gtzan", "mood_4q")}


#: Publishers that serve their files over plain http only.
HTTP_ONLY = {"gtzan"}


@pytest.mark.parametrize("name", NAMES)
def test_remote_entries_are_well_formed(name):
    for remote in datasets.module(name).REMOTES:
        assert remote.name and remote.description and remote.licence and remote.homepage.startswith("http")
        scheme = "http://" if name in HTTP_ONLY else "https://"
        names = [f.name for f in remote.files]
        assert len(set(names)) == len(names)
        for f in remote.files:
            assert f.url.startswith(scheme), f.url
            assert not f.name.startswith("/") and ".." not in f.name.split("/")
            if f.checksum is not None:
                algorithm, digest = f.checksum.split(":")
                assert {"md5": 32, "sha1": 40, "sha256": 64}[algorithm] == len(digest)
                assert re.fullmatch("[0-9a-f]+", digest)
        for join in remote.joins:
            assert set(join.parts) <= set(names)


def test_downloads_gather_every_module():
    names = [remote.name for name in NAMES for remote in datasets.module(name).REMOTES]
    assert sorted(datasets.downloads()) == sorted(names)
    assert {"gtzan", "fma-metadata", "fma-small", "mtg-jamendo-metadata"} <= set(names)


def test_resolve_names_each_candidate_and_what_it_lacks(tmp_path):
    with pytest.raises(DatasetError) as caught:
        resolve(tmp_path, among=("mood_4q", "gtzan"))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}: not a dataset layout")
    assert "mood_4q: no panda_dataset_taffc_metadata.csv" in message and "gtzan: no <genre>/ folder" in message
    with pytest.raises(DatasetError, match="nowhere: no such file or folder"):
        resolve(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset module"):
        resolve(tmp_path, among=("gtzan", "nope"))
