"""Related tags for the autotagml plugin: the ``relatedtags`` command and
the proposal step of ``autotag-ml``.

``beet relatedtags TAG...`` lists the tags nearest to each TAG in the
related-tags bundle (:mod:`tagcore.related`; default: the shipped
``related-tags``), with scores and kinds. ``beet relatedtags --duplicates
[QUERY]`` groups the genres of the matched items that are likely one genre
(same spelling once case, accents, spaces and punctuation are folded, or a
lastgenre alias; or a near spelling with a high relatedness) and names the
one to keep: lastgenre's spelling where beets' genre list knows the genre,
else the most used one. ``--apply`` renames them in the library after a
confirmation; ``-p`` only shows what would change.

The proposal step (:func:`propose_for_items`) runs after ``autotag-ml`` has
set genres: from each item's genres it proposes styles and themes, and from
its genres and styles moods, as flexible attributes ``ml_related_style``,
``ml_related_mood``, ``ml_related_theme`` ("A; B") with
``ml_related_<kind>_scores`` ("0.71; 0.64"). They reach the ``style`` and
``mood`` fields (and the files' STYLE and MOOD tags) only with
``related: {write: yes}``, and only for items whose style or mood is empty:
a style or mood a model or the user set is never replaced.

Configuration (under ``autotagml``)::

    related:
      enabled: yes      # propose during autotag-ml
      write: no         # copy proposals into empty style/mood fields
      count: 5          # proposals per kind
      min_score: 0.3    # lowest score proposed
      bundle: ''        # a related-tags bundle folder; empty: the shipped one
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

from beets import ui, util

from . import fields as F
from .run import has, own

if TYPE_CHECKING:
    from beets.library import Item, Library

#: Kinds proposed for an item, and what each is proposed from.
PROPOSED = {"style": ("genres",), "mood": ("genres", "style"), "theme": ("genres",)}
#: Kinds whose proposals may be written into a beets field (and file tag).
WRITABLE = {"style": "style", "mood": "mood"}

DEFAULTS = {"enabled": True, "write": False, "count": 5, "min_score": 0.3, "bundle": ""}


def attribute(kind: str) -> str:
    return f"ml_related_{kind}"


def score_attribute(kind: str) -> str:
    return f"ml_related_{kind}_scores"


class RelatedTags:
    """The loaded index (lazily) and what the plugin does with it."""

    def __init__(self, config, log):
        self.config = config  # the plugin's config["related"] view
        self.log = log
        self._index = None
        self._bundle_config: dict = {}
        #: (genres, styles) -> proposals: items share few genre combinations.
        self._proposal_cache: dict = {}

    def index(self):
        """The related-tags index; raises ui.UserError when the bundle
        cannot be read."""
        if self._index is None:
            from tagcore.related import RelatedBundleError, load_index

            path = self.config["bundle"].as_str() or None
            try:
                self._index, self._bundle_config = load_index(path)
            except RelatedBundleError as exc:
                raise ui.UserError(f"relatedtags: {exc}") from None
        return self._index

    @property
    def prior_weight(self) -> float:
        self.index()
        return float((self._bundle_config.get("defaults") or {}).get("prior_weight", 0.0))

    @property
    def prior_scale(self) -> str:
        self.index()
        return str((self._bundle_config.get("defaults") or {}).get("prior_scale", "linear"))

    # --- Proposals ------------------------------------------------------

    def proposals(self, genres: list[str], styles: list[str]) -> dict[str, list[tuple[str, float]]]:
        """kind -> [(name, score)] for an item with ``genres`` and
        ``styles``; empty lists without a known genre."""
        key = (tuple(genres), tuple(styles))
        if key not in self._proposal_cache:
            self._proposal_cache[key] = self._proposals(genres, styles)
        return self._proposal_cache[key]

    def _proposals(self, genres: list[str], styles: list[str]) -> dict[str, list[tuple[str, float]]]:
        from tagcore.related import popularity_prior, propose

        index = self.index()
        count = self.config["count"].get(int)
        min_score = float(self.config["min_score"].as_number())
        query_of = {"genres": genres, "style": styles}
        out = {}
        for kind, sources in PROPOSED.items():
            query = [name for source in sources for name in query_of[source]]
            exclude = styles if kind == "style" else []
            out[kind] = propose(index, query, kind=kind, count=count, min_score=min_score, exclude=exclude,
                                prior=popularity_prior(index.vocabulary, kind, scale=self.prior_scale),
                                prior_weight=self.prior_weight)
        return out

    def changes_for(self, item: Item, genres: list[str] | None = None) -> dict[str, Any]:
        """The fields the proposal step sets on ``item`` (its genres, or
        ``genres`` when given, e.g. the genres a pretend run would set)."""
        genres = list(own(item, "genres") or []) if genres is None else list(genres)
        styles = split_style(own(item, "style") or "")
        changes: dict[str, Any] = {}
        proposed = self.proposals(genres, styles)
        for kind, pairs in proposed.items():
            changes[attribute(kind)] = "; ".join(name for name, _ in pairs)
            changes[score_attribute(kind)] = "; ".join(f"{score:.2f}" for _, score in pairs)
        if self.config["write"].get(bool):
            if proposed["style"] and not styles:
                changes["style"] = F.tag_value("style", [F.display_name("style", n) for n, _ in proposed["style"]])
            if proposed["mood"] and not list(own(item, "mood") or []):
                changes["mood"] = [F.display_name("mood", n) for n, _ in proposed["mood"]]
        for tag in WRITABLE.values():
            if tag in changes:  # filled by the plugin: recorded as its own
                changes[F.written_field(tag)] = F.tag_values(changes[tag])
        return {k: v for k, v in changes.items() if own(item, k) != v and not (v == "" and not has(item, k))}


def split_style(value: str) -> list[str]:
    return [part.strip() for part in str(value).replace(",", ";").split(";") if part.strip()]


def propose_for_items(related: RelatedTags, items: Iterable[Item], *, pretend: bool, write: bool,
                      pending: dict[int, dict[str, Any]] | None = None,
                      lib: Library | None = None) -> list[tuple[Item, dict[str, Any]]]:
    """Set (or with ``pretend`` only return) every item's proposal fields.
    ``pending`` maps item ids to the fields a pretend run would have set
    (their genres are proposed from). A file that cannot be written is
    logged and its item left unchanged. With ``lib``, saves are committed
    in batches (run.DeferredSaves). Returns (item, changes) pairs."""
    from .run import DeferredSaves

    done: list[tuple[Item, dict[str, Any]]] = []
    failed: set[int] = set()
    with DeferredSaves(lib) as saving:
        for item in items:
            genres = None
            if pending and item.id in pending and "genres" in pending[item.id]:
                genres = pending[item.id]["genres"]
            changes = related.changes_for(item, genres)
            if not changes:
                continue
            done.append((item, changes))
            if not pretend:
                saving.add(functools.partial(_save_proposals, related, item, changes, write, failed))
    return [(item, changes) for item, changes in done if id(item) not in failed]


def _save_proposals(related: RelatedTags, item: Item, changes: dict[str, Any], write: bool, failed: set[int]) -> None:
    """Set ``changes`` on ``item``, write its file when a file tag changes
    and ``write``, store it; a file that cannot be written leaves the item
    as it was and its id in ``failed``."""
    from beets.library import FileOperationError

    from .run import file_tags_change, write_error, write_item

    before = {k: own(item, k) for k in changes if has(item, k)}
    write_file = write and file_tags_change(item, changes)
    item.update(changes)
    if write_file:
        try:
            write_item(item)
        except FileOperationError as exc:
            related.log.warning("related tags not written: {}", write_error(item, exc))
            for k in changes:
                if k in before:
                    item[k] = before[k]
                else:
                    del item[k]
            failed.add(id(item))
            return
    item.store()


# --- The relatedtags command ------------------------------------------------------


def genre_tree_paths() -> dict[str, tuple[str, ...]]:
    """Spelling key -> path from the root of lastgenre's genre tree to the
    genre, e.g. ``bebop`` -> ("jazz", "bebop") (:mod:`tagcore.lastgenre`)."""
    from tagcore.lastgenre import tree_paths_by_key

    return tree_paths_by_key()


def tree_path(name: str) -> tuple[str, ...] | None:
    """``name``'s path in lastgenre's genre tree (after its alias rewrite),
    or None."""
    from tagcore.lastgenre import tree_path as path

    return path(name)


def library_genres(items: Iterable[Item]) -> Counter:
    """genre name -> number of items carrying it."""
    counts: Counter = Counter()
    for item in items:
        counts.update(set(item.get("genres") or []))
    return counts


def duplicate_groups(related: RelatedTags | None, counts: Counter):
    """:func:`tagcore.related.find_duplicates` with lastgenre's aliases as
    the normalisation, its genre list for the canonical spelling and, when
    ``related`` is given, the index's relatedness."""
    from tagcore.related import combined_scores, find_duplicates

    def canonical(name: str) -> str | None:
        """lastgenre's spelling (title-cased as lastgenre does) of a genre
        its genre list or genre tree knows."""
        if F.is_known_genre(name):
            return F.canonical_genre(name)
        path = tree_path(name)
        return path[-1].title() if path else None

    similarity = None
    if related is not None:
        index = related.index()

        def similarity(a: str, b: str) -> float | None:
            if not (index.known(a) and index.known(b)):
                return None
            score = combined_scores(index.sources, index.expand([a]), index.expand([b])[:1])[0]
            return None if score != score else float(score)

    return find_duplicates(dict(counts), normalise=F.normalize_label, canonical=canonical, similarity=similarity)


