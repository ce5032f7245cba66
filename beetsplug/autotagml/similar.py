"""``beet similar QUERY``: the library's tracks that sound most like QUERY's.

Embeddings come from the store that ``beet autotag-ml`` fills (task
``embedding``; the bundle of ``similar: model:``, else the configured
``embedding`` task's, else musicnn-msd). Several matched items make one
query: the mean of their embeddings. ``--path FILE`` takes a file outside
the library, decoded once and not added. ``--playlist FILE.m3u8`` writes
the result as an extended M3U, leaving out the seeds and other versions of
them and spreading artists (``artist_cooldown``), with smartplaylist's
``playlist_dir`` and ``relative_to``.

The search is exact over a float16 matrix read from the store; from
``ann_threshold`` embeddings on (and with the ``usearch`` package), an
HNSW index and the matrix are kept beside the store, memory-mapped, and
rebuilt whenever the store's embeddings change. See
:mod:`tagcore.similarity`.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from beets import ui, util
from tagcore import similarity as S
from tagcore.bundle import BundleError, read_config
from tagcore.store import Store, StoreError

if TYPE_CHECKING:
    import optparse

    from beets.library import Item, Library

#: Configuration of ``similar:`` inside ``autotagml:``.
DEFAULTS = {
    "count": 20,
    "playlist_dir": ".",
    "relative_to": None,
    "artist_cooldown": 2,
    "ann_threshold": 50000,
    "model": "",
    "format": "",
}
DEFAULT_MODEL = "musicnn-msd"


def command(plugin) -> ui.Subcommand:
    """The ``similar`` subcommand bound to ``plugin`` (the AutotagMLPlugin)."""
    cmd = ui.Subcommand("similar", help="list the tracks that sound most like the query's, or write a playlist")
    cmd.parser.usage += "\n       %prog --path FILE [options]"
    cmd.parser.add_option("-n", "--count", type="int", default=None, help="how many tracks (default: similar.count)")
    cmd.parser.add_option("--playlist", metavar="FILE.m3u8", help="write them as an M3U8 playlist "
                          "(a relative name goes to similar.playlist_dir)")
    cmd.parser.add_option("--path", metavar="FILE", help="a file outside the library as the query (not added)")
    cmd.parser.add_option("-m", "--model", help="embedding bundle (default: similar.model, else the embedding task's)")
    cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                          help="show the playlist, write nothing")
    cmd.parser.add_format_option(target="item")
    cmd.func = lambda lib, opts, args: run(plugin, lib, opts, args)
    return cmd


def _fail(message: str) -> None:
    raise ui.UserError(f"similar: {message}")


def embedding_bundle(plugin, override: str | None) -> tuple[str, dict]:
    """(spec, config.json) of the embedding bundle to use."""
    spec = override or plugin.config["similar"]["model"].as_str() or plugin.task_specs().get("embedding") or DEFAULT_MODEL
    try:
        _, config = read_config(spec)
    except BundleError as exc:
        _fail(str(exc))
    if "embedding" not in config["outputs"]:
        _fail(f"bundle {config['name']} gives no embedding (outputs: {', '.join(config['outputs'])})")
    return spec, config


def library_matrix(plugin, store: Store, lib: Library, name: str, version: str) -> S.EmbeddingMatrix:
    """The store's embeddings of ``name`` ``version``: read into memory for
    an ordinary library; from ``ann_threshold`` on, kept beside the store as
    a memory-mapped matrix rebuilt when the store changes."""
    threshold = plugin.config["similar"]["ann_threshold"].get(int)
    state = store.embedding_state(name, version)
    count = int(state[0])
    if threshold <= 0 or count < threshold or store.path == ":memory:":
        return S.from_pairs(store.embeddings(name, version))
    base = _cache_base(store, name, version)
    fingerprint = S.store_fingerprint(state)
    matrix = S.load_matrix(base, fingerprint=fingerprint)
    if matrix is None:
        matrix = S.from_pairs(store.embeddings(name, version))
        try:
            S.save_matrix(base, matrix, fingerprint=fingerprint)
            matrix = S.load_matrix(base, fingerprint=fingerprint) or matrix
        except OSError as exc:
            plugin._log.warning("similar: cannot keep the embedding matrix beside the store ({})", exc)
    return matrix


def _cache_base(store: Store, name: str, version: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{name}-{version}")
    return f"{store.path}.similar-{safe}"


def search_index(plugin, store: Store, matrix: S.EmbeddingMatrix, name: str, version: str):
    threshold = plugin.config["similar"]["ann_threshold"].get(int)
    if threshold <= 0 or len(matrix) < threshold or store.path == ":memory:":
        return S.BruteForceIndex(matrix)
    fingerprint = S.store_fingerprint(store.embedding_state(name, version))
    base = _cache_base(store, name, version)
    index_path = f"{base}.{fingerprint}.usearch"
    # Indexes of earlier store states are dropped.
    folder, prefix = os.path.split(base)
    for entry in os.listdir(folder or "."):
        stale = os.path.join(folder, entry)
        if entry.startswith(prefix + ".") and entry.endswith(".usearch") and stale != index_path:
            with contextlib.suppress(OSError):
                os.unlink(stale)
    return S.open_index(matrix, ann_threshold=threshold, index_path=index_path)


def _fix(plugin, name: str, query: str = "") -> str:
    """The command that stores ``name``'s embeddings (and the setting it
    needs when ``name`` is not the embedding task's bundle)."""
    command = f"`beet autotag-ml -t embedding{' ' + query if query else ''}`"
    spec = plugin.task_specs().get("embedding")
    try:
        configured = read_config(spec)[1]["name"] if spec else None
    except BundleError:
        configured = None
    if configured != name:
        command += f" with `autotagml: models: embedding: {name}` in the configuration"
    return command


