"""``python -m trainer fetch NAME``: download a public dataset from its
official location, resumably, verified, and (for archives) extracted.

This module is the generic downloader; what there is to download is declared
by the dataset modules (``REMOTES`` in ``trainer/datasets/<name>.py``, as
:class:`~trainer.datasets.Download` entries) and gathered in
:data:`REGISTRY`. Checksums are only the ones the publisher states (FMA
publishes SHA1s); every other entry has ``checksum=None`` and the listing
says so. Sizes are ``None`` where the publisher does not state an exact
byte count.

Download protocol, per file: stream into ``<name>.part`` next to the final
file, resuming an existing ``.part`` with an HTTP ``Range`` request (a server
that ignores it and answers 200 restarts from zero; 416 means the ``.part``
is already complete), verify size and checksum, then ``os.replace`` the
``.part`` into place. A final file therefore only ever appears complete and
verified; an interrupted download leaves a ``.part`` for the next run.
Archives flagged ``extract`` are unpacked into a temporary sibling folder,
member paths checked (no absolute paths, no ``..``, no links or devices),
and only then moved into the destination.

Errors (offline, DNS failure, refused connection, HTTP 4xx/5xx, timeout, bad
checksum, unsafe archive) raise :class:`FetchError` with one message naming
the URL or file and the cause; :func:`run` prints it and returns 2.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from trainer.datasets import (
    DatasetError,
    Download,
    RemoteFile,
    downloads,
)

APP_NAME = "beets-autotagml"
DEFAULT_TIMEOUT = 30.0
CHUNK_SIZE = 1 << 16
USER_AGENT = "beets-autotagml-fetch/0.1 (+python urllib)"


class FetchError(DatasetError):
    """A download, verification or extraction failed; the message names the
    URL (or file) and the cause."""


# --- registry ---------------------------------------------------------------

#: Every download the dataset modules declare (``REMOTES`` of
#: ``trainer/datasets/<name>.py``), by fetch name.
REGISTRY: dict[str, Download] = downloads()


def default_dest(name: str) -> Path:
    """``platformdirs.user_data_dir("beets-autotagml")/datasets/NAME``."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / "datasets" / name


def safe_relpath(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside its folder, or FetchError
    (absolute paths, drive letters, ``..`` components, empty names)."""
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    parts = [p for p in path.parts if p not in ("", ".")]
    if (
        not parts
        or path.is_absolute()
        or PureWindowsPath(name).drive
        or PureWindowsPath(name).root
        or ".." in parts
        or "\x00" in name
    ):
        raise FetchError(f"unsafe path {name!r}: it would land outside the destination folder")
    return PurePosixPath(*parts)


def check_registry(registry: dict[str, Download]) -> None:
    """FetchError unless every entry is well formed (names, URLs, checksums)."""
    for key, ds in registry.items():
        if key != ds.name:
            raise FetchError(f"registry key {key!r} differs from the dataset name {ds.name!r}")
        names = [f.name for f in ds.files]
        if len(set(names)) != len(names):
            raise FetchError(f"{key}: duplicate file names")
        for f in ds.files:
            safe_relpath(f.name)
            if not f.url.startswith(("http://", "https://")):
                raise FetchError(f"{key}: {f.url}: not an http(s) URL")
            if f.checksum is not None:
                _parse_checksum(f.checksum)
        for j in ds.joins:
            safe_relpath(j.name)
            missing = set(j.parts) - set(names)
            if missing:
                raise FetchError(f"{key}: {j.name} joins parts that are not files: {sorted(missing)}")


# --- listing ----------------------------------------------------------------


def _human(n: float | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _checksum_note(f: RemoteFile) -> str:
    return f"checksum {f.checksum}" if f.checksum else "checksum: none published (size/HTTP checks only)"


def format_listing(registry: dict[str, Download] | None = None, name: str | None = None, *, max_files: int = 6) -> str:
    """Human-readable registry listing; ``name`` restricts it to one dataset
    and lists all its files."""
    registry = REGISTRY if registry is None else registry
    if name is not None:
        entries = [_lookup(registry, name)]
        max_files = 1 << 30
    else:
        entries = list(registry.values())
    lines = ["usage: python -m trainer fetch NAME [--dest DIR] [--force]  (default DIR: "
             f"{default_dest('NAME')})", ""]
    for ds in entries:
        sizes = [f.size for f in ds.files]
        total = _human(sum(sizes)) if all(s is not None for s in sizes) else "total size unknown"
        with_sum = sum(f.checksum is not None for f in ds.files)
        sums = (
            "all with published checksums"
            if with_sum == len(ds.files)
            else "no published checksums" if with_sum == 0 else f"{with_sum} with published checksums"
        )
        lines.append(f"{ds.name}: {ds.description}")
        lines.append(f"  homepage: {ds.homepage}")
        lines.append(f"  licence:  {ds.licence}")
        lines.append(f"  files:    {len(ds.files)}, {total}, {sums}")
        for f in ds.files[:max_files]:
            flags = " [extract]" if f.extract else ""
            lines.append(f"    {f.name}  {_human(f.size)}  {_checksum_note(f)}{flags}")
            lines.append(f"      {f.url}")
        if len(ds.files) > max_files:
            lines.append(f"    ... and {len(ds.files) - max_files} more (python -m trainer fetch {ds.name} --list)")
        for j in ds.joins:
            lines.append(f"    {j.name} = {' + '.join(j.parts)}, joined then extracted")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- errors -----------------------------------------------------------------


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """One short phrase for a network-level exception (URLError, OSError...)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror or reason}; are you offline?)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server down, or are you offline?)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s" if timeout else "timed out"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error ({reason})"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
        return "network is unreachable (are you offline?)"
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "connection reset by the server"
    if isinstance(reason, http.client.IncompleteRead):
        return "connection closed before the end of the file"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


_NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


# --- progress ---------------------------------------------------------------


class ByteProgress:
    """Progress line on stderr: bytes done/total, rate, ETA. Redraws in place
    on a terminal (at most every 0.2 s); elsewhere one line per 10%."""

    def __init__(self, label: str, total: int | None, start: int = 0, stream=None):
        self.label = label
        self.total = total
        self.done = start
        self.start_bytes = start
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self._last = 0.0
        self._decile = self._tenth()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def _tenth(self) -> int:
        return int(10 * self.done / self.total) if self.total else -1

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = (self.done - self.start_bytes) / elapsed if elapsed > 0 else 0.0
        if self.total:
            pct = f" ({100 * self.done / self.total:.0f}%)"
            eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 else "ETA ?"
            return f"{self.label}: {_human(self.done)} / {_human(self.total)}{pct}, {_human(rate)}/s, {eta}"
        return f"{self.label}: {_human(self.done)}, {_human(rate)}/s"

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.2:
                self._last = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
        else:
            tenth = self._tenth()
            if tenth != self._decile or (not self.total and now - self._last >= 10):
                self._decile, self._last = tenth, now
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
        elif self._decile != 10:
            self.stream.write(self.line() + "\n")
            self.stream.flush()


# --- download ---------------------------------------------------------------


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, sep, digest = checksum.partition(":")
    algo = algo.lower()
    if not sep or algo not in hashlib.algorithms_guaranteed or not re.fullmatch(r"[0-9a-fA-F]+", digest):
        raise FetchError(f"malformed checksum {checksum!r} (expected '<algorithm>:<hex digest>')")
    if len(digest) != 2 * hashlib.new(algo).digest_size:
        raise FetchError(f"malformed checksum {checksum!r}: wrong length for {algo}")
    return algo, digest.lower()


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, size: int | None = None, checksum: str | None = None) -> str | None:
    """None if ``path`` has the expected size and checksum (each when known),
    else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size is {actual} bytes, expected {size}"
    if checksum:
        algo, expected = _parse_checksum(checksum)
        digest = file_digest(path, algo)
        if digest != expected:
            return f"{algo} is {digest}, the publisher states {expected}"
    return None


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(start, end, total) of a Content-Range header; Nones where absent/'*'."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None, None
    start, end, total = m.groups()
    return (
        int(start) if start else None,
        int(end) if end else None,
        int(total) if total and total != "*" else None,
    )


def _log(stream, message: str) -> None:
    stream.write(message + "\n")
    stream.flush()


def _open_request(url: str, offset: int, timeout: float):
    """The response to a GET of ``url`` from byte ``offset``, or the outcome
    ("complete" or "restart") of a 416 answer to a range request."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener()  # built per call: proxy settings are read from the environment now
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _start, _end, total = _content_range(exc.headers.get("Content-Range"))
            return "complete" if total is None or total == offset else "restart"
        raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except _NETWORK_ERRORS as exc:
        raise FetchError(f"cannot reach {url}: {describe_error(exc, timeout)}") from None


