"""``python -m trainer tagmap``: the shipped tag maps, from the tables below.

A tag map (family :mod:`tagcore.families.tagmap`) turns other bundles'
label scores into a vocabulary of the product, in the same analysis pass:
musicnn's Last.fm and MagnaTagATune tags into beets' genre names, mood
words, instruments, voices and energy words. The maps are data: which tag
feeds which label (the tables), above which probability it counts (the
thresholds), and how sources rank (biases and ceilings). This module holds
the tables, writes the bundles from them, and evaluates them::

    python -m trainer tagmap --out tagcore/bundles       # write the five bundles
    python -m trainer tagmap --evaluate --data ../shared/datasets

``--evaluate`` needs the real data (gtzan_mini, mood_4q): it reads the
cached per-patch outputs of both musicnn models
(:func:`trainer.embeddings.backbone_outputs`), scores the default genre
options (the genre map, a GTZAN-trained head on the MSD embedding, and
their max fusion) with artist-disjoint cross-validation on the AllMusic
genres of mood_4q and on gtzan_mini, prints the table of
``docs/models/tagmap.md``, the genre thresholds fitted on all of mood_4q
(the ones :data:`GENRE_THRESHOLDS` ships) and the threshold rule's values
for the other maps. Writing bundles needs no data.

Thresholds
----------
- **genre** (:data:`GENRE_THRESHOLDS`): fitted on the AllMusic genres of
  mood_4q's 900 clips and the GTZAN genres of gtzan_mini's 100
  (:data:`GTZAN_ALLMUSIC`) by coordinate ascent (:func:`fit_thresholds`) on
  the F1 of the written set (threshold 0.5 on the map's scores, at most 2
  genres), each written genre counted for its AllMusic genre
  (:func:`allmusic_genre`); a subgenre only among its source's top 10%
  (:data:`SUBGENRE_QUANTILES`). Cross-validated with folds that keep each
  artist of mood_4q on one side; the shipped values are fitted on all clips.
- **mood, instrument, voice, energy** (:func:`rule_threshold`): a rule
  fitted on no label: half the tag's 99th percentile over 1,000 real clips
  (mood_4q and gtzan_mini), i.e. half of what it reaches on the ten clips
  where it is most evident. musicnn's outputs are small and differ in scale
  from tag to tag; half the clear case keeps a tag off clips where it is
  merely possible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

MSD, MTT = "musicnn-msd", "musicnn-mtt"
#: The quadrant head (labels Q1..Q4) the mood map reads, and the GTZAN
#: head the combined genre option reads.
MOOD_HEAD, GTZAN_HEAD = "mood4q", "genre10"
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
VERSION = "1"
#: The bundles this module writes.
DEFAULT_NAMES = ("genre-musicnn", "mood-musicnn", "instrument-mtt", "voice-mtt", "energy-mtt")

# --- Genre ------------------------------------------------------------------

#: Source tag -> beets genre name (lower case, as lastgenre names it: in its
#: genres.txt or genres-tree.yaml; the plugin title-cases it). Synonyms and
#: near-synonyms go to one name so that two slots are not spent on one
#: genre ("alternative"/"alternative rock", "indie"/"indie rock",
#: "electronic"/"electronica"/"electro", "metal"/"heavy metal").
GENRE_MAP: dict[str, dict[str, str]] = {
    MSD: {
        "rock": "rock",
        "pop": "pop",
        "alternative": "alternative rock",
        "alternative rock": "alternative rock",
        "indie": "indie rock",
        "indie rock": "indie rock",
        "indie pop": "indie pop",
        "electronic": "electronic",
        "electronica": "electronic",
        "electro": "electronic",
        "dance": "dance music",
        "House": "house",
        "chillout": "chillout",
        "ambient": "ambient",
        "jazz": "jazz",
        "metal": "metal",
        "heavy metal": "metal",
        "hard rock": "hard rock",
        "classic rock": "classic rock",
        "Progressive rock": "progressive rock",
        "punk": "punk rock",
        "soul": "soul",
        "rnb": "r&b",
        "funk": "funk",
        "Hip-Hop": "hip hop",
        "blues": "blues",
        "country": "country",
        "folk": "folk",
        "easy listening": "easy listening",
    },
    MTT: {
        "classical": "classical",
        "classic": "classical",
        "rock": "rock",
        "pop": "pop",
        "metal": "metal",
        "country": "country",
        "electronic": "electronic",
        "techno": "techno",
        "dance": "dance music",
        "ambient": "ambient",
        "new age": "new age music",
        "indian": "world music",
    },
}

#: Tags of the sources that never become genres, and why. Every tag of
#: musicnn-msd and musicnn-mtt is in GENRE_MAP or here (a test checks).
DECADES = ("60s", "70s", "80s", "90s", "00s", "oldies")
NOT_GENRES: dict[str, dict[str, str]] = {
    MSD: {
        **{tag: "a period, not a genre" for tag in DECADES},
        "female vocalists": "a voice (task voice)",
        "female vocalist": "a voice (task voice)",
        "male vocalists": "a voice (task voice)",
        "instrumental": "a voice (task voice)",
        "guitar": "an instrument",
        "acoustic": "a sound, across genres",
        "beautiful": "a judgement",
        "catchy": "a judgement",
        "sexy": "a mood (task mood)",
        "party": "a mood (task mood)",
        "happy": "a mood (task mood)",
        "sad": "a mood (task mood)",
        "Mellow": "a mood (task mood)",
        "chill": "a mood (task mood); chillout is the genre",
        "experimental": "a descriptor used across genres (indie, electronic, noise)",
    },
    MTT: {
        **{tag: "an instrument (task instrument)" for tag in (
            "guitar", "strings", "drums", "piano", "violin", "synth", "harpsichord", "flute", "sitar", "harp",
            "cello")},
        **{tag: "a voice (task voice)" for tag in (
            "vocal", "vocals", "voice", "singing", "female", "woman", "female vocal", "female voice", "male", "man",
            "male vocal", "male voice", "no vocal", "no vocals", "no voice", "choir", "choral")},
        **{tag: "tempo or loudness (task energy)" for tag in ("slow", "fast", "soft", "quiet", "loud")},
        "opera": "written where it sounds operatic: on 73 of mood_4q's clips at its fitted threshold, 48 of them "
                 "AllMusic Vocal or Jazz (crooners, standards) and hardly any Classical",
        "beat": "a sound, across genres",
        "beats": "a sound, across genres",
        "solo": "a texture, across genres",
        "weird": "a judgement",
    },
}

#: Per-source thresholds of the genre map, fitted on the AllMusic genres of
#: all 900 mood_4q clips and the genres of gtzan_mini's 100 (fit_thresholds;
#: python -m trainer tagmap --evaluate prints them; docs/models/tagmap.md
#: has the cross-validated figures).
GENRE_THRESHOLDS: dict[tuple[str, str], float] = {
    (MSD, 'rock'): 0.2293,
    (MSD, 'pop'): 0.17,
    (MSD, 'alternative'): 0.1608,
    (MSD, 'alternative rock'): 0.0942,
    (MSD, 'indie'): 0.1338,
    (MSD, 'indie rock'): 0.0854,
    (MSD, 'indie pop'): 0.0261,
    (MSD, 'electronic'): 0.207,
    (MSD, 'electronica'): 0.069,
    (MSD, 'electro'): 0.049,
    (MSD, 'dance'): 0.2454,
    (MSD, 'House'): 0.0568,
    (MSD, 'chillout'): 0.1125,
    (MSD, 'ambient'): 0.196,
    (MSD, 'jazz'): 0.3232,
    (MSD, 'metal'): 0.4204,
    (MSD, 'heavy metal'): 0.1155,
    (MSD, 'hard rock'): 0.1108,
    (MSD, 'classic rock'): 0.1086,
    (MSD, 'Progressive rock'): 0.0961,
    (MSD, 'punk'): 0.1671,
    (MSD, 'soul'): 0.2893,
    (MSD, 'rnb'): 0.19,
    (MSD, 'funk'): 0.1488,
    (MSD, 'Hip-Hop'): 0.1759,
    (MSD, 'blues'): 0.2317,
    (MSD, 'country'): 0.1053,
    (MSD, 'folk'): 0.1633,
    (MSD, 'easy listening'): 0.1073,
    (MTT, 'classical'): 0.4208,
    (MTT, 'classic'): 0.081,
    (MTT, 'rock'): 0.3932,
    (MTT, 'pop'): 0.2773,
    (MTT, 'metal'): 0.3345,
    (MTT, 'country'): 0.2049,
    (MTT, 'electronic'): 0.2544,
    (MTT, 'techno'): 0.5767,
    (MTT, 'dance'): 0.1823,
    (MTT, 'ambient'): 0.2104,
    (MTT, 'new age'): 0.0458,
    (MTT, 'indian'): 0.2852,
}

#: Recommended decision of each map (the plugin's threshold and count when
#: its configuration names none).
DECISIONS = {
    "genre": {"threshold": 0.5, "count": 2},
    "mood": {"threshold": 0.5, "count": 2},
    "instrument": {"threshold": 0.5, "count": 3},
    "voice": {"threshold": 0.5, "count": 2},
    "energy": {"threshold": 0.5, "count": 2},
}

# --- Mood -------------------------------------------------------------------

#: Quadrant of Russell's plane -> mood word (the quadrant head decides the
#: first mood).
QUADRANT_MOODS = {"Q1": "happy", "Q2": "aggressive", "Q3": "sad", "Q4": "calm"}
#: musicnn-msd's mood tags -> mood words.
MSD_MOODS = {
    "happy": "happy",
    "sad": "sad",
    "Mellow": "calm",
    "chill": "calm",
    "chillout": "calm",
    "easy listening": "calm",
    "party": "party",
    "sexy": "romantic",
}
#: MSD tags a listener might read as moods that the map leaves out.
MSD_NOT_MOODS = {"beautiful": "a judgement of quality, not a mood", "catchy": "a judgement of quality, not a mood"}
MOOD_LABELS = ("happy", "aggressive", "sad", "calm", "party", "romantic")
#: Tiers: a quadrant word at the head's uniform share (0.25 of a softmax
#: over four quadrants: the best quadrant always has at least this) scores
#: HEAD_FLOOR; MSD words never score more than MSD_CEILING < HEAD_FLOOR.
HEAD_THRESHOLD, HEAD_FLOOR, MSD_CEILING = 0.25, 0.6, 0.59
#: AllMusic mood words (mood_4q's MoodsStrSplit) that count as each word in
#: the evaluation of the MSD mood words.
ALLMUSIC_MOODS = {
    "happy": ("Happy", "Cheerful", "Joyous", "Gleeful", "Exuberant", "Euphoric", "Fun", "Playful", "Carefree",
              "Giddy", "Bright", "Optimistic", "Uplifting", "Positive"),
    "aggressive": ("Aggressive", "Angry", "Hostile", "Fierce", "Harsh", "Outraged", "Volatile", "Confrontational",
                   "Belligerent", "Menacing", "Malevolent"),
    "sad": ("Sad", "Gloomy", "Bleak", "Melancholy", "Somber", "Anguished", "Distraught", "Weary", "Lonely",
            "Plaintive", "Tragic", "Wistful", "Bittersweet", "Poignant"),
    "calm": ("Calm", "Peaceful", "Soothing", "Gentle", "Relaxed", "Quiet", "Soft", "Mellow", "Laid-Back",
             "Delicate", "Lazy"),
    "party": ("Celebratory", "Rowdy", "Boisterous", "Rollicking", "Hedonistic", "Fun", "Raucous", "Exciting"),
    "romantic": ("Romantic", "Sensual", "Sexy", "Sexual", "Passionate", "Intimate", "Erotic", "Tender"),
}

# --- MagnaTagATune maps -----------------------------------------------------

#: Source (bundle, tag) -> label, one table per task.
INSTRUMENT_MAP = {(MTT, tag): tag for tag in (
    "guitar", "piano", "harpsichord", "violin", "cello", "strings", "harp", "flute", "sitar", "drums", "synth")}
VOICE_MAP = {
    (MTT, "female"): "female vocal",
    (MTT, "woman"): "female vocal",
    (MTT, "female vocal"): "female vocal",
    (MTT, "female voice"): "female vocal",
    (MTT, "male"): "male vocal",
    (MTT, "man"): "male vocal",
    (MTT, "male vocal"): "male vocal",
    (MTT, "male voice"): "male vocal",
    # MTT's "no vocal", "no vocals" and "no voice" say nothing: their median
    # is 0.040 on GTZAN's metal clips and 0.040 on its classical ones. MSD's
    # "instrumental" separates them (0.012 and 0.305).
    (MSD, "instrumental"): "no vocals",
    (MTT, "choir"): "choir",
    (MTT, "choral"): "choir",
}
#: MTT's tags a reader might expect in the voice map, and why they are not.
VOICE_LEFT_OUT = {(MTT, t): "uninformative on real clips (same median on metal and classical)"
                  for t in ("no vocal", "no vocals", "no voice")}
ENERGY_MAP = {(MTT, "fast"): "fast", (MTT, "slow"): "slow", (MTT, "soft"): "soft", (MTT, "quiet"): "soft",
              (MTT, "loud"): "loud"}
MTT_MAPS = {"instrument": INSTRUMENT_MAP, "voice": VOICE_MAP, "energy": ENERGY_MAP}

#: Thresholds of the rule maps (rule_threshold over mood_4q + gtzan_mini;
#: python -m trainer tagmap --evaluate prints them).
RULE_THRESHOLDS: dict[tuple[str, str], float] = {
    (MTT, 'guitar'): 0.301,
    (MTT, 'piano'): 0.327,
    (MTT, 'harpsichord'): 0.053,
    (MTT, 'violin'): 0.217,
    (MTT, 'cello'): 0.03,
    (MTT, 'strings'): 0.204,
    (MTT, 'harp'): 0.021,
    (MTT, 'flute'): 0.093,
    (MTT, 'sitar'): 0.053,
    (MTT, 'drums'): 0.209,
    (MTT, 'synth'): 0.108,
    (MTT, 'female'): 0.239,
    (MTT, 'woman'): 0.191,
    (MTT, 'female vocal'): 0.138,
    (MTT, 'female voice'): 0.108,
    (MTT, 'male'): 0.192,
    (MTT, 'man'): 0.164,
    (MTT, 'male vocal'): 0.183,
    (MTT, 'male voice'): 0.133,
    (MSD, 'instrumental'): 0.138,
    (MTT, 'choir'): 0.051,
    (MTT, 'choral'): 0.032,
    (MTT, 'fast'): 0.264,
    (MTT, 'slow'): 0.193,
    (MTT, 'soft'): 0.063,
    (MTT, 'quiet'): 0.08,
    (MTT, 'loud'): 0.288,
    (MSD, 'happy'): 0.005,
    (MSD, 'sad'): 0.009,
    (MSD, 'Mellow'): 0.025,
    (MSD, 'chill'): 0.019,
    (MSD, 'chillout'): 0.073,
    (MSD, 'easy listening'): 0.041,
    (MSD, 'party'): 0.011,
    (MSD, 'sexy'): 0.019,
}

#: Figures of the evaluation, stored in the bundles' metrics (pasted from
#: python -m trainer tagmap --evaluate; docs/models/tagmap.md).
EVALUATION: dict[str, dict] = {
    'genre': {'protocol': '5 rounds per seed (seeds [0, 1, 2]): mood_4q (900 clips, 662 artists) in 5 '
                          'artist-disjoint folds and gtzan_mini (100 clips) in 5 stratified folds; round i fits on '
                          'the other folds of both and scores fold i of both; mean and sd over the 15 rounds; the '
                          'shipped thresholds are fitted on all clips',
              'metric': 'AllMusic genres of mood_4q (each written genre counted for its AllMusic genre); hit: top '
                        "genre among the clip's genres (clips the vocabulary can express); "
                        'precision/recall/f1/none: the set written at threshold 0.5, at most 2; gtzan: accuracy of '
                        'the top genre among those naming a GTZAN genre; mean over the rounds '
                        '(docs/models/tagmap.md has the sd)',
              'this_map': {'hit': 0.719,
                           'hit_all': 0.6537,
                           'precision': 0.5697,
                           'recall': 0.431,
                           'f1': 0.4897,
                           'none': 0.0381,
                           'gtzan': 0.5567},
              'this_map_at_most_1': {'hit': 0.719,
                                     'hit_all': 0.6537,
                                     'precision': 0.6692,
                                     'recall': 0.3592,
                                     'f1': 0.4672,
                                     'none': 0.0381,
                                     'gtzan': 0.5567},
              'rule_thresholds': {'hit': 0.664,
                                  'hit_all': 0.6033,
                                  'precision': 0.5645,
                                  'recall': 0.4032,
                                  'f1': 0.4702,
                                  'none': 0.0633,
                                  'gtzan': 0.49},
              'gtzan_head': {'hit': 0.6506,
                             'hit_all': 0.5659,
                             'precision': 0.6111,
                             'recall': 0.2929,
                             'f1': 0.3956,
                             'none': 0.1411,
                             'gtzan': 0.9133},
              'max_fusion_with_gtzan_head': {'hit': 0.6802,
                                             'hit_all': 0.6433,
                                             'precision': 0.5527,
                                             'recall': 0.4411,
                                             'f1': 0.4898,
                                             'none': 0.0233,
                                             'gtzan': 0.7667}},
    'mood': {'protocol': 'quadrant head cross-validated on mood_4q (artist-disjoint 5-fold, seeds 0-2; a logistic '
                         'regression on the MSD embedding standing in for mood4q)',
             'quadrant_accuracy': 0.7159,
             'first_is_head_best': 1.0,
             'first_is_true_quadrant_word': 0.7159,
             'two_moods_share': 0.6544,
             'msd_word_share': 0.1452,
             'first_word_precision': 0.5567,
             'msd_words_precision': 0.3318,
             'msd_words_alone_precision': {'happy': 0.585,
                                           'sad': 0.514,
                                           'Mellow': 0.483,
                                           'chill': 0.424,
                                           'chillout': 0.439,
                                           'easy listening': 0.467,
                                           'party': 0.337,
                                           'sexy': 0.519},
             'msd_words_alone_base_rate': {'happy': 0.246,
                                           'sad': 0.28,
                                           'Mellow': 0.232,
                                           'chill': 0.232,
                                           'chillout': 0.232,
                                           'easy listening': 0.232,
                                           'party': 0.161,
                                           'sexy': 0.166}},
    'instrument': {'written_share_mood_4q': {'guitar': 0.189,
                                             'piano': 0.039,
                                             'harpsichord': 0.03,
                                             'violin': 0.02,
                                             'cello': 0.023,
                                             'strings': 0.026,
                                             'harp': 0.041,
                                             'flute': 0.027,
                                             'sitar': 0.049,
                                             'drums': 0.15,
                                             'synth': 0.082}},
    'voice': {'written_share_mood_4q': {'female vocal': 0.094,
                                        'male vocal': 0.194,
                                        'no vocals': 0.058,
                                        'choir': 0.023},
              'written_share_gtzan': {'classical': {'female vocal': 0.0,
                                                    'male vocal': 0.0,
                                                    'no vocals': 1.0,
                                                    'choir': 0.0},
                                      'pop': {'female vocal': 0.7,
                                              'male vocal': 0.0,
                                              'no vocals': 0.0,
                                              'choir': 0.0},
                                      'rock': {'female vocal': 0.0,
                                               'male vocal': 0.6,
                                               'no vocals': 0.0,
                                               'choir': 0.0},
                                      'metal': {'female vocal': 0.1,
                                                'male vocal': 0.1,
                                                'no vocals': 0.0,
                                                'choir': 0.0}}},
    'energy': {'written_share_mood_4q': {'fast': 0.143, 'slow': 0.093, 'soft': 0.066, 'loud': 0.098},
               'high_arousal_share_where_written': {'fast': 0.984, 'slow': 0.012, 'soft': 0.034, 'loud': 1.0}},
}


# --- lastgenre's data ---------------------------------------------------------


def genre_tree_paths() -> dict[str, tuple[str, ...]]:
    """Each genre of lastgenre's genres-tree.yaml -> its path from the root
    (``"indie rock" -> ("rock", "alternative rock", "indie rock")``)."""
    from tagcore.lastgenre import tree_paths

    return tree_paths()


def lastgenre_names() -> frozenset[str]:
    """Every genre lastgenre can write: genres.txt and the tree's nodes."""
    from tagcore.lastgenre import lastgenre_names as names

    return names()