def _no_embeddings(plugin, store: Store, name: str, version: str, what: str) -> None:
    others = {v: n for v, n in store.embedding_versions(name).items() if v != version}
    if others:
        held = ", ".join(f"version {v} ({n})" for v, n in sorted(others.items()))
        _fail(f"the store holds embeddings of {name} {held}, not of version {version} that is installed: "
              f"run {_fix(plugin, name)} to analyse the library again (versions are never mixed)")
    _fail(f"no {what} has an embedding of {name} {version}: run {_fix(plugin, name)} first")


def decode_path(plugin, spec: str, path: str):
    """The embedding of a file outside the library, (d,) float32."""
    from tagcore.analysis import Analysis

    if not os.path.isfile(path):
        _fail(f"{path}: no such file")
    analysis = Analysis([spec], workers=0, device=plugin.config["device"].as_str(),
                        timeout=float(plugin.config["timeout"].as_number()), loaded=plugin._loaded)
    result = next(iter(analysis.analyse([path])))
    output = next(iter(result.outputs.values()))
    if not output.ok or output.embedding is None:
        _fail(f"{path}: cannot be analysed ({output.message or output.status})")
    return output.embedding


def run(plugin, lib: Library, opts: optparse.Values, args: list[str]) -> None:
    """``beet similar``: list (or write as a playlist) the library's tracks
    nearest to the query's items or ``--path`` file."""
    config = plugin.config["similar"]
    count = _check_query(opts, args, default_count=config["count"].get(int))
    spec, bundle = embedding_bundle(plugin, opts.model)
    name, version = bundle["name"], str(bundle["version"])
    try:
        store = plugin.store(lib)
    except StoreError as exc:
        _fail(str(exc))
    if opts.path:
        seed_items: list[Item] = []
        path = os.path.abspath(os.path.expanduser(opts.path))
        vectors = [decode_path(plugin, spec, path)]
        seed_paths = {os.fsencode(path)}
    else:
        seed_items = list(lib.items(args))
        if not seed_items:
            _fail(f"no item matches {' '.join(args)!r}")
        vectors = _seed_vectors(plugin, store, seed_items, name, version, args)
        seed_paths = {i.path for i in seed_items}
    results = _search(plugin, store, lib, vectors, seed_paths, name, version, want=count * 4 + 20)
    fmt = opts.format or config["format"].as_str() or None
    candidates = [S.Candidate(item.id, score, item.title, item.artist) for item, score in results]
    seeds = [(i.title, i.artist) for i in seed_items]
    items = {item.id: item for item, _ in results}
    if not opts.playlist:
        # Copies of one recording (other formats, other folders) and of the
        # seeds appear once, as in playlists; artists are not spread.
        for candidate in S.build_playlist(candidates, seeds=seeds, count=count):
            ui.print_(_line(items[candidate.ident], candidate.score, fmt))
        return
    chosen = S.build_playlist(candidates, seeds=seeds, count=count, cooldown=config["artist_cooldown"].get(int))
    _playlist(config, opts, [(items[c.ident], c.score) for c in chosen], fmt)


def _check_query(opts: optparse.Values, args: list[str], *, default_count: int) -> int:
    """The number of tracks to list (``-n``, else ``default_count``), after
    checking the query: a query or ``--path``, not both. Raises UserError."""
    count = opts.count if opts.count is not None else default_count
    if count < 1:
        _fail(f"--count must be at least 1, not {count}")
    if opts.path and args:
        _fail("give a query or --path FILE, not both")
    if not opts.path and not args:
        _fail("give a query (as for `beet ls`) or --path FILE")
    return count


