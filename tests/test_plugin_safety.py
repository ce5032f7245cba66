"""The plugin in a curated library: it touches a file only when one of its
tags changes, writes in place (inode, links, mode and extended attributes
kept), never replaces values it did not write unless asked, keeps the
analysis through everything beets does to files, and survives files it
cannot write. Real files written by the tests, through beets' helpers."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mediafile import MediaFile

from audio_fixtures import write_audio as write_format
from beets import ui
from beets.test.helper import AutotagImportHelper, PluginMixin
from beets.util import cached_classproperty
from beets_fixtures import AutotagMLHelper, file_genres
from plugin_fixtures import make_bundle
from tagcore.store import Store

INSTRUMENTS = ["guitar", "piano", "sitar"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, task_bundles):
    """The mood and style bundles of test_plugin_store, and an instrument one."""
    base = tmp_path_factory.mktemp("safety-bundles")
    return {**task_bundles, "instrument": make_bundle(base / "instrument", name="instrument-test", labels=INSTRUMENTS,
                                                      bias=(3.0, 2.0, 0.0), task="instrument")}


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> dict[str, Path]:
    """One real file per container the plugin writes: ID3, FLAC, MP4, Ogg."""
    base = tmp_path_factory.mktemp("safety-formats")
    return {fmt: write_format(base, fmt, seconds=5.0) for fmt in ("mp3", "flac", "m4a-aac", "ogg")}


def snapshot(path: Path) -> tuple[int, int, int, str]:
    """(inode, mtime in ns, link count, sha256) of a file."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_nlink, hashlib.sha256(path.read_bytes()).hexdigest()


def file_tag(path: Path, name: str):
    return getattr(MediaFile(str(path)), name) or []


class SafetyHelper(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _bundles(self, _attach, bundles, formats):
        self.bundles = bundles
        self.formats = formats

    def use_tasks(self, *tasks: str, **options) -> None:
        models = {"genre": str(self.assets["bundle"]), **{t: str(self.bundles[t]) for t in tasks}}
        self.use_model(models=models, **options)

    def add_format(self, fmt: str, name: str | None = None, **values):
        from beets.library import Item

        path = self.lib_path / (name or f"song.{self.formats[fmt].suffix.lstrip('.')}")
        shutil.copyfile(self.formats[fmt], path)
        item = Item.from_path(str(path))
        item.update(values)
        item.add(self.lib)
        return item


# --- 1, 2: a file is written only when a tag changes, and in place ----------


class TestNoNeedlessWrites(SafetyHelper):
    def test_a_second_run_changes_no_byte_inode_or_mtime(self):
        self.use_tasks("mood", "style", "instrument", file_tags=["instrument"])
        items = [self.add_format(fmt) for fmt in self.formats]
        out, _ = self.run_ml("-w")
        assert "4 files written" in out
        for item in items:
            assert file_genres(item.filepath) == ["Hip Hop"] if item.format == "MP3" else True
            assert MediaFile(str(item.filepath)).mood == ["Happy", "Sad"], item.format
        files = {item.id: snapshot(item.filepath) for item in items}
        rows = {item.id: dict(self.fresh(item)) for item in items}

        out, _ = self.run_ml("-w")

        assert "0 analysed (0 decoded), 4 from the store; 0 files written" in out
        assert "0 tagged, 4 unchanged" in out
        for item in items:
            assert snapshot(item.filepath) == files[item.id], item.format
            assert dict(self.fresh(item)) == rows[item.id]

    def test_tags_set_without_writing_reach_the_file_on_the_next_w_run(self):
        self.use_model()
        item = self.add_format("mp3")
        out, _ = self.run_ml("-W")  # as the import stage, or import.write: no
        assert "0 files written" in out and file_genres(item.filepath) == []
        assert self.fresh(item)["ml_file_pending"] is True

        out, _ = self.run_ml("-w")  # no tag changes now, but the file lacks them

        assert "1 file written" in out and file_genres(item.filepath) == ["Hip Hop"]
        assert "ml_file_pending" not in self.fresh(item)
        out, _ = self.run_ml("-w")
        assert "0 files written" in out

    def test_beets_own_write_clears_the_pending_write(self):
        self.use_model()
        item = self.add_format("flac")
        self.run_ml("-W")

        self.run_command("write")

        assert file_genres(item.filepath) == ["Hip Hop"]
        assert "ml_file_pending" not in self.fresh(item)
        before = snapshot(item.filepath)
        out, _ = self.run_ml("-w")
        assert "0 files written" in out and snapshot(item.filepath) == before

    def test_a_field_that_is_not_a_file_tag_writes_no_file(self):
        self.use_tasks("instrument")
        item = self.add_format("flac")
        self.run_ml("-w")
        before = snapshot(item.filepath)
        self.use_tasks("instrument", threshold={"instrument": 0.0}, count={"instrument": 3})

        out, _ = self.run_ml("-w")

        assert self.fresh(item)["ml_instrument"] == "guitar, piano, sitar"
        assert "0 files written" in out
        assert snapshot(item.filepath) == before

    def test_writes_keep_the_inode_links_mode_and_extended_attributes(self):
        self.use_model()
        item = self.add_format("mp3")
        backup = self.temp_path / "backup"
        backup.mkdir()
        os.link(item.filepath, backup / "song.mp3")
        os.chmod(item.filepath, 0o640)
        try:
            os.setxattr(item.filepath, "user.autotagml-test", b"kept")
            xattrs = True
        except OSError as exc:  # a file system without user xattrs
            assert exc.errno in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP)
            xattrs = False
        inode = item.filepath.stat().st_ino

        out, _ = self.run_ml("-w")

        assert "1 file written" in out
        info = item.filepath.stat()
        assert info.st_ino == inode and info.st_nlink == 2
        assert info.st_mode & 0o777 == 0o640
        assert file_genres(backup / "song.mp3") == ["Hip Hop"]  # the link sees the same file
        if xattrs:
            assert os.getxattr(item.filepath, "user.autotagml-test") == b"kept"
        assert not [p for p in self.lib_path.iterdir() if p.name.startswith(".")], "a temporary file was left"


