"""RMSC: review-driven multi-label music style classification (Douban album
pages and their short reviews; Chinese text, no audio).

Layout: one UTF-8 JSON file per album, named after the album (the released
files may have no ``.json`` suffix)::

    ROOT/<album name>[.json]
        {"name": "...", "url": "https://music.douban.com/subject/.../",
         "rates": "8.7", "tags": ["流行", "摇滚"],
         "all_short_comments": [{"name": "<user>", "rate": "4", "vote": "12",
                                 "comment": "<review>"}, ...]}

``rates`` is the album's average user score (a number or numeric string),
``tags`` its human-annotated styles (22 in the paper), each comment a user's
``rate`` of the album, the ``vote`` count of users who found the review
useful, and the review text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import DatasetError, LoadReport

KEYS = ("name", "url", "rates", "tags", "all_short_comments")
COMMENT_KEYS = ("name", "rate", "vote", "comment")


@dataclass(frozen=True)
class Comment:
    """One short review: ``user`` name, ``rate`` the user's score as
    written (empty when the user gave none), ``votes`` how many users found
    it useful (None when not a number), ``text`` the review."""

    user: str
    rate: str
    votes: int | None
    text: str


@dataclass(frozen=True)
class Album:
    """One album: ``key`` the file name, ``rating`` the average user score
    (None when missing or not a number), ``labels`` its styles."""

    key: str
    name: str
    url: str
    rating: float | None
    labels: tuple[str, ...]
    comments: tuple[Comment, ...]


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(root: str | Path) -> str | None:
    """None when the folder ``root`` holds a file that reads as an album
    (files not starting with ``{`` are passed over unread), else what is
    missing."""
    root = Path(root)
    if not root.is_dir():
        return "not a folder (expected one album JSON file per album)"
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            with path.open("rb") as handle:
                if not handle.read(256).lstrip().startswith(b"{"):
                    continue
            read_album(path)
        except (OSError, DatasetError):
            continue
        return None
    return "no album JSON file (RMSC layout: one JSON file per album)"


def _text(value) -> str:
    return "" if value is None else str(value)


def _number(value, kind):
    try:
        return kind(str(value).strip())
    except (TypeError, ValueError):
        return None


def read_album(path: str | Path) -> Album:
    """The album of one JSON file; raises DatasetError naming the file when
    it is not JSON or lacks a key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    missing = [key for key in KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)}")
    if not isinstance(data["tags"], list) or not isinstance(data["all_short_comments"], list):
        raise DatasetError(f"{path}: tags and all_short_comments must be lists")
    comments = []
    for number, item in enumerate(data["all_short_comments"]):
        if not isinstance(item, dict) or any(key not in item for key in COMMENT_KEYS):
            raise DatasetError(f"{path}: comment {number} lacks one of {', '.join(COMMENT_KEYS)}")
        user, rate, vote, text = (item[key] for key in COMMENT_KEYS)
        comments.append(Comment(_text(user), _text(rate).strip(), _number(vote, int), _text(text)))
    return Album(
        key=path.name,
        name=_text(data["name"]),
        url=_text(data["url"]),
        rating=_number(data["rates"], float),
        labels=tuple(dict.fromkeys(str(tag).strip() for tag in data["tags"] if str(tag).strip())),
        comments=tuple(comments),
    )


def load(root: str | Path, *, report: LoadReport | None = None) -> list[Album]:
    """Albums of every non-hidden file in ``root``, sorted by file name.
    Files that are not valid album JSON are skipped and listed in
    ``report`` as ``file: cause``. Raises DatasetError when ``root`` is not
    a directory or holds no album."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (RMSC: one JSON file per album)")
    report = report if report is not None else LoadReport()
    albums = []
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            albums.append(read_album(path))
        except DatasetError as exc:
            report.skipped.append(str(exc))  # already "file[:line]: cause"
    if not albums:
        raise DatasetError(f"{root}: no RMSC album JSON file")
    return albums