def _write_plan(response, url: str, offset: int, size: int | None, stream, label: str):
    """How to write the body of ``response``: (offset, file mode, total bytes
    or None, Content-Length or None), or "restart" when a partial answer
    does not start at ``offset``. Raises FetchError on an unexpected status
    or a total that disagrees with ``size``."""
    status = response.status
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if status == 206 and offset:
        start, _end, total = _content_range(response.headers.get("Content-Range"))
        if start != offset:
            return "restart"
        mode = "ab"
        total = total if total is not None else (offset + length if length is not None else None)
    elif status in (200, 206):
        if offset:
            _log(stream, f"{label}: the server ignored the range request; downloading again from zero")
        offset, mode, total = 0, "wb", length
    else:
        raise FetchError(f"cannot download {url}: unexpected HTTP {status} {response.reason}")
    if size is not None and total is not None and total != size:
        raise FetchError(f"cannot download {url}: the server offers {total} bytes, the registry expects {size}")
    return offset, mode, total, length


def _copy_body(response, out, *, url: str, part: Path, offset: int, timeout: float, progress) -> int:
    """Copy the body of ``response`` into the open file ``out`` chunk by
    chunk; returns the bytes received. Raises FetchError when the network
    or the disk fails."""
    received = 0
    while True:
        try:
            chunk = response.read(CHUNK_SIZE)
        except _NETWORK_ERRORS as exc:
            progress.close()
            raise FetchError(
                f"download of {url} interrupted after {offset + received} bytes: "
                f"{describe_error(exc, timeout)}; run the command again to resume"
            ) from None
        if not chunk:
            return received
        try:
            out.write(chunk)
        except OSError as exc:
            raise FetchError(f"cannot write {part}: {exc.strerror or exc}") from None
        received += len(chunk)
        progress.update(len(chunk))


def _transfer(url: str, part: Path, offset: int, size: int | None, timeout: float, stream, label: str) -> str:
    """One HTTP request appending to (or restarting) ``part``.

    Returns "done" (body written), "complete" (416: part already whole) or
    "restart" (the server disowned our partial file: delete it and retry).
    """
    response = _open_request(url, offset, timeout)
    if isinstance(response, str):
        return response
    with response:
        plan = _write_plan(response, url, offset, size, stream, label)
        if plan == "restart":
            return "restart"
        offset, mode, total, length = plan
        progress = ByteProgress(label, total if total is not None else size, offset, stream)
        try:
            out = open(part, mode)
        except OSError as exc:
            raise FetchError(f"cannot write {part}: {exc.strerror or exc}") from None
        with out:
            received = _copy_body(response, out, url=url, part=part, offset=offset, timeout=timeout, progress=progress)
        progress.close()
        if length is not None and received < length:
            raise FetchError(
                f"download of {url} interrupted after {offset + received} of {offset + length} bytes: "
                "connection closed early; run the command again to resume"
            )
    return "done"


