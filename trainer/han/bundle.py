"""The HAN trainer's bundle: the NetEase label table (Chinese tag ->
English name and task), the style bundle written by a run, and ``--ship``
(the best variant of runs split over processes) with its label-graph
figure."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from tagcore.families import han
from trainer.datasets import DatasetError

#: NetEase Cloud Music's tags: Chinese -> English name and the task each
#: serves (NetEase files them under 语种 language, 风格 style, 场景 scene,
#: 情感 emotion and 主题 theme; emotions go to ``mood``, the rest stay
#: ``style``, as beets has no scene or theme field).
NETEASE_LABELS = {
    # 风格 style
    "流行": ("Pop", "style"), "摇滚": ("Rock", "style"), "民谣": ("Folk", "style"),
    "电子": ("Electronic", "style"), "舞曲": ("Dance", "style"), "说唱": ("Hip Hop", "style"),
    "轻音乐": ("Easy Listening", "style"), "爵士": ("Jazz", "style"), "乡村": ("Country", "style"),
    "R&B/Soul": ("R&B", "style"), "古典": ("Classical", "style"), "民族": ("Chinese Folk", "style"),
    "蓝调": ("Blues", "style"), "世界音乐": ("World", "style"), "古风": ("Gufeng", "style"),
    "后摇": ("Post-Rock", "style"), "Bossa Nova": ("Bossa Nova", "style"), "朋克": ("Punk", "style"),
    "另类/独立": ("Alternative", "style"), "器乐": ("Instrumental", "style"), "吉他": ("Guitar", "style"),
    # 情感 emotion -> mood
    "伤感": ("Sad", "mood"), "治愈": ("Soothing", "mood"), "浪漫": ("Romantic", "mood"),
    "怀旧": ("Nostalgic", "mood"), "放松": ("Relaxing", "mood"), "孤独": ("Lonely", "mood"),
    "思念": ("Longing", "mood"), "快乐": ("Happy", "mood"), "安静": ("Calm", "mood"),
    "感动": ("Touching", "mood"), "清新": ("Fresh", "mood"), "兴奋": ("Excited", "mood"),
    "性感": ("Sexy", "mood"),
    # 场景 scene and 主题 theme: kept as styles (tags beets users search for)
    "夜晚": ("Night", "style"), "翻唱": ("Cover", "style"), "经典": ("Classic", "style"),
    "网络歌曲": ("Internet Song", "style"), "影视原声": ("Soundtrack", "style"), "90后": ("1990s Kids", "style"),
    "00后": ("2000s Kids", "style"), "80后": ("1980s Kids", "style"), "70后": ("1970s Kids", "style"),
    "驾车": ("Driving", "style"), "旅行": ("Travel", "style"), "榜单": ("Chart", "style"),
    "学习": ("Study", "style"), "散步": ("Walking", "style"), "综艺": ("Variety Show", "style"),
    "KTV": ("Karaoke", "style"), "运动": ("Workout", "style"), "工作": ("Work", "style"),
    "下午茶": ("Afternoon Tea", "style"), "酒吧": ("Bar", "style"), "清晨": ("Morning", "style"),
    "校园": ("Campus", "style"), "游戏": ("Game", "style"), "地铁": ("Subway", "style"),
    "ACG": ("Anime", "style"),
    # 语种 language
    "华语": ("Mandarin", "style"), "粤语": ("Cantonese", "style"), "欧美": ("Western", "style"),
    "韩语": ("Korean", "style"),
}


def english_table(labels: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(label -> English name, label -> task) for the labels the NetEase
    table knows; others keep their name and the style task."""
    names = {l: NETEASE_LABELS.get(l, (l, "style"))[0] for l in labels}
    tasks = {l: NETEASE_LABELS.get(l, (l, "style"))[1] for l in labels}
    return names, tasks


def shown_names(labels: Sequence[str], names: dict[str, str]) -> dict[str, str]:
    """label -> how figures name it: the English name, or the label and its
    English name when a CJK font can draw the Chinese."""
    from trainer.report import cjk_font

    if cjk_font():
        return {l: f"{l} {names.get(l, l)}" for l in labels}
    return {l: names.get(l, l) for l in labels}