def _seed_vectors(plugin, store: Store, seed_items: list[Item], name: str, version: str, args: list[str]) -> list:
    """The stored embeddings of the query's items, (d,) float32 each. Items
    without one are left out with a line each; none at all is an error
    saying how to get them."""
    stored = store.get([i.path for i in seed_items], {name: version})
    vectors, missing = [], []
    for item in seed_items:
        output = stored.get(item.path, {}).get(name)
        if output is not None and output.embedding is not None:
            vectors.append(output.embedding)
        else:
            missing.append(item)
    if not vectors:
        if store.embedding_versions(name).get(version):
            names = ", ".join(util.displayable_path(i.path) for i in missing[:5])
            _fail(f"no embedding of {name} {version} for {names}{' ...' if len(missing) > 5 else ''}: "
                  f"run {_fix(plugin, name, ' '.join(args))} to analyse it")
        _no_embeddings(plugin, store, name, version, "item")
    for item in missing:
        ui.print_(f"similar: no embedding for {util.displayable_path(item.path)} (left out of the query; "
                  f"{_fix(plugin, name)} analyses it)")
    return vectors


def _search(plugin, store: Store, lib: Library, vectors: list, seed_paths: set[bytes], name: str, version: str, *,
            want: int) -> list[tuple[Item, float]]:
    """Up to ``want`` (library item, similarity) nearest to the mean of
    ``vectors``, best first, leaving out the seeds' paths and embeddings of
    files no longer in the library."""
    matrix = library_matrix(plugin, store, lib, name, version)
    if len(matrix) == 0:
        _no_embeddings(plugin, store, name, version, "library item")
    by_path = {item.path: item for item in lib.items()}
    keys = matrix.keys
    _report_unsearched(plugin, by_path, set(keys), name, version)
    exclude = {i for i, key in enumerate(keys) if key in seed_paths or key not in by_path}
    index = search_index(plugin, store, matrix, name, version)
    # ``want`` leaves room for what the list leaves out (copies and other
    # versions of a recording, the seeds' own copies) and the playlist's cooldown.
    found = index.search(S.mean_query(vectors), k=want, exclude=exclude)
    return [(by_path[keys[i]], score) for i, score in found if keys[i] in by_path]


def _playlist(config, opts: optparse.Values, chosen: list[tuple[Item, float]], fmt: str | None) -> None:
    """List the ``chosen`` (item, similarity) and write them to the
    ``--playlist`` file (``--pretend``: say what would be written)."""
    target = playlist_path(config, opts.playlist)
    relative_to = config["relative_to"].get()
    if relative_to == "playlist":
        relative_to = os.path.dirname(target)
    elif relative_to:
        relative_to = os.path.abspath(os.path.expanduser(str(relative_to)))
    entries = [
        S.PlaylistEntry(S.playlist_uri(item.path, relative_to=relative_to), item.length or -1,
                        f"{item.artist} - {item.title}")
        for item, _ in chosen
    ]
    for item, score in chosen:
        ui.print_(_line(item, score, fmt))
    if opts.pretend:
        ui.print_(f"similar: would write {len(entries)} tracks to {util.displayable_path(target)} (pretend)")
        return
    try:
        S.write_m3u8(target, entries)
    except OSError as exc:
        _fail(f"cannot write the playlist {util.displayable_path(target)}: {exc.strerror or exc}")
    ui.print_(f"similar: wrote {len(entries)} tracks to {util.displayable_path(target)}")


def _report_unsearched(plugin, by_path: dict[bytes, Item], embedded: set[bytes], name: str, version: str) -> None:
    """One line (on the log, so that ``-f`` output stays clean) naming the
    library items left out of the search for want of an embedding."""
    missing = [item for path, item in by_path.items() if path not in embedded]
    if not missing:
        return
    shown = ", ".join(util.displayable_path(item.path) for item in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    plugin._log.warning("similar: {} of {} library items have no embedding of {} {} and were not searched: "
                        "{}{} (run {})", len(missing), len(by_path), name, version, shown, more, _fix(plugin, name))


def playlist_path(config, name: str) -> str:
    """``name``, or ``playlist_dir/name`` for a relative name."""
    name = os.path.expanduser(name)
    if os.path.isabs(name):
        return name
    directory = os.path.expanduser(config["playlist_dir"].as_str() or ".")
    return os.path.abspath(os.path.join(directory, name))


#: The field holding an item's similarity to the query, for ``-f`` formats
#: (``-f '$similarity $artist - $title'``); set on the listed items only,
#: never stored.
SCORE_FIELD = "similarity"


def _line(item: Item, score: float, fmt: str | None) -> str:
    """One listed item: exactly ``fmt`` when given (as ``beet ls -f``, with
    ``$similarity`` available), else the score then beets' item format."""
    item[SCORE_FIELD] = f"{score:.3f}"
    if fmt:
        return format(item, fmt)
    return f"{score:.3f}  {format(item)}"
