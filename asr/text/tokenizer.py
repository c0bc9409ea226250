"""Character tokenizer: blank = 0, then space, a-z and the apostrophe."""

from __future__ import annotations

import string
from collections.abc import Sequence

BLANK = "<blank>"


class UnknownCharacterError(ValueError):
    """The text holds a character that has no token."""


class BaseTokenizer:
    """What every tokenizer has: ``tokens`` with the CTC blank at id 0, and the ``characters`` it
    can spell; text with any other character is refused, not silently changed."""

    blank = 0
    tokens: list[str]
    characters: set[str]

    def __len__(self) -> int:
        return len(self.tokens)

    def check_characters(self, text: str) -> None:
        unknown = sorted(set(text) - self.characters)
        if unknown:
            raise UnknownCharacterError(f"characters not in the vocabulary: {''.join(unknown)!r}")


class CharTokenizer(BaseTokenizer):
    """Maps normalised text to token ids and back, a character each."""

    def __init__(self, characters: Sequence[str] = (" ", *string.ascii_lowercase, "'")) -> None:
        self.tokens = [BLANK, *characters]
        self.characters = set(characters)
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        self.check_characters(text)
        return [self._ids[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids (blanks already removed) to text."""
        return "".join(self.tokens[i] for i in ids if i != self.blank)

    def to_dict(self) -> dict:
        return {"type": "char", "tokens": self.tokens}

    @classmethod
    def from_dict(cls, state: dict) -> CharTokenizer:
        if state.get("type") != "char" or state["tokens"][0] != BLANK:
            raise ValueError(f"not a character tokenizer: {state.get('type')!r}")
        return cls(state["tokens"][1:])