def make_command(plugin) -> ui.Subcommand:
    cmd = ui.Subcommand("relatedtags", help="list related tags, or find duplicate genres in the library")
    cmd.parser.usage += "\n       beet relatedtags TAG...\n       beet relatedtags --duplicates [--apply] [-p] [QUERY]"
    cmd.parser.add_option("-n", "--count", type="int", default=10, help="tags to list per TAG (default 10)")
    cmd.parser.add_option("-k", "--kind", action="append", dest="kinds", default=None,
                          help="only these kinds: genre, style, mood, theme (repeat or comma-separate)")
    cmd.parser.add_option("-d", "--duplicates", action="store_true", default=False,
                          help="find likely duplicate genres among the matched items")
    cmd.parser.add_option("-a", "--apply", action="store_true", default=False,
                          help="with --duplicates: rename duplicates to the canonical name (asks first)")
    cmd.parser.add_option("-y", "--yes", action="store_true", default=False, help="with --apply: do not ask")
    cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                          help="with --duplicates: show what --apply would change, change nothing")

    def func(lib: Library, opts, args: list[str]) -> None:
        related = plugin.related
        if opts.duplicates:
            duplicates(related, lib, opts, args)
        else:
            nearest(related, opts, args)

    cmd.func = func
    return cmd


def nearest(related: RelatedTags, opts, args: list[str]) -> None:
    from tagcore.related import KINDS, UnknownTag

    if not args:
        raise ui.UserError("relatedtags: name a tag (beet relatedtags TAG), or use --duplicates")
    kinds = [k.strip() for value in (opts.kinds or []) for k in value.split(",") if k.strip()] or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ui.UserError(f"relatedtags: unknown kind {', '.join(unknown)} (kinds: {', '.join(KINDS)})")
    index = related.index()
    # "beet relatedtags hard rock": one tag of two words unless each word is a tag.
    tags = [" ".join(args)] if len(args) > 1 and not all(index.known(a) for a in args) else args
    unknown_tags = 0
    for tag in tags:
        try:
            found = index.nearest(tag, kinds=kinds, n=opts.count)
        except UnknownTag as exc:
            hint = f"; closest spellings: {', '.join(exc.suggestions)}" if exc.suggestions else ""
            ui.print_(f"{tag}: not in the vocabulary{hint}")
            unknown_tags += 1
            continue
        own = sorted({index.vocabulary.tags[i].kind for i in index.vocabulary.find(tag)})
        ui.print_(f"{tag} ({', '.join(own)})" if own else f"{tag} (not in the vocabulary: through an alias or Last.fm tags)")
        if path := tree_path(tag):
            ui.print_(f"  lastgenre genre tree: {' > '.join(path)}")
        if not found:
            ui.print_("  no related tag")
        for t, score in found:
            ui.print_(f"  {score:5.2f}  {t.name}  [{t.kind}]")
    if unknown_tags == len(tags):
        raise ui.UserError("relatedtags: no tag given is known to the related-tags index")


