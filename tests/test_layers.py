"""The layers: tagcore (the engine) imports neither beets nor the plugin;
the trainer does not import the plugin (it may read beets' configuration,
guarded, when beets is installed); no two modules of a package import each
other, even inside functions; code only training runs lives in the
trainer, not in tagcore. Checked on the source, import by import."""

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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, imports inside functions
    included; ``from a import b`` counts as importing ``a.b`` when that is a
    module, else ``a``."""
    modules = {module_name(path): path for path in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    found |= {child} if child in modules else {node.module} & set(modules)
        graph[name] = found - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module: each is a
    group of modules that import one another, directly or through others."""
    order, low, stack, cycles = {}, {}, [], []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in order:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], order[other])
        if low[node] == order[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return cycles


def test_import_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", ["tagcore", "trainer"])
def test_no_import_cycles(package):
    cycles = import_cycles(import_graph(package))
    assert not cycles, "modules importing one another: " + "; ".join(" <-> ".join(c) for c in cycles)


#: Training-only code that once lived in tagcore: (module, top-level names
#: it must no longer define, or None when the whole module moved).
MOVED_TO_TRAINER = [
    ("tagcore/propagation.py", None),  # -> trainer/propagation.py
    ("tagcore/tfcheckpoint.py", None),  # -> trainer/tfcheckpoint.py
    ("tagcore/metrics.py", None),  # -> trainer/metrics.py
    ("tagcore/baseline.py", None),  # -> trainer/baseline.py (its regression: trainer/linear.py)
    ("tagcore/families/triplet.py", {"Triplets", "pair_masks", "select_triplets", "squared_distances", "loss"}),
    ("tagcore/families/disambig.py", {"Track", "tag_popularity", "monolabel_probabilities", "monolabel_sample"}),
]


@pytest.mark.parametrize("module, names", MOVED_TO_TRAINER, ids=[m for m, _ in MOVED_TO_TRAINER])
def test_training_only_code_is_not_in_tagcore(module, names):
    path = ROOT / module
    if names is None:
        assert not path.exists(), f"{module} is training-only: it belongs in trainer/"
        return
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & names, f"{module} defines training-only {sorted(defined & names)}"


def test_one_reader_of_lastgenres_tree_for_the_plugin_and_the_trainer():
    from beetsplug.autotagml import related as plugin_related
    from tagcore import lastgenre
    from tagcore.related import spelling_key
    from trainer import related as trainer_related
    from trainer.tagmap import genres as tagmap_genres

    if lastgenre.data_dir() is None:
        pytest.skip("beets' lastgenre data is not installed")
    assert tagmap_genres.genre_tree_paths() is lastgenre.tree_paths()
    assert plugin_related.genre_tree_paths() is trainer_related.genre_tree_paths()
    by_key = lastgenre.tree_paths_by_key()
    assert all(spelling_key(name) in by_key for name in lastgenre.tree_paths())
    assert lastgenre.tree_path("Bebop") == ("jazz", "bebop")
    assert lastgenre.normalize_label("hiphop") == "hip hop"
