"""The store of what was analysed: each bundle's output for each file.

A SQLite database (standard library ``sqlite3``) keyed by the file's path,
size and modification time (nanoseconds), and the bundle's name and
version. It holds label scores (float32 blobs in the bundle's label order)
and embeddings (float16 blobs); outputs of status ``ok`` and ``too_short``
are kept (a too-short file is not decoded again while unchanged), failures
are not (they are retried on the next run).

Every write is one transaction; the database runs in WAL mode, so a
process killed at any moment leaves a store that opens, holding every
output committed before the kill.

Example
-------
>>> store = Store(":memory:")
>>> store.put(b"/music/a.flac", (1234, 5), {"genre10": ("1", output)})   # doctest: +SKIP
>>> store.get([b"/music/a.flac"], {"genre10": "1"}, keys={b"/music/a.flac": (1234, 5)})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

SCHEMA_VERSION = 1
#: Paths per ``IN (...)`` query (SQLite allows 32,766 parameters).
CHUNK = 500
#: Statuses that are stored; others are retried on the next run.
STORED_STATUSES = ("ok", "too_short")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS outputs (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    scores BLOB,
    embedding BLOB,
    message TEXT,
    PRIMARY KEY (file_id, bundle_id)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The store file cannot be opened or is not a store of this program."""


FileKey = tuple[int, int]  # (size in bytes, mtime in ns)


