"""Vagalume lyrics (the public Kaggle scrape of the Brazilian lyrics site
vagalume.com.br; no audio).

Layout, two UTF-8 CSVs (comma separated, double-quoted fields)::

    ROOT/artists-data.csv
        Artist,Genres,Songs,Popularity,Link
        10000 Maniacs,Rock; Pop; Electronica,110.0,0.3,/10000-maniacs/
    ROOT/lyrics-data.csv
        ALink,SName,SLink,Lyric,language          (older release: ...,Lyric,Idiom)
        /10000-maniacs/,More Than This,/10000-maniacs/more-than-this.html,"I could feel...",en

Songs are joined to their artist on ``ALink`` = ``Link``; a song takes the
genres of its artist (``Genres`` separated by ``; ``). The older release also
has a ``Genre`` column and one artist row per genre: rows of one link are
merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import DatasetError, LoadReport, Lyrics, csv_table

ARTISTS = "artists-data.csv"
#: ISO 639-1 code -> the language name of the older release's Idiom column.
LANGUAGE_NAMES = {"en": "english", "pt": "portuguese", "es": "spanish", "fr": "french", "de": "german",
                  "it": "italian", "nl": "dutch"}
LYRICS = "lyrics-data.csv"


@dataclass(frozen=True)
class Artist:
    """One artist page: ``link`` its site path (``/10000-maniacs/``),
    ``songs`` the song count the site shows, ``popularity`` the site's
    popularity score (None when missing)."""

    link: str
    name: str
    genres: tuple[str, ...]
    songs: int | None
    popularity: float | None


#: None declared: ``python -m trainer fetch`` does not get this dataset.
REMOTES = ()


def check_layout(root: str | Path) -> str | None:
    """None when the folder ``root`` holds artists-data.csv and
    lyrics-data.csv, else which are missing."""
    missing = [name for name in (ARTISTS, LYRICS) if not (Path(root) / name).is_file()]
    return f"no {' or '.join(missing)} (Vagalume layout)" if missing else None


def _number(text: str, kind):
    try:
        return kind(float(text))
    except ValueError:
        return None


def load_artists(artists_csv: str | Path, *, report: LoadReport | None = None) -> dict[str, Artist]:
    """Artists of ``artists-data.csv`` by link. Rows with a wrong field
    count or no link are skipped and listed in ``report``."""
    report = report if report is not None else LoadReport()
    _, column, rows = csv_table(artists_csv, required=("Artist", "Genres", "Link"), report=report)
    artists: dict[str, Artist] = {}
    for _, where, fields in rows:
        link = fields[column["Link"]].strip()
        if not link:
            report.skip(where, "empty Link")
            continue
        genres = tuple(g.strip() for g in fields[column["Genres"]].split(";") if g.strip())
        if link in artists:
            genres = tuple(dict.fromkeys(artists[link].genres + genres))
        artists[link] = Artist(
            link=link,
            name=fields[column["Artist"]].strip(),
            genres=genres,
            songs=_number(fields[column["Songs"]], int) if "Songs" in column else None,
            popularity=_number(fields[column["Popularity"]], float) if "Popularity" in column else None,
        )
    return artists


def load(root: str | Path, *, language: str | None = None, report: LoadReport | None = None) -> list[Lyrics]:
    """Lyrics of ``root/lyrics-data.csv`` with the genres of their artist
    from ``root/artists-data.csv``: key the song link, language as written.

    language : keep only songs in this language (compared without case, to
        the ``language`` or ``Idiom`` value; an ISO code and the language's
        English name are the same: ``en`` keeps ``en`` and ``ENGLISH``).
    Songs with a wrong field count, empty lyrics, a repeated link, an artist
    link missing from artists-data.csv or an artist without genres are
    skipped and listed in ``report`` as ``file:line: cause``.
    """
    root = Path(root)
    for name in (ARTISTS, LYRICS):
        if not (root / name).is_file():
            raise DatasetError(f"{root / name}: missing (Vagalume layout)")
    report = report if report is not None else LoadReport()
    artists = load_artists(root / ARTISTS, report=report)
    lyrics_csv = root / LYRICS
    _, column, rows = csv_table(lyrics_csv, required=("ALink", "SName", "SLink", "Lyric"), report=report)
    language_column = column.get("language", column.get("Idiom"))
    # The newer release writes ISO codes ("en"), the older one names ("ENGLISH"): accept either.
    wanted = None
    if language is not None:
        code = language.lower()
        wanted = {code, LANGUAGE_NAMES.get(code, code), *(c for c, n in LANGUAGE_NAMES.items() if n == code)}
    records, seen = [], set()
    for _, where, fields in rows:
        song_language = fields[language_column].strip() if language_column is not None else ""
        if wanted is not None and song_language.lower() not in wanted:
            continue
        link, artist_link = fields[column["SLink"]].strip(), fields[column["ALink"]].strip()
        text = fields[column["Lyric"]]
        artist = artists.get(artist_link)
        cause = (
            "empty Lyric" if not text.strip()
            else f"song link {link!r} repeated" if link in seen
            else f"artist {artist_link!r} not in {ARTISTS}" if artist is None
            else f"artist {artist_link!r} has no genre" if not artist.genres
            else None
        )
        if cause:
            report.skip(where, cause)
            continue
        seen.add(link)
        records.append(
            Lyrics(
                key=link,
                artists=(artist.name,),
                title=fields[column["SName"]].strip(),
                text=text,
                labels=artist.genres,
                language=song_language,
            )
        )
    return records


def balanced_top_genres(records: list[Lyrics], *, top: int = 10, per_genre: int = 2000, rng) -> list[Lyrics]:
    """The paper's selection (the lyrics paper, section III.B): the ``top`` genres
    with the most songs (a song counts for each genre of its artist), then
    ``per_genre`` songs drawn at random without replacement for each
    (fewer when a genre has fewer). A song is drawn for the first of its
    artist's genres that is among the top ones (the artist's main genre),
    so no song is drawn twice; its labels are its artist's genres among the
    top ones. ``rng``: a numpy Generator. Order: by genre, then as read."""
    counts: dict[str, int] = {}
    for record in records:
        for genre in record.labels:
            counts[genre] = counts.get(genre, 0) + 1
    kept = sorted(counts, key=lambda g: (-counts[g], g))[:top]
    wanted = set(kept)
    pools: dict[str, list[Lyrics]] = {genre: [] for genre in kept}
    for record in records:
        labels = tuple(g for g in record.labels if g in wanted)
        if labels:
            pools[labels[0]].append(Lyrics(key=record.key, artists=record.artists, title=record.title,
                                           text=record.text, labels=labels, language=record.language))
    chosen: list[Lyrics] = []
    for genre in kept:
        pool = pools[genre]
        picks = sorted(rng.choice(len(pool), size=min(per_genre, len(pool)), replace=False)) if pool else []
        chosen.extend(pool[i] for i in picks)
    return chosen
