"""Learning from the user's own tags in one workflow: `beet autotag-ml
--learn FIELD` trains a head on the library, prints its cross-validated
figures beside the trivial baseline, and the head joins the default set,
writing the field it learned. Real musicnn-msd backbone, synthesized audio."""

from __future__ import annotations

import pytest

from beets.library import Item
from beets_fixtures import AutotagMLHelper
from beetsplug.autotagml import DEFAULT_MODELS, AutotagMLPlugin, learned_heads
from plugin_fixtures import write_audio
from beets.util import cached_classproperty

pytest.importorskip("sklearn")


class TestLearn(AutotagMLHelper):
    db_on_disk = True  # the trainer reads the library file

    @pytest.fixture(autouse=True)
    def _user_data(self, _attach, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the user bundle folder
        self.config["autotagml"].set({"workers": 0})

    @pytest.mark.slow
    def test_learn_a_field_then_the_head_joins_the_default_set(self):
        for i in range(10):
            low = i % 2 == 0
            path = write_audio(self.lib_path / f"t{i}.mp3", "mp3", seconds=6.0, frequency=110.0 if low else 1760.0)
            item = Item.from_path(str(path))
            item.update({"artist": f"artist{i // 2}", "title": f"t{i}"})
            if i < 8:
                item["vibe"] = "chill" if low else "bright"
            item.add(self.lib)

        self.capsys.readouterr()
        self.run_command("autotag-ml", "--learn", "vibe")
        out = self.capsys.readouterr().out

        assert "learning vibe from 8 item(s) with a value by 4 artist(s)" in out
        assert "| head |" in out and "| trivial |" in out  # the CV figures beside the trivial baseline
        cached_classproperty.cache.clear()  # a new beets process would see the head's field types
        heads = learned_heads()
        assert list(heads) == ["library-vibe"] and heads["library-vibe"][1] == "vibe"
        specs = AutotagMLPlugin().task_specs()
        assert set(DEFAULT_MODELS) <= set(specs) and "library-vibe" in specs  # joins, replaces nothing

        out, _ = self.run_ml("-W", "-t", "library-vibe")

        unlabelled = [self.fresh(item) for item in self.lib.items() if item.title in ("t8", "t9")]
        assert all(item.get("vibe") in ("chill", "bright") for item in unlabelled)
        assert "8 kept as set by you" in out  # the user's own labels stay
        assert all("ml_library-vibe" not in item for item in unlabelled)

    def test_learn_without_values_says_so(self):
        path = write_audio(self.lib_path / "a.mp3", "mp3")
        Item.from_path(str(path)).add(self.lib)
        from beets import ui

        with pytest.raises(ui.UserError, match="no field 'vibe'"):
            self.run_command("autotag-ml", "--learn", "vibe")