def download_file(
    url: str,
    target: str | Path,
    *,
    size: int | None = None,
    checksum: str | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    stream=None,
) -> str:
    """Download ``url`` to ``target`` through ``target.part`` (resumed when
    present), verified, then atomically moved into place.

    Returns "downloaded" or "skipped" (``target`` already there and verified;
    ``force`` downloads again from zero). Raises FetchError.
    """
    target = Path(target)
    stream = stream if stream is not None else sys.stderr
    part = target.with_name(target.name + ".part")
    label = target.name
    if checksum is not None:
        _parse_checksum(checksum)
    if target.exists() and not force:
        problem = verify_file(target, size, checksum)
        if problem is None:
            return "skipped"
        _log(stream, f"{target}: {problem}; downloading again")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if force and part.exists():
            part.unlink()
    except OSError as exc:
        raise FetchError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None

    for _attempt in range(3):
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            part.unlink()
            offset = 0
        if offset and size is not None and offset == size:
            break  # a complete .part from an earlier run: only verification is left
        if offset:
            _log(stream, f"{label}: resuming at byte {offset}")
        outcome = _transfer(url, part, offset, size, timeout, stream, label)
        if outcome != "restart":
            break
        _log(stream, f"{label}: the server does not accept the partial file; downloading again from zero")
        part.unlink(missing_ok=True)
    else:
        raise FetchError(f"cannot download {url}: the server keeps rejecting the resumed download")

    problem = verify_file(part, size, checksum)
    if problem is not None:
        actual = part.stat().st_size
        if size is not None and actual < size:
            raise FetchError(f"incomplete download of {url}: {problem}; run the command again to resume")
        part.unlink()
        raise FetchError(f"verification failed for {target.name} from {url}: {problem}; the download was deleted")
    os.replace(part, target)
    return "downloaded"


# --- extraction -------------------------------------------------------------


