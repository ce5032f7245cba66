"""``beet similar`` through beets' test helpers, on a temporary library of
synthesized tracks: low hums, bright noise and click trains. The embedding
bundle is a small DPNN of the triplet family with seeded random weights:
random convolutions already map near-identical spectra to near-identical
embeddings, which is all these tests need."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from beets import ui
from beets.library import Item
from beets_fixtures import AutotagMLHelper
from plugin_fixtures import make_bundle, write_text_as_mp3
from tagcore.bundle import save_bundle
from tagcore.families import triplet
from tagcore.features import feature_spec
from tagcore.similarity import usearch_available
from tagcore.store import Store

RATE = 22050


def _signal(kind: str, seed: int, seconds: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "hum":  # low harmonic tone, slightly detuned per seed
        f = 110.0 + 3.0 * seed
        y = 0.4 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(4 * np.pi * f * t)
    elif kind == "noise":  # bright high-passed noise
        y = np.diff(rng.standard_normal(t.size + 1)) * 0.2
    else:  # clicks: 4 per second
        y = np.zeros(t.size)
        y[:: RATE // 4] = 0.9
        y = np.convolve(y, np.hanning(64), mode="same")
    return (y + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def make_similarity_bundle(directory: Path, *, version: str = "1") -> Path:
    torch.manual_seed(0)
    config = triplet.Config(channels=(4, 8, 16), embedding_dim=32)
    model = triplet.Model(config).eval()
    return save_bundle(directory, model=model, family="triplet", name="sim-test", version=version, labels=None,
                       model_config=config.to_dict(), task="embedding",
                       input={"kind": "audio", "feature": feature_spec(triplet.FEATURE)}, outputs=["embedding"],
                       embedding_dim=config.embedding_dim)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    base = tmp_path_factory.mktemp("similar-assets")
    audio = {}
    for kind in ("hum", "noise", "clicks"):
        for seed in (0, 1):
            path = base / f"{kind}{seed}.flac"
            sf.write(str(path), _signal(kind, seed), RATE, format="FLAC")
            audio[f"{kind}{seed}"] = path
    return {
        "bundle": make_similarity_bundle(base / "sim"),
        "bundle_v2": make_similarity_bundle(base / "sim-v2", version="2"),
        "text": write_text_as_mp3(base / "text.mp3"),
        "genre": make_bundle(base / "genre"),
        **audio,
    }


class SimilarHelper(AutotagMLHelper):
    def use_bundle(self, key: str = "bundle", **similar) -> None:
        self.config["autotagml"].set({"models": {"embedding": str(self.assets[key])}, "workers": 0,
                                      "similar": {"ann_threshold": 0, **similar}})

    def add_track(self, key: str, title: str, artist: str) -> Item:
        path = self.lib_path / f"{title.replace(' ', '_').replace('(', '').replace(')', '')}-{key}.flac"
        path.write_bytes(Path(self.assets[key]).read_bytes())
        item = Item.from_path(str(path))
        item.update({"title": title, "artist": artist})
        item.add(self.lib)
        return item

    def library(self) -> dict[str, Item]:
        return {
            "hum0": self.add_track("hum0", "Low One", "Drone Band"),
            "hum1": self.add_track("hum1", "Low Two", "Hum Makers"),
            "noise0": self.add_track("noise0", "Hiss", "Static"),
            "noise1": self.add_track("noise1", "Hiss Again", "Static"),
            "clicks0": self.add_track("clicks0", "Tick", "Metronome"),
            "clicks1": self.add_track("clicks1", "Tock", "Metronome"),
        }

    def similar(self, *args: str) -> str:
        self.capsys.readouterr()
        self.run_command("similar", *args)
        return self.capsys.readouterr().out

    def analyse(self) -> None:
        self.run_command("autotag-ml", "-W")


class TestSimilar(SimilarHelper):
    @pytest.fixture(autouse=True)
    def _setup(self, _attach):
        self.use_bundle()

    def test_similar_sounds_rank_first(self):
        self.library()
        self.analyse()

        out = self.similar("title:Low One", "-n", "5", "-f", "$similarity $title")

        lines = [line.split(None, 1) for line in out.strip().splitlines()]
        assert [title for _, title in lines][0] == "Low Two"
        assert "Low One" not in [title for _, title in lines]  # the seed is not its own neighbour
        scores = [float(score) for score, _ in lines]
        assert scores == sorted(scores, reverse=True)

        out = self.similar("title::^Hiss$", "-n", "1", "-f", "$similarity $title")
        assert out.split(None, 1)[1].strip() == "Hiss Again"
        out = self.similar("title:Tick", "-n", "1", "-f", "$similarity $title")
        assert out.split(None, 1)[1].strip() == "Tock"

    def test_format_is_printed_exactly_and_copies_of_a_recording_once(self):
        tracks = self.library()
        copy = self.lib_path / "copy-of-low-two.flac"
        copy.write_bytes(tracks["hum1"].filepath.read_bytes())  # the same audio under another name
        duplicate = Item.from_path(str(copy))
        duplicate.update({"title": "Low Two", "artist": "Hum Makers"})
        duplicate.add(self.lib)
        self.analyse()

        out = self.similar("title:Low One", "-n", "3", "-f", "$title")

        titles = out.strip().splitlines()
        assert titles[0] == "Low Two" and titles.count("Low Two") == 1  # no score column, one copy
        out = self.similar("title:Low One", "-n", "1", "-f", "[$similarity] $artist")
        score, artist = out.strip().split("] ")
        assert 0 < float(score.lstrip("[")) <= 1 and artist == "Hum Makers"
        assert "similarity" not in self.lib.get_item(tracks["hum1"].id)  # never stored

    def test_items_without_an_embedding_are_named_in_one_line(self):
        self.library()
        self.analyse()
        late = self.add_track("hum0", "Late Arrival", "Newcomers")  # added after the analysis

        out = self.similar("title:Low One", "-n", "2", "-f", "$title")

        assert "Late Arrival" not in out and len(out.splitlines()) == 2  # the listing stays clean
        lines = [line for line in self.logged() if "no embedding" in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith("similar: 1 of ") and str(late.filepath) in lines[0]
        assert "beet autotag-ml -t embedding" in lines[0]

    def test_several_matches_make_one_query(self):
        self.library()
        self.analyse()

        out = self.similar("artist:Metronome", "-n", "2", "-f", "$similarity $title")

        titles = [line.split(None, 1)[1] for line in out.strip().splitlines()]
        assert "Tick" not in titles and "Tock" not in titles
        assert len(titles) == 2

    def test_playlist_leaves_out_seeds_and_other_versions(self):
        tracks = self.library()
        # Another version of the seed, and two copies of one neighbour.
        self.add_track("hum0", "Low One (Live)", "Drone Band")
        self.add_track("hum1", "Low Two - 2011 Remaster", "Hum Makers")
        self.analyse()
        target = self.temp_path / "lists" / "low.m3u8"
        target.parent.mkdir()

        out = self.similar("title:Low One", "artist:Drone Band", "-n", "4", "--playlist", str(target))

        text = target.read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == "#EXTM3U"
        uris = [line for line in lines if not line.startswith("#")]
        labels = [line.split(",", 1)[1] for line in lines if line.startswith("#EXTINF:")]
        assert len(uris) == len(labels) == 4
        assert all(os.path.isabs(uri) for uri in uris)
        assert not any("Low One" in label for label in labels)  # the seed and its live version
        assert sum("Low Two" in label for label in labels) == 1  # one copy of the remastered song
        assert labels[0].startswith("Hum Makers - Low Two")
        assert os.fsdecode(tracks["hum1"].path) in uris or any("Low_Two" in u for u in uris)
        assert lines[1].startswith("#EXTINF:8,")
        assert f"wrote 4 tracks to {target}" in out
        assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary left

    def test_artist_cooldown_spreads_artists(self):
        self.library()
        self.analyse()
        self.config["autotagml"]["similar"]["artist_cooldown"] = 1
        target = self.temp_path / "tick.m3u8"

        self.similar("title:Tick", "-n", "4", "--playlist", str(target))

        labels = [line.split(",", 1)[1] for line in target.read_text().splitlines() if line.startswith("#EXTINF")]
        artists = [label.split(" - ")[0] for label in labels]
        assert all(a != b for a, b in zip(artists, artists[1:]))

    def test_playlist_dir_and_relative_to(self):
        self.library()
        self.analyse()
        lists = self.temp_path / "playlists"
        lists.mkdir()
        self.config["autotagml"]["similar"]["playlist_dir"] = str(lists)
        self.config["autotagml"]["similar"]["relative_to"] = str(self.lib_path)

        self.similar("title:Hiss", "-n", "2", "--playlist", "hiss.m3u8")

        uris = [line for line in (lists / "hiss.m3u8").read_text().splitlines() if not line.startswith("#")]
        assert uris and all(not os.path.isabs(u) and (self.lib_path / u).is_file() for u in uris)

    def test_pretend_writes_nothing(self):
        self.library()
        self.analyse()
        target = self.temp_path / "p.m3u8"

        out = self.similar("title:Hiss", "--playlist", str(target), "-p")

        assert not target.exists()
        assert "would write" in out

    def test_embeddings_are_stored_in_the_genre_pass(self):
        self.config["autotagml"]["models"] = {"genre": str(self.assets["genre"]), "embedding": str(self.assets["bundle"])}
        tracks = self.library()
        self.capsys.readouterr()

        self.analyse()

        out = self.capsys.readouterr().out
        assert "6 analysed (6 decoded)" in out  # one read per file for both models
        from beetsplug.autotagml import AutotagMLPlugin

        with Store(AutotagMLPlugin().store_path(self.lib)) as store:
            got = store.get([t.path for t in tracks.values()], {"genre-test": "1", "sim-test": "1"})
        assert all(set(outputs) == {"genre-test", "sim-test"} for outputs in got.values()) and len(got) == 6
        assert all(outputs["sim-test"].embedding.shape == (32,) for outputs in got.values())

    def test_path_outside_the_library(self):
        self.library()
        self.analyse()
        count = len(self.lib.items())

        out = self.similar("--path", str(self.assets["noise1"]), "-n", "1", "-f", "$similarity $title")

        assert out.split(None, 1)[1].strip() in ("Hiss", "Hiss Again")
        assert len(self.lib.items()) == count  # nothing added

    # --- bad input ---------------------------------------------------------

    @pytest.mark.parametrize("args, message", [
        (("title:Hiss", "-n", "0"), "--count must be at least 1, not 0"),
        (("title:Hiss", "--path", "x.flac"), "give a query or --path FILE, not both"),
        ((), r"give a query \(as for `beet ls`\) or --path FILE"),
    ])
    def test_a_bad_query_is_refused(self, args, message):
        with pytest.raises(ui.UserError, match=f"^similar: {message}$"):
            self.similar(*args)

    def test_query_matching_nothing(self):
        self.library()
        self.analyse()
        with pytest.raises(ui.UserError, match="no item matches"):
            self.similar("title:Nothing Like This")

    def test_item_without_embedding_names_the_fix(self):
        self.library()
        self.analyse()
        late = self.add_track("hum1", "Late Addition", "Someone")
        with pytest.raises(ui.UserError, match=r"no embedding of sim-test 1 for .*beet autotag-ml -t embedding"):
            self.similar("title:Late Addition")
        # Among other seeds, it is named and left out of the query.
        out = self.similar("title:Late Addition", ",", "title:Low One", "-n", "1")
        assert f"no embedding for {os.fsdecode(late.path)}" in out

    def test_store_from_another_model_version(self):
        self.library()
        self.analyse()
        self.use_bundle("bundle_v2")
        with pytest.raises(ui.UserError, match=r"embeddings of sim-test version 1 .*not of version 2.*autotag-ml"):
            self.similar("title:Low One")

    def test_nothing_analysed_yet(self):
        self.library()
        with pytest.raises(ui.UserError, match="run `beet autotag-ml -t embedding"):
            self.similar("title:Low One")

    def test_file_that_cannot_be_decoded(self):
        self.library()
        self.analyse()
        with pytest.raises(ui.UserError, match=r"text\.mp3: cannot be analysed"):
            self.similar("--path", str(self.assets["text"]))
        with pytest.raises(ui.UserError, match="no such file"):
            self.similar("--path", str(self.temp_path / "missing.flac"))

    def test_playlist_that_cannot_be_written(self):
        self.library()
        self.analyse()
        target = self.temp_path / "no" / "such" / "dir" / "x.m3u8"
        with pytest.raises(ui.UserError, match="cannot write the playlist"):
            self.similar("title:Hiss", "--playlist", str(target))
        assert not target.exists()


class TestLargeLibraryPath(SimilarHelper):
    """With ann_threshold reached, the matrix (and an HNSW index when usearch
    is installed) are kept beside the store and follow its changes."""

    @pytest.fixture(autouse=True)
    def _setup(self, _attach):
        self.use_bundle(ann_threshold=2)

    def test_index_files_follow_the_store(self):
        self.lib.path = str(self.temp_path / "music.db")  # the store goes beside it
        self.library()
        self.analyse()

        out = self.similar("title:Tick", "-n", "1", "-f", "$similarity $title")

        assert out.split(None, 1)[1].strip() == "Tock"
        store_path = self.temp_path / "autotagml.sqlite"
        kept = sorted(p.name for p in self.temp_path.iterdir() if ".similar-" in p.name)
        assert any(name.endswith(".npy") for name in kept)
        if usearch_available():
            assert sum(name.endswith(".usearch") for name in kept) == 1
        # A removed item is left out of the search at once; its analysis
        # stays while its file exists, until a full run prunes it, which
        # changes the store state: the cache is rebuilt.
        self.lib.items("title:Tock").get().remove()
        out = self.similar("title:Tick", "-n", "1", "-f", "$similarity $title")
        assert out.split(None, 1)[1].strip() != "Tock"
        with Store(store_path) as store:
            assert store.embedding_state("sim-test", "1")[0] == 6
        self.analyse()
        out = self.similar("title:Tick", "-n", "1", "-f", "$similarity $title")
        assert out.split(None, 1)[1].strip() != "Tock"
        with Store(store_path) as store:
            assert store.embedding_state("sim-test", "1")[0] == 5
        kept = sorted(p.name for p in self.temp_path.iterdir() if ".similar-" in p.name)
        assert sum(name.endswith(".usearch") for name in kept) == (1 if usearch_available() else 0)
