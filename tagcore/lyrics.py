"""Lyrics cleaning and language detection (the lyrics paper, section III.B).

Pure functions, no model. The lyrics family (:mod:`tagcore.families.lyrics`)
and its trainer (:mod:`trainer.lyrics`) both go through
:func:`lyric_tokens`, so training and inference see the same tokens:

1. :func:`clean_lyrics` removes what is not the song's words: section
   markers in brackets (``[Chorus: Billy Ray Cyrus]``, ``[Verse 2]``,
   ``[Produced by ...]``), the lyrics sites' page furniture that scrapes
   carry (Genius' ``123Embed`` trailer, ``You might also like`` and ``See X
   LiveGet tickets as low as $80`` inserts), links (``http://...``,
   ``www....``), and instrumental markers;
2. :func:`tagcore.text.tokenize` splits the rest into case-folded Unicode
   words: punctuation and other non-alphanumeric characters go (the
   paper's "punctuation ... and various non-alphanumeric characters");
3. English stopwords (:data:`STOPWORDS`, the 179 words of NLTK's English
   list) go, as the paper removes stopwords; apostrophes left inside words
   are dropped (``y'all`` -> ``yall``; GloVe 6B splits ``can't`` into
   ``ca`` + ``n't``, so the joined form is the one it is likelier to have).

Language detection (:func:`detect_language`) is a stopword profile: the
share of a text's words that are stopwords of each of seven languages
(:data:`PROFILES`: English, Portuguese, Spanish, French, German, Italian,
Dutch). Lyrics are full of function words, so a few lines suffice; text
whose best share is under ``min_share`` (too few function words of any
listed language, or no letters at all) is ``"unknown"``. Text mostly in
CJK script is ``"cjk"`` (the profiles cover space-separated languages only).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Mapping

from tagcore.text import script_of, tokenize, word_tokens

#: NLTK's English stopword list (179 words), the usual meaning of
#: "stopwords" in lyrics work; apostrophe forms included.
STOPWORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves
what which who whom this that that'll these those am is are was were be been being have has had
having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've
now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())

#: Function words per language, for :func:`detect_language`: English is
#: :data:`STOPWORDS` and a few lyric staples; the others a few dozen each,
#: without the words they share with English ("a", "me", "no"...), which
#: English lyrics are full of.
PROFILES: dict[str, frozenset[str]] = {
    "en": STOPWORDS | frozenset("i'm im dont cant ain't yeah oh like love know got get let gonna wanna baby".split()),
    "pt": frozenset("que não de o a eu você do da me em um uma é meu minha se pra com por mais te tudo sem nos no mas ela ele vou sou".split()),
    "es": frozenset("que de el la y en no me mi tu te un una es lo por con para yo se más pero como eres está todo ya sin amor cuando".split()),
    "fr": frozenset("je tu il elle nous vous et le la les de des un une est que qui pas ne dans pour sur mon ma moi toi avec mais c'est j'ai plus".split()),
    "de": frozenset("ich du er sie wir und der die das ein eine ist nicht zu mit mich dich mir dir auf es den im auch wie so noch nur".split()),
    "it": frozenset("che di il la un una non mi ti io tu è per con sei lo gli le ma come più sono questo mio tuo nel della".split()),
    "nl": frozenset("ik je jij het de een en is niet van dat die mijn wat op te met voor maar zijn mij ben naar wel nog ook".split()),
}

PROFILES = {lang: words if lang == "en" else words - PROFILES["en"] for lang, words in PROFILES.items()}

_LANGUAGES_OF: dict[str, tuple[str, ...]] = {}
for _lang, _words in PROFILES.items():
    for _word in _words:
        _LANGUAGES_OF[_word] = (*_LANGUAGES_OF.get(_word, ()), _lang)

#: Markers meaning "no words": lyrics sites write them for instrumentals.
INSTRUMENTAL = re.compile(r"^\W*(instrumental|\(instrumental\)|\[instrumental\])\W*$", re.IGNORECASE)

_BRACKETS = re.compile(r"\[[^\]\n]{0,200}\]")
_EMBED = re.compile(r"\d*\s*Embed\s*$")
_MIGHT_LIKE = re.compile(r"You might also like", re.IGNORECASE)
_TICKETS = re.compile(r"See [^\n\[]{0,120}? Live\s*Get tickets as low as \$[\d,.]+")
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HEADER = re.compile(r"^[^\n]{0,200}?Lyrics(?=\[)")  # Genius page title glued to the first marker


def clean_lyrics(text: str) -> str:
    """``text`` without section markers, Genius page furniture (``Embed``
    trailer, ``You might also like``, ticket inserts, a ``... Lyrics`` title
    glued to the first marker), links and instrumental-marker lines. Line
    breaks are kept; words are not touched (see :func:`lyric_tokens`)."""
    text = _EMBED.sub("", text)
    text = _HEADER.sub("", text)
    text = _TICKETS.sub("\n", text)
    text = _MIGHT_LIKE.sub("\n", text)
    text = _LINK.sub(" ", text)
    text = _BRACKETS.sub("\n", text)
    lines = [line for line in text.splitlines() if not INSTRUMENTAL.match(line)]
    return "\n".join(lines).strip()


_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")


def is_cjk(text: str) -> bool:
    """:func:`tagcore.text.script_of` is ``"cjk"``, answered without
    counting letters when the text holds no CJK character at all."""
    return _CJK_CHAR.search(text) is not None and script_of(text) == "cjk"


def lyric_words(text: str, *, max_chars: int | None = None) -> list[str]:
    """Words of lyrics, stopwords kept: :func:`clean_lyrics` then the words
    :func:`tagcore.text.tokenize` gives (punctuation and symbols dropped,
    case-folded; jieba for CJK text), computed faster for the common case
    (NFKC only: control characters separate words either way).
    ``max_chars``: only the first that many characters are read, so a 1 MB
    field costs no more than the cap."""
    if max_chars is not None:
        text = text[:max_chars]
    text = unicodedata.normalize("NFKC", clean_lyrics(text))
    return tokenize(text, script="cjk") if is_cjk(text) else word_tokens(text)


def content_tokens(words: list[str], *, remove_stopwords: bool = True) -> list[str]:
    """``words`` without English stopwords (when ``remove_stopwords``) and
    with inner apostrophes dropped: the model's tokens."""
    if remove_stopwords:
        words = [w for w in words if w not in STOPWORDS]
    return [w.replace("'", "") for w in words]