def portable(command: str) -> str:
    """``command`` with absolute paths cut to their last two parts, so no
    path of the training machine lands in a bundle."""
    parts = []
    for word in shlex.split(command):
        if word.startswith("/"):
            word = "/".join(Path(word).parts[-2:])
        parts.append(shlex.quote(word))
    return " ".join(parts)


def command_line() -> str:
    """This run's command line, absolute paths cut (:func:`portable`)."""
    return portable("python -m trainer han " + " ".join(shlex.quote(a) for a in sys.argv[2:]))


def save_style_bundle(directory: Path, *, model: han.Model, name: str, version: str, labels: list[str],
                      names: dict[str, str], tasks: dict[str, str], threshold: float, provenance: dict,
                      metrics: dict) -> Path:
    """A text bundle of the style task reading the ``reviews`` source, with
    the label table (``label_names``: label -> English name;
    ``label_tasks``: label -> the task it serves) and the decision
    (``threshold`` tuned on validation, at most 3 styles)."""
    from tagcore.bundle import CONFIG_FILE, save_bundle

    model.config = replace(model.config, threshold=float(threshold))  # Config is frozen
    save_bundle(directory, model=model, family="han", name=name, version=version, labels=labels,
                model_config=model.config.to_dict(), task="style", input={"kind": "text", "source": "reviews"},
                outputs=("scores",), provenance=provenance, metrics=metrics)
    path = Path(directory) / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    config["label_names"] = {l: names[l] for l in labels}
    config["label_tasks"] = {l: tasks[l] for l in labels}
    config["decision"] = {"threshold": float(threshold), "count": 3}
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.chmod(0o644)
    os.replace(temporary, path)
    return Path(directory)


def ship(bundles: Sequence[str | Path], table: dict, out: Path, *, runs: Sequence[str]) -> str:
    """Copy to ``out`` the bundle among ``bundles`` whose variant has the
    best mean validation micro-F1 in ``table`` (never a test figure), with
    the combined table in its ``metrics``. Returns the variant."""
    import shutil
    import tempfile

    from tagcore.bundle import CONFIG_FILE, read_config

    candidates = []
    for bundle in bundles:
        path, config = read_config(bundle)
        variant = config.get("metrics", {}).get("variant")
        if variant not in table:
            raise DatasetError(f"{path}: its variant {variant!r} is not in the runs' table")
        candidates.append((table[variant]["val_micro_f1"]["mean"], variant, path, config))
    _, variant, path, config = max(candidates, key=lambda c: c[0])
    config["metrics"]["ablation_mean_std"] = {name: {k: v for k, v in row.items() if k != "runs"}
                                              for name, row in table.items()}
    config["metrics"]["ablation_runs"] = [Path(r).name for r in runs]
    config["provenance"]["shipped_by"] = command_line()
    config["provenance"]["command"] = portable(config["provenance"].get("command", ""))
    out = Path(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copy2(path / "weights.safetensors", staging / "weights.safetensors")
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        for name in ("weights.safetensors", CONFIG_FILE):
            (staging / name).chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return variant


def graph_figure(bundles: Sequence[str | Path], table: dict, path: Path) -> str:
    """Figure 2 for the best (mean validation micro-F1) of ``bundles``
    that learned a label graph: G - I, labels by their English names (or
    Chinese and English with a CJK font). Returns the PNG path or why none."""
    from safetensors.torch import load_file

    from tagcore.bundle import read_config
    from trainer.report import write_label_graph_delta

    graphs = []
    for bundle in bundles:
        directory, config = read_config(bundle)
        variant = config.get("metrics", {}).get("variant")
        if config["model"].get("label_graph") and variant in table:
            graphs.append((table[variant]["val_micro_f1"]["mean"], variant, directory, config))
    if not graphs:
        return "skipped: no bundle with a label graph"
    _, variant, directory, config = max(graphs, key=lambda g: g[0])
    graph = load_file(str(directory / "weights.safetensors"))["graph"].numpy()
    names = config.get("label_names") or {}
    shown = shown_names(config["labels"], names)
    seed = config.get("metrics", {}).get("seed", 0)
    return write_label_graph_delta(path, graph, [shown[l] for l in config["labels"]],
                                   title=f"Learned label graph G - I ({variant}, seed {seed})")
