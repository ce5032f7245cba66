"""The TF-IDF + logistic-regression lyrics model: the trainer's baseline
exported as an ``ngram`` bundle scores as scikit-learn did, loads without
unpickling anything, and its calibration (temperature, threshold) does
what it says. No dataset needed; the shipped bundle is checked last."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tagcore.bundle import load_bundle, save_bundle
from tagcore.families import ngram
from tagcore.lyrics import lyric_tokens
from trainer import calibration as C
from trainer import lyrics as T

WORDS = {
    "rap": "money gun street hustle block cash chain flex",
    "country": "truck whiskey road dirt tractor porch creek boots",
    "rock": "guitar amp loud riff drum scream stage feedback",
}


def songs(n: int, seed: int, genres=("country", "rap")) -> tuple[list[str], np.ndarray]:
    """``n`` English texts, the words of each genre in turn, and their
    (n, len(genres)) gold matrix; every third one borrows three words of
    the next genre."""
    rng = np.random.default_rng(seed)
    texts, y = [], np.zeros((n, len(genres)), dtype=np.float32)
    for i in range(n):
        genre = i % len(genres)
        pool = WORDS[genres[genre]].split()
        if i % 3 == 0:
            pool = pool + WORDS[genres[(genre + 1) % len(genres)]].split()[:3]
        words = rng.choice(pool, size=12).tolist()
        texts.append("\n".join(" ".join(["you", "and", "i", "the"] + words[j : j + 4]) for j in range(0, 12, 4)))
        y[i, genre] = 1.0
    return texts, y


def fitted_model(texts, y, *, temperature: float = 1.0):
    tokens = [lyric_tokens(t) for t in texts]
    vectorizer, clf = T.baseline_fit(tokens, y, seed=0)
    fitted = T.baseline_weights(vectorizer, clf, n_labels=y.shape[1])
    config = ngram.Config(vocabulary=fitted["terms"], n_labels=y.shape[1], temperature=temperature)
    model = ngram.Model(config)
    model.set_weights(idf=fitted["idf"], weight=fitted["weight"], bias=fitted["bias"])
    return model, vectorizer, clf, config


@pytest.mark.parametrize("genres", [("country", "rap"), ("country", "rap", "rock")])
def test_numpy_scoring_equals_scikit_learn(genres):
    texts, y = songs(60, seed=0, genres=genres)
    model, vectorizer, clf, _ = fitted_model(texts, y)
    test, _ = songs(20, seed=1, genres=genres)
    expected = clf.predict_proba(vectorizer.transform([lyric_tokens(t) for t in test]))
    assert np.allclose(ngram.predict_texts(model, test), expected, atol=1e-5)


def test_temperature_divides_the_logits():
    texts, y = songs(60, seed=0)
    plain = fitted_model(texts, y)[0]
    sharp = fitted_model(texts, y, temperature=0.5)[0]
    test, _ = songs(10, seed=1)
    logits = ngram.logits_of(plain, [lyric_tokens(t) for t in test])
    assert np.allclose(ngram.predict_texts(sharp, test), ngram.softmax(logits, temperature=0.5), atol=1e-6)
    assert (ngram.predict_texts(sharp, test).max(axis=1) > ngram.predict_texts(plain, test).max(axis=1)).all()


def test_bundle_round_trip_never_unpickles(tmp_path, monkeypatch):
    texts, y = songs(60, seed=0)
    model, _, _, config = fitted_model(texts, y)
    test, _ = songs(10, seed=1)
    before = ngram.predict_texts(model, test)
    path = save_bundle(tmp_path / "b", model=model, family="ngram", name="t", version="1", labels=["country", "rap"],
                       model_config=config.to_dict(), task="genre", input={"kind": "text", "source": "lyrics"})

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    loaded = load_bundle(path)
    assert loaded.family_module is ngram
    assert np.allclose(ngram.predict_texts(loaded.model, test), before, atol=1e-6)


def test_unreadable_and_unknown_texts_are_refused_with_the_reason():
    texts, y = songs(60, seed=0)
    model = fitted_model(texts, y)[0]
    probs, problems = ngram.predict_texts_checked(model, ["[Instrumental]", "the quick brown fox jumps over the dog",
                                                          texts[0], "Eu sei que vou te amar, por toda a minha vida"])
    assert "no words" in problems[0] and "known to the model" in problems[1] and problems[2] is None
    assert "'pt'" in problems[3]
    assert np.isnan(probs[[0, 1, 3]]).all() and np.isfinite(probs[2]).all()


def test_fit_temperature_recovers_the_temperature_of_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 5))
    probs = C.softmax(logits, temperature=2.0)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    targets = np.eye(5)[labels]
    assert C.fit_temperature(logits=logits, targets=targets) == pytest.approx(2.0, rel=0.1)


def test_threshold_is_the_smallest_that_reaches_the_precision():
    confidence = np.array([0.3] * 40 + [0.6] * 40 + [0.9] * 40)
    correct = np.array([False] * 30 + [True] * 10 + [False] * 10 + [True] * 30 + [True] * 40)
    # At 0.3: 80 of 120 right (0.67); at 0.325 .. 0.6: 70 of 80 (0.875).
    assert C.choose_threshold(confidence=confidence, correct=correct, precision=0.8) == pytest.approx(0.325)
    assert C.choose_threshold(confidence=confidence, correct=correct, precision=0.6) == pytest.approx(0.2)
    assert C.choose_threshold(confidence=confidence, correct=correct, precision=1.01) == C.THRESHOLDS[-1]
    assert C.share_and_precision(confidence=confidence, correct=correct, threshold=0.9) == (pytest.approx(1 / 3), 1.0)


def test_cross_fitted_calibration_takes_nothing_from_the_fold_it_scores():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(600, 3))
    gold = np.eye(3)[[rng.choice(3, p=p) for p in C.softmax(logits, temperature=2.0)]]
    fold = np.arange(600) % 3
    report = C.cross_fitted_report(logits=logits, gold=gold, fold=fold, precision=0.7)
    for row in report["per_fold"]:
        rest = fold != row["fold"]
        assert row["temperature"] == pytest.approx(C.fit_temperature(logits=logits[rest], targets=gold[rest]))
        assert row["cross_entropy_after"] < row["cross_entropy_before"]
    assert report["all"]["temperature"] == pytest.approx(2.0, rel=0.25)
