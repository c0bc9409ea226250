import pytest
from hypothesis import given
from hypothesis import strategies as st

from asr.text import CharTokenizer, UnknownCharacterError, normalize_text


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