# --- 3, 6: values the plugin did not write, and its own ------------------------


class TestWhoseValues(SafetyHelper):
    def test_genres_the_user_set_are_kept(self):
        self.use_model()
        item = self.add_format("mp3", genres=["Heavy Metal", "metal"])
        self.fresh(item).try_write()
        before = snapshot(item.filepath)

        out, _ = self.run_ml("-p", "-w", "-t", "genre")
        assert "+ Hip Hop" not in out and "- Heavy Metal" not in out

        out, _ = self.run_ml("-w")

        stored = self.fresh(item)
        assert stored.genres == ["Heavy Metal", "metal"]
        assert "ml_written_genres" not in stored
        assert stored["ml_genre_hiphop"] == pytest.approx(0.975, abs=1e-3)  # the confidences are set
        assert "1 kept as set by you or another tool" in out
        assert snapshot(item.filepath) == before  # no tag of the file changed

    @pytest.mark.parametrize("args, config, genres, written", [
        (["--force"], {}, ["Hip Hop"], ["Hip Hop"]),
        (["-f", "-k"], {}, ["Heavy Metal", "metal", "Hip Hop"], ["Hip Hop"]),
        ([], {"force": True}, ["Hip Hop"], ["Hip Hop"]),
        ([], {"force": True, "keep_existing": True}, ["Heavy Metal", "metal", "Hip Hop"], ["Hip Hop"]),
        (["--no-force"], {"force": True}, ["Heavy Metal", "metal"], None),
        (["--keep-existing"], {}, ["Heavy Metal", "metal"], None),  # keep_existing alone changes nothing
    ])
    def test_force_and_keep_existing_as_lastgenre(self, args, config, genres, written):
        self.use_model(**config)
        item = self.add_format("flac", genres=["Heavy Metal", "metal"])

        self.run_ml("-w", *args)

        stored = self.fresh(item)
        assert stored.genres == genres
        assert file_tag(item.filepath, "genres") == (genres if written else [])
        assert stored.get("ml_written_genres") == written

    def test_a_stricter_threshold_or_count_takes_back_the_plugins_values(self):
        self.use_model(threshold=0.0, count=3)
        item = self.add_format("mp3")
        self.run_ml("-w")
        assert self.fresh(item).genres == ["Hip Hop", "Rock", "Jazz"]
        assert self.fresh(item)["ml_written_genres"] == ["Hip Hop", "Rock", "Jazz"]

        self.use_model(threshold=0.0, count=1)
        out, _ = self.run_ml("-w")
        assert "1 tagged" in out
        assert self.fresh(item).genres == ["Hip Hop"] and file_genres(item.filepath) == ["Hip Hop"]

        self.use_model(threshold=0.99, count=1)  # min_count 1: the best genre stays
        out, _ = self.run_ml("-w")
        assert self.fresh(item).genres == ["Hip Hop"] and "0 below threshold" in out

        self.use_model(threshold=0.99, count=1, min_count=0)
        out, _ = self.run_ml("-w")
        assert self.fresh(item).genres == [] and file_genres(item.filepath) == []
        assert "ml_written_genres" not in self.fresh(item)
        assert "1 below threshold" in out

    def test_a_users_edit_after_the_plugin_is_kept(self):
        self.use_model()
        item = self.add_format("mp3")
        self.run_ml("-w")
        self.run_command("modify", "-y", "genres=Jazz")  # also moves the file to its beets path

        self.use_model(threshold=0.0, count=2)
        out, _ = self.run_ml("-w")

        item = self.fresh(item)
        assert item.genres == ["Jazz"] and file_genres(item.filepath) == ["Jazz"]
        assert "1 kept" in out

    @pytest.mark.parametrize("field, value, tasks", [
        ("mood", ["Angry"], ("mood",)),
        ("style", "Bebop", ("style",)),
    ])
    def test_mood_and_style_the_user_set_are_kept(self, field, value, tasks):
        self.use_tasks(*tasks)
        item = self.add_format("mp3", **{field: value})
        self.fresh(item).try_write()

        self.run_ml("-w")
        assert self.fresh(item)[field] == value
        self.run_ml("-w", "--force")
        assert self.fresh(item)[field] != value
        assert file_tag(item.filepath, field) == self.fresh(item)[field]