def file_key(path: bytes | str) -> FileKey | None:
    """(size, mtime_ns) of a file, or None when it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size, info.st_mtime_ns


@dataclass
class Stored:
    """One stored output: ``status`` ("ok" or "too_short"), ``scores``
    (label -> probability) and/or ``embedding`` (float32), ``message``."""

    status: str
    scores: dict[str, float] | None = None
    embedding: np.ndarray | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _path_bytes(path: bytes | str | os.PathLike) -> bytes:
    return os.fsencode(path)


class Store:
    """A store in the SQLite file ``path`` (created when missing;
    ``":memory:"`` for a throw-away one). Raises StoreError."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            if self.path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._transaction():
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StoreError(f"{self.path}: store schema {row[0]} is not {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: cannot open the analysis store ({error})") from None
        self._bundle_ids: dict[tuple[str, str], tuple[int, list[str]]] = {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transactions ---------------------------------------------------

    class _Tx:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, kind, value, tb):
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")

    def _transaction(self) -> "_Tx":
        return Store._Tx(self._db)

    # --- bundles ---------------------------------------------------------

    def _bundle(self, name: str, version: str, labels: Sequence[str] | None = None) -> tuple[int, list[str]] | None:
        """(id, labels) of a bundle version; registered when ``labels`` is
        given (inside the caller's transaction), else None if unknown."""
        key = (name, str(version))
        if key in self._bundle_ids:
            return self._bundle_ids[key]
        row = self._db.execute("SELECT id, labels FROM bundles WHERE name = ? AND version = ?", key).fetchone()
        if row is None:
            if labels is None:
                return None
            cursor = self._db.execute(
                "INSERT INTO bundles (name, version, labels) VALUES (?, ?, ?)", (*key, json.dumps(list(labels)))
            )
            row = (cursor.lastrowid, json.dumps(list(labels)))
        self._bundle_ids[key] = (row[0], json.loads(row[1]))
        return self._bundle_ids[key]

    # --- reading ---------------------------------------------------------

    def get(
        self,
        paths: Iterable[bytes | str],
        bundles: Mapping[str, str],
        *,
        keys: Mapping[bytes, FileKey | None] | None = None,
    ) -> dict[bytes, dict[str, Stored]]:
        """Stored outputs of ``bundles`` (name -> version) for ``paths``.

        Returns ``{path: {bundle name: Stored}}`` holding only what is
        current: when ``keys`` gives a path's present (size, mtime_ns), rows
        recorded under another key (the file changed) are left out. Paths are
        returned as bytes.
        """
        wanted = {}
        for name, version in bundles.items():
            found = self._bundle(name, version)
            if found is not None:
                wanted[found[0]] = (name, found[1])
        result: dict[bytes, dict[str, Stored]] = {}
        if not wanted:
            return result
        byte_paths = [_path_bytes(p) for p in paths]
        marks = ",".join("?" * len(wanted))
        for start in range(0, len(byte_paths), CHUNK):
            chunk = byte_paths[start : start + CHUNK]
            query = (
                "SELECT f.path, f.size, f.mtime_ns, o.bundle_id, o.status, o.scores, o.embedding, o.message "
                "FROM files f JOIN outputs o ON o.file_id = f.id "
                f"WHERE f.path IN ({','.join('?' * len(chunk))}) AND o.bundle_id IN ({marks})"
            )
            for path, size, mtime, bundle_id, status, scores, embedding, message in self._db.execute(
                query, (*chunk, *wanted)
            ):
                if keys is not None and keys.get(path) != (size, mtime):
                    continue
                name, labels = wanted[bundle_id]
                result.setdefault(path, {})[name] = Stored(
                    status,
                    scores=None if scores is None else dict(zip(labels, np.frombuffer(scores, np.float32).tolist())),
                    embedding=None if embedding is None else np.frombuffer(embedding, np.float16).astype(np.float32),
                    message=message,
                )
        return result

    def embeddings(self, name: str, version: str) -> Iterator[tuple[bytes, np.ndarray]]:
        """Every stored embedding of a bundle version, as (path, float32)."""
        found = self._bundle(name, version)
        if found is None:
            return
        for path, blob in self._db.execute(
            "SELECT f.path, o.embedding FROM outputs o JOIN files f ON f.id = o.file_id "
            "WHERE o.bundle_id = ? AND o.embedding IS NOT NULL",
            (found[0],),
        ):
            yield path, np.frombuffer(blob, np.float16).astype(np.float32)

    def embedding_versions(self, name: str) -> dict[str, int]:
        """Versions of bundle ``name`` with stored embeddings -> how many."""
        return {version: count for version, count in self._db.execute(
            "SELECT b.version, COUNT(*) FROM outputs o JOIN bundles b ON b.id = o.bundle_id "
            "WHERE b.name = ? AND o.embedding IS NOT NULL GROUP BY b.version", (name,))}

    def embedding_state(self, name: str, version: str) -> tuple:
        """A cheap summary of a bundle version's stored embeddings (count and
        sums over their files' ids, sizes, mtimes and path lengths), which
        changes when one is added, dropped, re-analysed or moved: the key of
        caches built from :meth:`embeddings`."""
        found = self._bundle(name, version)
        if found is None:
            return (0,)
        return tuple(self._db.execute(
            "SELECT COUNT(*), TOTAL(f.id), TOTAL(f.size), TOTAL(f.mtime_ns % 1000000007), TOTAL(LENGTH(f.path)), "
            "TOTAL(f.id * LENGTH(f.path)) FROM outputs o JOIN files f ON f.id = o.file_id "
            "WHERE o.bundle_id = ? AND o.embedding IS NOT NULL", (found[0],)).fetchone())

    def paths(self) -> Iterator[bytes]:
        """Every path the store knows."""
        for (path,) in self._db.execute("SELECT path FROM files").fetchall():
            yield path

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]

    # --- writing ---------------------------------------------------------

    def put(self, path: bytes | str, key: FileKey, outputs: Mapping[str, tuple[str, Sequence[str], object]]) -> None:
        """Record outputs for one file, in one transaction.

        ``outputs`` maps bundle name -> (version, labels, output), where the
        output has ``status``, ``scores`` (label -> float), ``embedding``
        and ``message`` attributes (an :class:`tagcore.analysis.Output`).
        Outputs whose status is not stored are ignored. When the file's
        recorded key differs from ``key`` (the file changed), every older
        output of the file is dropped first.
        """
        path = _path_bytes(path)
        rows = []
        with self._transaction():
            file_id = self._file_id(path, key)
            for name, (version, labels, output) in outputs.items():
                if output.status not in STORED_STATUSES:
                    continue
                bundle_id, order = self._bundle(name, version, labels)
                scores = None
                if output.scores is not None:
                    scores = np.array([output.scores.get(label, 0.0) for label in order], np.float32).tobytes()
                embedding = None
                if output.embedding is not None:
                    embedding = np.asarray(output.embedding, np.float32).astype(np.float16).tobytes()
                rows.append((file_id, bundle_id, output.status, scores, embedding, output.message))
            self._db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _file_id(self, path: bytes, key: FileKey) -> int:
        row = self._db.execute("SELECT id, size, mtime_ns FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return self._db.execute("INSERT INTO files (path, size, mtime_ns) VALUES (?, ?, ?)", (path, *key)).lastrowid
        if (row[1], row[2]) != tuple(key):
            self._db.execute("DELETE FROM outputs WHERE file_id = ?", (row[0],))
            self._db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (*key, row[0]))
        return row[0]

    def update_key(self, path: bytes | str, old: FileKey | None, new: FileKey) -> bool:
        """Record that a file changed from ``old`` to ``new`` without its
        audio changing (its tags were written). Only a file recorded under
        ``old`` is updated; returns whether it was."""
        if old is None:
            return False
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ? AND size = ? AND mtime_ns = ?",
                (*new, _path_bytes(path), *old),
            )
        return cursor.rowcount > 0

    def move(self, source: bytes | str, destination: bytes | str, *, old: FileKey | None = None,
             new: FileKey | None = None) -> bool:
        """A file was moved or renamed: its outputs follow it. With ``old``
        and ``new`` (the file's key before and after the move, which a move
        across file systems may change), the key follows too when the
        outputs were recorded under ``old``. Moving a path onto itself (as
        beets reports after ``beet modify``) changes nothing. Returns
        whether outputs were moved."""
        source, destination = _path_bytes(source), _path_bytes(destination)
        if source == destination:
            return False
        with self._transaction():
            if self._db.execute("SELECT 1 FROM files WHERE path = ?", (source,)).fetchone() is None:
                return False
            self._db.execute("DELETE FROM files WHERE path = ?", (destination,))
            self._db.execute("UPDATE files SET path = ? WHERE path = ?", (destination, source))
            if old is not None and new is not None:
                self._db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ? AND size = ? AND mtime_ns = ?",
                                 (*new, destination, *old))
        return True

    def copy(self, source: bytes | str, destination: bytes | str, *, old: FileKey | None,
             new: FileKey | None) -> bool:
        """A file was copied (or linked) from ``source`` to ``destination``:
        the copy gets the source's outputs under its own key ``new``, when
        those outputs are current (recorded under ``old``, the source's key
        now). Returns whether outputs were copied."""
        source, destination = _path_bytes(source), _path_bytes(destination)
        if source == destination or old is None or new is None:
            return False
        with self._transaction():
            row = self._db.execute("SELECT id FROM files WHERE path = ? AND size = ? AND mtime_ns = ?",
                                   (source, *old)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM files WHERE path = ?", (destination,))
            copy_id = self._db.execute("INSERT INTO files (path, size, mtime_ns) VALUES (?, ?, ?)",
                                       (destination, *new)).lastrowid
            self._db.execute(
                "INSERT INTO outputs SELECT ?, bundle_id, status, scores, embedding, message FROM outputs "
                "WHERE file_id = ?", (copy_id, row[0]))
        return True

    def forget(self, paths: Iterable[bytes | str]) -> int:
        """Drop every output of ``paths``; returns how many files went."""
        byte_paths = [_path_bytes(p) for p in paths]
        gone = 0
        with self._transaction():
            for start in range(0, len(byte_paths), CHUNK):
                chunk = byte_paths[start : start + CHUNK]
                gone += self._db.execute(
                    f"DELETE FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk
                ).rowcount
        return gone

    def prune(self, keep: Iterable[bytes | str]) -> int:
        """Drop every file not in ``keep`` (the paths still in the library);
        returns how many went."""
        keep_set = {_path_bytes(p) for p in keep}
        return self.forget([p for p in self.paths() if p not in keep_set])
