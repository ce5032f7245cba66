"""The plugin with its store: what is re-analysed, what is set again from
the store, several tasks, and a run killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mutagen
import pytest
from mediafile import MediaFile

from beets_fixtures import AutotagMLHelper, file_genres
from plugin_fixtures import make_bundle, write_audio
from tagcore.store import Store


class TestStore(AutotagMLHelper):
    @pytest.fixture(autouse=True)
    def _model(self, _attach):
        self.use_model()

    def store(self) -> Store:
        from beetsplug.autotagml import AutotagMLPlugin

        return Store(AutotagMLPlugin().store_path(self.lib))

    def test_the_store_lies_beside_the_library(self):
        from beets import config
        from beetsplug.autotagml import AutotagMLPlugin

        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-W")
        with self.store() as store:
            assert list(store.paths()) == [item.path]
        # beets' tests use an in-memory library: the store goes to beets'
        # config directory; beside a library file otherwise.
        assert AutotagMLPlugin().store_path(self.lib) == os.path.join(config.config_dir(), "autotagml.sqlite")
        self.lib.path = str(self.temp_path / "music.db")
        assert AutotagMLPlugin().store_path(self.lib) == str(self.temp_path / "autotagml.sqlite")

    def test_a_changed_file_is_analysed_again(self):
        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-W")
        os.utime(item.path, ns=(time.time_ns(), time.time_ns() + 10**9))

        out, _ = self.run_ml("-W")

        assert "1 analysed (1 decoded), 0 from the store" in out

    def test_tags_written_by_beets_do_not_invalidate_the_analysis(self):
        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-w")  # our own write
        fresh = self.fresh(item)
        fresh.title = "Renamed"
        fresh.store()
        self.run_command("write")  # beets' write
        assert MediaFile(os.fsdecode(item.path)).title == "Renamed"

        out, _ = self.run_ml("-w")

        assert "0 analysed (0 decoded), 1 from the store" in out

    def test_threshold_and_count_are_applied_again_from_the_store(self):
        item = self.add_audio("song.flac", "flac")
        self.run_ml("-w")
        assert self.fresh(item).genres == ["Hip Hop"]
        self.use_model(threshold=0.01, count=2)

        out, _ = self.run_ml("-w")

        assert "0 analysed (0 decoded), 1 from the store" in out
        assert "1 tagged" in out
        assert self.fresh(item).genres == ["Hip Hop", "Rock"]
        assert file_genres(item.filepath) == ["Hip Hop", "Rock"]

    def test_removed_items_leave_the_store(self):
        keep = self.add_audio("keep.mp3", "mp3")
        gone = self.add_audio("gone.mp3", "mp3")
        also_gone = self.add_audio("also.mp3", "mp3")
        self.run_ml("-W")
        gone.remove(delete=True)  # beets' item_removed event, then the file goes
        with self.lib.transaction() as tx:  # behind beets' back
            tx.mutate("DELETE FROM items WHERE id = ?", (also_gone.id,))
        with self.store() as store:  # kept until a full run: beets deletes files after the event
            assert len(store) == 3

        out, _ = self.run_ml("-W")

        assert "2 pruned from the store" in out
        with self.store() as store:
            assert list(store.paths()) == [keep.path]

    def test_moved_items_keep_their_analysis(self):
        item = self.add_audio("song.mp3", "mp3")
        self.run_ml("-W")
        item = self.fresh(item)
        from beets.util import MoveOperation

        item.move(operation=MoveOperation.MOVE, basedir=os.fsencode(self.lib_path / "moved"))
        assert b"/moved/" in item.path
        item.store()

        out, _ = self.run_ml("-W")

        assert "0 analysed (0 decoded), 1 from the store" in out


class TestTasks(AutotagMLHelper):
    def use_tasks(self, task_bundles, **models):
        paths = {"genre": str(self.assets["bundle"]), **{t: str(task_bundles[t]) for t in task_bundles}}
        paths.update(models)
        self.use_model(models=paths)

    @pytest.mark.parametrize("kind", ["mp3", "flac"])
    def test_mood_and_style_land_in_library_and_files(self, task_bundles, kind):
        self.use_tasks(task_bundles)
        item = self.add_audio(f"song.{kind}", kind)

        out, _ = self.run_ml("-w")

        stored = self.fresh(item)
        assert stored.genres == ["Hip Hop"]
        assert stored["mood"] == ["Happy", "Sad"]
        assert stored.style == "Shoegaze"
        assert stored["ml_mood_model"] == "mood-test" and isinstance(stored["ml_mood_happy"], float)
        assert stored["ml_style_shoegaze"] > 0.9
        for task in ("genre", "mood", "style"):
            assert f"  {task} (" in out
        tags = mutagen.File(os.fsdecode(item.path))
        if kind == "mp3":
            assert tags.tags.getall("TXXX:MOOD")[0].text == ["Happy", "Sad"]
            assert tags.tags.getall("TXXX:STYLE")[0].text == ["Shoegaze"]
        else:
            assert tags["MOOD"] == ["Happy", "Sad"] and tags["STYLE"] == ["Shoegaze"]
        # Read back by beets as written.
        medium = MediaFile(os.fsdecode(item.path))
        assert medium.mood == ["Happy", "Sad"] and medium.style == "Shoegaze"

    def test_a_missing_model_for_one_task_does_not_stop_the_others(self, task_bundles):
        self.use_tasks(task_bundles, mood=str(self.temp_path / "no-such-mood-model"))
        item = self.add_audio("song.mp3", "mp3")

        out, error = self.run_ml_failing("-W")  # the exit status says a task did not run

        assert error == "autotag-ml: 1 task not run (listed above)"

        assert "mood: not run: no model bundle" in out
        assert out.count("no-such-mood-model") == 1
        stored = self.fresh(item)
        assert stored.genres == ["Hip Hop"] and stored.style == "Shoegaze"
        assert not stored.get("mood")

    def test_broken_weights_for_one_task_do_not_stop_the_others(self, task_bundles):
        import shutil

        broken = self.temp_path / "broken-mood"
        shutil.copytree(task_bundles["mood"], broken)
        (broken / "weights.safetensors").write_bytes(b"not weights")
        self.use_tasks(task_bundles, mood=str(broken))
        item = self.add_audio("song.mp3", "mp3")

        out, _ = self.run_ml("-W")

        assert "mood: not run:" in out and "weights.safetensors" in out
        assert self.fresh(item).genres == ["Hip Hop"]

    def test_task_option_restricts_the_run_and_adding_a_task_decodes_for_it_only(self, task_bundles):
        self.use_tasks(task_bundles)
        item = self.add_audio("song.mp3", "mp3")

        out, _ = self.run_ml("-W", "--task", "genre")
        assert "  genre (" in out and "  mood (" not in out
        assert not self.fresh(item).get("mood")

        out, _ = self.run_ml("-W", "-t", "genre,mood")
        assert "1 analysed (1 decoded)" in out
        assert "genre (genre-test 1): 0 tagged, 1 unchanged" in out
        assert self.fresh(item)["mood"] == ["Happy", "Sad"]

    def test_unknown_task_is_a_user_error(self, task_bundles):
        from beets import ui

        self.use_tasks(task_bundles)
        with pytest.raises(ui.UserError, match="no model configured for task lyrics"):
            self.run_ml("--task", "lyrics")


# --- SIGKILL in the middle of a run ---------------------------------------


def beet(root: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "BEETSDIR": str(root / "config")}
    return subprocess.Popen([sys.executable, "-m", "beets", *args], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def stored_files(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(DISTINCT file_id) FROM outputs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_cleanly(tmp_path):
    root = tmp_path
    music = root / "music"
    count = 40
    store = slow_library(root, count)

    run = beet(root, "autotag-ml", "-w")
    deadline = time.monotonic() + 240
    while stored_files(store) < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    done = stored_files(store)
    assert 3 <= done < count, f"the kill did not land mid-run ({done} of {count} stored): {run.stdout.read()}"

    for database in (root / "library.db", store):
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for path in music.glob("*.mp3"):
        assert mutagen.File(str(path)) is not None, path  # every file still reads

    resumed = beet(root, "autotag-ml", "-w")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    analysed = int(out.split("autotag-ml: ")[1].split(" analysed")[0])
    # What was stored before the kill is not decoded again, except a file
    # whose tags were being written (its new mtime was not yet recorded).
    assert analysed <= count - done + 1
    assert "genre (genre-test 1): " in out and "0 failed" in out
    assert stored_files(store) == count
    with sqlite3.connect(root / "library.db") as db:
        assert db.execute("SELECT COUNT(*) FROM items WHERE genres = 'Hip Hop'").fetchone()[0] == count
    assert not list(music.glob(".*")), "a temporary copy was left behind"
    wrong = {p.name: file_genres(p) for p in music.glob("*.mp3") if file_genres(p) != ["Hip Hop"]}
    assert not wrong, (wrong, out)


def slow_library(root: Path, count: int, workers: int = 0, model_threads: str = "1") -> Path:
    """A library of ``count`` imported 30-second mp3s, analysed one file
    per batch, by one model thread unless ``model_threads`` says otherwise
    (so a run takes a while however fast the machine: a second run must
    start, or a signal arrive, before it ends), and the path of its store."""
    music = root / "music"
    for i in range(count):
        write_audio(music / f"song{i:02d}.mp3", "mp3", seconds=30.0, frequency=200.0 + 10 * i)
    bundle = make_bundle(root / "bundle")
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(
        f"directory: {music}\nlibrary: {root / 'library.db'}\nplugins: autotagml\n"
        f"import:\n  write: yes\n  copy: no\n  duplicate_action: keep\n"
        f"autotagml:\n  model: {bundle}\n  workers: {workers}\n  batch_size: 1\n  model_threads: {model_threads}\n  auto: no\n"
    )
    importing = beet(root, "import", "-A", "-q", "-s", str(music))
    assert importing.wait(timeout=300) == 0, importing.stdout.read()
    return root / "autotagml.sqlite"


def wait_for_stored(store: Path, run: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 240
    while stored_files(store) < at_least and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return stored_files(store)


@pytest.mark.slow
def test_ctrl_c_stops_the_run_says_how_far_it_got_and_the_next_run_resumes(tmp_path):
    # Interrupted as soon as the first file is stored: a run of 40 short
    # files interrupted at the third had ended before the signal on a
    # clean clone once batches ran side by side (model_threads).
    count = 40
    store = slow_library(tmp_path, count, workers=1, model_threads="auto")  # the cancellation of batches side by side

    # A shell's background job ignores SIGINT and its children inherit
    # that (Python then installs no KeyboardInterrupt handler): the run
    # gets the default disposition back, as in a terminal.
    run = beet(tmp_path, "autotag-ml", "-w", start_new_session=True,
               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert wait_for_stored(store, run, 1) >= 1
    assert run.poll() is None, "the run ended before it could be interrupted: " + run.communicate()[0]
    os.killpg(run.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out = run.communicate(timeout=60)[0]
    done = stored_files(store)

    assert run.returncode == 1, out
    assert "autotag-ml: interrupted after" in out and "the next run goes on from there" in out
    assert "Traceback" not in out
    assert done < count, "the run was not stopped"
    resumed = beet(tmp_path, "autotag-ml", "-w")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    analysed = int(out.split("autotag-ml: ")[1].split(" analysed")[0])
    assert analysed <= count - done + 1, out
    assert stored_files(store) == count


@pytest.mark.slow
def test_two_runs_at_once_take_turns_and_lose_nothing(tmp_path):
    count = 24
    store = slow_library(tmp_path, count)

    first = beet(tmp_path, "autotag-ml", "-w")
    assert wait_for_stored(store, first, 1) >= 1
    second = beet(tmp_path, "autotag-ml", "-w")
    first_out = first.communicate(timeout=300)[0]
    second_out = second.communicate(timeout=300)[0]

    assert first.returncode == 0, first_out
    assert second.returncode == 0, second_out
    assert "another autotag-ml run is using" in second_out and "waiting for it to finish" in second_out
    assert f"0 analysed (0 decoded), {count} from the store; 0 files written" in second_out, second_out
    assert "locked" not in first_out + second_out
    with sqlite3.connect(tmp_path / "library.db") as db:
        assert db.execute("SELECT COUNT(*) FROM items WHERE genres = 'Hip Hop'").fetchone()[0] == count


# --- The default model set on a real clip --------------------------------


@pytest.mark.slow
class TestDefaultModels(AutotagMLHelper):
    """The shipped musicnn models, their heads and tag maps, on a real
    acoustic clip labelled calm (PyPI immich-memories-music, MIT)."""

    def test_default_set_writes_genre_mood_and_sets_instruments(self):
        import immich_memories_music

        from tagcore.store import Store

        self.config["autotagml"].set({"workers": 0})
        clip = Path(immich_memories_music.__file__).parent / "tracks" / "calm" / "calm_acoustic_1.opus"
        path = self.lib_path / "calm.opus"
        path.write_bytes(clip.read_bytes())
        item = __import__("beets.library", fromlist=["Item"]).Item.from_path(str(path))
        item.add(self.lib)

        out, _ = self.run_ml("-w")

        for task in ("genre", "mood", "instrument", "voice", "energy", "embedding"):
            assert f"  {task} (" in out, out
        stored = self.fresh(item)
        assert stored.genres, out
        assert stored["mood"][0] == "Calm"
        assert "guitar" in stored["ml_instrument"].split(", ")
        assert isinstance(stored["ml_mood_calm"], float) and isinstance(stored["ml_instrument_guitar"], float)
        assert stored["ml_genre_model"] == "genre-musicnn" and stored["ml_embedding_model"] == "musicnn-msd"
        tags = mutagen.File(str(path))
        assert tags["MOOD"] == stored["mood"] and tags["GENRE"] == stored.genres
        assert "INSTRUMENT" not in tags  # only where file_tags asks
        assert [i.id for i in self.lib.items("ml_instrument:guitar")] == [item.id]
        from beetsplug.autotagml import AutotagMLPlugin

        with Store(AutotagMLPlugin().store_path(self.lib)) as store:
            (vector,) = [v for p, v in store.embeddings("musicnn-msd", stored["ml_embedding_version"])]
        assert vector.shape == (200,)