def lyric_tokens(text: str, *, remove_stopwords: bool = True, max_chars: int | None = None) -> list[str]:
    """Tokens of lyrics, cleaned as section III.B: :func:`lyric_words`
    then :func:`content_tokens`."""
    return content_tokens(lyric_words(text, max_chars=max_chars), remove_stopwords=remove_stopwords)


def language_shares(words: list[str], profiles: Mapping[str, frozenset[str]] | None = None) -> dict[str, float]:
    """For each language, the share of ``words`` (case-folded, stopwords
    kept) that are in its profile. Empty dict for no words."""
    if not words:
        return {}
    if profiles is None:
        # One pass over the words (a word -> languages table) instead of one per language.
        counts = dict.fromkeys(PROFILES, 0)
        for word in words:
            for lang in _LANGUAGES_OF.get(word, ()):
                counts[lang] += 1
        return {lang: n / len(words) for lang, n in counts.items()}
    return {lang: sum(1 for w in words if w in vocab) / len(words) for lang, vocab in profiles.items()}


def language_of_words(words: list[str], *, min_share: float = 0.05) -> str:
    """The best stopword profile of ``words`` (see :func:`detect_language`),
    ``"unknown"`` under ``min_share``."""
    shares = language_shares(words)
    if not shares:
        return "unknown"
    best = max(sorted(shares), key=lambda lang: shares[lang])
    return best if shares[best] >= min_share else "unknown"


def detect_language(text: str, *, min_share: float = 0.05, max_chars: int = 20_000) -> str:
    """The language of ``text`` by its stopword profile: an ISO 639-1 code
    of :data:`PROFILES`, ``"cjk"`` for mostly-CJK text, ``"unknown"`` when
    no profile covers at least ``min_share`` of the words (or no words).
    Only the first ``max_chars`` characters are read."""
    text = text[:max_chars]
    if is_cjk(text):
        return "cjk"
    return language_of_words(tokenize(clean_lyrics(text), script="latin"), min_share=min_share)


def read_lyrics(text: str | None, *, max_chars: int, max_tokens: int, language: str = "en",
                remove_stopwords: bool = True) -> tuple[list[str], str | None]:
    """The tokens a lyrics model reads (its first ``max_tokens`` after
    cleaning the first ``max_chars`` characters) and None, or no tokens
    and why the text cannot be read: no words (empty, instrumental or
    markers only), a stopword profile of another language than
    ``language`` ("" reads any), or no words once stopwords are removed.
    Both lyrics families read their input through this."""
    truncated = (text or "")[:max_chars]
    # CJK lyrics are refused before jieba is loaded for them (~2 s).
    cjk = language not in ("", "cjk") and is_cjk(truncated)
    words = [] if cjk else lyric_words(truncated)
    if not words and not cjk:
        return [], "no words in the lyrics (instrumental, or markers only)"
    if language:
        found = "cjk" if cjk else language_of_words(words)
        if found != language:
            seen = "in no language it knows" if found == "unknown" else f"in {found!r}"
            return [], f"lyrics {seen} by their stopword profile; the model reads {language!r} lyrics only"
    tokens = content_tokens(words, remove_stopwords=remove_stopwords)[:max_tokens]
    if not tokens:
        return [], "no words in the lyrics once stopwords are removed"
    return tokens, None
