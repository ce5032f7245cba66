"""Fixtures for the lyrics tests: real-looking lyric snippets and a tiny
lyrics bundle whose prediction is fixed by its output bias. Nothing is
downloaded; no GloVe is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tagcore.bundle import save_bundle
from tagcore.families import lyrics as family
from tagcore.lyrics import lyric_tokens
from tagcore.text import Vocabulary

#: English lyrics in the Genius page format (markers, ticket insert, trailer).
ENGLISH = """Old Town Road Lyrics[Intro: Billy Ray Cyrus]
Oh, oh-oh
[Chorus: Lil Nas X]
Yeah, I'm gonna take my horse to the old town road
I'm gonna ride 'til I can't no more
See Lil Nas X LiveGet tickets as low as $80You might also like[Verse 1]
I got the horses in the back, horse tack is attached
Hat is matte black, got the boots that's black to match
https://genius.com/lil-nas-x-old-town-road
Ridin' on a horse, you can whip your Porsche340Embed"""

PORTUGUESE = """[Refrão]
Eu sei que vou te amar, por toda a minha vida eu vou te amar
Em cada despedida eu vou te amar, desesperadamente
Eu sei que vou te amar, e cada verso meu será pra te dizer
que eu sei que vou te amar por toda a minha vida"""

SPANISH = "Te quiero, mi amor, y no me dejes nunca\nPorque eres todo lo que tengo en la vida, corazón"

INSTRUMENTAL = "[Instrumental]"

LYRICS_LABELS = ["rap", "rock", "country"]
#: softmax of the lyrics fixture's bias: rap 0.9, rock 0.05, country 0.05.
LYRICS_PROBS = (0.9, 0.05, 0.05)


def make_lyrics_bundle(directory: Path, *, name: str = "lyrics-test", labels=LYRICS_LABELS, probs=LYRICS_PROBS,
                       genre_names=None, **config) -> Path:
    """A small lyrics bundle whose output ignores the text: zero linear
    weights, bias log(probs). Its vocabulary holds the words of ENGLISH."""
    torch.manual_seed(0)
    vocabulary = Vocabulary.build([lyric_tokens(ENGLISH)], min_count=1)
    cfg = family.Config(vocabulary=list(vocabulary.tokens), n_labels=len(labels), hidden=8, **config)
    model = family.Model(cfg)
    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.copy_(torch.log(torch.tensor(probs, dtype=torch.float32)))
    path = save_bundle(directory, model=model, family="lyrics", name=name, version="1", labels=list(labels),
                       model_config=cfg.to_dict(), task="genre", input={"kind": "text", "source": "lyrics"},
                       provenance={"made_by": "tests/lyrics_fixtures.py"})
    if genre_names is None:
        genre_names = {"rap": "Hip Hop"}
    import json

    config_path = path / "config.json"
    data = json.loads(config_path.read_text())
    data["genre_names"] = genre_names
    config_path.write_text(json.dumps(data))
    return path


def softmax_bias(probs) -> tuple[float, ...]:
    """Logits whose softmax is ``probs``."""
    return tuple(float(v) for v in np.log(np.asarray(probs, dtype=np.float64)))