def duplicates(related: RelatedTags, lib: Library, opts, args: list[str]) -> None:
    """``beet relatedtags --duplicates``: list likely duplicate genres of
    the matched items, and with ``--apply`` (asking first, unless ``-y``)
    rename them to their canonical name on items, files and albums."""
    items = list(lib.items(args))
    counts = library_genres(items)
    if not counts:
        ui.print_("relatedtags: no genres in the " + ("matched items" if args else "library"))
        return
    try:
        index_related = related if related.index() is not None else None
    except ui.UserError as exc:
        related.log.warning("{}; duplicates by spelling only", exc)
        index_related = None
    groups = duplicate_groups(index_related, counts)
    if not groups:
        ui.print_(f"relatedtags: no likely duplicates among {len(counts)} genres")
        return
    rename = _show_groups(groups, counts)
    changes = []
    for item in items:
        genres = list(item.get("genres") or [])
        new = _renamed(genres, rename)
        if new != genres:
            changes.append((item, new))
    ui.print_(f"{len(groups)} group(s); {len(changes)} item(s) would change")
    if opts.pretend:
        for item, new in changes:
            ui.print_(f"  {util.displayable_path(item.path)}: {'; '.join(item.get('genres') or [])} -> {'; '.join(new)}")
        return
    if not opts.apply or not changes:
        if changes:
            ui.print_("use --apply to rename them (-p to list the items)")
        return
    if not opts.yes and not ui.input_yn(f"Rename genres of {len(changes)} item(s)? (y/n)"):
        ui.print_("nothing changed")
        return
    write = ui.should_write()
    with lib.transaction():
        done = 0
        for item, new in changes:
            done += _rename_item(item, new, rename, write=write)
        # The albums of the matched items (or all, for the whole library)
        # are renamed too: album and track fields stay consistent.
        album_ids = {item.album_id for item in items if item.album_id} if args else None
        albums_done = _rename_albums(lib, album_ids, rename)
    ui.print_(f"renamed the genres of {done} item(s)" + (f" and {albums_done} album(s)" if albums_done else ""))