# --- 4: the analysis follows the files ----------------------------------------


class TestAnalysisFollowsTheFiles(SafetyHelper):
    def stored_paths(self) -> set[bytes]:
        from beetsplug.autotagml import AutotagMLPlugin

        with Store(AutotagMLPlugin().store_path(self.lib)) as store:
            return set(store.paths())

    def test_modify_write_update_and_move_keep_the_analysis(self):
        self.use_model()
        item = self.add_format("mp3", artist="Enya", title="Orinoco Flow")
        self.run_ml("-w")

        self.run_command("modify", "-y", "artist:Enya", "comments=edited")  # writes, moves to its beets path
        assert MediaFile(str(self.fresh(item).filepath)).comments == "edited"
        self.run_command("modify", "-y", "artist:Enya", "comments=again")  # item_moved onto the same path
        self.run_command("modify", "-y", "-W", "artist:Enya", "title=Sail Away")
        self.run_command("write")
        self.run_command("update")
        (self.temp_path / "moved").mkdir()
        self.run_command("move", "-d", str(self.temp_path / "moved"))
        moved = self.fresh(item)
        assert b"/moved/" in moved.path

        out, _ = self.run_ml("-w")

        assert "0 analysed (0 decoded), 1 from the store; 0 files written" in out
        assert self.stored_paths() == {moved.path}

    def test_a_moved_file_keeps_its_key_across_a_copy_fallback(self, monkeypatch):
        """A move that copies (another file system) gives the file a new
        mtime: the analysis follows it all the same."""
        import beets.util

        self.use_model()
        item = self.add_format("flac")
        self.run_ml("-W")

        def copy_then_remove(source, destination, replace=False):
            shutil.copyfile(os.fsdecode(source), os.fsdecode(destination))  # a new mtime
            os.remove(os.fsdecode(source))

        monkeypatch.setattr(beets.util, "move", copy_then_remove)
        (self.temp_path / "other-disk").mkdir()
        self.run_command("move", "-d", str(self.temp_path / "other-disk"))

        out, _ = self.run_ml("-W")
        assert "0 analysed (0 decoded), 1 from the store" in out
        assert self.stored_paths() == {self.fresh(item).path}


