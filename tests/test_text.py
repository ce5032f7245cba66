"""The shared text front: tokenizers, vocabulary, bounded reading."""

import numpy as np
import pytest

from tagcore import text


@pytest.mark.parametrize(
    "sample, expected",
    [
        ("I can't stop, won't stop!", ["i", "can't", "stop", "won't", "stop"]),
        ("Rock’n’Roll  ROCK\tand_roll", ["rock'n'roll", "rock", "and", "roll"]),
        ("Ça va? Déjà-vu — naïve café", ["ça", "va", "déjà", "vu", "naïve", "café"]),
        ("Привет, мир 2024", ["привет", "мир", "2024"]),
        ("ＦＵＬＬ　ｗｉｄｔｈ", ["full", "width"]),
        ("", []),
        ("  \n\t ", []),
    ],
)
def test_word_tokenizer(sample, expected):
    assert text.tokenize(sample) == expected


def test_chinese_goes_through_jieba_words_not_characters():
    tokens = text.tokenize("这首歌真的很好听，民谣风格")
    assert "民谣" in tokens and "风格" in tokens and "好听" in tokens
    assert "，" not in tokens


def test_script_is_chosen_per_text():
    assert text.script_of("一首很好听的民谣 folk") == "cjk"
    assert text.script_of("a folk song 一首") == "latin"
    assert text.script_of("123 !!!") == "latin"
    mixed = text.tokenize("Beatles 的歌很好听")
    assert "beatles" in mixed and "好听" in mixed


def test_vocabulary_reserves_pad_and_unknown_and_round_trips():
    vocab = text.Vocabulary.build([["a", "b", "a"], ["a", "c", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode(["b", "c"]) == [3, text.UNK_ID]
    assert vocab.coverage(["a", "c"]) == 0.5
    assert text.Vocabulary.from_dict(vocab.to_dict()).tokens == vocab.tokens
    capped = text.Vocabulary.build([["a", "b", "a"]], min_count=1, max_size=3)
    assert capped.tokens == ["<pad>", "<unk>", "a"]


def test_pad_ids_cuts_and_pads():
    out = text.pad_ids([[5, 6, 7], [8]], length=2)
    np.testing.assert_array_equal(out, [[5, 6], [8, 0]])


def test_embedding_matrix_uses_pretrained_vectors_where_known():
    vocab = text.Vocabulary(["<pad>", "<unk>", "love", "zzz"])
    matrix, found = text.embedding_matrix(vocab, {"love": np.ones(3)}, dim=3)
    assert matrix.shape == (4, 3) and found == 0.5
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_array_equal(matrix[2], 1)
    assert np.abs(matrix[3]).max() <= 0.1


def test_read_text_is_capped_and_never_splits_a_character(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("民" * 1000, encoding="utf-8")  # 3 bytes each
    content, truncated = text.read_text(path, max_bytes=100)
    assert truncated and content == "民" * 33
    content, truncated = text.read_text(path, max_bytes=10_000)
    assert not truncated and len(content) == 1000


def test_read_text_refuses_binary(tmp_path):
    path = tmp_path / "cover.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    with pytest.raises(UnicodeDecodeError):
        text.read_text(path)


@pytest.mark.parametrize("words, script", [
    (["民谣", "好听", "专辑", "摇滚", "the"], "cjk"),  # 80 % Chinese words
    (["rock", "guitar", "record", "great", "民谣"], "latin"),
    (["rock", "guitar", "民谣", "好听"], None),  # mixed: no script check
    ([], None),
])
def test_vocabulary_script(words, script):
    assert text.Vocabulary([text.PAD, text.UNK, *words]).script() == script


def test_script_problem_names_both_scripts():
    chinese = text.Vocabulary([text.PAD, text.UNK, "民谣", "好听", "专辑", "摇滚", "the"])
    assert text.script_problem("这张民谣专辑很好听", chinese) is None
    assert text.script_problem("这张民谣专辑很好听, the best record", chinese) is None  # mostly Chinese
    problem = text.script_problem("the best folk record of the year", chinese)
    assert "space-separated" in problem and "Chinese/Japanese/Korean" in problem
    assert text.script_problem("   ", chinese) is None
    mixed = text.Vocabulary([text.PAD, text.UNK, "rock", "民谣"])
    assert text.script_problem("the best folk record", mixed) is None