def _show_groups(groups, counts: dict[str, int]) -> dict[str, str]:
    """Print one line per group of duplicates; returns genre -> the
    canonical name it is renamed to."""
    rename: dict[str, str] = {}
    for group in groups:
        why = group.reason + (f" {group.score:.2f}" if group.score is not None else "")
        names = ", ".join(f"{n} ({counts[n]})" for n in group.names)
        ui.print_(f"{names} -> {group.canonical}   [{why}]")
        rename.update({n: group.canonical for n in group.names if n != group.canonical})
    return rename


def _renamed(genres, rename: dict[str, str]) -> list[str]:
    """``genres`` renamed, each name once, in their order."""
    return list(dict.fromkeys(rename.get(g, g) for g in genres))


def _rename_item(item: Item, new: list[str], rename: dict[str, str], *, write: bool) -> bool:
    """Set the item's genres to ``new`` (and rename those of its record of
    what the plugin wrote), write its file when ``write``, and store it.
    Returns False, with the item as it was and a line printed, when the
    file cannot be written."""
    from beets.library import FileOperationError

    from .run import write_error, write_item

    record = F.written_field("genres")
    old = list(item.get("genres") or [])
    old_record = item.get(record, with_album=False)
    item.genres = new
    if old_record:  # the plugin's own genres keep being its own under their new name
        item[record] = _renamed(F.tag_values(old_record), rename)
    if write:
        try:
            write_item(item)
        except FileOperationError as exc:
            ui.print_(f"  not renamed: {write_error(item, exc)}")
            item.genres = old
            if old_record:
                item[record] = old_record
            return False
    item.store()
    return True


def _rename_albums(lib: Library, album_ids: set[int] | None, rename: dict[str, str]) -> int:
    """Rename the genres of the albums ``album_ids`` (None: every album)
    and of their record of what the plugin wrote. Returns how many changed."""
    record = F.written_field("genres")
    done = 0
    for album in lib.albums():
        if album_ids is not None and album.id not in album_ids:
            continue
        genres = F.tag_values(album.get("genres"))
        new = _renamed(genres, rename)
        if new == genres:
            continue
        album.genres = new
        if album.get(record):
            album[record] = _renamed(F.tag_values(album.get(record)), rename)
        album.store(inherit=False)
        done += 1
    return done


# --- The step of autotag-ml ----------------------------------------------------


def run_step(plugin, lib: Library, args: list[str], report, *, pretend: bool, write: bool) -> None:
    """After an ``autotag-ml`` run: propose related tags for the matched
    items (with ``related: {enabled: yes}``) and print what was (or, with
    ``-p``, would be) set. A missing or broken related-tags bundle is
    reported on one line; the run's own results stand."""
    related = plugin.related
    if not related.config["enabled"].get(bool):
        return
    pending = {item.id: changes for item, changes, _ in report.proposals if item.id is not None}
    # Items a task failed on (or found too short) get nothing from this step
    # either; an item a text task skipped for want of input (no reviews,
    # no lyrics) is fine.
    failed = {entry[0].path for task in report.tasks.values() for entry in (*task.failures, *task.too_short)}
    items = (item for item in lib.items(args) if item.path not in failed)
    try:
        done = propose_for_items(related, items, pretend=pretend, write=write, pending=pending, lib=lib)
    except ui.UserError as exc:
        ui.print_(f"  related tags: not run: {exc}")
        return
    for item, changes in done:
        if not pretend:
            continue
        ui.print_(f"{util.displayable_path(item.path)}: related tags")
        for kind in PROPOSED:
            if changes.get(attribute(kind)):
                ui.print_(f"  {kind}: {changes[attribute(kind)]}  (scores {changes[score_attribute(kind)]})")
        for name in WRITABLE.values():
            if name in changes:
                value = changes[name]
                ui.print_(f"  {name} <- {'; '.join(value) if isinstance(value, list) else value}")
    verb = "would get" if pretend else "got"
    ui.print_(f"  related tags: {len(done)} item(s) {verb} proposals"
              + ("" if related.config["write"].get(bool) else " (attributes only; related: write copies them into empty style/mood)"))