#: lastgenre's top-level genres -> AllMusic's genres (AllMusic files metal,
#: punk and indie under Pop/Rock, soul and funk under R&B, ambient and
#: house under Electronic, hip hop as Rap, world music as International).
TOP_TO_ALLMUSIC = {
    "african": "International", "asian": "International", "world music": "International",
    "avant-garde": "Avant-Garde", "blues": "Blues", "caribbean and latin american": "Latin",
    "classical": "Classical", "comedy": "Comedy/Spoken", "country": "Country", "easy listening": "Easy Listening",
    "electronic": "Electronic", "folk": "Folk", "hip hop": "Rap", "jazz": "Jazz", "kids music": "Children's",
    "pop": "Pop/Rock", "rock": "Pop/Rock", "singer-songwriter": "Pop/Rock", "r&b": "R&B", "reggae": "Reggae",
    "soundtrack": "Stage & Screen",
}
#: Genres of the maps that lastgenre's tree lacks (genres.txt has them).
OUTSIDE_TREE_TO_ALLMUSIC = {"metal": "Pop/Rock", "dance music": "Electronic", "new age music": "New Age"}
#: Genres of the maps (and of the GTZAN head) -> the GTZAN genre they count
#: for in the GTZAN accuracy; genres without one (electronic, soul...) are
#: not candidates there.
GTZAN_CLASS = {
    **{g: "rock" for g in ("rock", "classic rock", "hard rock", "alternative rock", "indie rock", "punk rock",
                           "progressive rock")},
    "metal": "metal", "pop": "pop", "indie pop": "pop", "hip hop": "hiphop", "jazz": "jazz", "blues": "blues",
    "country": "country", "classical": "classical", "opera": "classical", "disco": "disco", "reggae": "reggae",
}