class TestImportKeepsTheAnalysis(PluginMixin, AutotagImportHelper):
    """``auto: yes`` analyses during the import, before beets copies or
    moves the files: the analysis must follow them."""

    plugin = "autotagml"
    db_on_disk = True  # the importer's threads each open the library

    @pytest.fixture(autouse=True)
    def _setup(self, assets, capsys):
        self.assets, self.capsys = assets, capsys
        self.config["autotagml"].set({"model": str(assets["bundle"]), "workers": 0})
        cached_classproperty.cache.clear()

    def setup_beets(self) -> None:
        super().setup_beets()
        cached_classproperty.cache.clear()

    def prepare_album_for_import(self, item_count, album_id=None, album_path=None):
        album_path = album_path or self.import_path / "album"
        album_path.mkdir(parents=True, exist_ok=True)
        for n in range(1, item_count + 1):
            path = album_path / f"track_{n}.mp3"
            shutil.copyfile(self.assets["mp3"], path)
            medium = MediaFile(str(path))
            medium.update({"artist": "Tag Artist", "album": "Tag Album", "title": f"Tag Track {n}", "track": n})
            medium.save()
        return []

    @pytest.mark.parametrize("operation", ["copy", "move", "hardlink"])
    def test_imported_files_keep_their_analysis(self, operation):
        self.prepare_album_for_import(2)
        self.config["threaded"] = True  # as beets runs: stages and file operations in other threads
        self.config["import"]["copy"] = operation == "copy"
        self.config["import"]["move"] = operation == "move"
        self.config["import"]["hardlink"] = operation == "hardlink"

        self.setup_importer(autotag=False, write=True).run()

        items = list(self.lib.items())
        assert len(items) == 2 and all(item.genres == ["Hip Hop"] for item in items)
        assert all(self.lib_path in Path(os.fsdecode(item.path)).parents for item in items)
        self.capsys.readouterr()
        self.run_command("autotag-ml", "-W")
        assert "0 analysed (0 decoded), 2 from the store" in self.capsys.readouterr().out
        # An as-is import does not write tags: the next -w run does, once.
        assert all(file_genres(item.filepath) == [] for item in items)
        self.run_command("autotag-ml", "-w")
        assert "2 files written" in self.capsys.readouterr().out
        assert all(file_genres(item.filepath) == ["Hip Hop"] for item in self.lib.items())


# --- 5: files that cannot be written, options that cannot work ----------------