def _is_link_zipinfo(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _copy_member(src, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK_SIZE)


def _unpack_zip(archive: Path, tmp: Path) -> None:
    """Every member of the zip ``archive`` under ``tmp``; a link or unsafe
    path raises FetchError."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member_path(archive, info.filename)
            if _is_link_zipinfo(info):
                raise FetchError(f"{archive}: refusing link member {info.filename!r}")
            if info.is_dir():
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            else:
                with zf.open(info) as src:
                    _copy_member(src, tmp / rel)


def _unpack_tar(archive: Path, tmp: Path) -> None:
    """Every member of the tar ``archive`` under ``tmp``; a link, device or
    unsafe path raises FetchError."""
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            if member.isdir() and member.name.replace("\\", "/").strip("/") in ("", "."):
                continue  # the archive's own root ("./")
            rel = _member_path(archive, member.name)
            if member.isdir():
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                src = tf.extractfile(member)
                with src:
                    _copy_member(src, tmp / rel)
            else:
                kind = "link" if member.issym() or member.islnk() else "special"
                raise FetchError(f"{archive}: refusing {kind} member {member.name!r}")


def _move_entries(archive: Path, tmp: Path, dest: Path) -> list[str]:
    """Move each top-level entry of ``tmp`` into ``dest``, replacing an
    earlier copy; refuses (before moving anything) an entry that would
    replace ``archive`` itself. Returns the entries, sorted."""
    entries = sorted(p.name for p in tmp.iterdir())
    for entry in entries:
        if (dest / entry).resolve() == archive.resolve():
            raise FetchError(f"{archive}: a member would replace the archive itself")
    for entry in entries:
        final = dest / entry
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(tmp / entry, final)
    return entries


def extract_archive(archive: str | Path, dest: str | Path, *, label: str | None = None) -> list[str]:
    """Unpack a zip or tar(.gz/.bz2/.xz) ``archive`` into ``dest``.

    Members go into a temporary sibling folder first; any absolute path,
    ``..`` component, link or device member aborts the whole extraction with
    FetchError and nothing reaches ``dest``. Then each top-level entry is
    moved into ``dest`` (replacing an earlier copy). Returns those entries.
    """
    archive, dest = Path(archive), Path(dest)
    label = label or archive.name
    tmp = dest / f".{label}.extracting"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        if zipfile.is_zipfile(archive):
            _unpack_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            _unpack_tar(archive, tmp)
        else:
            raise FetchError(f"cannot extract {archive}: neither a zip nor a tar archive")
        entries = _move_entries(archive, tmp, dest)
        tmp.rmdir()
        return entries
    except FetchError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, NotImplementedError, RuntimeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"cannot extract {archive}: {exc}") from None


def _member_path(archive: Path, name: str) -> PurePosixPath:
    try:
        return safe_relpath(name)
    except FetchError:
        raise FetchError(
            f"{archive}: refusing unsafe member {name!r} (its path leads outside the destination)"
        ) from None


def _marker(dest: Path, name: str) -> Path:
    return dest / f".{name}.extracted"


def _join_parts(parts: list[Path], out: Path) -> None:
    with open(out, "wb") as fh:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)


# --- datasets ---------------------------------------------------------------


@dataclass
class FetchReport:
    dest: Path
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)


def _lookup(registry: dict[str, Download], name: str) -> Download:
    try:
        return registry[name]
    except KeyError:
        raise FetchError(f"unknown dataset {name!r}; known: {', '.join(sorted(registry))}") from None


def fetch_dataset(
    name: str,
    dest: str | Path | None = None,
    *,
    registry: dict[str, Download] | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    stream=None,
) -> FetchReport:
    """Download (and extract) every file of dataset ``name`` into ``dest``
    (default :func:`default_dest`). Files already there and verified are
    skipped, and so is an extraction already done from the same archive,
    unless ``force``. Raises FetchError."""
    registry = REGISTRY if registry is None else registry
    stream = stream if stream is not None else sys.stderr
    ds = _lookup(registry, name)
    dest = Path(dest).expanduser() if dest is not None else default_dest(name)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create {dest}: {exc.strerror or exc}") from None
    report = FetchReport(dest)
    fresh: dict[str, bool] = {}
    for f in ds.files:
        target = dest / safe_relpath(f.name)
        outcome = download_file(f.url, target, size=f.size, checksum=f.checksum, force=force, timeout=timeout,
                                stream=stream)
        (report.downloaded if outcome == "downloaded" else report.skipped).append(f.name)
        fresh[f.name] = outcome == "downloaded"
        if f.extract:
            marker = _marker(target.parent, target.name)
            if fresh[f.name] or force or not marker.exists():
                _log(stream, f"{f.name}: extracting into {dest}")
                extract_archive(target, dest)
                marker.write_text(f"{f.url}\n")
                report.extracted.append(f.name)
    for j in ds.joins:
        marker = _marker(dest, j.name)
        if any(fresh[p] for p in j.parts) or force or not marker.exists():
            joined = dest / f".{j.name}.joining"
            _log(stream, f"{j.name}: joining {len(j.parts)} parts and extracting into {dest}")
            try:
                _join_parts([dest / safe_relpath(p) for p in j.parts], joined)
                extract_archive(joined, dest, label=j.name)
            except OSError as exc:
                raise FetchError(f"cannot join {j.name}: {exc.strerror or exc}") from None
            finally:
                joined.unlink(missing_ok=True)
            marker.write_text(" + ".join(j.parts) + "\n")
            report.extracted.append(j.name)
    return report


# --- command line -----------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", metavar="NAME", help="dataset to download (see --list)")
    parser.add_argument("--dest", help="destination folder (default: user data dir/datasets/NAME)")
    parser.add_argument("--list", action="store_true", help="list the known datasets (all files of NAME if given)")
    parser.add_argument("--force", action="store_true", help="download and extract again even if already present")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"network timeout in seconds (default {DEFAULT_TIMEOUT:g})")


def run(args: argparse.Namespace, registry: dict[str, Download] | None = None) -> int:
    """The ``fetch`` command: 0 on success, 2 on any error (one line on
    stderr, no traceback)."""
    registry = REGISTRY if registry is None else registry
    try:
        if args.list:
            sys.stdout.write(format_listing(registry, args.dataset))
            return 0
        if not args.dataset:
            raise FetchError(f"give a dataset NAME or --list; known: {', '.join(sorted(registry))}")
        report = fetch_dataset(args.dataset, args.dest, registry=registry, force=args.force,
                               timeout=getattr(args, "timeout", DEFAULT_TIMEOUT))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # local file system trouble (disk full, permissions) after the checks above
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parts = [f"{len(report.downloaded)} downloaded", f"{len(report.skipped)} already present"]
    if report.extracted:
        parts.append(f"{len(report.extracted)} extracted")
    print(f"{args.dataset}: {report.dest} ({', '.join(parts)})")
    return 0