def normalize(label: str) -> str:
    """A label as a lower-case lastgenre name ("hiphop" -> "hip hop")."""
    from tagcore.lastgenre import normalize_label

    return normalize_label(label)


def allmusic_genre(label: str) -> str | None:
    """The AllMusic genre a beets genre name counts for: its top ancestor in
    lastgenre's tree, mapped by TOP_TO_ALLMUSIC; None when unknown."""
    name = normalize(label)
    if name in OUTSIDE_TREE_TO_ALLMUSIC:
        return OUTSIDE_TREE_TO_ALLMUSIC[name]
    path = genre_tree_paths().get(name)
    return TOP_TO_ALLMUSIC.get(path[0]) if path else None


def gtzan_class(label: str) -> str | None:
    return GTZAN_CLASS.get(normalize(label))


# --- Map specifications --------------------------------------------------------


@dataclass
class MapSpec:
    """One tag map: what it reads and the rules it applies."""

    name: str
    task: str
    sources: list[str]  # bundles whose scores it reads, in order
    source_labels: dict[str, list[str]]  # their labels, in their order
    labels: list[str]
    rules: list[tuple]  # (input "bundle:tag", label, threshold, bias(, ceiling))
    description: str = ""
    provenance: dict = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        return [f"{b}:{t}" for b in self.sources for t in self.source_labels[b]]

    def build(self):
        from tagcore.families import tagmap

        return tagmap.build(inputs=self.inputs, labels=self.labels, rules=self.rules)


def bundle_labels(name: str) -> list[str] | None:
    """Labels of an installed bundle, None when it is not installed."""
    from tagcore.bundle import BundleError, read_config

    try:
        return list(read_config(name)[1].get("labels", []))
    except BundleError:
        return None


