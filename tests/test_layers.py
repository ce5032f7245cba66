"""The layers: tagcore (the engine) imports neither beets nor the plugin;
the trainer does not import the plugin (it may read beets' configuration,
guarded, when beets is installed). Checked on the source, import by import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("tagcore", ("beets", "beetsplug", "trainer")),
    ("trainer", ("beetsplug",)),
])
def test_layers(package, forbidden):
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in imported_modules(path)
        if name.split(".")[0] in forbidden
    ]
    assert not offences, "\n".join(offences)


def test_one_reader_of_lastgenres_tree_for_the_plugin_and_the_trainer():
    from beetsplug.autotagml import related as plugin_related
    from tagcore import lastgenre
    from tagcore.related import spelling_key
    from trainer import related as trainer_related
    from trainer import tagmap

    if lastgenre.data_dir() is None:
        pytest.skip("beets' lastgenre data is not installed")
    assert tagmap.genre_tree_paths() is lastgenre.tree_paths()
    assert plugin_related.genre_tree_paths() is trainer_related.genre_tree_paths()
    by_key = lastgenre.tree_paths_by_key()
    assert all(spelling_key(name) in by_key for name in lastgenre.tree_paths())
    assert lastgenre.tree_path("Bebop") == ("jazz", "bebop")
    assert lastgenre.normalize_label("hiphop") == "hip hop"