class TestFailures(SafetyHelper):
    def test_a_file_that_cannot_be_written_is_one_line_and_the_run_goes_on(self, monkeypatch):
        from mediafile import UnreadableFileError

        self.use_tasks("mood")
        good = self.add_format("mp3", name="good.mp3")
        locked = self.add_format("mp3", name="locked.mp3")
        locked_before = (snapshot(locked.filepath), dict(self.fresh(locked)))
        save = MediaFile.save

        def refuse_locked(medium, *args, **kwargs):
            if os.fsdecode(medium.filename).endswith("locked.mp3"):
                try:  # as mediafile reports mutagen's error
                    raise PermissionError(errno.EPERM, "Operation not permitted", medium.filename)
                except PermissionError as exc:
                    raise UnreadableFileError(medium.filename, str(exc)) from exc
            return save(medium, *args, **kwargs)

        monkeypatch.setattr(MediaFile, "save", refuse_locked)
        out, error = self.run_ml_failing("-w")

        lines = [line for line in self.logged() + out.splitlines() if "locked.mp3" in line]
        assert len(lines) == 1, lines
        assert lines[0] == f"failed: error writing {locked.filepath}: Operation not permitted"
        assert error == "autotag-ml: 1 item failed (listed above)"
        task_line = next(line for line in out.splitlines() if line.strip().startswith("mood ("))
        assert ": 1 tagged, 0 unchanged" in task_line and ", 1 failed," in task_line, task_line
        assert "; 1 file written" in out
        assert file_genres(good.filepath) == ["Hip Hop"]
        assert (snapshot(locked.filepath), dict(self.fresh(locked))) == locked_before

    def test_a_row_the_library_cannot_store_is_failed_not_tagged(self, monkeypatch):
        """A busy library (another process holds it) refuses one item's row:
        that item is one failed line, counted failed and not tagged, and
        left as it was; the other item is tagged."""
        import sqlite3

        from beets.library import Item

        self.use_tasks("mood")
        good = self.add_format("mp3", name="good.mp3")
        busy = self.add_format("mp3", name="busy.mp3")
        busy_before = (snapshot(busy.filepath), dict(self.fresh(busy)))
        store = Item.store

        def refuse_busy(item, *args, **kwargs):
            if os.fsdecode(item.path).endswith("busy.mp3"):
                raise sqlite3.OperationalError("database is locked")
            return store(item, *args, **kwargs)

        monkeypatch.setattr(Item, "store", refuse_busy)
        out, error = self.run_ml_failing("-W")

        assert f"failed: {busy.filepath}: not saved, the library is busy (database is locked)" in self.logged(), out
        task_line = next(line for line in out.splitlines() if line.strip().startswith("mood ("))
        assert ": 1 tagged, 0 unchanged" in task_line and ", 1 failed," in task_line, task_line
        assert error == "autotag-ml: 1 item failed (listed above)"
        assert self.fresh(good).get("ml_mood_model") and self.fresh(good)["ml_file_pending"] is True
        assert (snapshot(busy.filepath), dict(self.fresh(busy))) == busy_before

    def test_an_immutable_file(self):
        self.use_model()
        item = self.add_format("mp3")
        if shutil.which("chattr") is None:
            pytest.skip("no chattr")
        made = subprocess.run(["chattr", "+i", str(item.filepath)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"this file system has no immutable flag: {made.stderr.decode().strip()}")
        try:
            out, error = self.run_ml_failing("-w")
        finally:
            subprocess.run(["chattr", "-i", str(item.filepath)], check=True)
        assert f"failed: error writing {item.filepath}: Operation not permitted" in self.logged(), out
        assert "1 item failed" in error
        assert self.fresh(item).genres == []

    @pytest.mark.parametrize("options, message", [
        ({"timeout": -5}, "timeout must be a number of seconds > 0, not -5"),
        ({"timeout": "soon"}, "timeout must be a number of seconds > 0"),
        ({"workers": -1}, "workers must be a whole number >= 0, not -1"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, not 0"),
        ({"threshold": 1.5}, "threshold must be between 0 and 1, not 1.5"),
        ({"threshold": {"genre": -0.1}}, "threshold.genre must be between 0 and 1"),
        ({"count": 0}, "count must be >= 1, not 0"),
        ({"count": -1}, "count must be >= 1, not -1"),
        ({"count": 1.5}, "count must be a whole number, not 1.5"),
    ])
    def test_bad_options_are_refused_before_any_work(self, options, message):
        self.use_model(**options)
        item = self.add_format("mp3")
        before = snapshot(item.filepath)

        with pytest.raises(ui.UserError) as error:
            self.run_command("autotag-ml", "-w")

        assert message in str(error.value)
        assert snapshot(item.filepath) == before and "ml_genre_model" not in self.fresh(item)


def test_a_second_run_waits_for_the_first_and_says_so(tmp_path):
    """The run lock as an import stage meets it: a second holder is told
    once, waits, and goes on when the first lets go."""
    import fcntl
    import threading

    from beetsplug.autotagml.run import run_lock

    store = str(tmp_path / "autotagml.sqlite")
    first = open(f"{store}.lock", "a+b")
    fcntl.flock(first, fcntl.LOCK_EX)
    told, inside = [], threading.Event()

    def second():
        with run_lock(store, told.append):
            inside.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not inside.wait(0.5), "the second run did not wait"
    assert len(told) == 1 and "another autotag-ml run is using" in told[0]
    fcntl.flock(first, fcntl.LOCK_UN)
    first.close()
    thread.join(timeout=10)
    assert inside.is_set()
    with run_lock(store, told.append):  # free again: nothing to say
        pass
    assert len(told) == 1
