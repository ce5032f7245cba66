"""The tag maps' tables: which musicnn tag feeds which label, above which
probability it counts, and how a written genre is counted in evaluation.

Hand-written data only (no code): the maps of the five shipped bundles
(:data:`GENRE_MAP`, :data:`QUADRANT_MOODS` and :data:`MSD_MOODS`,
:data:`MTT_MAPS`), the tags left out and why, the thresholds the bundles
ship (:data:`GENRE_THRESHOLDS` fitted, :data:`RULE_THRESHOLDS` by the
rule; ``python -m trainer tagmap --evaluate`` prints both), the
recommended decisions, and the tables the evaluation counts genres and
moods with (:data:`TOP_TO_ALLMUSIC`, :data:`GTZAN_CLASS`,
:data:`GTZAN_ALLMUSIC`, :data:`ALLMUSIC_MOODS`).
"""

from __future__ import annotations

#: The two musicnn ports whose tags the maps read.
MSD, MTT = "musicnn-msd", "musicnn-mtt"
#: The quadrant head (labels Q1..Q4) the mood map reads, and the GTZAN
#: head the combined genre option reads.
MOOD_HEAD, GTZAN_HEAD = "mood4q", "genre10"
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

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
#: all 900 mood_4q clips and the genres of gtzan_mini's 100 (fit_thresholds), on
#: the mean of the 2 central patches the musicnn bundles read (tagging_patches;
#: python -m trainer tagmap --evaluate prints them; docs/models/tagmap.md
#: has the cross-validated figures).
GENRE_THRESHOLDS: dict[tuple[str, str], float] = {
    (MSD, 'rock'): 0.1724,
    (MSD, 'pop'): 0.0517,
    (MSD, 'alternative'): 0.1664,
    (MSD, 'alternative rock'): 0.1024,
    (MSD, 'indie'): 0.2084,
    (MSD, 'indie rock'): 0.0921,
    (MSD, 'indie pop'): 0.0269,
    (MSD, 'electronic'): 0.3068,
    (MSD, 'electronica'): 0.07,
    (MSD, 'electro'): 0.049,
    (MSD, 'dance'): 0.1375,
    (MSD, 'House'): 0.0407,
    (MSD, 'chillout'): 0.1897,
    (MSD, 'ambient'): 0.2033,
    (MSD, 'jazz'): 0.2459,
    (MSD, 'metal'): 0.4232,
    (MSD, 'heavy metal'): 0.1242,
    (MSD, 'hard rock'): 0.1053,
    (MSD, 'classic rock'): 0.0981,
    (MSD, 'Progressive rock'): 0.1047,
    (MSD, 'punk'): 0.1572,
    (MSD, 'soul'): 0.2213,
    (MSD, 'rnb'): 0.198,
    (MSD, 'funk'): 0.101,
    (MSD, 'Hip-Hop'): 0.0441,
    (MSD, 'blues'): 0.1538,
    (MSD, 'country'): 0.0566,
    (MSD, 'folk'): 0.1191,
    (MSD, 'easy listening'): 0.0729,
    (MTT, 'classical'): 0.4069,
    (MTT, 'classic'): 0.081,
    (MTT, 'rock'): 0.2669,
    (MTT, 'pop'): 0.0884,
    (MTT, 'metal'): 0.3575,
    (MTT, 'country'): 0.1561,
    (MTT, 'electronic'): 0.313,
    (MTT, 'techno'): 0.5506,
    (MTT, 'dance'): 0.1235,
    (MTT, 'ambient'): 0.419,
    (MTT, 'new age'): 0.066,
    (MTT, 'indian'): 0.3465,
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

#: Quadrant of Russell's plane -> mood word (the quadrant head decides).
QUADRANT_MOODS = {"Q1": "happy", "Q2": "aggressive", "Q3": "sad", "Q4": "calm"}
#: Words of one side of the plane, written when the decision is between
#: exactly these two quadrants (a close call that agrees on arousal): the
#: quadrant head's two probabilities feed them.
SIDE_MOODS = {"energetic": ("Q1", "Q2"), "mellow": ("Q3", "Q4")}
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
MOOD_LABELS = ("happy", "aggressive", "sad", "calm", "party", "romantic", "energetic", "mellow")
#: The quadrants each mood word is compatible with: a word is written only
#: when every quadrant of the decision is among these (side words: exactly
#: these). Two words with disjoint sets never meet on an item. romantic is
#: positive valence, either arousal (AllMusic's Romantic is Q4 on 65% of
#: mood_4q's clips that carry it, Q1 on 35%; Sensual 46/54).
MOOD_QUADRANTS = {
    "happy": ("Q1",), "aggressive": ("Q2",), "sad": ("Q3",), "calm": ("Q4",), "party": ("Q1",),
    "romantic": ("Q1", "Q4"), **SIDE_MOODS,
}
#: Tiers: a quadrant word at the head's uniform share (0.25 of a softmax
#: over four quadrants: the best quadrant always has at least this) scores
#: HEAD_FLOOR; MSD words never score more than MSD_CEILING < HEAD_FLOOR.
HEAD_THRESHOLD, HEAD_FLOOR, MSD_CEILING = 0.25, 0.6, 0.59
#: The quadrant decision (calibrated on mood_4q with artist-disjoint CV by
#: ``python -m trainer tagmap --evaluate``, trainer/tagmap/moods.py): a
#: second quadrant joins the decision when its probability is at least
#: GATE_MARGIN x the best's; ENERGY_VETOES: an MTT tag at or above
#: VETO_FACTOR x its rule threshold keeps only the quadrants of its arousal
#: side (MTT's fast and loud: 98-100% of the mood_4q clips they are
#: written on are high-arousal; slow, soft, quiet: 93-99% low-arousal).
GATE_MARGIN = 0.4
VETO_FACTOR = 1.0
HIGH_AROUSAL, LOW_AROUSAL = ("Q1", "Q2"), ("Q3", "Q4")
ENERGY_VETOES = {"fast": HIGH_AROUSAL, "loud": HIGH_AROUSAL, "slow": LOW_AROUSAL, "soft": LOW_AROUSAL,
                 "quiet": LOW_AROUSAL}
#: Energy words and the arousal side they belong to: written only when the
#: quadrant decision lies on that side (never "fast" beside "Calm").
ENERGY_SIDES = {"fast": HIGH_AROUSAL, "loud": HIGH_AROUSAL, "slow": LOW_AROUSAL, "soft": LOW_AROUSAL}
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
    "energetic": ("Energetic", "Intense", "Fiery", "Exciting", "Rousing", "Lively", "Boisterous", "Rowdy",
                  "Volatile", "Powerful", "Aggressive", "Raucous"),
    "mellow": ("Mellow", "Calm", "Peaceful", "Soothing", "Gentle", "Relaxed", "Quiet", "Soft", "Laid-Back",
               "Reflective", "Melancholy", "Wistful", "Somber", "Lazy", "Weary", "Sad", "Gloomy", "Bleak"),
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
#: Every candidate map, before the evidence policy.
CANDIDATE_MAPS = {"instrument": INSTRUMENT_MAP, "voice": VOICE_MAP, "energy": ENERGY_MAP}
#: Labels the default bundles do not write, and the real-data evidence why
#: (trainer/tagmap/evidence.py; python -m trainer tagmap --evaluate prints
#: it; docs/models/tagmap.md has the table). Filled from that output.
NOT_WRITTEN: dict[str, str] = {
    "piano": "no clip here is known to have a piano: 38 writes, none checkable",
    "harpsichord": "3 checkable writes, all wrong (band genres)",
    "violin": "42 writes, none checkable (no genre here is known to have violins)",
    "cello": "37 writes, none checkable",
    "harp": "3 checkable writes, all wrong",
    "flute": "33 writes, none checkable",
    "sitar": "41 of its 49 writes are on genres without sitars (jazz, R&B, blues, GTZAN): right 0 of 41",
    "synth": "9 checkable writes, 4 right (disco) and 5 wrong (classical, blues, country, jazz)",
    "female vocal": "1 checkable write, wrong (classical)",
    "male vocal": "10 checkable writes, 6 right (rap), 4 wrong (classical): 0.60",
    "choir": "27 writes, none checkable",
}
#: The maps the bundles ship: the candidates less NOT_WRITTEN.
MTT_MAPS = {task: {source: label for source, label in table.items() if label not in NOT_WRITTEN}
            for task, table in CANDIDATE_MAPS.items()}

#: Thresholds of the rule maps (rule_threshold over mood_4q + gtzan_mini;
#: python -m trainer tagmap --evaluate prints them).
RULE_THRESHOLDS: dict[tuple[str, str], float] = {
    (MTT, 'guitar'): 0.321,
    (MTT, 'piano'): 0.345,
    (MTT, 'harpsichord'): 0.062,
    (MTT, 'violin'): 0.226,
    (MTT, 'cello'): 0.037,
    (MTT, 'strings'): 0.185,
    (MTT, 'harp'): 0.022,
    (MTT, 'flute'): 0.113,
    (MTT, 'sitar'): 0.055,
    (MTT, 'drums'): 0.232,
    (MTT, 'synth'): 0.12,
    (MTT, 'female'): 0.245,
    (MTT, 'woman'): 0.192,
    (MTT, 'female vocal'): 0.15,
    (MTT, 'female voice'): 0.113,
    (MTT, 'male'): 0.195,
    (MTT, 'man'): 0.169,
    (MTT, 'male vocal'): 0.193,
    (MTT, 'male voice'): 0.138,
    (MSD, 'instrumental'): 0.133,
    (MTT, 'choir'): 0.055,
    (MTT, 'choral'): 0.032,
    (MTT, 'fast'): 0.288,
    (MTT, 'slow'): 0.195,
    (MTT, 'soft'): 0.066,
    (MTT, 'quiet'): 0.084,
    (MTT, 'loud'): 0.296,
    (MSD, 'happy'): 0.005,
    (MSD, 'sad'): 0.01,
    (MSD, 'Mellow'): 0.028,
    (MSD, 'chill'): 0.018,
    (MSD, 'chillout'): 0.072,
    (MSD, 'easy listening'): 0.048,
    (MSD, 'party'): 0.011,
    (MSD, 'sexy'): 0.019,
}


# --- Counting genres in evaluation ---------------------------------------------

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


#: GTZAN's genres as AllMusic genres, for fitting genre thresholds on
#: gtzan_mini beside mood_4q (disco: AllMusic files disco acts under R&B,
#: Pop/Rock or Electronic; any of them counts).
GTZAN_ALLMUSIC = {
    "blues": ("Blues",), "classical": ("Classical",), "country": ("Country",),
    "disco": ("Electronic", "R&B", "Pop/Rock"), "hiphop": ("Rap",), "jazz": ("Jazz",), "metal": ("Pop/Rock",),
    "pop": ("Pop/Rock",), "reggae": ("Reggae",), "rock": ("Pop/Rock",),
}


# --- Evidence for instruments and voices ------------------------------------------

#: Where a label's truth is known from a clip's genre alone, written by
#: meaning before measuring: ``right``, genres where (nearly) every clip
#: has it; ``wrong``, genres where (nearly) none has it ("gtzan:<genre>" of
#: gtzan_mini, "allmusic:<Genre>" of mood_4q). A write on a clip of neither
#: is not checkable. AllMusic's genres are an artist's, so only the
#: clearest ones are used.
_GTZAN = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
_BAND = ("gtzan:disco", "gtzan:hiphop", "gtzan:metal", "gtzan:pop", "gtzan:reggae", "gtzan:rock", "allmusic:Rap")
LABEL_EVIDENCE: dict[str, dict[str, tuple[str, ...]]] = {
    "guitar": {"right": ("gtzan:rock", "gtzan:metal", "gtzan:blues", "gtzan:country"),
               "wrong": ("gtzan:classical", "allmusic:Classical", "gtzan:hiphop", "allmusic:Rap")},
    "drums": {"right": ("gtzan:rock", "gtzan:metal", "gtzan:disco", "gtzan:hiphop", "gtzan:reggae", "gtzan:pop"),
              "wrong": ("gtzan:classical", "allmusic:Classical")},
    "synth": {"right": ("gtzan:disco",), "wrong": ("gtzan:classical", "allmusic:Classical", "gtzan:blues",
                                                    "gtzan:country", "gtzan:jazz")},
    "piano": {"right": (), "wrong": ("gtzan:metal", "gtzan:hiphop", "allmusic:Rap")},
    "strings": {"right": ("gtzan:classical",), "wrong": _BAND},
    "violin": {"right": (), "wrong": _BAND},
    "cello": {"right": (), "wrong": _BAND},
    "harp": {"right": (), "wrong": _BAND + ("gtzan:blues", "gtzan:jazz", "gtzan:country")},
    "harpsichord": {"right": (), "wrong": _BAND + ("gtzan:blues", "gtzan:jazz", "gtzan:country")},
    "flute": {"right": (), "wrong": _BAND + ("gtzan:blues", "gtzan:country")},
    "sitar": {"right": (), "wrong": tuple(f"gtzan:{g}" for g in _GTZAN) + (
        "allmusic:Rap", "allmusic:Jazz", "allmusic:Blues", "allmusic:Country", "allmusic:R&B", "allmusic:Vocal",
        "allmusic:Reggae", "allmusic:Latin", "allmusic:Classical")},
    "female vocal": {"right": (), "wrong": ("gtzan:classical", "allmusic:Classical")},
    "male vocal": {"right": ("allmusic:Rap", "gtzan:hiphop"), "wrong": ("gtzan:classical", "allmusic:Classical")},
    "no vocals": {"right": ("gtzan:classical", "allmusic:Classical"),
                  "wrong": ("gtzan:hiphop", "gtzan:pop", "gtzan:metal", "allmusic:Rap", "allmusic:Vocal")},
    "choir": {"right": (), "wrong": _BAND + ("gtzan:blues", "gtzan:country")},
}
#: The policy: a label is written by default only when at least
#: EVIDENCE_MIN_CHECKABLE of its writes on the 1,000 real clips are
#: checkable and at least EVIDENCE_MIN_PRECISION of those are right.
EVIDENCE_MIN_CHECKABLE, EVIDENCE_MIN_PRECISION = 10, 0.75