def musicnn_labels() -> dict[str, list[str]]:
    out = {}
    for name in (MSD, MTT):
        labels = bundle_labels(name)
        if labels is None:
            raise SystemExit(f"error: the bundle {name} is not installed (python -m trainer musicnn)")
        out[name] = labels
    return out


def _threshold(table: dict[tuple[str, str], float], bundle: str, tag: str) -> float:
    try:
        return table[(bundle, tag)]
    except KeyError:
        raise SystemExit(f"error: no threshold for {bundle}:{tag}; run python -m trainer tagmap --evaluate") from None


def genre_rules(thresholds: dict[tuple[str, str], float] | None = None, *,
                head: dict[str, float] | None = None) -> list[tuple]:
    """The genre map's rules; ``head``: GTZAN label -> threshold adds the
    GTZAN head's genres as sources (the combined option)."""
    thresholds = GENRE_THRESHOLDS if thresholds is None else thresholds
    rules = [(f"{bundle}:{tag}", genre, _threshold(thresholds, bundle, tag), 0.0)
             for bundle, table in GENRE_MAP.items() for tag, genre in table.items()]
    for label, threshold in (head or {}).items():
        rules.append((f"{GTZAN_HEAD}:{label}", normalize(label), threshold, 0.0))
    return rules


def genre_labels(*, head: bool = False) -> list[str]:
    labels = list(dict.fromkeys(g for table in GENRE_MAP.values() for g in table.values()))
    if head:
        labels += [normalize(g) for g in GTZAN_GENRES if normalize(g) not in labels]
    return labels


def genre_spec(thresholds=None) -> MapSpec:
    return MapSpec(
        name="genre-musicnn", task="genre", sources=[MSD, MTT], source_labels=musicnn_labels(),
        labels=genre_labels(), rules=genre_rules(thresholds),
        description="musicnn's Last.fm (MSD) and MagnaTagATune genre tags as beets genre names",
        provenance={"tables": "trainer/tagmap.py: GENRE_MAP, NOT_GENRES, GENRE_THRESHOLDS",
                    "thresholds": "per source, fitted by coordinate ascent on the F1 of the written set "
                                  "(>= 0.5, at most 2) against the AllMusic genres of mood_4q's 900 clips and "
                                  "the GTZAN genres of gtzan_mini (each genre counted for its AllMusic genre "
                                  "through lastgenre's tree); subgenres among their source's top 10%; "
                                  "cross-validated with artist-disjoint folds",
                    "fusion": "max over sources of logit(p) - logit(threshold): a genre passes 0.5 when one of "
                              "its sources passes its threshold; the strongest source gives its confidence"},
    )


def mood_rules(thresholds: dict[tuple[str, str], float] | None = None) -> list[tuple]:
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    bias = float(np.log(HEAD_FLOOR / (1 - HEAD_FLOOR)))
    rules = [(f"{MOOD_HEAD}:{q}", word, HEAD_THRESHOLD, bias) for q, word in QUADRANT_MOODS.items()]
    rules += [(f"{MSD}:{tag}", word, _threshold(thresholds, MSD, tag), 0.0, MSD_CEILING)
              for tag, word in MSD_MOODS.items()]
    return rules


def mood_spec(thresholds=None, head_labels: Sequence[str] | None = None) -> MapSpec:
    labels = {MOOD_HEAD: list(head_labels or QUADRANTS), MSD: musicnn_labels()[MSD]}
    return MapSpec(
        name="mood-musicnn", task="mood", sources=[MOOD_HEAD, MSD], source_labels=labels,
        labels=list(MOOD_LABELS), rules=mood_rules(thresholds),
        description="mood words from the quadrant head mood4q (first mood) and musicnn-msd's mood tags",
        provenance={"tables": "trainer/tagmap.py: QUADRANT_MOODS, MSD_MOODS, RULE_THRESHOLDS",
                    "thresholds": f"quadrant words: {HEAD_THRESHOLD} (a softmax over four quadrants: the best "
                                  f"quadrant always reaches it) with a bias putting them at >= {HEAD_FLOOR}; "
                                  f"MSD words: half their 99th percentile over mood_4q + gtzan_mini, capped at "
                                  f"{MSD_CEILING} so the first mood always comes from the quadrant head"},
    )


def mtt_spec(task: str, thresholds=None) -> MapSpec:
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    table = MTT_MAPS[task]
    sources = list(dict.fromkeys(bundle for bundle, _ in table))
    labels = musicnn_labels()
    return MapSpec(
        name=f"{task}-mtt", task=task, sources=sources, source_labels={b: labels[b] for b in sources},
        labels=list(dict.fromkeys(table.values())),
        rules=[(f"{b}:{tag}", label, _threshold(thresholds, b, tag), 0.0) for (b, tag), label in table.items()],
        description=f"{task} words from musicnn's MagnaTagATune tags" + (
            " (and the Last.fm tag 'instrumental' for 'no vocals')" if MSD in sources else ""),
        provenance={"tables": f"trainer/tagmap.py: {task.upper()}_MAP, RULE_THRESHOLDS",
                    "thresholds": "half each tag's 99th percentile over 1,000 real clips (mood_4q + gtzan_mini); "
                                  "no label used"},
    )


def all_specs(*, mood_head_labels=None) -> list[MapSpec]:
    return [genre_spec(), mood_spec(head_labels=mood_head_labels)] + [mtt_spec(t) for t in MTT_MAPS]


