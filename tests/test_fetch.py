"""``python -m trainer fetch``: downloads from a local HTTP server started by
each test on 127.0.0.1 (no other network), serving bytes the test makes."""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import re
import signal
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from trainer import fetch
from trainer.datasets import Download, JoinedArchive, RemoteFile, downloads
from trainer.fetch import FetchError

TIMEOUT = 2.0  # seconds, for every request the tests make


# --- fixtures ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def bounded_and_local(monkeypatch):
    """Every test: at most 5 s, and no proxy between us and 127.0.0.1."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def too_long(signum, frame):
        pytest.fail("test ran longer than 5 s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class FixtureServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 serving ``files`` (name -> bytes)
    with Range support. Records each request's path and headers and the body
    bytes it sent. Switches: ``ignore_range`` (always 200 + whole body),
    ``cut_after`` (send only that many body bytes of the next response, with
    the full Content-Length, then hang up), ``delay`` (seconds before
    answering)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent: list[int] = []
        self.ignore_range = False
        self.cut_after: int | None = None
        self.delay = 0.0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
        self.httpd.daemon_threads = True
        self.httpd.fixture = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def ranges(self) -> list[str | None]:
        return [headers.get("Range") for _path, headers in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _RangeHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        server: FixtureServer = self.server.fixture
        server.requests.append((self.path, dict(self.headers)))
        if server.delay:
            time.sleep(server.delay)
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        wanted = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
        if match and not server.ignore_range:
            start = int(match[1])
            if start >= len(body):
                self.send_response(416, "Range Not Satisfiable")
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(int(match[2]) if match[2] else len(body) - 1, len(body) - 1)
            payload = body[start : end + 1]
            self.send_response(206, "Partial Content")
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        else:
            payload = body
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "none" if server.ignore_range else "bytes")
        self.end_headers()
        if server.cut_after is not None:
            payload, server.cut_after = payload[: server.cut_after], None
        # Record before writing: the client may read the last byte and the
        # test check ``sent`` before this thread runs again.
        server.sent.append(len(payload))
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def serve():
    servers: list[FixtureServer] = []

    def start(files: dict[str, bytes]) -> FixtureServer:
        servers.append(FixtureServer(files))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def make_tar_gz(
    members: dict[str, bytes], *, root_entry: bool = False, symlink: tuple[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        if root_entry:
            info = tarfile.TarInfo("./")
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tf.addfile(info)
    return buf.getvalue()


AUDIO = random.Random(0).randbytes(150_000)  # > a few download chunks
ARCHIVE = make_zip({"toy/blues/a.au": AUDIO, "toy/rock/b.au": AUDIO[::-1], "toy/README.txt": b"toy dataset\n"})


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def one_file_registry(url: str, name: str, data: bytes | None, *, checksum: str | None = "auto", size="auto",
                      extract: bool = False) -> dict[str, Download]:
    if checksum == "auto":
        checksum = sha256(data)
    if size == "auto":
        size = len(data)
    entry = RemoteFile(url, name, size=size, checksum=checksum, extract=extract)
    return {"toy": Download("toy", "a toy dataset", "CC0", "http://127.0.0.1/", (entry,))}


def cli(argv: list[str], registry) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer fetch")
    fetch.add_arguments(parser)
    return fetch.run(parser.parse_args(argv), registry=registry)


def leftovers(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))


# --- downloads --------------------------------------------------------------


def test_full_download_verifies_extracts_and_then_skips(serve, tmp_path):
    server = serve({"toy.zip": ARCHIVE})
    registry = one_file_registry(server.url("toy.zip"), "toy.zip", ARCHIVE, extract=True)
    log = io.StringIO()

    report = fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=log)

    assert report.downloaded == ["toy.zip"] and report.extracted == ["toy.zip"]
    assert (tmp_path / "toy.zip").read_bytes() == ARCHIVE
    assert (tmp_path / "toy" / "blues" / "a.au").read_bytes() == AUDIO
    assert (tmp_path / "toy" / "rock" / "b.au").read_bytes() == AUDIO[::-1]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.extracting"))
    assert server.ranges() == [None]
    assert re.search(r"toy\.zip: .*KiB / .*KiB \(100%\), .*/s, ETA", log.getvalue())  # the progress line

    again = fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert again.skipped == ["toy.zip"] and again.downloaded == [] and again.extracted == []
    assert len(server.requests) == 1  # verified on disk, no second request

    forced = fetch.fetch_dataset("toy", tmp_path, registry=registry, force=True, timeout=TIMEOUT, stream=io.StringIO())
    assert forced.downloaded == ["toy.zip"] and forced.extracted == ["toy.zip"]
    assert server.ranges() == [None, None]


def test_resume_from_partial_part_uses_range(serve, tmp_path):
    server = serve({"big.bin": AUDIO})
    registry = one_file_registry(server.url("big.bin"), "big.bin", AUDIO)
    (tmp_path / "big.bin.part").write_bytes(AUDIO[:40_000])

    report = fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())

    assert report.downloaded == ["big.bin"]
    assert server.ranges() == ["bytes=40000-"]
    assert server.sent == [len(AUDIO) - 40_000]
    assert 40_000 + server.sent[0] == len(AUDIO)
    assert (tmp_path / "big.bin").read_bytes() == AUDIO
    assert not (tmp_path / "big.bin.part").exists()


def test_interrupted_download_keeps_part_and_resumes(serve, tmp_path):
    server = serve({"big.bin": AUDIO})
    server.cut_after = 50_000
    registry = one_file_registry(server.url("big.bin"), "big.bin", AUDIO, size=None)

    with pytest.raises(FetchError, match=r"interrupted after 50000 of 150000 bytes.*resume"):
        fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert not (tmp_path / "big.bin").exists()
    assert (tmp_path / "big.bin.part").stat().st_size == 50_000

    fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert server.ranges() == [None, "bytes=50000-"]
    assert (tmp_path / "big.bin").read_bytes() == AUDIO


def test_server_ignoring_range_restarts_from_zero(serve, tmp_path):
    server = serve({"big.bin": AUDIO})
    server.ignore_range = True
    registry = one_file_registry(server.url("big.bin"), "big.bin", AUDIO)
    (tmp_path / "big.bin.part").write_bytes(b"x" * 30_000)  # would corrupt the file if appended to
    log = io.StringIO()

    fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=log)

    assert server.ranges() == ["bytes=30000-"]
    assert server.sent == [len(AUDIO)]
    assert (tmp_path / "big.bin").read_bytes() == AUDIO
    assert "ignored the range request" in log.getvalue()


def test_416_means_the_part_is_already_complete(serve, tmp_path):
    server = serve({"big.bin": AUDIO})
    registry = one_file_registry(server.url("big.bin"), "big.bin", AUDIO, size=None)  # unknown size: must ask
    (tmp_path / "big.bin.part").write_bytes(AUDIO)

    report = fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())

    assert report.downloaded == ["big.bin"]
    assert server.ranges() == [f"bytes={len(AUDIO)}-"]
    assert (tmp_path / "big.bin").read_bytes() == AUDIO


def test_wrong_checksum_is_an_error_and_leaves_no_file(serve, tmp_path, capsys):
    server = serve({"toy.zip": ARCHIVE})
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    registry = one_file_registry(server.url("toy.zip"), "toy.zip", ARCHIVE, checksum=wrong, extract=True)

    with pytest.raises(FetchError, match=r"verification failed for toy\.zip .*sha256 is [0-9a-f]{64}, the publisher"):
        fetch.fetch_dataset("toy", tmp_path / "a", registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert leftovers(tmp_path / "a") == []

    assert cli(["toy", "--dest", str(tmp_path / "b"), "--timeout", str(TIMEOUT)], registry) == 2
    err = capsys.readouterr().err
    assert "error: verification failed for toy.zip from http://127.0.0.1:" in err
    assert "Traceback" not in err
    assert leftovers(tmp_path / "b") == []


def test_http_404_is_one_clear_error(serve, tmp_path, capsys):
    server = serve({})
    url = server.url("missing.zip")
    registry = one_file_registry(url, "missing.zip", b"", checksum=None, size=None)

    assert cli(["toy", "--dest", str(tmp_path), "--timeout", str(TIMEOUT)], registry) == 2

    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot download {url}: HTTP 404 Not Found"
    assert leftovers(tmp_path) == []


def test_connection_refused_reads_as_offline(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/toy.zip"
    registry = one_file_registry(url, "toy.zip", b"", checksum=None, size=None)

    assert cli(["toy", "--dest", str(tmp_path), "--timeout", str(TIMEOUT)], registry) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach {url}: connection refused")
    assert "offline" in err and "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_timeout_is_one_clear_error(serve, tmp_path):
    server = serve({"slow.bin": b"late"})
    server.delay = 1.5
    registry = one_file_registry(server.url("slow.bin"), "slow.bin", b"late")

    with pytest.raises(FetchError, match=r"cannot reach http://127\.0\.0\.1:\d+/slow\.bin: timed out after 0\.3 s"):
        fetch.fetch_dataset("toy", tmp_path, registry=registry, timeout=0.3, stream=io.StringIO())
    assert not (tmp_path / "slow.bin").exists()


def test_unknown_name_and_missing_name(tmp_path, capsys):
    assert cli(["nope", "--dest", str(tmp_path)], fetch.REGISTRY) == 2
    assert "unknown dataset 'nope'; known: aotm2011, fma-metadata" in capsys.readouterr().err
    assert cli([], fetch.REGISTRY) == 2
    assert "give a dataset NAME or --list" in capsys.readouterr().err


# --- extraction -------------------------------------------------------------


@pytest.mark.parametrize("evil", ["../evil.txt", "toy/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"])
def test_zip_with_path_traversal_member_is_refused(serve, tmp_path, evil):
    archive = make_zip({"toy/good.txt": b"fine", evil: b"gotcha"})
    server = serve({"toy.zip": archive})
    dest = tmp_path / "dest"
    registry = one_file_registry(server.url("toy.zip"), "toy.zip", archive, extract=True)

    with pytest.raises(FetchError, match=r"refusing unsafe member"):
        fetch.fetch_dataset("toy", dest, registry=registry, timeout=TIMEOUT, stream=io.StringIO())

    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(dest) == ["toy.zip"]  # the verified archive only: nothing extracted, no temp folder


def test_tar_gz_extraction_and_symlink_refusal(tmp_path):
    good = tmp_path / "good.tar.gz"
    good.write_bytes(make_tar_gz({"genres/blues/blues.00000.au": b"au", "genres/rock/rock.00000.au": b"au2"},
                                 root_entry=True))
    dest = tmp_path / "dest"
    dest.mkdir()
    assert fetch.extract_archive(good, dest) == ["genres"]
    assert (dest / "genres" / "rock" / "rock.00000.au").read_bytes() == b"au2"

    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(make_tar_gz({"x/a.txt": b"a"}, symlink=("x/link", "/etc/passwd")))
    with pytest.raises(FetchError, match=r"refusing link member 'x/link'"):
        fetch.extract_archive(bad, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["genres"]


def test_split_archive_parts_are_joined_and_extracted(serve, tmp_path):
    archive = make_zip({"0/clip-a.mp3": AUDIO[:5000], "f/clip-b.mp3": AUDIO[5000:9000]})
    cuts = [0, len(archive) // 3, 2 * len(archive) // 3, len(archive)]
    parts = {f"mp3.zip.00{i + 1}": archive[cuts[i] : cuts[i + 1]] for i in range(3)}
    server = serve({"annotations_final.csv": b"clip_id\tpop\n", **parts})
    files = (RemoteFile(server.url("annotations_final.csv"), "annotations_final.csv"),) + tuple(
        RemoteFile(server.url(name), name, size=len(data)) for name, data in parts.items()
    )
    registry = {"mtt": Download("mtt", "toy", "CC0", "http://127.0.0.1/", files,
                               joins=(JoinedArchive("mp3.zip", tuple(parts)),))}
    fetch.check_registry(registry)

    report = fetch.fetch_dataset("mtt", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())

    assert report.extracted == ["mp3.zip"]
    assert (tmp_path / "0" / "clip-a.mp3").read_bytes() == AUDIO[:5000]
    assert (tmp_path / "f" / "clip-b.mp3").read_bytes() == AUDIO[5000:9000]
    assert not (tmp_path / ".mp3.zip.joining").exists()
    again = fetch.fetch_dataset("mtt", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert again.extracted == [] and len(again.skipped) == 4


def test_files_in_subfolders(serve, tmp_path):
    server = serve({"splits/split-0/autotagging_genre-train.tsv": b"TRACK_ID\n"})
    entry = RemoteFile(server.url("splits/split-0/autotagging_genre-train.tsv"), "split-0/autotagging_genre-train.tsv")
    registry = {"mtg": Download("mtg", "toy", "CC0", "http://127.0.0.1/", (entry,))}
    fetch.fetch_dataset("mtg", tmp_path, registry=registry, timeout=TIMEOUT, stream=io.StringIO())
    assert (tmp_path / "split-0" / "autotagging_genre-train.tsv").read_bytes() == b"TRACK_ID\n"


# --- registry and listing ---------------------------------------------------


def test_registry_is_well_formed():
    assert fetch.REGISTRY == downloads()  # what the dataset modules declare, nothing of its own
    fetch.check_registry(fetch.REGISTRY)
    for name in ("gtzan", "fma-metadata", "fma-small", "mtg-jamendo-metadata", "magnatagatune",
                 "hetrec-lastfm-2k", "aotm2011"):
        ds = fetch.REGISTRY[name]
        assert ds.description and ds.licence and ds.homepage.startswith("http") and ds.files
    assert fetch.REGISTRY["fma-small"].files[0].checksum == "sha1:ade154f733639d52e35e32f5593efe5be76c6d70"
    assert fetch.REGISTRY["fma-metadata"].files[0].checksum == "sha1:f0df49ffe5f2a6008d7dc83c6915b31835dfe733"
    jamendo = {f.name for f in fetch.REGISTRY["mtg-jamendo-metadata"].files}
    assert {"autotagging.tsv", "split-0/autotagging_genre-train.tsv", "split-4/autotagging-test.tsv"} <= jamendo
    assert len(jamendo) == 5 + 5 * 5 * 3
    with pytest.raises(FetchError, match="unsafe path"):
        fetch.safe_relpath("../x")


def test_list_output(capsys):
    assert cli(["--list"], fetch.REGISTRY) == 0
    out = capsys.readouterr().out
    for name in fetch.REGISTRY:
        assert re.search(rf"^{re.escape(name)}: ", out, re.MULTILINE)
    assert "checksum sha1:ade154f733639d52e35e32f5593efe5be76c6d70" in out
    assert "genres.tar.gz  size unknown  checksum: none published" in out
    assert "CC BY-NC-SA 4.0" in out and "https://grouplens.org/datasets/hetrec-2011/" in out
    assert "... and 74 more" in out

    assert cli(["mtg-jamendo-metadata", "--list"], fetch.REGISTRY) == 0
    one = capsys.readouterr().out
    assert "split-4/autotagging_top50tags-test.tsv" in one and "gtzan" not in one
