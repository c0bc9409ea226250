import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asr.text import (
    CharTokenizer,
    SentencePieceTokenizer,
    UnknownCharacterError,
    normalize_text,
    tokenizer_from_dict,
)


@pytest.mark.parametrize("raw, normalized", [
    ("Hello,  World!", "hello world"),
    ("DON'T stop -- ‘believing’", "don't stop believing"),
    ("Café  naïve\tfaçade", "cafe naive facade"),
    ("  'quoted'  ", "quoted"),
    ("well-known", "well known"),
])  # fmt: skip
def test_normalize(raw, normalized):
    assert normalize_text(raw) == normalized


@given(st.text(alphabet=" abcdefghijklmnopqrstuvwxyz'", max_size=60))
def test_tokenizer_round_trip(text):
    tokenizer = CharTokenizer()
    ids = tokenizer.encode(text)
    assert tokenizer.blank not in ids
    assert tokenizer.decode(ids) == text


def test_layout_and_serialisation():
    tokenizer = CharTokenizer()
    assert tokenizer.tokens[0] == "<blank>" and tokenizer.tokens[1] == " " and len(tokenizer) == 29
    assert CharTokenizer.from_dict(tokenizer.to_dict()).tokens == tokenizer.tokens


def test_unknown_characters_are_named():
    with pytest.raises(UnknownCharacterError, match="'24'"):
        CharTokenizer().encode("room 42")


SENTENCES = [
    "the quick brown fox jumps over the lazy dog", "a stitch in time saves nine", "don't count your chickens",
    "the early bird catches the worm", "actions speak louder than words", "all that glitters is not gold",
] * 5  # fmt: skip


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_round_trip_blank_and_checkpoint_state(model_type, tmp_path):
    tokenizer = SentencePieceTokenizer.train(SENTENCES, vocab_size=60, model_type=model_type)
    assert tokenizer.tokens[tokenizer.blank] == "<blank>" and 30 < len(tokenizer) <= 61
    for text in [*SENTENCES[:6], "the worm saves a dog"]:
        ids = tokenizer.encode(text)
        assert tokenizer.blank not in ids and tokenizer.decode(ids) == text
        assert len(ids) < len(text), "pieces are longer than characters"
    torch.save(tokenizer.to_dict(), tmp_path / "t.pt")
    restored = tokenizer_from_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    assert restored.tokens == tokenizer.tokens and restored.encode("gold dog") == tokenizer.encode("gold dog")


def test_sentencepiece_refuses_characters_it_never_saw():
    tokenizer = SentencePieceTokenizer.train(SENTENCES, vocab_size=60)
    with pytest.raises(UnknownCharacterError, match="'!9'"):
        tokenizer.encode("lazy dog 9!")