def write_bundle(spec: MapSpec, out: Path, *, command: str) -> Path:
    """Write ``spec`` as a bundle ``out/<name>`` (atomically) with its
    recommended decision in config.json."""
    import os
    import tempfile

    from tagcore.bundle import CONFIG_FILE, save_bundle

    config, model = spec.build()
    path = save_bundle(
        out / spec.name, model=model, family="tagmap", name=spec.name, version=VERSION, labels=spec.labels,
        model_config=config.to_dict(), task=spec.task, input={"kind": "scores", "bundles": spec.sources},
        provenance={**spec.provenance, "description": spec.description, "command": command,
                    "evaluation": "docs/models/tagmap.md; python -m trainer tagmap --evaluate --data DATASETS",
                    "written": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()},
        metrics=EVALUATION.get(spec.task, {}),
    )
    # save_bundle knows no "decision"; add it the same atomic way.
    config_path = path / CONFIG_FILE
    data = json.loads(config_path.read_text(encoding="utf-8"))
    data["decision"] = DECISIONS[spec.task]
    fd, staging = tempfile.mkstemp(prefix=".config.", dir=path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.chmod(staging, 0o644)
    os.replace(staging, config_path)
    return path


# --- Evaluation -------------------------------------------------------------------


def tagging_patches(name: str = MSD) -> int:
    """Patches the analysis pass averages for a musicnn bundle (its excerpt
    over its patch length): evaluation reads the same central patches."""
    from tagcore.bundle import load_bundle

    features = load_bundle(name).features
    return max(1, features.excerpt_frames // features.patch_frames)


@dataclass
class Clips:
    """Cached outputs of the musicnn models for one dataset, and its labels."""

    name: str
    paths: list[str]
    artists: list[str]
    labels: list[tuple[str, ...]]  # genres (AllMusic or GTZAN)
    scores: dict[str, np.ndarray]  # bundle -> (n, tags) probabilities
    tags: dict[str, list[str]]
    embedding: np.ndarray  # (n, 200) MSD track embedding
    moods: list[tuple[str, ...]] = field(default_factory=list)
    quadrants: list[str] = field(default_factory=list)

    def matrix(self, sources: Sequence[str], extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Input matrix of a map reading ``sources`` (extra: scores of other
        sources, e.g. a head's out-of-fold probabilities)."""
        scores = {**self.scores, **(extra or {})}
        return np.concatenate([scores[s] for s in sources], axis=1).astype(np.float32)


def load_clips(data: Path, *, patches: int, log=print) -> tuple[Clips, Clips]:
    """mood_4q and gtzan_mini with their musicnn outputs (through the cache
    of trainer.embeddings, 10 patches extracted, ``patches`` central ones
    averaged as when tagging)."""
    from trainer.datasets import gtzan, mood_4q
    from trainer.embeddings import backbone_outputs

    def outputs(records):
        out = backbone_outputs([r.path for r in records], patches=10, progress=True)
        ok = out[MSD].ok
        if not ok.all():
            log(f"  {int((~ok).sum())} files failed: {list(out[MSD].errors.values())[:3]}")
        return out, ok

    root = data / "mood_4q"
    genres = mood_4q.load(root, labels="genres")
    moods = mood_4q.load(root, labels="moods")
    quadrants = mood_4q.load(root, labels="quadrant")
    assert [r.path for r in genres] == [r.path for r in moods] == [r.path for r in quadrants]
    out, ok = outputs(genres)
    keep = np.flatnonzero(ok)
    mood = Clips(
        name="mood_4q", paths=[genres[i].path for i in keep], artists=[genres[i].artist for i in keep],
        labels=[genres[i].labels for i in keep], moods=[moods[i].labels for i in keep],
        quadrants=[quadrants[i].labels[0] for i in keep],
        scores={b: out[b].track_scores(patches=patches)[keep] for b in (MSD, MTT)},
        tags={b: out[b].labels for b in (MSD, MTT)},
        embedding=out[MSD].track_embeddings(patches=patches)[keep],
    )
    records = gtzan.load(data / "gtzan_mini")
    out, ok = outputs(records)
    keep = np.flatnonzero(ok)
    gtz = Clips(
        name="gtzan_mini", paths=[records[i].path for i in keep], artists=[records[i].key for i in keep],
        labels=[records[i].labels for i in keep],
        scores={b: out[b].track_scores(patches=patches)[keep] for b in (MSD, MTT)},
        tags={b: out[b].labels for b in (MSD, MTT)},
        embedding=out[MSD].track_embeddings(patches=patches)[keep],
    )
    return mood, gtz


#: The rule: half the tag's RULE_PERCENTILE-th percentile over the
#: reference clips.
RULE_PERCENTILE = 99


def rule_threshold(scores: np.ndarray) -> float:
    """Half the 99th percentile of a tag's scores over the reference clips
    (half what it reaches on the 1% of clips where it is most evident),
    kept in [0.005, 0.5] and rounded to 3 decimals."""
    return round(float(np.clip(0.5 * np.percentile(scores, RULE_PERCENTILE), 0.005, 0.5)), 3)


def rule_thresholds(clips: Sequence[Clips], tags: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
    out = {}
    for bundle, tag in tags:
        column = clips[0].tags[bundle].index(tag)
        out[(bundle, tag)] = rule_threshold(np.concatenate([c.scores[bundle][:, column] for c in clips]))
    return out


def artist_folds(artists: Sequence[str], *, k: int, seed: int) -> list[np.ndarray]:
    """k test folds keeping each artist on one side, of about equal size
    (:func:`trainer.splits.group_folds`); a clip without an artist is a
    group of its own."""
    from trainer import splits

    return splits.group_folds(groups=[artist or f"#{i}" for i, artist in enumerate(artists)], k=k, seed=seed)


class FastMap:
    """The tagmap rule in numpy over a fixed input matrix, for fitting: the
    logit of each input once, then each rule's column on demand. Agrees
    with :class:`tagcore.families.tagmap.Model` (tests/test_tagmap_trainer.py)."""

    def __init__(self, x: np.ndarray, inputs: list[str], labels: list[str], rules: list[tuple]):
        eps = 1e-6
        p = np.clip(x.astype(np.float64), eps, 1 - eps)
        self.logits = np.log(p / (1 - p))
        self.index = {name: i for i, name in enumerate(inputs)}
        self.labels = labels
        self.rules = [list(r) for r in rules]
        self.by_label = {l: [j for j, r in enumerate(self.rules) if r[1] == l] for l in labels}

    def z(self, j: int) -> np.ndarray:
        source, _, threshold, bias, *ceiling = self.rules[j]
        z = self.logits[:, self.index[source]] - np.log(threshold / (1 - threshold)) + bias
        if ceiling and ceiling[0] < 1:
            z = np.minimum(z, np.log(ceiling[0] / (1 - ceiling[0])))
        return z

    def column(self, label: str) -> np.ndarray:
        js = self.by_label[label]
        if not js:
            return np.full(len(self.logits), -np.inf)
        return np.max([self.z(j) for j in js], axis=0)

    def logit_matrix(self) -> np.ndarray:
        return np.stack([self.column(l) for l in self.labels], axis=1)


def written(logits: np.ndarray, *, threshold: float = 0.5, count: int = 2) -> list[list[int]]:
    """Per row, the label indices the plugin writes: best first, score >=
    threshold, at most count (ties broken by index)."""
    cut = np.log(threshold / (1 - threshold))
    order = np.argsort(-logits, axis=1, kind="stable")[:, :count]
    return [[int(j) for j in row if logits[i, j] >= cut] for i, row in enumerate(order)]


@dataclass
class GenreScore:
    hit: float  # top genre among the clip's AllMusic genres, over expressible clips
    hit_all: float  # the same over all clips
    precision: float
    recall: float
    f1: float
    none: float  # share of clips left without a genre
    expressible: float  # share of clips with an AllMusic genre the option can express

    def as_dict(self) -> dict:
        return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def allmusic_score(logits: np.ndarray, labels: list[str], truth: Sequence[Iterable[str]] | "TruthMatrix", *,
                   threshold: float = 0.5, count: int = 2) -> GenreScore:
    """Scores of a genre option on AllMusic genres, per clip, pooled:

    - ``hit``: the top label (best score, whatever its value) counts for one
      of the clip's AllMusic genres; over the clips having an AllMusic genre
      that some label of the option counts for (``expressible``);
    - ``precision``/``recall``/``f1``: of the AllMusic genres the written
      labels (>= ``threshold``, at most ``count``, best first) count for,
      against all the clip's AllMusic genres (two written labels counting
      for one genre count once);
    - ``none``: share of clips with no label written.
    """
    truth = truth if isinstance(truth, TruthMatrix) else TruthMatrix(truth)
    column = np.array([truth.index.get(allmusic_genre(l), -1) for l in labels])
    can = np.zeros(truth.matrix.shape[1] + 1, bool)  # last slot: labels with no AllMusic genre
    for j, c in enumerate(column):
        if np.isfinite(logits[:, j]).any():
            can[c] = True
    can = can[:-1]
    rows = np.arange(len(logits))
    t = np.concatenate([truth.matrix, np.zeros((len(logits), 1), bool)], axis=1)
    top = np.argmax(logits, axis=1)
    hits = t[rows, column[top]] & np.isfinite(logits[rows, top])
    expressible = (truth.matrix & can).any(axis=1)
    cut = np.log(threshold / (1 - threshold))
    said = np.zeros_like(t)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :count]
    any_written = np.zeros(len(logits), bool)
    for k in range(order.shape[1]):
        j = order[:, k]
        ok = logits[rows, j] >= cut
        said[rows[ok], column[j[ok]]] = True
        any_written |= ok
    said, t = said[:, :-1], t[:, :-1]
    tp, fp, fn = int((said & t).sum()), int((said & ~t).sum()), int((t & ~said).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    n = len(logits)
    return GenreScore(hit=float(hits.sum()) / max(int(expressible.sum()), 1), hit_all=float(hits.sum()) / n,
                      precision=precision, recall=recall,
                      f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                      none=float((~any_written).mean()), expressible=float(expressible.mean()))


class TruthMatrix:
    """Clips' AllMusic genres as a boolean matrix (clips x genres); its
    columns include every genre a label can count for."""

    def __init__(self, truth: Sequence[Iterable[str]]):
        truth = [set(t) for t in truth]
        names = sorted(set().union(*truth, TOP_TO_ALLMUSIC.values(), OUTSIDE_TREE_TO_ALLMUSIC.values()))
        self.index = {g: i for i, g in enumerate(names)}
        self.matrix = np.zeros((len(truth), len(names)), bool)
        for i, genres in enumerate(truth):
            for g in genres:
                self.matrix[i, self.index[g]] = True


def gtzan_accuracy(logits: np.ndarray, labels: list[str], truth: Sequence[str]) -> float:
    """Accuracy of the top genre among the labels that name a GTZAN genre."""
    classes = [gtzan_class(l) for l in labels]
    keep = [j for j, c in enumerate(classes) if c]
    best = np.array(keep)[np.argmax(logits[:, keep], axis=1)]
    return float(np.mean([classes[j] == t for j, t in zip(best, truth)]))


#: GTZAN's genres as AllMusic genres, for fitting genre thresholds on
#: gtzan_mini beside mood_4q (disco: AllMusic files disco acts under R&B,
#: Pop/Rock or Electronic; any of them counts).
GTZAN_ALLMUSIC = {
    "blues": ("Blues",), "classical": ("Classical",), "country": ("Country",),
    "disco": ("Electronic", "R&B", "Pop/Rock"), "hiphop": ("Rap",), "jazz": ("Jazz",), "metal": ("Pop/Rock",),
    "pop": ("Pop/Rock",), "reggae": ("Reggae",), "rock": ("Pop/Rock",),
}
#: Candidate thresholds of a source: these percentiles of its scores. A
#: subgenre's sources only get the top ones (it is written on at most 10%
#: of the clips): AllMusic's genres cannot tell "progressive rock" from
#: "rock", so a subgenre fitted freely becomes a cheap second "Pop/Rock"
#: (MSD's "Progressive rock" at 0.013 was written on 7 of 10 GTZAN
#: classical clips).
QUANTILES = (50, 70, 80, 85, 90, 93, 95, 97, 98, 99, 99.5)
SUBGENRE_QUANTILES = (90, 93, 95, 97, 98, 99, 99.5)


def is_subgenre(label: str) -> bool:
    """Whether a genre name sits below an AllMusic genre that another name
    names (lastgenre's tree: below its top level; metal and dance music by
    OUTSIDE_TREE_TO_ALLMUSIC)."""
    name = normalize(label)
    if name in OUTSIDE_TREE_TO_ALLMUSIC:
        return name != "new age music"
    path = genre_tree_paths().get(name)
    return bool(path) and len(path) > 1


def fit_thresholds(sets: Sequence[tuple[FastMap, Sequence[Iterable[str]]]], free: Sequence[int], *,
                   passes: int = 3, min_gain: float = 1e-3) -> list[list]:
    """Coordinate ascent on the sum over ``sets`` (a FastMap of some clips
    and their AllMusic genres) of the F1 of the written set, over the
    thresholds of rules ``free``. Candidates for a rule: percentiles of its
    source's scores over all the clips (QUANTILES, SUBGENRE_QUANTILES for a
    subgenre, which also starts at its 95th percentile); a change is kept
    when it gains at least ``min_gain``. Returns the rules (every FastMap
    gets them too)."""
    rules = [list(r) for r in sets[0][0].rules]
    maps = [fast for fast, _ in sets]

    def scores_of(source: str) -> np.ndarray:
        return np.concatenate([1 / (1 + np.exp(-fast.logits[:, fast.index[source]])) for fast in maps])

    for j in free:
        if is_subgenre(rules[j][1]):
            rules[j][2] = round(float(np.clip(np.percentile(scores_of(rules[j][0]), 95), 1e-4, 0.9999)), 4)
    for fast in maps:
        fast.rules = rules
    truths = [TruthMatrix(t) for _, t in sets]
    labels = maps[0].labels
    columns = [{l: fast.column(l) for l in labels} for fast in maps]

    def evaluate() -> float:
        return sum(allmusic_score(np.stack([c[l] for l in labels], axis=1), labels, t).f1
                   for c, t in zip(columns, truths))

    def refresh(label: str) -> None:
        for fast, c in zip(maps, columns):
            c[label] = fast.column(label)

    best = evaluate()
    for _ in range(passes):
        changed = False
        for j in free:
            source, label = rules[j][0], rules[j][1]
            p = scores_of(source)
            levels = SUBGENRE_QUANTILES if is_subgenre(label) else QUANTILES
            candidates = sorted({round(float(np.clip(np.percentile(p, q), 1e-4, 0.9999)), 4) for q in levels})
            current = choice = rules[j][2]
            for t in candidates:
                rules[j][2] = t
                refresh(label)
                value = evaluate()
                if value >= best + min_gain:
                    best, choice = value, t
            rules[j][2] = choice
            refresh(label)
            changed |= choice != current
        if not changed:
            break
    return rules


def logistic_regression(x, y, *, seed: int = 0, grid: Sequence[float] | None = None):
    """A softmax logistic regression on standardised inputs, C chosen from
    ``grid`` (default :data:`trainer.linear.C_GRID`) by 5-fold CV (log-loss)
    on the training data only (:func:`trainer.linear.logistic_regression`);
    returns the fitted pipeline."""
    from trainer import linear

    return linear.logistic_regression(x=x, y=y, c_grid=linear.C_GRID if grid is None else grid, inner_folds=5,
                                      seed=seed, max_iter=5000)


def head_probabilities(train_x, train_y, test_x, *, seed: int = 0) -> np.ndarray:
    """A GTZAN head as genre10 is one: logistic regression on the
    standardised MSD embedding (:func:`logistic_regression`). Returns test
    probabilities, columns in GTZAN_GENRES order."""
    model = logistic_regression(train_x, train_y, seed=seed)
    classes = list(model.classes_)
    probs = model.predict_proba(test_x)
    return np.stack([probs[:, classes.index(g)] for g in GTZAN_GENRES], axis=1)


def shipped_gtzan_head(embedding: np.ndarray) -> np.ndarray | None:
    """The installed genre10 bundle's probabilities on MSD track embeddings
    (columns in GTZAN_GENRES order) when it is a head on musicnn-msd, else
    None."""
    import torch

    from tagcore.bundle import BundleError, load_bundle
    from tagcore.families import family_module

    try:
        bundle = load_bundle(GTZAN_HEAD)
    except BundleError:
        return None
    if bundle.family != "head" or bundle.backbone != MSD or sorted(bundle.labels) != sorted(GTZAN_GENRES):
        return None
    probs = family_module("head").predict(bundle.model, torch.from_numpy(embedding.astype(np.float32))).numpy()
    return np.stack([probs[:, bundle.labels.index(g)] for g in GTZAN_GENRES], axis=1)


def head_only_logits(probs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The head's probabilities as logits, labels as beets names."""
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)), [normalize(g) for g in GTZAN_GENRES]


def evaluate_genre(mood: Clips, gtz: Clips, *, seeds: Sequence[int] = (0, 1, 2), k: int = 5, log=print) -> dict:
    """The table of the default-genre options (see docs/models/tagmap.md).

    Each seed cuts mood_4q into ``k`` artist-disjoint folds and gtzan_mini
    into ``k`` stratified folds; fold i of both is the test data of round
    i, the rest its training data. Per round: (a0) the rule thresholds;
    (a) thresholds fitted on the training clips of both sets
    (:func:`fit_thresholds`, GTZAN genres counted as GTZAN_ALLMUSIC);
    (b) a GTZAN head trained on the gtzan training clips; (c) the max
    fusion of (a) and (b), the head's own thresholds fitted on the mood_4q
    training clips. All are scored on the test clips of both sets."""
    from trainer import splits

    tags = {MSD: mood.tags[MSD], MTT: mood.tags[MTT]}
    inputs = [f"{b}:{t}" for b in (MSD, MTT) for t in tags[b]]
    inputs_c = inputs + [f"{GTZAN_HEAD}:{g}" for g in GTZAN_GENRES]
    labels, labels_c = genre_labels(), genre_labels(head=True)
    sources = [(b, t) for b, table in GENRE_MAP.items() for t in table]
    start = rule_thresholds([mood, gtz], sources)
    gtz_truth = np.array([l[0] for l in gtz.labels])
    gtz_allmusic = [GTZAN_ALLMUSIC[g] for g in gtz_truth]
    x_mood, x_gtz = mood.matrix([MSD, MTT]), gtz.matrix([MSD, MTT])
    shipped_head = shipped_gtzan_head(mood.embedding)
    head_rules = [[f"{GTZAN_HEAD}:{g}", normalize(g), 0.5, 0.0] for g in GTZAN_GENRES]
    rows: dict[str, list[dict]] = {}

    def add(name: str, mood_logits, lab, test, gtz_logits=None, gtz_test=None, **options) -> None:
        score = allmusic_score(mood_logits, lab, [mood.labels[i] for i in test], **options).as_dict()
        score["gtzan"] = (gtzan_accuracy(gtz_logits, lab, gtz_truth[gtz_test]) if gtz_logits is not None
                          else float("nan"))
        rows.setdefault(name, []).append(score)

    for seed in seeds:
        mood_folds = artist_folds(mood.artists, k=k, seed=seed)
        gtz_folds = splits.group_folds(y=gtz_truth, k=k, seed=seed)  # scikit-learn's StratifiedKFold, shuffled
        for fold, (test, gtest) in enumerate(zip(mood_folds, gtz_folds)):
            train = np.setdiff1d(np.arange(len(mood.paths)), test)
            gtrain = np.setdiff1d(np.arange(len(gtz.paths)), gtest)

            def logits(x, rules, lab=labels, inp=inputs):
                return FastMap(x, inp, lab, rules).logit_matrix()

            # (t) a trivial reference: "Rock" for every clip (AllMusic's most frequent genre, Pop/Rock)
            add("trivial", np.full((len(test), 1), 10.0), ["rock"], test, np.full((len(gtest), 1), 10.0), gtest)
            # (a0) the unsupervised rule
            add("rule", logits(x_mood[test], genre_rules(start)), labels, test,
                logits(x_gtz[gtest], genre_rules(start)), gtest)
            # (a) thresholds fitted on the training clips of both sets
            fitted = fit_thresholds(
                [(FastMap(x_mood[train], inputs, labels, genre_rules(start)), [mood.labels[i] for i in train]),
                 (FastMap(x_gtz[gtrain], inputs, labels, genre_rules(start)), [gtz_allmusic[i] for i in gtrain])],
                range(len(sources)))
            add("map", logits(x_mood[test], fitted), labels, test, logits(x_gtz[gtest], fitted), gtest)
            add("map1", logits(x_mood[test], fitted), labels, test, logits(x_gtz[gtest], fitted), gtest, count=1)
            # (b) the GTZAN head, trained on the gtzan training clips
            model = logistic_regression(gtz.embedding[gtrain], gtz_truth[gtrain], seed=seed)
            order = [list(model.classes_).index(g) for g in GTZAN_GENRES]
            head_mood = model.predict_proba(mood.embedding)[:, order]
            head_gtz = model.predict_proba(gtz.embedding[gtest])[:, order]
            hl, hlab = head_only_logits(head_mood[test])
            add("head", hl, hlab, test, head_only_logits(head_gtz)[0], gtest)
            add("head03", hl, hlab, test, head_only_logits(head_gtz)[0], gtest, threshold=0.3)
            if shipped_head is not None:
                add("genre10", head_only_logits(shipped_head[test])[0], hlab, test)
            # (c) max fusion: (a)'s thresholds kept, the head's fitted on mood_4q's training clips
            x_c = np.concatenate([x_mood, head_mood], axis=1).astype(np.float32)
            fused = fit_thresholds([(FastMap(x_c[train], inputs_c, labels_c, fitted + head_rules),
                                     [mood.labels[i] for i in train])],
                                   range(len(fitted), len(fitted) + len(head_rules)))
            gx_c = np.concatenate([x_gtz[gtest], head_gtz], axis=1).astype(np.float32)
            add("fusion", logits(x_c[test], fused, labels_c, inputs_c), labels_c, test,
                logits(gx_c, fused, labels_c, inputs_c), gtest)
            log(f"  seed {seed} fold {fold}: F1 map {rows['map'][-1]['f1']:.3f}, head {rows['head'][-1]['f1']:.3f}, "
                f"fusion {rows['fusion'][-1]['f1']:.3f}; GTZAN map {rows['map'][-1]['gtzan']:.2f}, "
                f"head {rows['head'][-1]['gtzan']:.2f}, fusion {rows['fusion'][-1]['gtzan']:.2f}")

    shipped = fit_thresholds(
        [(FastMap(x_mood, inputs, labels, genre_rules(start)), mood.labels),
         (FastMap(x_gtz, inputs, labels, genre_rules(start)), gtz_allmusic)], range(len(sources)))
    summary = {name: {key: _mean_sd([f[key] for f in folds]) for key in folds[0]} for name, folds in rows.items()}
    return {"summary": summary, "folds": rows,
            "shipped_thresholds": {tuple(r[0].split(":", 1)): r[2] for r in shipped},
            "rule_thresholds": start,
            "protocol": f"{k} rounds per seed (seeds {list(seeds)}): mood_4q ({len(mood.paths)} clips, "
                        f"{len(set(mood.artists))} artists) in {k} artist-disjoint folds and gtzan_mini "
                        f"({len(gtz.paths)} clips) in {k} stratified folds; round i fits on the other folds of "
                        f"both and scores fold i of both; mean and sd over the {k * len(seeds)} rounds"}


def _mean_sd(values: Sequence[float]) -> list[float]:
    values = np.asarray(values, float)
    return [round(float(values.mean()), 4), round(float(values.std()), 4)]


def evaluate_rule_maps(mood: Clips, gtz: Clips, *, log=print) -> dict:
    """Thresholds of the rule maps and what they do on the reference clips:
    how often each label is written, agreement of the energy words with
    the quadrants' arousal, MSD mood words against AllMusic moods, and
    per-GTZAN-genre rates of instruments and voices."""
    tags = [source for table in MTT_MAPS.values() for source in table] + [(MSD, t) for t in MSD_MOODS]
    thresholds = rule_thresholds([mood, gtz], tags)
    report: dict = {"thresholds": {f"{b}:{t}": v for (b, t), v in thresholds.items()}}
    for task in MTT_MAPS:
        spec = mtt_spec(task, thresholds)
        _, model = spec.build()
        for clips in (mood, gtz):
            probs = _predict(model, clips.matrix(spec.sources))
            report.setdefault(task, {})[clips.name] = {
                l: round(float((probs[:, j] >= 0.5).mean()), 3) for j, l in enumerate(spec.labels)}
        if task == "energy":
            probs = _predict(model, mood.matrix(spec.sources))
            high = np.array([q in ("Q1", "Q2") for q in mood.quadrants])
            report["energy"]["arousal"] = {
                l: {"written": int((probs[:, j] >= 0.5).sum()),
                    "high_arousal_share": round(float(high[probs[:, j] >= 0.5].mean()), 3)
                    if (probs[:, j] >= 0.5).any() else None}
                for j, l in enumerate(spec.labels)}
            report["energy"]["arousal_base_rate"] = round(float(high.mean()), 3)
        if task in ("instrument", "voice"):
            probs = _predict(model, gtz.matrix(spec.sources))
            truth = np.array([l[0] for l in gtz.labels])
            report[task]["gtzan_by_genre"] = {
                g: {l: round(float((probs[truth == g, j] >= 0.5).mean()), 2) for j, l in enumerate(spec.labels)}
                for g in GTZAN_GENRES}
    # MSD mood words against AllMusic moods on mood_4q (no fitting).
    words = {}
    for tag, word in MSD_MOODS.items():
        p = mood.scores[MSD][:, mood.tags[MSD].index(tag)]
        fired = p >= thresholds[(MSD, tag)]
        relevant = np.array([bool(set(m) & set(ALLMUSIC_MOODS[word])) for m in mood.moods])
        words[tag] = {"word": word, "written": int(fired.sum()),
                      "precision": round(float(relevant[fired].mean()), 3) if fired.any() else None,
                      "base_rate": round(float(relevant.mean()), 3)}
    report["msd_mood_words"] = words
    return report


def evaluate_mood(mood: Clips, *, seeds: Sequence[int] = (0, 1, 2), k: int = 5, thresholds=None) -> dict:
    """The mood map with a quadrant head cross-validated on mood_4q
    (artist-disjoint folds; a stand-in for mood4q: logistic regression on
    the MSD embedding): the first mood's agreement with the clip's
    quadrant, how often an MSD word is written, and the precision of the
    written words against AllMusic moods."""
    thresholds = RULE_THRESHOLDS if thresholds is None else thresholds
    quadrant = np.array(mood.quadrants)
    results = []
    msd_tags = mood.tags[MSD]
    inputs = [f"{MOOD_HEAD}:{q}" for q in QUADRANTS] + [f"{MSD}:{t}" for t in msd_tags]
    for seed in seeds:
        probs = np.zeros((len(quadrant), 4))
        for test in artist_folds(mood.artists, k=k, seed=seed):
            train = np.setdiff1d(np.arange(len(quadrant)), test)
            model = logistic_regression(mood.embedding[train], quadrant[train], seed=seed)
            got = model.predict_proba(mood.embedding[test])
            probs[test] = np.stack([got[:, list(model.classes_).index(q)] for q in QUADRANTS], axis=1)
        x = np.concatenate([probs, mood.scores[MSD]], axis=1)
        fast = FastMap(x, inputs, list(MOOD_LABELS), mood_rules(thresholds))
        logits = fast.logit_matrix()
        head_only = FastMap(x, inputs, list(MOOD_LABELS), mood_rules(thresholds)[:len(QUADRANT_MOODS)]).logit_matrix()
        sets = written(logits, count=DECISIONS["mood"]["count"])
        said = [[MOOD_LABELS[j] for j in s] for s in sets]
        from_msd = [[logits[i, j] > head_only[i, j] for j in s] for i, s in enumerate(sets)]
        relevant = [{w for w, group in ALLMUSIC_MOODS.items() if set(m) & set(group)} for m in mood.moods]
        best = [QUADRANT_MOODS[QUADRANTS[int(np.argmax(p))]] for p in probs]
        results.append({
            "quadrant_accuracy": float(np.mean(np.array(QUADRANTS)[probs.argmax(1)] == quadrant)),
            "first_is_head_best": float(np.mean([bool(s) and s[0] == b for s, b in zip(said, best)])),
            "first_is_true_quadrant_word": float(np.mean([bool(s) and s[0] == QUADRANT_MOODS[q]
                                                          for s, q in zip(said, quadrant)])),
            "two_moods_share": float(np.mean([len(s) > 1 for s in said])),
            "msd_word_share": float(np.mean([any(f) for f in from_msd])),
            "first_word_precision": float(np.mean([bool(s) and s[0] in r for s, r in zip(said, relevant)])),
            "msd_words_precision": float(np.mean([w in r for s, f, r in zip(said, from_msd, relevant)
                                                  for w, m in zip(s, f) if m] or [np.nan])),
        })
    return {key: _mean_sd([r[key] for r in results]) for key in results[0] if results[0][key] is not None}


def _predict(model, x: np.ndarray) -> np.ndarray:
    import torch

    from tagcore.families import tagmap

    return tagmap.predict(model, torch.from_numpy(x)).numpy()


# --- Report -------------------------------------------------------------------------

OPTION_NAMES = {
    "trivial": "(t) \"Rock\" for every clip",
    "rule": "(a0) genre map, rule thresholds (no labels)",
    "map": "(a) genre map, fitted thresholds",
    "map1": "(a1) the same, at most 1 genre",
    "head": "(b) GTZAN head (LR on the MSD embedding)",
    "head03": "(b') GTZAN head at threshold 0.3",
    "fusion": "(c) max fusion of (a) and (b)",
    "genre10": "(b*) the shipped genre10 bundle (trained on all of gtzan_mini)",
}


def format_genre_table(summary: dict) -> str:
    lines = ["| option | hit@1 (expressible clips) | hit@1 (all clips) | precision | recall | F1 | no genre "
             "| GTZAN acc. |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in OPTION_NAMES.items():
        if key not in summary:
            continue
        s = summary[key]
        cell = lambda v: "–" if np.isnan(v[0]) else f"{v[0]:.3f} ± {v[1]:.3f}"  # noqa: E731
        lines.append(f"| {name} | {cell(s['hit'])} ({100 * s['expressible'][0]:.0f}%) | {cell(s['hit_all'])} | "
                     f"{cell(s['precision'])} | {cell(s['recall'])} | {cell(s['f1'])} | {cell(s['none'])} | "
                     f"{cell(s['gtzan'])} |")
    return "\n".join(lines)


def format_thresholds(name: str, table: dict[tuple[str, str], float]) -> str:
    body = "\n".join(f"    ({'MSD' if b == MSD else 'MTT'}, {t!r}): {v}," for (b, t), v in table.items())
    return f"{name}: dict[tuple[str, str], float] = {{\n{body}\n}}"


# --- Command line -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="directory the bundles are written to (default: the shipped bundles, tagcore/bundles)")
    parser.add_argument("--only", default="",
                        help="comma-separated bundle names to write (default: all five)")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the genre options and print the fitted thresholds (needs --data)")
    parser.add_argument("--data", default="../shared/datasets",
                        help="folder holding mood_4q/ and gtzan_mini/ (for --evaluate)")
    parser.add_argument("--report", help="with --evaluate: write the figures as JSON here")
    parser.add_argument("--seeds", default="0,1,2", help="with --evaluate: CV seeds")


def run(args, *, log=print) -> int:
    if args.evaluate:
        return run_evaluation(args, log=log)
    from tagcore.bundle import default_bundle_dir

    out = Path(args.out) if args.out else default_bundle_dir()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    head_labels = bundle_labels(MOOD_HEAD)
    specs = []
    for spec_fn in (genre_spec, lambda: mood_spec(head_labels=head_labels), *(
            functools.partial(mtt_spec, t) for t in MTT_MAPS)):
        spec = spec_fn()
        if only and spec.name not in only:
            continue
        if spec.task == "mood":
            if head_labels is None:
                log(f"skipped {spec.name}: the quadrant head {MOOD_HEAD} is not installed")
                continue
            if sorted(head_labels) != sorted(QUADRANTS):
                raise SystemExit(f"error: {MOOD_HEAD} has labels {head_labels}, expected {list(QUADRANTS)}")
        specs.append(spec)
    command = "python -m trainer tagmap" + (f" --out {args.out}" if args.out else "")
    for spec in specs:
        path = write_bundle(spec, out, command=command)
        log(f"wrote {path} ({len(spec.labels)} labels from {len(spec.rules)} sources)")
    return 0


def run_evaluation(args, *, log=print) -> int:
    data = Path(args.data)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    patches = tagging_patches()
    log(f"reading musicnn outputs of mood_4q and gtzan_mini ({patches} central patches per clip)")
    mood, gtz = load_clips(data, patches=patches, log=log)
    genre = evaluate_genre(mood, gtz, seeds=seeds, log=log)
    rules = evaluate_rule_maps(mood, gtz, log=log)
    rule_table = {tuple(k.split(":", 1)): v for k, v in rules["thresholds"].items()}
    moods = evaluate_mood(mood, seeds=seeds, thresholds=rule_table)
    log("\nDefault genre options (mean ± sd over CV seeds):\n")
    log(format_genre_table(genre["summary"]))
    log("\nMood map (quadrant head cross-validated on mood_4q):", json.dumps(moods))
    log("\nRule maps:", json.dumps({k: v for k, v in rules.items() if k != "thresholds"}, indent=1))
    log("\n" + format_thresholds("GENRE_THRESHOLDS", genre["shipped_thresholds"]))
    log(format_thresholds("RULE_THRESHOLDS", rule_table))
    stale = [k for k, v in genre["shipped_thresholds"].items() if GENRE_THRESHOLDS.get(k) != v]
    stale += [k for k, v in rule_table.items() if RULE_THRESHOLDS.get(k) != v]
    if stale:
        log(f"\nnote: {len(stale)} thresholds differ from the tables in trainer/tagmap.py (e.g. {stale[:3]})")
    if args.report:
        report = {"genre": {k: v for k, v in genre.items() if k not in ("shipped_thresholds", "rule_thresholds")},
                  "genre_thresholds": {f"{b}:{t}": v for (b, t), v in genre["shipped_thresholds"].items()},
                  "mood": moods, "rule_maps": rules, "patches": patches}
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer tagmap", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
