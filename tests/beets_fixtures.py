"""The base class of the plugin tests: a beets library in a temporary
folder (beets' own ``PluginMixin`` and ``TestHelper``) with the autotagml
plugin loaded, the ``assets`` fixture's bundle and audio, and shortcuts to
run ``beet autotag-ml``. The fixtures it uses are in conftest.py."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import ClassVar

import mutagen
import pytest

from beets import ui
from beets.library import Item
from beets.test.helper import PluginMixin, TestHelper
from beets.util import cached_classproperty


def file_genres(path: Path) -> list[str]:
    tags = mutagen.File(str(path), easy=True)
    return list(tags.get("genre", [])) if tags is not None else []


class AutotagMLHelper(PluginMixin, TestHelper):
    plugin: ClassVar[str] = "autotagml"
    workers: ClassVar[int] = 0

    @pytest.fixture(autouse=True)
    def _attach(self, assets, capsys, caplog):
        self.assets = assets
        self.capsys = capsys
        self.caplog = caplog

    def logged(self, level: int = logging.INFO) -> list[str]:
        """The plugin's log lines so far at ``level`` or above (beets
        prints INFO and above at its default verbosity, DEBUG with -v,
        with the ``autotagml:`` prefix, on stderr)."""
        return [r.getMessage() for r in self.caplog.records if r.name == "beets.autotagml" and r.levelno >= level]

    def setup_beets(self) -> None:
        super().setup_beets()
        cached_classproperty.cache.clear()  # pick up the plugin's item_types

    def use_model(self, key: str = "bundle", **options) -> None:
        self.config["autotagml"].set({"model": str(self.assets[key]), "workers": self.workers, **options})
        cached_classproperty.cache.clear()

    def add_audio(self, name: str, kind: str, **values) -> Item:
        """Copy asset ``kind`` into the library directory and add it."""
        path = self.lib_path / name
        shutil.copyfile(self.assets[kind], path)
        if kind in ("text", "truncated"):  # beets may not read their tags
            return self.add_item(path=str(path), title=name, **values)
        item = Item.from_path(str(path))
        item.update(values)
        item.add(self.lib)
        return item

    def run_ml(self, *args: str) -> tuple[str, str]:
        self.capsys.readouterr()
        self.run_command("autotag-ml", *args)
        captured = self.capsys.readouterr()
        return captured.out, captured.err

    def run_ml_failing(self, *args: str) -> tuple[str, str]:
        """A run that must end in a UserError (a non-zero exit status):
        its output and the error's message."""
        self.capsys.readouterr()
        with pytest.raises(ui.UserError) as error:
            self.run_command("autotag-ml", *args)
        return self.capsys.readouterr().out, str(error.value)

    def fresh(self, item: Item) -> Item:
        return self.lib.get_item(item.id)
